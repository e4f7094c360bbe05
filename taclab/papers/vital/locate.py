"""Localize-then-execute (VITAL section 3.4): find the target in the third-person RGB-D image, move the hand above
it, and let the local policy run.

- :class:`Locator`: ``locate(rgb, depth, query, truth_uv=None) -> (u, v)``, a pixel (column, row; pixel ``i``
  spans ``[i, i + 1)``) of the target named by a text query ("the USB port"). Only oracles read ``truth_uv``.
- :func:`project` / :func:`back_project`: world point <-> pixel with the pinhole intrinsics ``K`` and the
  ``world_from_camera`` pose (OpenCV convention) of :meth:`taclab.envs.vital.VitalEnv.third_person`; the depth
  image (metres along the optical axis) lifts a pixel to 3-D.
- :class:`NoisyOracleLocator`: the true pixel plus Gaussian noise (``noise_px``), for ablations.
- :func:`parse_point`: the point in a pointing VLM's answer (Molmo's ``<point x="..." y="...">`` in percent of the
  image, or a Qwen2-VL style ``(x, y)`` / ``[x, y]`` in pixels or in another frame such as Qwen2-VL's 0-1000 grid).
- :func:`locate_world`: a locator's pixel and the world point the depth image and calibration lift it to (the path
  :func:`localize_then_execute` takes).
- :func:`localize_then_execute`: one episode: reset with the target at a new place, locate it, place the hand at
  the start region above the located point (the demonstrations' start region, 10 cm above the target), run the
  policy; returns success and the localization error.

- :class:`KeypointLocator`: a small convolutional network trained on rendered third-person scenes with exact
  labels (:func:`render_scenes`, :func:`train_keypoint_locator`), one per task; spatial softmax over a heat map
  gives the pixel. The offline default.
- :class:`VLMLocator`: a pointing vision-language model (Qwen2-VL or Qwen2.5-VL) loaded through ``transformers``
  from a folder or a hub id, asked for the point of the query in a chat prompt (:data:`VLM_PROMPT`); its answer
  goes through :func:`parse_point`. Only its plumbing is tested (with a tiny random Qwen2-VL); no pretrained
  pointing model has been run here.

A locator that cannot find the target raises ``ValueError`` naming why (a missing true pixel, another task's
query, an answer without a point, a point outside the image); none guesses.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

QUERIES = {
    "plug": "the power socket",
    "usb": "the USB port",
    "card": "the card reader's slot",
    "key": "the keyhole of the lock",
    "pick": "the block on the table",
}
"""the text query of each task"""


def project(point_world, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """(u, v) pixel of a world point (metres)."""
    p = np.linalg.inv(world_from_camera) @ np.r_[np.asarray(point_world, float), 1.0]
    if p[2] <= 0:
        raise ValueError(f"the point {list(point_world)} is behind the camera")
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]])


def back_project(uv, depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """The world point (metres) seen at pixel ``uv``, at the depth the depth image holds there."""
    u, v = float(uv[0]), float(uv[1])
    h, w = depth.shape
    if not (0 <= u < w and 0 <= v < h):
        raise ValueError(f"pixel ({u:.1f}, {v:.1f}) is outside the {w} x {h} image")
    z = float(depth[int(v), int(u)])
    if not np.isfinite(z) or z <= 0:
        raise ValueError(f"no depth at pixel ({u:.1f}, {v:.1f})")
    cam = np.array([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z, 1.0])
    return (world_from_camera @ cam)[:3]


class Locator:
    """From a third-person RGB-D view and a text query to the target's pixel."""

    privileged = False

    def locate(self, rgb: np.ndarray, depth: np.ndarray, query: str, truth_uv=None) -> np.ndarray:
        raise NotImplementedError


class NoisyOracleLocator(Locator):
    """The true pixel plus isotropic Gaussian noise of ``noise_px`` pixels (0: the exact pixel)."""

    privileged = True

    def __init__(self, noise_px: float = 0.0, seed: int = 0):
        if not (np.isfinite(noise_px) and noise_px >= 0):
            raise ValueError(f"noise_px must be finite and >= 0, got {noise_px}")
        self.noise_px = float(noise_px)
        self.rng = np.random.default_rng(seed)

    def locate(self, rgb, depth, query, truth_uv=None) -> np.ndarray:
        if truth_uv is None:
            raise ValueError("the oracle locator needs the true pixel (truth_uv)")
        h, w = depth.shape
        uv = np.asarray(truth_uv, float) + self.rng.normal(0, self.noise_px, 2)
        return np.clip(uv, 0, [w - 1e-6, h - 1e-6])


