"""Image augmentations for training and for RL replay: semantic background replacement, random shift and colour
jitter (the augmentations of VITAL).

- **Semantic augmentation**: the pixels a segmentation mask marks as foreground (by default the gripper, the held
  object and the target: labels 1, 2, 3 of ``taclab.sim.vital.MASK_LABELS``) are kept; every other pixel is
  replaced by a random background: a procedural texture (:func:`procedural_backgrounds`: checkers, stripes,
  blotches, gradients, tiles, clutter of shapes, wood grain, generated from a seed, so they ship as code) or an
  image from a user's folder (:func:`load_backgrounds`).
- **Random shift**: pad by ``shift_px`` pixels (edge values repeated) and crop back at a random offset.
- **Colour jitter**: brightness, contrast and saturation factors drawn uniformly in ``1 +- strength``.

:class:`SemanticAugment` applies all three to a batch. Images are uint8 ``(..., H, W, 3)`` NumPy arrays or
torch tensors (on any device); masks are ``(..., H, W)`` integer labels. The output has the input's type,
dtype and device. Randomness comes from the ``numpy.random.Generator`` or ``torch.Generator`` given.
Only NumPy, torch and (to read a user's image folder) Pillow are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
PATTERNS = ("checker", "stripes", "blotches", "gradient", "tiles", "clutter", "wood")


# ------------------------------------------------------------------------------------------------- backgrounds
def _smooth(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: a coarse random grid upsampled bilinearly."""
    g = rng.random((cells + 1, cells + 1))
    y = np.linspace(0, cells, h, endpoint=False)
    x = np.linspace(0, cells, w, endpoint=False)
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    a, b = g[y0][:, x0], g[y0][:, x0 + 1]
    c, d = g[y0 + 1][:, x0], g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def procedural_background(rng: np.random.Generator, size: tuple[int, int], pattern: str | None = None) -> np.ndarray:
    """One procedural texture (H, W, 3) uint8; ``pattern`` one of :data:`PATTERNS` (drawn when None)."""
    h, w = size
    pattern = pattern or PATTERNS[rng.integers(len(PATTERNS))]
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ang = rng.uniform(0, np.pi)
    u = xx * np.cos(ang) + yy * np.sin(ang)
    v = -xx * np.sin(ang) + yy * np.cos(ang)
    if pattern == "checker":
        p = rng.uniform(6, 32)
        t = ((np.floor(u / p) + np.floor(v / p)) % 2)[..., None]
    elif pattern == "stripes":
        p = rng.uniform(4, 24)
        t = (0.5 + 0.5 * np.sin(2 * np.pi * u / p))[..., None]
    elif pattern == "blotches":
        t = _smooth(rng, h, w, int(rng.integers(3, 10)))[..., None]
    elif pattern == "gradient":
        t = ((u - u.min()) / max(np.ptp(u), 1e-9))[..., None]
    elif pattern == "tiles":
        p = rng.uniform(10, 40)
        grout = (np.minimum(u % p, v % p) < p * 0.08)[..., None]
        shade = _smooth(rng, h, w, 6)[..., None] * 0.3
        t = np.where(grout, 1.0, shade)
    elif pattern == "clutter":
        img = np.empty((h, w, 3))
        img[:] = c1
        for _ in range(int(rng.integers(4, 12))):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            ry, rx = rng.uniform(0.05, 0.3) * h, rng.uniform(0.05, 0.3) * w
            col = rng.uniform(0, 255, 3)
            if rng.random() < 0.5:
                sel = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            else:
                sel = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
            img[sel] = col
        return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    elif pattern == "wood":
        warp = _smooth(rng, h, w, 4) * rng.uniform(10, 40)
        t = (0.5 + 0.5 * np.sin(2 * np.pi * (v + warp) / rng.uniform(5, 15)))[..., None] ** 2
    else:
        raise ValueError(f"unknown background pattern {pattern!r}; allowed: {', '.join(PATTERNS)}")
    img = c1 * (1 - t) + c2 * t
    img = img * (1 + 0.15 * (_smooth(rng, h, w, 5)[..., None] - 0.5)) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def procedural_backgrounds(n: int = 64, size: tuple[int, int] = (128, 128), seed: int = 0) -> np.ndarray:
    """``n`` procedural textures (n, H, W, 3) uint8, the same for the same seed; the patterns take turns."""
    if n < 1:
        raise ValueError(f"need at least one background, got n={n}")
    rng = np.random.default_rng(seed)
    return np.stack([procedural_background(rng, size, PATTERNS[i % len(PATTERNS)]) for i in range(n)])


def load_backgrounds(folder: str | Path, size: tuple[int, int] = (128, 128), limit: int = 1000) -> np.ndarray:
    """The images of a folder (not recursive), resized to ``size`` (H, W): (n, H, W, 3) uint8."""
    from PIL import Image

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"background folder {str(folder)!r} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise ValueError(
            f"background folder {str(folder)!r} holds no images; allowed suffixes: {', '.join(IMAGE_SUFFIXES)}"
        )
    out = []
    for p in files:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((size[1], size[0]), Image.BILINEAR), np.uint8))
    return np.stack(out)


# ------------------------------------------------------------------------------------------------- transform
def _uniform(gen, shape, lo, hi, device) -> torch.Tensor:
    if isinstance(gen, np.random.Generator):
        return torch.as_tensor(gen.uniform(lo, hi, shape), dtype=torch.float32, device=device)
    return torch.rand(shape, generator=gen, device="cpu").to(device) * (hi - lo) + lo


