"""The tactile input representation shared by the learned policies (BC, DP, the TLA model).

A tactile sequence (4 frames x 2 pads of uint8 RGB images) becomes model input in two steps, both set by
:class:`TactileInputConfig`, with statistics fitted on the training data (:func:`fit_tactile_stats`), saved beside
the weights in ``normalization.safetensors`` and applied outside the model (:func:`represent`):

1. **subtract** (in grey levels, from every frame, after an optional Gaussian blur ``smooth_px``):

   - ``none``: nothing, the raw image (the TLA paper's input);
   - ``reference``: the sensor's no-contact image, rendered from the env's sensor profile with a zero contact
     field (what GelSight users compute): the background and the marker lattice go, the grasp imprint and the
     contact stay;
   - ``first_frame``: the sequence's first frame (taken before the peg meets the hole): only what changed
     during the attempt stays.

2. **normalize**:

   - ``none``: divided by 255;
   - ``channel``: per colour channel, minus the mean and divided by the std over all pixels, frames and pads;
   - ``center``: per pixel (frame, pad, row, column, channel) minus the mean, divided by one std over all
     pixels: how each sample differs from the average sample, the pixels' relative spread kept;
   - ``pixel``: per pixel minus the mean, divided by that pixel's std.

For image-based vision-language models :func:`to_uint8` maps the representation back to 8-bit images: the raw
setting (``none`` / ``none``) gives the images unchanged; any other gives ``clip(round(128 + image_gain * v),
0, 255)`` with ``v`` the normalized value (in std units; in grey levels / 255 with ``normalize: none``).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from taclab.policies.preprocess import tactile_batch

TACTILE_STAT_KEYS = ("tactile_reference", "tactile_mean", "tactile_std")
"""The statistics of the representation, saved with the policy's other normalization statistics."""


class TactileInputConfig(BaseModel):
    """How a policy sees a tactile sequence (see :mod:`taclab.policies.tactile_input`). Unknown keys are
    rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subtract: Literal["none", "reference", "first_frame"] = Field(
        "none",
        description="what is subtracted from every frame: nothing (raw), the sensor's no-contact reference image, "
        "or the sequence's first frame",
    )
    normalize: Literal["none", "channel", "center", "pixel"] = Field(
        "center",
        description="standardization by training-data statistics: none (/255), per colour channel, per-pixel mean "
        "with one std over all pixels (center), or per-pixel mean and std (pixel)",
    )
    smooth_px: float = Field(
        0.0,
        ge=0.0,
        le=8.0,
        description="std (pixels) of a Gaussian blur of every frame before the subtraction, to average away pixel "
        "noise (0: none)",
    )
    ninth_cell: Literal["blank", "pad_difference"] = Field(
        "blank",
        description="what fills the composite's empty ninth cell: blank (white for raw images, as the paper; 0 "
        "otherwise) or the last frame's pad 0 minus pad 1 (divided by sqrt 2)",
    )
    std_floor: float = Field(
        1.0, gt=0, description="lower bound (grey levels) of the std that divides, so flat pixels are not blown up"
    )
    image_gain: float = Field(
        128.0, gt=0, description="8-bit export for VLMs: grey levels per unit of the normalized value, around 128"
    )
    env: dict = Field(
        default_factory=dict,
        description="taclab/PegInHole-v0 config keys (sensor, sensor_overrides, scene) of the sensor whose "
        "no-contact image is the reference; the image size is the data's",
    )

    @property
    def is_raw(self) -> bool:
        """The paper's raw images: nothing subtracted, nothing normalized."""
        return self.subtract == "none" and self.normalize == "none"


RAW = TactileInputConfig(subtract="none", normalize="none")
"""The TLA paper's raw images."""
REFERENCE_CHANNEL = TactileInputConfig(subtract="reference", normalize="channel")
"""The default of BC and DP: the difference from the no-contact image, standardized per channel."""


