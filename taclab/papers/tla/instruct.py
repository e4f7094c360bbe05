"""The instruction format of the TLA paper (figure 3 and section IV): composite tactile image, chat sample, and
the text codec of actions.

- The **composite image** puts the 8 tactile tiles of an attempt (4 frames x 2 pads) in a 3x3 grid, time-major
  (row 0: frame 0 pad 0, frame 0 pad 1, frame 1 pad 0; ...), the last cell white, resized to a square of
  ``size`` pixels (616 in the paper). The ``pad_channels`` layout (:func:`tactile_composites`) instead puts the
  4 frames in a 2x2 grid with the two pads in the colour channels of each tile.
- The **chat sample** is a user turn with the image and an instruction naming the peg shape, and an assistant
  turn with the action as text.
- The **action codec** scales each action component by a per-dimension factor and rounds it to an integer
  (paper IV-B): with the default resolution of 0.1 mm and 0.1 degree, ``(-0.9, 0.4, 1.3)`` is ``[-9, 4, 13]``.
  Encoding and decoding round-trip exactly on that grid. The strict parser turns model output into an action
  or a :class:`ParseResult` with the reason it failed; it never raises on bad text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from taclab.papers.tla.labels import DELTA_MM, MAX_ROT_DEG

SHAPE_WORDS = {"square": "square", "triangle": "triangular", "round": "round", "hexagon": "hexagonal"}
"""How an instruction names each paper shape; other shapes are named as they are."""

DEFAULT_TEMPLATES = (
    "Given the tactile images during peg-in-hole insertion tasks. Predict the correct robot action to insert "
    "the {shape} peg. Predicted action: ",
    "These tactile images were recorded while inserting a {shape} peg. What action corrects the peg's pose? "
    "Predicted action: ",
    "Based on the tactile observation, give the robot action that inserts the {shape} peg into the target "
    "hole. Predicted action: ",
)
"""Instruction templates; ``{shape}`` is replaced by the shape's word. The first is the paper's figure 3."""


def composite_image(tactile: np.ndarray, size: int = 616) -> np.ndarray:
    """The 3x3 composite of a (4, 2, H, W, 3) uint8 tactile sequence, resized to (size, size, 3) uint8."""
    from PIL import Image

    t = np.asarray(tactile)
    if t.ndim != 5 or t.shape[:2] != (4, 2) or t.shape[-1] != 3 or t.dtype != np.uint8:
        raise ValueError(f"tactile must be uint8 of shape (4, 2, H, W, 3), got {t.dtype} {t.shape}")
    if not 3 <= int(size) <= 4096:
        raise ValueError(f"composite size must be between 3 and 4096 pixels, got {size}")
    h, w = t.shape[2:4]
    grid = np.full((3 * h, 3 * w, 3), 255, np.uint8)
    for k in range(8):
        r, c = divmod(k, 3)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = t[k // 2, k % 2]
    if grid.shape[:2] == (size, size):
        return grid
    return np.asarray(Image.fromarray(grid).resize((int(size), int(size)), Image.Resampling.BICUBIC))


LAYOUTS = ("composite", "pad_channels", "pad_colours")
"""How the tactile sequence becomes the model's one image (``TLAConfig.layout``)."""


def tactile_composites(
    tactile, cfg, stats, size: int, layout: str = "composite", blue: str = "difference"
) -> list[np.ndarray]:
    """8-bit images (size, size, 3) of a (B, 4, 2, H, W, 3) uint8 batch in the tactile input representation
    ``cfg`` (a :class:`taclab.policies.tactile_input.TactileInputConfig` with its fitted ``stats``).

    - ``layout: composite`` (the paper's): the raw setting gives :func:`composite_image` of the images themselves;
      any other the composite of their 8-bit mapping ``clip(round(128 + image_gain * v), 0, 255)``, its ninth
      cell as ``cfg.ninth_cell`` says.
    - ``layout: pad_channels``: the 4 frames in a 2x2 grid, each frame one RGB tile with pad 0's grey in R, pad
      1's grey in G and, in B, their difference (``blue: difference``) or mean (``blue: mean``)
      (:func:`taclab.policies.tactile_input.pad_channels`), computed on the representation before the 8-bit
      mapping (raw images: on the grey levels, centred on 128 with gain 1).
    - ``layout: pad_colours``: the same for each colour channel separately, without frame 0 (taken before the
      peg meets the hole): a 3x3 grid, rows frames 1-3, columns the colour channels R, G, B; each tile R = pad
      0's channel, G = pad 1's, B = their difference or mean
      (:func:`taclab.policies.tactile_input.pad_channels_per_colour`).
    """
    from PIL import Image

    from taclab.policies.tactile_input import (
        as_uint8,
        composite,
        frame_grid,
        pad_channels,
        pad_channels_per_colour,
        pad_difference,
        represent,
        tile_grid,
        to_uint8,
    )

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "composite" and cfg.ninth_cell == "blank":
        return [composite_image(x, size) for x in to_uint8(tactile, cfg, stats)]
    if cfg.is_raw:
        v, gain = torch_from_uint8(tactile), 1.0
    else:
        if stats is None:
            raise RuntimeError("the tactile representation needs statistics: fit them on training data first")
        v, gain = represent(tactile, cfg, stats), cfg.image_gain
    if layout == "pad_channels":
        grids = as_uint8(frame_grid(pad_channels(v, blue)), gain)
    elif layout == "pad_colours":
        tiles = pad_channels_per_colour(v, blue)[:, 1:]  # (B, 3 frames, 3 colours, H, W, 3)
        grids = as_uint8(tile_grid(tiles.flatten(1, 2), 3), gain)
    else:
        grids = as_uint8(composite(v, ninth=pad_difference(v)).permute(0, 2, 3, 1), gain)
    return [
        g if g.shape[:2] == (size, size) else np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC))
        for g in grids
    ]


