"""Localize-then-execute (VITAL section 3.4): find the target in the third-person RGB-D image, move the hand above
it, and let the local policy run.

- :class:`Locator`: ``locate(rgb, depth, query, truth_uv=None) -> (u, v)``, a pixel (column, row; pixel ``i``
  spans ``[i, i + 1)``) of the target named by a text query ("the USB port"). Only oracles read ``truth_uv``.
- :func:`project` / :func:`back_project`: world point <-> pixel with the pinhole intrinsics ``K`` and the
  ``world_from_camera`` pose (OpenCV convention) of :meth:`taclab.envs.vital.VitalEnv.third_person`; the depth
  image (metres along the optical axis) lifts a pixel to 3-D.
- :class:`NoisyOracleLocator`: the true pixel plus Gaussian noise (``noise_px``), for ablations.
- :func:`parse_point`: the point in a pointing VLM's answer (Molmo's ``<point x="..." y="...">`` in percent of the
  image, or a Qwen2-VL style ``(x, y)`` in pixels), for a VLM locator.
- :func:`localize_then_execute`: one episode: reset with the target at a new place, locate it, place the hand at
  the start region above the located point (the demonstrations' start region, 10 cm above the target), run the
  policy; returns success and the localization error.

- :class:`KeypointLocator`: a small convolutional network trained on rendered third-person scenes with exact
  labels (:func:`render_scenes`, :func:`train_keypoint_locator`), one per task; spatial softmax over a heat map
  gives the pixel. The offline default.

Not yet here: the VLM locator that loads a pointing model through ``transformers`` (docs/vital.md, "Not done
yet"); :func:`parse_point` is its answer parser.
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
_PAIR = re.compile(r"\(\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\)")


def parse_point(text: str, width: int, height: int) -> np.ndarray:
    """The first point of a pointing VLM's answer as (u, v) pixels: Molmo's ``<point x="61.5" y="40.2" ...>``
    (percent of the image) or ``(x, y)`` in pixels. Raises ``ValueError`` naming the text when there is none."""
    m = _MOLMO.search(text)
    if m:
        return np.array([float(m.group(1)) / 100 * width, float(m.group(2)) / 100 * height])
    m = _PAIR.search(text)
    if m:
        return np.array([float(m.group(1)), float(m.group(2))])
    raise ValueError(f'no point in the answer {text[:80]!r}; expected <point x=".." y=".."> or (x, y)')


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
    uv = locator.locate(view["rgb"], view["depth"], QUERIES[sim.TASK], truth)
    located = back_project(uv, view["depth"], view["K"], view["world_from_camera"])
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