_MOLMO = re.compile(r'x\d*\s*=\s*"([-\d.]+)"\s+y\d*\s*=\s*"([-\d.]+)"')
_PAIR = re.compile(r"[(\[]\s*([-\d.]+)\s*,\s*([-\d.]+)\s*[)\]]")


def parse_point(text: str, width: int, height: int, pair_frame: tuple[float, float] | None = None) -> np.ndarray:
    """The first point of a pointing VLM's answer as (u, v) pixels of a ``width`` x ``height`` image: Molmo's
    ``<point x="61.5" y="40.2" ...>`` (percent of the image) or ``(x, y)`` / ``[x, y]`` (Qwen2.5-VL's
    ``"point_2d": [x, y]``). A pair is in pixels of the image, or, with ``pair_frame=(fw, fh)``, in a frame of that
    size spanning the image (``(1000, 1000)``: Qwen2-VL's 0-1000 grid; the size of the model's resized input:
    Qwen2.5-VL's pixels). Raises ``ValueError`` naming the text when there is none."""
    try:
        m = _MOLMO.search(text)
        if m:
            return np.array([float(m.group(1)) / 100 * width, float(m.group(2)) / 100 * height])
        m = _PAIR.search(text)
        if m:
            xy = np.array([float(m.group(1)), float(m.group(2))])
            if pair_frame is not None:
                xy = xy / np.asarray(pair_frame, float) * np.array([width, height])
            return xy
    except ValueError:  # a number such as "1.2.3"
        pass
    raise ValueError(f'no point in the answer {text[:80]!r}; expected <point x=".." y=".."> or (x, y)')


def locate_world(locator: Locator, view: dict, query: str, truth_uv=None) -> tuple[np.ndarray, np.ndarray]:
    """``locator``'s pixel of ``query`` in a third-person ``view`` (``rgb``, ``depth``, ``K``,
    ``world_from_camera``, as :meth:`taclab.envs.vital.VitalEnv.third_person` gives) and the world point
    :func:`back_project` lifts it to with the view's depth and calibration."""
    uv = np.asarray(locator.locate(view["rgb"], view["depth"], query, truth_uv), float)
    return uv, back_project(uv, view["depth"], view["K"], view["world_from_camera"])


def localize_then_execute(env, policy, locator: Locator, seed: int, options: dict[str, Any] | None = None) -> dict:
    """One episode: reset (target at a new place by default), locate the target in the third-person view, reset
    again with the same seed and the hand at the start region above the located point, then run ``policy``.
    Returns success, steps and the localization error (mm, world)."""
    from taclab.eval.rollout import run_episode

    options = {"target": "novel", **(options or {})}
    env.reset(seed=seed, options=options)
    sim = env.unwrapped
    view = sim.third_person()
    entry, tyaw = sim.sim.target_pose()
    truth = project(entry, view["K"], view["world_from_camera"]) if locator.privileged else None
    uv, located = locate_world(locator, view, QUERIES[sim.TASK], truth)
    located[2] = entry[2] if not np.isfinite(located[2]) else located[2]
    c, s = math.cos(tyaw), math.sin(tyaw)
    to_target = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    # the env's start option is the hand's place relative to the start region's centre above the target: moving
    # the hand to the region above the located point is this offset (a change of coordinates, nothing privileged
    # reaches the policy)
    start_mm = 1000 * (to_target @ (located - entry))
    result = run_episode(env, policy, seed, {**options, "start": start_mm.tolist()})
    return {
        "success": bool(result.success),
        "steps": result.steps,
        "error_mm": float(np.linalg.norm(located - entry) * 1000),
        "pixel": [float(x) for x in uv],
    }


