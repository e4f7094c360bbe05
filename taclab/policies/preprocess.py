"""The one preprocessing path shared by training and closed-loop inference.

A dataset sample and an environment observation both reach a learned policy as a uint8 tactile sequence of shape
(4, 2, H, W, 3) (frames x pads x image). :func:`tactile_batch` checks and stacks such sequences;
:func:`composite_tensor` turns a batch into the 3x3 composite image of the TLA paper as a float tensor, exactly
the layout of :func:`taclab.data.instruct.composite_image` (time-major, last cell white), optionally resized.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def tactile_batch(tactile) -> np.ndarray:
    """A (B, 4, 2, H, W, 3) uint8 batch from one sequence (4, 2, H, W, 3) or a batch of them."""
    t = np.asarray(tactile)
    if t.ndim == 5:
        t = t[None]
    if t.ndim != 6 or t.shape[1:3] != (4, 2) or t.shape[-1] != 3:
        raise ValueError(f"tactile must have shape (4, 2, H, W, 3) or (B, 4, 2, H, W, 3), got {t.shape}")
    if t.dtype != np.uint8:
        raise ValueError(f"tactile must be uint8 images, got dtype {t.dtype}")
    return t


def tactile_from_obs(obs) -> np.ndarray:
    """The tactile sequence of an environment observation (a dict with ``tactile``, or the array itself)."""
    if isinstance(obs, dict):
        if "tactile" not in obs:
            raise ValueError(f"observation has no 'tactile' entry; keys: {sorted(obs)}")
        obs = obs["tactile"]
    return tactile_batch(obs)


def composite_tensor(tactile: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(B, 3, S, S) float composites in [0, 1] of a (B, 4, 2, H, W, 3) uint8 batch.

    S is 3H (the tiles at their own resolution) unless ``size`` asks for another size (bilinear, antialiased).
    """
    t = torch.as_tensor(tactile_batch(tactile) if not isinstance(tactile, torch.Tensor) else tactile)
    b, _, _, h, w, _ = t.shape
    tiles = t.reshape(b, 8, h, w, 3)
    white = torch.full((b, 1, h, w, 3), 255, dtype=tiles.dtype, device=tiles.device)
    grid = torch.cat([tiles, white], 1).reshape(b, 3, 3, h, w, 3)  # (B, row, col, H, W, C)
    img = grid.permute(0, 5, 1, 3, 2, 4).reshape(b, 3, 3 * h, 3 * w).float().div_(255.0)
    if size is not None and (3 * h, 3 * w) != (size, size):
        img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return img