def smooth(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (std ``sigma`` pixels, reflected borders) of the images of a (..., H, W, C) float tensor;
    ``x`` itself when ``sigma`` is 0."""
    if sigma <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) / sigma) ** 2)
    k = k / k.sum()
    *lead, h, w, c = x.shape
    y = x.reshape(-1, h, w, c).permute(0, 3, 1, 2).reshape(-1, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return y.reshape(-1, c, h, w).permute(0, 2, 3, 1).reshape(*lead, h, w, c)


def _subtracted(t: torch.Tensor, cfg: TactileInputConfig, reference: torch.Tensor) -> torch.Tensor:
    """(B, 4, 2, H, W, 3) float grey levels after the blur and the subtraction."""
    x = smooth(t.float(), cfg.smooth_px)
    if cfg.subtract == "reference":
        x = x - smooth(reference[None], cfg.smooth_px)[0]
    elif cfg.subtract == "first_frame":
        x = x - x[:, :1]
    return x


def reference_of(cfg: TactileInputConfig, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, 3) float: the no-contact image of the sensor ``cfg.env`` names, at the data's image size ``size``
    (zeros when nothing is subtracted)."""
    h, w = size
    if cfg.subtract != "reference":
        return torch.zeros((h, w, 3))
    from taclab.envs.peg_in_hole import reference_image

    env = {k: v for k, v in cfg.env.items() if k != "image_size"}
    try:
        ref = reference_image({**env, "image_size": (h, w)})
    except ValueError as e:
        why = " ".join(str(e).split())  # one line
        raise ValueError(f"tactile.env {cfg.env!r} does not describe a PegInHole-v0 sensor: {why}") from None
    return torch.as_tensor(ref, dtype=torch.float32)


def moments(x, normalize: str):
    """Mean and std (each of a sample's shape) of the represented samples ``x`` (samples first, colour last) for
    the ``normalize`` mode: per pixel, one spread around the per-pixel mean (``center``), per colour channel, or
    none (0 and 255)."""
    shape = x.shape[1:]
    if normalize == "pixel":
        return x.mean(0), x.std(0) if len(x) > 1 else torch.ones(shape)
    if normalize == "center":
        mean = x.mean(0)
        return mean, (x - mean).std().expand(shape) if len(x) > 1 else torch.ones(shape)
    if normalize == "channel":
        dims = tuple(range(x.dim() - 1))
        return x.mean(dims).expand(shape), x.std(dims).expand(shape)
    return torch.zeros(shape), torch.full(shape, 255.0)


def fit_tactile_stats(tactile, cfg: TactileInputConfig, max_samples: int = 512) -> dict[str, torch.Tensor]:
    """The statistics of the representation from (up to ``max_samples`` evenly spaced) training sequences:
    ``tactile_reference`` (H, W, 3), ``tactile_mean`` and ``tactile_std`` (4, 2, H, W, 3)."""
    t = tactile_batch(tactile)
    ref = reference_of(cfg, t.shape[3:5])
    idx = np.linspace(0, len(t) - 1, min(len(t), max_samples)).astype(int)
    x = _subtracted(torch.as_tensor(t[idx]), cfg, ref)
    mean, std = moments(x, cfg.normalize)
    return {
        "tactile_reference": ref.contiguous(),
        "tactile_mean": mean.contiguous(),
        "tactile_std": std.clamp_min(cfg.std_floor).contiguous(),
    }


def represent(tactile, cfg: TactileInputConfig, stats: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, 4, 2, H, W, 3) float tensor: the configured representation of a uint8 batch, with ``stats`` from
    :func:`fit_tactile_stats` (on the stats' device)."""
    missing = [k for k in TACTILE_STAT_KEYS if k not in (stats or {})]
    if missing:
        raise RuntimeError(f"the tactile input statistics lack {missing}: fit them on training data first")
    t = torch.as_tensor(tactile_batch(tactile) if not isinstance(tactile, torch.Tensor) else tactile)
    mean = stats["tactile_mean"]
    if tuple(t.shape[1:]) != tuple(mean.shape):
        raise ValueError(
            f"tactile input of shape {tuple(t.shape[1:])} does not match the statistics' {tuple(mean.shape)}"
        )
    x = _subtracted(t.to(mean.device), cfg, stats["tactile_reference"])
    return (x - mean) / stats["tactile_std"]


def blank_value(cfg: TactileInputConfig) -> float:
    """The value of the composite's empty ninth cell: white for the raw images (the paper's), else 0."""
    return 1.0 if cfg.is_raw else 0.0


def pad_difference(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C): pad 0 minus pad 1 in the last frame of a (B, 4, 2, H, W, C) representation, divided by
    sqrt(2) so that it keeps the spread of one pad's image."""
    return (x[:, -1, 0] - x[:, -1, 1]) / math.sqrt(2.0)


PAD_CHANNEL_BLUE = ("difference", "mean")
"""What the third colour channel of :func:`pad_channels` holds."""


def pad_channels(x: torch.Tensor, blue: str = "difference") -> torch.Tensor:
    """(B, 4, H, W, 3): each frame of a (B, 4, 2, H, W, C) representation as one 3-channel image with both pads
    in its colour channels: R = pad 0 grey (the mean over the colour channels), G = pad 1 grey, B = (pad 0 -
    pad 1) / sqrt(2) (``blue: difference``) or (pad 0 + pad 1) / 2 (``blue: mean``). A linear patch embedding
    then sees the difference of the pads at every pixel position; the pads' colour is averaged away."""
    if blue not in PAD_CHANNEL_BLUE:
        raise ValueError(f"blue must be one of {PAD_CHANNEL_BLUE}, got {blue!r}")
    if x.dim() != 6 or x.shape[2] != 2:
        raise ValueError(f"expected a (B, 4, 2, H, W, C) representation, got {tuple(x.shape)}")
    g0, g1 = x[:, :, 0].mean(-1), x[:, :, 1].mean(-1)
    third = (g0 - g1) / math.sqrt(2.0) if blue == "difference" else (g0 + g1) / 2.0
    return torch.stack([g0, g1, third], -1)


def pad_channels_per_colour(x: torch.Tensor, blue: str = "difference") -> torch.Tensor:
    """(B, 4, C, H, W, 3): like :func:`pad_channels` but for each colour channel ``c`` of a (B, 4, 2, H, W, C)
    representation separately (R = pad 0's channel c, G = pad 1's, B = their difference / sqrt(2) or mean), so
    that the pads' colour, which carries the direction of the contact's slopes, is kept."""
    if blue not in PAD_CHANNEL_BLUE:
        raise ValueError(f"blue must be one of {PAD_CHANNEL_BLUE}, got {blue!r}")
    if x.dim() != 6 or x.shape[2] != 2:
        raise ValueError(f"expected a (B, 4, 2, H, W, C) representation, got {tuple(x.shape)}")
    p0, p1 = x[:, :, 0].movedim(-1, 2), x[:, :, 1].movedim(-1, 2)  # (B, 4, C, H, W)
    third = (p0 - p1) / math.sqrt(2.0) if blue == "difference" else (p0 + p1) / 2.0
    return torch.stack([p0, p1, third], -1)


def tile_grid(tiles: torch.Tensor, rows: int) -> torch.Tensor:
    """(B, rows H, cols W, C): the (B, rows * cols, H, W, C) tiles in a grid, row-major."""
    b, n, h, w, c = tiles.shape
    if n % rows:
        raise ValueError(f"{n} tiles do not fill {rows} rows")
    cols = n // rows
    return tiles.reshape(b, rows, cols, h, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, rows * h, cols * w, c)


def frame_grid(frames: torch.Tensor) -> torch.Tensor:
    """(B, 2H, 2W, C): the 4 frames of a (B, 4, H, W, C) batch in a 2x2 grid, time-major (row 0: frames 0, 1;
    row 1: frames 2, 3)."""
    if frames.shape[1] != 4:
        raise ValueError(f"expected 4 frames, got {frames.shape[1]}")
    return tile_grid(frames, 2)


def composite(
    x: torch.Tensor, size: int | None = None, blank: float = 0.0, ninth: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, C, S, S) composites of a (B, 4, 2, H, W, C) float batch: the TLA paper's 3x3 grid (time-major; the
    ninth cell filled with ``blank`` or with ``ninth`` (B, H, W, C)), resized to ``size`` (bilinear,
    antialiased) when given."""
    b, _, _, h, w, c = x.shape
    tiles = x.reshape(b, 8, h, w, c)
    if ninth is not None:
        fill = ninth.reshape(b, 1, h, w, c).to(x.dtype)
    else:
        fill = torch.full((b, 1, h, w, c), float(blank), dtype=x.dtype, device=x.device)
    grid = torch.cat([tiles, fill], 1).reshape(b, 3, 3, h, w, c)
    img = grid.permute(0, 5, 1, 3, 2, 4).reshape(b, c, 3 * h, 3 * w)
    if size is not None and (3 * h, 3 * w) != (size, size):
        img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return img


def stacked(x: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(B, 24, H, W) images of a (B, 4, 2, H, W, 3) float batch: frames, pads and colour channels stacked as
    channels (frame-major, then pad, then colour), so that every pixel holds both pads at every frame; resized
    to ``size`` when given."""
    b, f, p, h, w, c = x.shape
    img = x.permute(0, 1, 2, 5, 3, 4).reshape(b, f * p * c, h, w)
    if size is not None and (h, w) != (size, size):
        img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return img


def images(tactile, cfg: TactileInputConfig, stats, size: int | None, layout: str = "composite") -> torch.Tensor:
    """The model input of a CNN policy: the representation as composites (B, 3, S, S) or, with ``layout:
    stacked``, as (B, 24, H, W) images."""
    x = represent(tactile, cfg, stats)
    if layout == "stacked":
        return stacked(x, size)
    ninth = pad_difference(x) if cfg.ninth_cell == "pad_difference" else None
    return composite(x, size, blank_value(cfg), ninth)


def as_uint8(v: torch.Tensor, gain: float) -> np.ndarray:
    """``clip(round(128 + gain * v), 0, 255)`` as uint8: the fixed mapping of a representation to 8 bits."""
    return (128.0 + gain * v).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def to_uint8(tactile, cfg: TactileInputConfig, stats: dict[str, torch.Tensor] | None) -> np.ndarray:
    """(B, 4, 2, H, W, 3) uint8 images of the representation, for models that read 8-bit images: the raw
    setting returns the input unchanged, any other ``clip(round(128 + image_gain * v), 0, 255)``."""
    t = tactile_batch(tactile)
    if cfg.is_raw:
        return t
    if stats is None:
        raise RuntimeError("the tactile representation needs statistics: fit them on training data first")
    return as_uint8(represent(t, cfg, stats), cfg.image_gain)