def _integers(gen, shape, lo, hi, device) -> torch.Tensor:
    """Integers in [lo, hi]."""
    if isinstance(gen, np.random.Generator):
        return torch.as_tensor(gen.integers(lo, hi + 1, shape), dtype=torch.long, device=device)
    return torch.randint(lo, hi + 1, shape, generator=gen).to(device)


def shift(images: torch.Tensor, pad: int, gen) -> torch.Tensor:
    """Random shift of (N, H, W, C) images: as padding by ``pad`` pixels (edges repeated) and cropping back at a
    random offset."""
    if pad <= 0:
        return images
    n, h, w, _ = images.shape
    dev = images.device
    oy, ox = _integers(gen, (n,), -pad, pad, dev), _integers(gen, (n,), -pad, pad, dev)
    rows = (oy[:, None] + torch.arange(h, device=dev)).clamp(0, h - 1)[:, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev)).clamp(0, w - 1)[:, None, :]
    return images[torch.arange(n, device=dev)[:, None, None], rows, cols]


_LUMA = (0.299, 0.587, 0.114)


def colour_jitter(
    images: torch.Tensor, gen, brightness: float = 0.3, contrast: float = 0.3, saturation: float = 0.2
) -> torch.Tensor:
    """Brightness, contrast and saturation jitter of (N, H, W, 3) uint8 images, factors ``b, c, s`` uniform in
    ``1 +- strength``, applied in that order: ``x -> b x``, then contrast about the mean grey level, then
    saturation about each pixel's grey level. The three compose to ``s c b x + (1 - s) c b g + b (1 - c) mu``
    (``g`` the input's grey image, ``mu`` its mean), computed in one pass."""
    n = images.shape[0]
    dev = images.device
    x = images.float()
    b = _uniform(gen, (n, 1, 1, 1), 1 - brightness, 1 + brightness, dev) if brightness > 0 else 1.0
    c = _uniform(gen, (n, 1, 1, 1), 1 - contrast, 1 + contrast, dev) if contrast > 0 else 1.0
    s = _uniform(gen, (n, 1, 1, 1), 1 - saturation, 1 + saturation, dev) if saturation > 0 else 1.0
    grey = x @ torch.tensor(_LUMA, device=dev)[:, None]  # (N, H, W, 1)
    mu = grey.mean(dim=(1, 2, 3), keepdim=True)
    out = x.mul_(s * c * b).add_(grey * ((1 - s) * c * b)).add_(b * (1 - c) * mu)
    return out.clamp_(0, 255).round_().to(images.dtype)


class SemanticAugment:
    """Masked foreground over random backgrounds, then a random shift and colour jitter.

    ``backgrounds``: ``"procedural"`` (``n_procedural`` textures from ``seed``), a folder of images, or an
    array (n, H, W, 3) uint8. ``keep``: mask labels that are foreground. ``p``: chance per image that its
    background is replaced (the shift and jitter always apply). Call it as ``aug(images, masks, gen)``.
    """

    def __init__(
        self,
        backgrounds: str | Path | np.ndarray = "procedural",
        size: tuple[int, int] = (128, 128),
        keep: Sequence[int] = (1, 2, 3),
        p: float = 1.0,
        shift_px: int = 4,
        brightness: float = 0.3,
        contrast: float = 0.3,
        saturation: float = 0.2,
        n_procedural: int = 64,
        seed: int = 0,
    ):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if isinstance(backgrounds, np.ndarray):
            bank = backgrounds
            if bank.ndim != 4 or bank.shape[-1] != 3 or bank.dtype != np.uint8 or len(bank) == 0:
                raise ValueError(f"backgrounds must be (n, H, W, 3) uint8 with n >= 1, got {bank.shape} {bank.dtype}")
        elif isinstance(backgrounds, str) and backgrounds == "procedural":
            bank = procedural_backgrounds(n_procedural, size, seed)
        else:
            bank = load_backgrounds(backgrounds, size)
        self.bank = torch.as_tensor(bank)
        self.keep = tuple(int(k) for k in keep)
        self.p, self.shift_px = p, shift_px
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, images, masks, gen=None):
        """Augment uint8 images (..., H, W, 3) with their masks (..., H, W); returns the input's type."""
        is_np = isinstance(images, np.ndarray)
        gen = gen if gen is not None else np.random.default_rng()
        x = torch.as_tensor(images)
        m = torch.as_tensor(masks, device=x.device)
        if x.dtype != torch.uint8 or x.shape[-1] != 3 or m.shape != x.shape[:-1]:
            raise ValueError(
                f"images must be uint8 (..., H, W, 3) with masks (..., H, W); got {tuple(x.shape)} {x.dtype} and "
                f"masks {tuple(m.shape)}"
            )
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        m = m.reshape(-1, *m.shape[-2:])
        n, h, w, _ = x.shape
        bank = self.bank.to(x.device)
        if bank.shape[1:3] != (h, w):
            bank = torch.nn.functional.interpolate(bank.permute(0, 3, 1, 2).float(), size=(h, w), mode="bilinear")
            bank = bank.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            self.bank = bank
        pick = _integers(gen, (n,), 0, len(bank) - 1, x.device)
        replace = _uniform(gen, (n,), 0.0, 1.0, x.device) < self.p
        fg = torch.zeros_like(m, dtype=torch.bool)
        for k in self.keep:
            fg |= m == k
        bg = ~fg & replace[:, None, None]
        x = torch.where(bg[..., None], bank[pick], x)
        x = shift(x, self.shift_px, gen)
        x = colour_jitter(x, gen, self.brightness, self.contrast, self.saturation)
        x = x.reshape(*lead, h, w, 3)
        return x.cpu().numpy() if is_np else x
