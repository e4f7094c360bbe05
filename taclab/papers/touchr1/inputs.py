"""What the Touch-R1 model sees: one composite image per question, and its counterfactual variants.

The composite (``image_size`` square, 168 px by default) has one block per object (A, B, C from the top), each a
third of the height: the object's image on the left, then its five tactile frames (through the question's sensor)
in two rows of small tiles. Tactile frames are shown **relative to the untouched gel**: ``128 + gain * (frame -
reference)`` per pixel, with the reference the sensor's noiseless no-contact image, so the imprint and the marker
motion stand out from the sensor's background (a raw frame differs from the background by a few grey levels).

The tactile tiles can instead be shown in any tactile input representation
(:class:`taclab.policies.tactile_input.TactileInputConfig`, the ``tactile`` key of the model's config), applied per
sensor to its five frames with statistics fitted on training data (:func:`fit_stats`): ``center`` (each pixel minus
its mean over training objects, divided by one std per sensor, mapped back to 8 bits as ``128 + image_gain * v``)
shows how an object's touch differs from the average object's; the raw frames are ``subtract: none, normalize:
none``; :data:`RELATIVE` is the relative-to-gel view above.

Counterfactual touch (for tactile reliance and the grounding reward) changes the tactile tiles only:
``removed``: every tile is 128 (the untouched gel in the relative view, the average object's touch in ``center``);
``shuffled``: the tiles of other objects; ``noised``: Gaussian noise with the spread of the real tiles.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from taclab.papers.touchr1.physics import SENSORS, TAXEL_PITCH, TAXELS
from taclab.policies.tactile_input import TACTILE_STAT_KEYS, TactileInputConfig

DIFF_GAIN = 3.0
RELATIVE = TactileInputConfig(subtract="reference", normalize="none", image_gain=255 * DIFF_GAIN)
"""The relative-to-gel view ``128 + 3 * (frame - reference)`` (:func:`relative_frames`; the tactile CNN's input and
the representation of checkpoints saved before the ``tactile`` key existed)."""
CENTER = TactileInputConfig(subtract="none", normalize="center", image_gain=128.0)
"""The default of the model: the difference from the average training object, one std per sensor, gain 128."""
KINDS = ("real", "removed", "shuffled", "noised", "vision_only")


@functools.lru_cache(maxsize=16)
def reference_image(sensor: str, size: int) -> np.ndarray:
    """The sensor's noiseless untouched-gel image, resized to ``size`` (float32 (size, size, 3))."""
    from taclab.sim.tactile import OpticalRenderer

    ref = OpticalRenderer(SENSORS[sensor].profile, TAXELS, TAXEL_PITCH).reference_image()
    im = Image.fromarray(ref).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32)


def relative_frames(frames: np.ndarray, sensor: str) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of ``sensor`` shown relative to its untouched gel (uint8, 128 = no change)."""
    ref = reference_image(sensor, frames.shape[-2])
    return np.clip(128 + DIFF_GAIN * (frames.astype(np.float32) - ref), 0, 255).astype(np.uint8)


def _float(x):
    import torch

    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def fit_stats(tactile: np.ndarray, sensors: list[str], cfg: TactileInputConfig, max_samples: int = 512) -> dict:
    """The statistics of the representation ``cfg`` per sensor from training objects' ``tactile`` (N, S, 5, H, W,
    3) uint8: ``tactile_reference/<sensor>`` (H, W, 3; zeros unless ``subtract: reference``),
    ``tactile_mean/<sensor>`` and ``tactile_std/<sensor>`` (5, H, W, 3). Per sensor as
    :func:`taclab.policies.tactile_input.fit_tactile_stats` (``first_frame`` subtracts frame 0)."""
    import torch

    from taclab.policies.tactile_input import moments, smooth

    t = np.asarray(tactile)
    if t.ndim != 6 or t.shape[1] != len(sensors) or t.dtype != np.uint8:
        raise ValueError(f"tactile must be uint8 (N, {len(sensors)}, T, H, W, 3), got {t.dtype} {t.shape}")
    idx = np.linspace(0, len(t) - 1, min(len(t), max_samples)).astype(int)
    out = {}
    for s, name in enumerate(sensors):
        h = t.shape[3]
        ref = _float(reference_image(name, h)) if cfg.subtract == "reference" else torch.zeros(t.shape[3:])
        x = smooth(_float(t[idx, s]), cfg.smooth_px)
        if cfg.subtract == "reference":
            x = x - smooth(ref[None], cfg.smooth_px)[0]
        elif cfg.subtract == "first_frame":
            x = x - x[:, :1]
        mean, std = moments(x, cfg.normalize)
        out[f"tactile_reference/{name}"] = ref.contiguous()
        out[f"tactile_mean/{name}"] = mean.contiguous()
        out[f"tactile_std/{name}"] = std.clamp_min(cfg.std_floor).contiguous()
    return out


def represented_frames(frames: np.ndarray, sensor: str, cfg: TactileInputConfig, stats: dict) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of ``sensor`` in the representation ``cfg``: the raw frames unchanged, else
    ``clip(round(128 + image_gain * v), 0, 255)`` of the representation ``v`` (statistics from :func:`fit_stats`)."""
    from taclab.policies.tactile_input import as_uint8, represent

    if cfg.is_raw:
        return np.asarray(frames)
    per = {k: stats.get(f"{k}/{sensor}") for k in TACTILE_STAT_KEYS}
    missing = [k for k, v in per.items() if v is None]
    if missing:
        raise RuntimeError(f"the tactile statistics lack {missing} of sensor {sensor!r}: fit them on training data")
    return as_uint8(represent(_float(frames)[None], cfg, per), cfg.image_gain)[0]


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))