def torch_from_uint8(tactile):
    """A uint8 tactile batch as a float tensor centred on 128 (the raw images on the scale of
    :func:`taclab.policies.tactile_input.as_uint8` with gain 1)."""
    import torch

    from taclab.policies.preprocess import tactile_batch

    return torch.as_tensor(tactile_batch(tactile)).float() - 128.0


def instruction(shape: str, template: str | int = 0, templates: tuple[str, ...] = DEFAULT_TEMPLATES) -> str:
    """The instruction text for a peg shape; ``template`` is an index into ``templates`` or a template."""
    if isinstance(template, int):
        if not 0 <= template < len(templates):
            raise ValueError(f"template index {template} out of range: there are {len(templates)} templates")
        template = templates[template]
    if "{shape}" not in template:
        raise ValueError(f"an instruction template must contain '{{shape}}', got {template!r}")
    return template.format(shape=SHAPE_WORDS.get(shape, shape))


@dataclass(frozen=True)
class ParseResult:
    ok: bool
    action: np.ndarray | None  # (dx_mm, dy_mm, drz_deg) when ok
    error: str = ""  # why the text was rejected


@dataclass(frozen=True)
class ActionCodec:
    """Actions as text: each component divided by its resolution and rounded to an integer, ``[a, b, c]``.

    ``resolution`` is (mm, mm, degrees) per integer step; ``limits`` bound what :meth:`decode` accepts
    (the action box of ``taclab/PegInHole-v0`` by default).
    """

    resolution: tuple[float, float, float] = (0.1, 0.1, 0.1)
    limits: tuple[float, float, float] = (DELTA_MM, DELTA_MM, MAX_ROT_DEG)

    def __post_init__(self):
        if len(self.resolution) != 3 or not all(r > 0 for r in self.resolution):
            raise ValueError(f"resolution must be 3 positive numbers (mm, mm, deg), got {self.resolution}")
        if len(self.limits) != 3 or not all(lim > 0 for lim in self.limits):
            raise ValueError(f"limits must be 3 positive numbers (mm, mm, deg), got {self.limits}")

    _PATTERN = re.compile(r"^\s*\[\s*([+-]?\d+)\s*,\s*([+-]?\d+)\s*,\s*([+-]?\d+)\s*\]\s*$")

    def to_ints(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=float)
        if a.shape != (3,) or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be 3 finite numbers (dx_mm, dy_mm, drz_deg), got {action!r}")
        return np.rint(a / np.asarray(self.resolution)).astype(np.int64)

    def encode(self, action) -> str:
        """``[a, b, c]`` with the integer steps of each component."""
        a, b, c = (int(v) for v in self.to_ints(action))
        return f"[{a}, {b}, {c}]"

    def decode(self, text: str) -> ParseResult:
        """Parse model output strictly: exactly ``[int, int, int]`` (spaces allowed), within the limits."""
        if not isinstance(text, str):
            return ParseResult(False, None, f"expected text, got {type(text).__name__}")
        m = self._PATTERN.match(text)
        if m is None:
            shown = text if len(text) <= 60 else text[:57] + "..."
            return ParseResult(False, None, f"not of the form [int, int, int]: {shown!r}")
        steps = np.array([int(g) for g in m.groups()], dtype=np.int64)
        action = steps * np.asarray(self.resolution)
        over = np.abs(action) > np.asarray(self.limits) + 1e-9
        if over.any():
            return ParseResult(False, None, f"action {action.round(6).tolist()} outside the limits {self.limits}")
        return ParseResult(True, action)


