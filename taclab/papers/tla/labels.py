"""Action labels of the TLA paper, equations (1)-(3).

Given the peg's pose error (ex, ey in mm, erz in degrees) and the clearance c (mm), the corrective action is

    dx  = clip(-ex + c/2, -delta, 0)  if ex >= 0
          clip(-ex - c/2, 0, delta)   if ex <  0           (1)
    dy  = the same with ey                                 (2)
    drz = clip(-erz, -1.5 deg, 1.5 deg)                    (3)

The paper prints "ex >= 0" in both branches of (1) and (2); the second branch is meant for ex < 0 (it moves the
peg in the positive direction), and that is what is implemented here.
"""

from __future__ import annotations

import numpy as np

DELTA_MM = 1.0
"""Largest translation per action (mm), the paper's delta."""
MAX_ROT_DEG = 1.5
"""Largest rotation per action (degrees)."""


def _axis(e: np.ndarray, c: np.ndarray, delta: float) -> np.ndarray:
    pos = np.clip(-e + c / 2, -delta, 0.0)
    neg = np.clip(-e - c / 2, 0.0, delta)
    return np.where(e >= 0, pos, neg)


def tla_label(error, clearance_mm, delta_mm: float = DELTA_MM, max_rot_deg: float = MAX_ROT_DEG) -> np.ndarray:
    """The action (dx_mm, dy_mm, drz_deg) of equations (1)-(3) for an error (ex_mm, ey_mm, erz_deg).

    ``error`` may be a single (3,) error or a batch (..., 3); ``clearance_mm`` broadcasts against the batch.
    """
    e = np.asarray(error, dtype=float)
    if e.shape[-1:] != (3,):
        raise ValueError(f"error must have a last dimension of 3 (ex_mm, ey_mm, erz_deg), got shape {e.shape}")
    if not np.all(np.isfinite(e)):
        raise ValueError("error must be finite")
    c = np.asarray(clearance_mm, dtype=float)
    if np.any(c <= 0) or not np.all(np.isfinite(c)):
        raise ValueError(f"clearance_mm must be > 0, got {clearance_mm!r}")
    if delta_mm <= 0 or max_rot_deg <= 0:
        raise ValueError("delta_mm and max_rot_deg must be > 0")
    out = np.empty(e.shape)
    out[..., 0] = _axis(e[..., 0], c, delta_mm)
    out[..., 1] = _axis(e[..., 1], c, delta_mm)
    out[..., 2] = np.clip(-e[..., 2], -max_rot_deg, max_rot_deg)
    return out