# ------------------------------------------------------------------------------------------ keypoint network
def render_scenes(task: str, n: int, size: tuple[int, int] = (60, 80), seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` third-person views of a task with the target at new places (and at its trained one), every
    background and lighting: ``rgb`` (n, H, W, 3) uint8 and ``uv`` (n, 2), the target's exact pixel."""
    from taclab.envs.base import make
    from taclab.envs.vital import ENV_IDS
    from taclab.sim.vital import BACKGROUNDS, LIGHTINGS

    env = make(ENV_IDS[task], third_person=True, third_person_size=tuple(size), image_size=(16, 16), masks=False)
    rng = np.random.default_rng(seed)
    rgbs, uvs = [], []
    try:
        for _ in range(n):
            opts = {
                "target": "novel" if rng.random() < 0.8 else "train",
                "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
                "lighting": LIGHTINGS[rng.integers(len(LIGHTINGS))],
            }
            env.reset(seed=int(rng.integers(2**31)), options=opts)
            view = env.unwrapped.third_person()
            rgbs.append(view["rgb"])
            uvs.append(project(env.unwrapped.sim.target_pose()[0], view["K"], view["world_from_camera"]))
    finally:
        env.close()
    return {"rgb": np.stack(rgbs), "uv": np.stack(uvs).astype(np.float32)}


class KeypointNet(nn.Module):
    """Convolutions to one heat map at 1/4 resolution; its spatial softmax's expected position, in [-1, 1]."""

    def __init__(self, width: int = 32):
        super().__init__()
        c = width
        self.body = nn.Sequential(
            nn.Conv2d(3, c, 5, 2, 2), nn.GroupNorm(4, c), nn.ReLU(),
            nn.Conv2d(c, c, 3, 1, 1), nn.GroupNorm(4, c), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.GroupNorm(4, 2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 2, dilation=2), nn.GroupNorm(4, 2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, 1, 4, dilation=4), nn.GroupNorm(4, 2 * c), nn.ReLU(),
            nn.Conv2d(2 * c, 1, 1),
        )  # fmt: skip

    def forward(self, x):
        import torch

        m = self.body(x)[:, 0]
        b, h, w = m.shape
        p = m.flatten(1).softmax(-1).reshape(b, h, w)
        xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device)
        ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device)
        return torch.stack([(p.sum(1) * xs).sum(-1), (p.sum(2) * ys).sum(-1)], -1)


def _to_input(rgb):
    import torch

    return torch.as_tensor(np.asarray(rgb)).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.25)


def _norm_uv(uv, h: int, w: int):
    return np.asarray(uv, np.float32) / np.array([w, h], np.float32) * 2 - 1


def train_keypoint_locator(
    task: str, data: dict[str, np.ndarray], steps: int = 600, batch: int = 32, lr: float = 2e-3, seed: int = 0,
    width: int = 32,
) -> KeypointLocator:  # fmt: skip
    """Fit a :class:`KeypointNet` to rendered scenes (``rgb``, exact ``uv``) with an L1 loss on the position."""
    import torch

    torch.manual_seed(seed)
    net = KeypointNet(width)
    rgb, uv = data["rgb"], data["uv"]
    n, h, w = rgb.shape[:3]
    x, y = _to_input(rgb), torch.as_tensor(_norm_uv(uv, h, w))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch, n),), generator=g)
        loss = (net(x[idx]) - y[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return KeypointLocator(task, net, (h, w))


class KeypointLocator(Locator):
    """A trained :class:`KeypointNet` for one task; answers only that task's query (:data:`QUERIES`)."""

    def __init__(self, task: str, net: KeypointNet, size: tuple[int, int]):
        self.task, self.net, self.size = task, net, tuple(size)

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """(n, 2) pixels of a batch of (n, H, W, 3) images of the trained size."""
        import torch

        rgb = np.asarray(rgb)
        if rgb.shape[1:3] != self.size:
            raise ValueError(f"the locator was trained on {self.size} images, got {rgb.shape[1:3]}")
        with torch.no_grad():
            out = self.net(_to_input(rgb)).numpy()
        h, w = self.size
        return (out + 1) / 2 * np.array([w, h])

    def locate(self, rgb, depth, query, truth_uv=None) -> np.ndarray:
        if query != QUERIES[self.task]:
            raise ValueError(f"this locator finds {QUERIES[self.task]!r} ({self.task}); got the query {query!r}")
        return self.predict(np.asarray(rgb)[None])[0]

    def save(self, directory) -> Path:
        import json

        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(d / "locator.safetensors"))
        width = self.net.body[0].out_channels
        (d / "locator.json").write_text(json.dumps({"task": self.task, "size": list(self.size), "width": width}))
        return d

    @classmethod
    def load(cls, directory) -> KeypointLocator:
        import json

        from safetensors.torch import load_file

        d = Path(directory)
        meta = json.loads((d / "locator.json").read_text())
        net = KeypointNet(meta["width"])
        net.load_state_dict(load_file(str(d / "locator.safetensors")))
        net.eval()
        return cls(meta["task"], net, tuple(meta["size"]))


# ------------------------------------------------------------------------------------------ pointing VLM
VLM_PROMPT = "Point to {query} in the image. Answer with one point (x, y), {frame}."
"""The default question a :class:`VLMLocator` asks, after the image, in the model's chat template (one user turn,
the image first). ``{query}`` is the text query (:data:`QUERIES`), ``{frame}`` says in which frame the point is
wanted (:data:`VLM_FRAMES`)."""

VLM_FRAMES = {
    "grid1000": "where x and y run from 0 to 1000 across the image's width and height",
    "input": "in pixels of the {width} x {height} image",
    "image": "in pixels of the {width} x {height} image",
}
"""How :data:`VLM_PROMPT` names each coordinate frame of an answer's ``(x, y)``: ``grid1000`` (Qwen2-VL's
grounding grid), ``input`` (pixels of the image as the model's processor resized it: Qwen2.5-VL's absolute
coordinates), ``image`` (pixels of the image as given)."""

VLM_MODEL_TYPES = {"qwen2_vl": "grid1000", "qwen2_5_vl": "input"}
"""Model types a :class:`VLMLocator` loads, each with the frame ``coords="auto"`` picks for it."""

_DTYPES = ("float32", "bfloat16", "float16")


class VLMLocator(Locator):
    """A pointing vision-language model: the image and :data:`VLM_PROMPT` in, a point out.

    ``model`` is a folder or a hub id (checked first by :func:`taclab.policies.pretrained.require_pretrained`, so a
    missing model is one ``ValueError`` naming it; with ``HF_HUB_OFFLINE=1`` nothing is downloaded) of a Qwen2-VL
    or Qwen2.5-VL checkpoint (:data:`VLM_MODEL_TYPES`), loaded with ``AutoModelForImageTextToText``, its tokenizer
    with ``AutoTokenizer`` and its image processor with ``AutoImageProcessor``. The inputs are assembled here as
    Qwen2-VL's processor does (each ``<|image_pad|>`` repeated once per merged patch): ``AutoProcessor`` would also
    load the video processor, which needs ``torchvision``.

    Options: ``device`` (``cpu``, the default, ``cuda``, ``cuda:N`` or ``auto``: a GPU when there is one),
    ``dtype`` (``float32``, ``bfloat16``, ``float16``), ``max_new_tokens`` (32; generation is greedy), ``coords``
    (``auto``, ``grid1000``, ``input`` or ``image``; :data:`VLM_FRAMES`), ``prompt`` (a template with ``{query}``
    and, optionally, ``{frame}``).

    :meth:`answer` is the model's text; :meth:`locate` parses it with :func:`parse_point` (Molmo's
    ``<point x=".." y="..">`` in percent is read too) into pixels of the given image. An answer without a point,
    or with a point outside the image, raises ``ValueError`` naming the answer: there is no fallback point. The
    depth image is not shown to the model; :func:`locate_world` lifts the pixel to 3-D.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int = 32,
        coords: str = "auto",
        prompt: str = VLM_PROMPT,
    ):
        import torch
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        from taclab.policies.pretrained import require_pretrained

        if dtype not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; allowed: {', '.join(_DTYPES)}")
        if coords != "auto" and coords not in VLM_FRAMES:
            raise ValueError(f"unknown coords {coords!r}; allowed: auto, {', '.join(VLM_FRAMES)}")
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or not 1 <= max_new_tokens <= 1024:
            raise ValueError(f"max_new_tokens must be an integer in [1, 1024], got {max_new_tokens!r}")
        if "{query}" not in prompt:
            raise ValueError(f"the prompt {prompt!r} has no {{query}} field")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N, auto") from e
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for but torch sees no GPU; allowed here: cpu, auto")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {device!r}; allowed: cpu, cuda, cuda:N, auto")
        src = require_pretrained(model, "VLM locator model")
        kind = AutoConfig.from_pretrained(src).model_type
        if kind not in VLM_MODEL_TYPES:
            raise ValueError(
                f"VLM locator model {src} is a {kind!r} model; allowed: {', '.join(VLM_MODEL_TYPES)} checkpoints"
            )
        self.source, self.model_type, self.device = src, kind, dev
        self.coords = VLM_MODEL_TYPES[kind] if coords == "auto" else coords
        self.prompt, self.max_new_tokens = prompt, max_new_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.image_processor = AutoImageProcessor.from_pretrained(src)
        self.model = AutoModelForImageTextToText.from_pretrained(src, dtype=getattr(torch, dtype)).to(dev).eval()
        self.last_answer: str | None = None

    def question(self, query: str, width: int, height: int) -> str:
        """The text asked after the image: :attr:`prompt` with the query and the frame of the wanted point."""
        frame = VLM_FRAMES[self.coords].format(width=width, height=height)
        return self.prompt.format(query=query, frame=frame)

    def _chat(self, question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # Qwen2-VL's chat layout, for a checkpoint whose tokenizer carries no template
        return (
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            f"<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n"
        )

    def _inputs(self, rgb: np.ndarray, query: str) -> tuple[dict, tuple[int, int]]:
        """The model's inputs for one image and query, and the (width, height) of the image as the model sees it."""
        import torch
        from PIL import Image

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be an (H, W, 3) uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
        pix = self.image_processor(images=[Image.fromarray(rgb)], return_tensors="pt")
        grid = pix["image_grid_thw"][0]
        merge = int(getattr(self.image_processor, "merge_size", 2))
        patch = int(getattr(self.image_processor, "patch_size", 14))
        input_size = (int(grid[2]) * patch, int(grid[1]) * patch)
        w, h = input_size if self.coords == "input" else (rgb.shape[1], rgb.shape[0])
        text = self._chat(self.question(query, w, h))
        pad = "<|image_pad|>"
        if text.count(pad) != 1:
            raise ValueError(f"the chat template of {self.source} gave {text.count(pad)} image tokens, expected 1")
        text = text.replace(pad, pad * (int(grid.prod()) // merge**2))
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        inputs = {
            "input_ids": ids["input_ids"],
            "attention_mask": ids["attention_mask"],
            "pixel_values": pix["pixel_values"].to(self.model.dtype),
            "image_grid_thw": pix["image_grid_thw"],
        }
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}, input_size

    def answer(self, rgb: np.ndarray, query: str) -> tuple[str, tuple[int, int]]:
        """The model's greedy answer (special tokens dropped) to the image and the question of ``query``, and the
        (width, height) of the image as the model's processor resized it."""
        import torch

        inputs, input_size = self._inputs(rgb, query)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        self.last_answer = text
        return text, input_size

    def locate(self, rgb, depth, query, truth_uv=None) -> np.ndarray:
        h, w = np.asarray(rgb).shape[:2]
        if np.asarray(depth).shape != (h, w):
            raise ValueError(f"the depth image is {np.asarray(depth).shape}, the rgb image {(h, w)}")
        text, input_size = self.answer(rgb, query)
        frame = {"grid1000": (1000.0, 1000.0), "input": input_size, "image": None}[self.coords]
        try:
            uv = parse_point(text, w, h, frame)
        except ValueError as e:
            raise ValueError(f"the VLM locator ({self.source}) found no point: {e}") from None
        if not (np.all(np.isfinite(uv)) and 0 <= uv[0] <= w and 0 <= uv[1] <= h):
            raise ValueError(
                f"the VLM locator ({self.source}) answered {text[:80]!r}: pixel ({uv[0]:.1f}, {uv[1]:.1f}) is outside "
                f"the {w} x {h} image"
            )
        return np.minimum(uv, [w - 1e-6, h - 1e-6])  # a point on the right or bottom edge is the last pixel