def chat_sample(shape: str, action, codec: ActionCodec | None = None, template: str | int = 0) -> dict:
    """A chat sample as vision-language models are fine-tuned on it: ``{"messages": [...]}`` with the image
    placeholder in the user turn (the image itself is passed alongside, see :func:`composite_image`)."""
    codec = codec or ActionCodec()
    return {
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction(shape, template)}]},
            {"role": "assistant", "content": [{"type": "text", "text": codec.encode(action)}]},
        ]
    }


def render_chat(sample: dict, image_token: str = "<|vision_start|><|image_pad|><|vision_end|>") -> str:
    """The sample in the chat layout of the paper's figure 3 (Qwen2-VL's markers)."""
    out = []
    for msg in sample["messages"]:
        parts = [image_token if c["type"] == "image" else c["text"] for c in msg["content"]]
        out.append(f"<|im_start|>{msg['role']}\n{''.join(parts)}<|im_end|>")
    return "\n".join(out) + "\n"


EXPORT_FILE = "export.json"
"""The manifest of an export folder: the dataset, the settings and, per split, the fingerprint exported."""


CHECKPOINT_FILE = "tla_config.json"
"""The record of a TLA checkpoint (written last by :meth:`taclab.papers.tla.model.TLAModel.save`)."""
STATS_FILE = "normalization.safetensors"
"""The statistics of a TLA checkpoint's tactile representation."""


def checkpoint_config(config: dict) -> dict:
    """A checkpoint's recorded ``TLAConfig`` keys, with what checkpoints written before the tactile
    representation and the layouts used: the paper's raw images (``tactile``) in its composite (``layout``)."""
    return {"tactile": {"subtract": "none", "normalize": "none"}, "layout": "composite", **config}


def load_checkpoint_stats(directory) -> dict:
    """The tactile statistics a TLA checkpoint folder stores (``normalization.safetensors``), checked for every
    key the representation needs."""
    from pathlib import Path

    from safetensors.torch import load_file

    from taclab.policies.tactile_input import TACTILE_STAT_KEYS

    path = Path(directory) / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the checkpoint is incomplete")
    stats = load_file(str(path))
    missing = [k for k in TACTILE_STAT_KEYS if k not in stats]
    if missing:
        raise ValueError(f"{path} lacks {missing}")
    return stats


def checkpoint_representation(directory) -> dict:
    """The tactile input of a TLA checkpoint (a folder holding ``tla_config.json``, e.g. a policy folder, or a
    training run whose ``policy/`` holds one): ``{"folder", "tactile", "layout", "blue", "stats", "stats_sha256"}``
    with ``tactile`` a :class:`taclab.policies.tactile_input.TactileInputConfig` and ``stats`` its fitted
    statistics (``None`` for the raw images). Checkpoints written before these keys read as the paper's raw
    composite."""
    import hashlib
    import json
    from pathlib import Path

    from taclab.policies.tactile_input import TactileInputConfig

    d = Path(directory)
    if not (d / CHECKPOINT_FILE).is_file() and (d / "policy" / CHECKPOINT_FILE).is_file():
        d = d / "policy"
    if not (d / CHECKPOINT_FILE).is_file():
        raise ValueError(
            f"{directory} is not a TLA checkpoint: it holds no {CHECKPOINT_FILE} (nor policy/{CHECKPOINT_FILE})"
        )
    try:
        config = checkpoint_config(json.loads((d / CHECKPOINT_FILE).read_text())["config"])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{d / CHECKPOINT_FILE} is not a TLA checkpoint record") from None
    tactile = TactileInputConfig(**config["tactile"])
    layout = config["layout"]
    blue = config.get("pad_channels_blue", "difference")
    stats, sha = None, None
    if not tactile.is_raw:
        stats = load_checkpoint_stats(d)
        sha = hashlib.sha256((d / STATS_FILE).read_bytes()).hexdigest()
    return {
        "folder": str(d.resolve()),
        "tactile": tactile,
        "layout": layout,
        "blue": blue,
        "stats": stats,
        "stats_sha256": sha,
    }