def composite(objects: list[tuple[np.ndarray, np.ndarray | None]], image_size: int = 168) -> np.ndarray:
    """The composite image from up to three ``(object_image, relative_frames (5, H, W, 3) or None)`` pairs.

    A missing object image or tactile sequence leaves its place grey (128)."""
    if not 1 <= len(objects) <= 3:
        raise ValueError(f"a composite shows 1 to 3 objects, got {len(objects)}")
    if image_size % 84:
        raise ValueError(f"image_size must be a multiple of 84, got {image_size}")
    out = np.full((image_size, image_size, 3), 128, np.uint8)
    bh = image_size // 3
    tile = bh // 2
    for i, (obj_img, frames) in enumerate(objects):
        y = i * bh
        if obj_img is not None:
            out[y : y + bh, :bh] = _resize(obj_img, bh, bh)
        if frames is not None:
            for t, f in enumerate(frames[:5]):
                r, c = divmod(t, 3)
                out[y + r * tile : y + (r + 1) * tile, bh + c * tile : bh + (c + 1) * tile] = _resize(f, tile, tile)
    return out


class QuestionImages:
    """Builds composites for questions over a split's arrays (``tactile``, ``object_image``, ``sensors``)."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        image_size: int = 168,
        tactile: TactileInputConfig | None = None,
        stats: dict | None = None,
        show_object: bool = True,
    ):
        self.arrays = arrays
        self.tactile = arrays["tactile"]
        self.object_image = arrays["object_image"]
        self.sensor_names = str(arrays["sensors"][0]).split(",")
        self.image_size = image_size
        self.representation = tactile  # None: the relative-to-gel view (relative_frames)
        self.show_object = show_object
        if tactile is not None and not tactile.is_raw and stats is None:
            if tactile.normalize != "none":
                raise RuntimeError("the tactile representation needs statistics: fit them on training data first")
            stats = fit_stats(self.tactile[:1], self.sensor_names, tactile)  # data-independent
        self.stats = stats
        self._spread = None

    def represented(self, tactile: TactileInputConfig | None, stats: dict | None = None) -> QuestionImages:
        """The same split's composites with another tactile representation (``None``: the relative view)."""
        return QuestionImages(self.arrays, self.image_size, tactile, stats, self.show_object)

    def frames(self, obj: int, sensor: int) -> np.ndarray:
        if self.representation is None:
            return relative_frames(self.tactile[obj, sensor], self.sensor_names[sensor])
        return represented_frames(self.tactile[obj, sensor], self.sensor_names[sensor], self.representation, self.stats)

    def spread(self) -> float:
        if self._spread is None:
            idx = np.arange(0, len(self.tactile), max(1, len(self.tactile) // 16))
            self._spread = float(np.std([self.frames(i, 0).astype(np.float32) for i in idx]))
        return self._spread

    def image(self, q, kind: str = "real", rng: np.random.Generator | None = None) -> np.ndarray:
        """The composite of question ``q`` with the real touch or a counterfactual ``kind`` (:data:`KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown input kind {kind!r}; allowed: {', '.join(KINDS)}")
        rng = rng or np.random.default_rng(0)
        parts = []
        for o, s in zip(q.objects, q.sensors, strict=True):
            frames = self.frames(o, s)
            if kind in ("removed", "vision_only"):
                frames = None if kind == "vision_only" else np.full_like(frames, 128)
            elif kind == "shuffled":
                other = int(rng.integers(len(self.tactile) - 1))
                other += other >= o
                frames = self.frames(other, s)
            elif kind == "noised":
                noise = rng.normal(128, self.spread(), size=frames.shape)
                frames = np.clip(noise, 0, 255).astype(np.uint8)
            parts.append((self.object_image[o] if self.show_object else None, frames))
        return composite(parts, self.image_size)


COLUMNS = ("tactile", "object_image", "levels", "apparent_levels", "conflict", "conflict_property", "sensors")


def load_split(data, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """The columns the questions and composites need, of one split of a ``touchr1`` dataset."""
    from taclab.data import load_arrays

    return load_arrays(data, split, columns=list(COLUMNS), limit=limit, progress=False)
