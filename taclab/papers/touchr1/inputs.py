"""What the Touch-R1 model sees: one composite image per question, and its counterfactual variants.

The composite (``image_size`` square, 168 px by default) has one block per object (A, B, C from the top), each a
third of the height: the object's image on the left, then its five tactile frames (through the question's sensor)
in two rows of small tiles. Tactile frames are shown **relative to the untouched gel**: ``128 + gain * (frame -
reference)`` per pixel, with the reference the sensor's noiseless no-contact image, so the imprint and the marker
motion stand out from the sensor's background (a raw frame differs from the background by a few grey levels).

Counterfactual touch (for tactile reliance and the grounding reward) changes the tactile tiles only:
``removed``: every tile is the untouched gel (128); ``shuffled``: the tiles of other objects; ``noised``: Gaussian
noise with the spread of the real tiles.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from taclab.papers.touchr1.physics import SENSORS, TAXEL_PITCH, TAXELS

DIFF_GAIN = 3.0
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

    def __init__(self, arrays: dict[str, np.ndarray], image_size: int = 168):
        self.tactile = arrays["tactile"]
        self.object_image = arrays["object_image"]
        self.sensor_names = str(arrays["sensors"][0]).split(",")
        self.image_size = image_size
        self._spread = None

    def frames(self, obj: int, sensor: int) -> np.ndarray:
        return relative_frames(self.tactile[obj, sensor], self.sensor_names[sensor])

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
            parts.append((self.object_image[o], frames))
        return composite(parts, self.image_size)


COLUMNS = ("tactile", "object_image", "levels", "apparent_levels", "conflict", "conflict_property", "sensors")


def load_split(data, split: str, limit: int | None = None) -> dict[str, np.ndarray]:
    """The columns the questions and composites need, of one split of a ``touchr1`` dataset."""
    from taclab.data import load_arrays

    return load_arrays(data, split, columns=list(COLUMNS), limit=limit, progress=False)