def export_jsonl(
    path,
    split: str,
    out,
    size: int = 616,
    codec: ActionCodec | None = None,
    vary_template: bool = False,
    like=None,
):
    """Write a split as ``out/<split>.jsonl`` (``messages`` + ``images``) and ``out/images/<split>-N.png``.

    For users who fine-tune large models with their own GPU stack. With ``vary_template`` the instruction
    wording cycles through :data:`DEFAULT_TEMPLATES`. The images are the paper's raw composites unless ``like``
    names a TLA checkpoint: then they are drawn as that model sees its input (its tactile representation with its
    fitted statistics, its layout; :func:`checkpoint_representation`, :func:`tactile_composites`).

    An export folder holds one export: ``out/export.json`` records the dataset, the settings (image size,
    templates, codec) and the fingerprint of every split written. Exporting another split of the same dataset
    with the same settings adds it; exporting a split again rewrites that split whole; anything else (another
    dataset, other settings, a folder holding other files) is refused, so images and texts of different runs
    never mix. The folder is locked while it is written, and every file is written under a temporary name
    and renamed. Returns the path of the JSONL file.
    """
    import json
    import os
    from pathlib import Path

    from PIL import Image

    from taclab.data import fingerprint, iter_batches
    from taclab.utils import LOCK_FILE, FolderLock, atomic_write_text

    codec = codec or ActionCodec()
    if isinstance(size, bool) or not isinstance(size, int) or not 3 <= size <= 4096:
        raise ValueError(f"composite size must be a whole number of pixels between 3 and 4096, got {size!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; an export is written to a folder")
    fp = fingerprint(path, split)  # checks the dataset and the split before anything is written
    settings = {
        "size": size,
        "vary_template": bool(vary_template),
        "resolution": list(codec.resolution),
        "limits": list(codec.limits),
    }
    rep = checkpoint_representation(like) if like is not None else None
    if rep is not None:
        settings["tactile"] = {
            "checkpoint": rep["folder"],
            "representation": rep["tactile"].model_dump(),
            "layout": rep["layout"],
            "blue": rep["blue"],
            "stats_sha256": rep["stats_sha256"],
        }
    dataset = str(Path(path).resolve())
    manifest_path = out / EXPORT_FILE
    with FolderLock(out, "jsonl export"):
        manifest = None
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text())
            except ValueError:
                raise ValueError(f"{manifest_path} is not valid JSON: remove {out} or export elsewhere") from None
        others = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_FILE, EXPORT_FILE, "images"))
        others = [n for n in others if not n.endswith(".jsonl") or manifest is None]
        if manifest is None and (others or (out / "images").exists()):
            raise ValueError(
                f"{out} is not empty ({', '.join(others) or 'images/'}) and holds no taclab export: export into a "
                "new or empty folder"
            )
        if manifest is not None:
            if manifest.get("dataset") != dataset or manifest.get("settings") != settings:
                theirs = {"dataset": manifest.get("dataset"), **(manifest.get("settings") or {})}
                ours = {"dataset": dataset, **settings}
                keys = list(ours) + [k for k in theirs if k not in ours]
                diff = ", ".join(
                    f"{k} {theirs.get(k)!r} -> {ours.get(k)!r}" for k in keys if theirs.get(k) != ours.get(k)
                )
                raise ValueError(
                    f"{out} holds another export ({diff}): export into a new folder, or remove {out} first"
                )
            prev = manifest.get("splits", {}).get(split)
            if prev is not None and prev.get("fingerprint") != fp:
                raise ValueError(
                    f"{out} holds split {split!r} exported from other data (fingerprint {prev.get('fingerprint')}, "
                    f"now {fp}): export into a new folder, or remove {out} first"
                )
        else:
            manifest = {"dataset": dataset, "settings": settings, "splits": {}}
        # this split is rewritten whole: forget it, remove its files, then write them again
        manifest["splits"].pop(split, None)
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
        images = out / "images"
        images.mkdir(exist_ok=True)
        for f in images.glob(f"{split}-*.png"):
            f.unlink()
        target = out / f"{split}.jsonl"
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        i = 0
        try:
            with tmp.open("w") as f:
                for batch in iter_batches(path, split, ["tactile", "shape", "label"], batch_size=64):
                    if rep is None:
                        pictures = [composite_image(t, size) for t in batch["tactile"]]
                    else:
                        pictures = tactile_composites(
                            batch["tactile"], rep["tactile"], rep["stats"], size, rep["layout"], rep["blue"]
                        )
                    for picture, shape, label in zip(pictures, batch["shape"], batch["label"], strict=True):
                        name = f"images/{split}-{i:06d}.png"
                        part = out / f".{split}-{i:06d}.png.tmp{os.getpid()}"
                        Image.fromarray(picture).save(part, format="png")
                        part.replace(out / name)
                        template = i % len(DEFAULT_TEMPLATES) if vary_template else 0
                        sample = chat_sample(str(shape), label, codec, template)
                        f.write(json.dumps({**sample, "images": [name]}) + "\n")
                        i += 1
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
            for part in out.glob(".*.png.tmp*"):
                part.unlink(missing_ok=True)
        manifest["splits"][split] = {"fingerprint": fp, "samples": i, "file": target.name}
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    return target
