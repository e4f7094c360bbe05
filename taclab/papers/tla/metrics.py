"""Offline metrics of the TLA paper (section V-A), with every detail the paper leaves open made explicit.

Actions and errors are (x mm, y mm, rz deg); an action moves the pose error from ``e`` to ``e + a``.

**Correct per dimension ("converging").** The goal along x and y is the clearance band |e| <= c/2 (the band in
which the labels of equations (1)-(2) are zero); along rz it is |e| <= ``rot_tol_deg`` (0 by default, as the
label of equation (3) has no band). An action is correct along a dimension when

- the error is outside the goal and the action strictly reduces its distance to the goal, which is the same as
  ``|e + a| < |e|`` (the right direction, without overshooting past the mirror image of the error); or
- the error is already inside the goal (a zero label) and the action keeps it inside: ``|e + a|`` within the band.

**GCR** (Goal Convergence Rate) is the percentage of samples whose action is correct along x, y *and* rz.

**L1 over the correct actions** is, per dimension, the mean |a - label| over the samples counted by the GCR
(equation (5): "m ... the sample numbers in GCR"). It is ``None`` when no sample is correct.

Also reported: the per-dimension convergence rate, the L1 over all samples, and the **direction accuracy**: the
percentage of samples with a non-zero label whose action has the label's sign (an action of exactly zero counts
as wrong); samples with a zero label are left out of it, and their number is reported.
"""

from __future__ import annotations

import numpy as np

DIMS = ("x", "y", "rz")


def _check(name: str, a, n: int | None = None) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) (x mm, y mm, rz deg), got {a.shape}")
    if n is not None and len(a) != n:
        raise ValueError(f"{name} has {len(a)} rows, expected {n}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values")
    return a


def converging(error, action, clearance_mm, rot_tol_deg: float = 0.0) -> np.ndarray:
    """(N, 3) bool: whether each action is correct along x, y, rz (see the module docstring)."""
    e = _check("error", error)
    a = _check("action", action, len(e))
    c = np.broadcast_to(np.asarray(clearance_mm, dtype=np.float64), (len(e),))
    if (c <= 0).any():
        raise ValueError("clearance_mm must be > 0")
    if rot_tol_deg < 0:
        raise ValueError(f"rot_tol_deg must be >= 0, got {rot_tol_deg}")
    band = np.stack([c / 2, c / 2, np.full(len(e), float(rot_tol_deg))], 1)
    inside = np.abs(e) <= band
    after = np.abs(e + a)
    return np.where(inside, after <= band, after < np.abs(e))


def action_metrics(error, label, action, clearance_mm, rot_tol_deg: float = 0.0) -> dict:
    """GCR, per-dimension L1 over the correct actions, and the extra metrics of the module docstring."""
    e = _check("error", error)
    y = _check("label", label, len(e))
    a = _check("action", action, len(e))
    if len(e) == 0:
        raise ValueError("no samples to evaluate")
    conv = converging(e, a, clearance_mm, rot_tol_deg)
    correct = conv.all(1)
    l1 = np.abs(a - y)
    out: dict = {
        "samples": len(e),
        "gcr": 100.0 * correct.mean(),
        "correct_samples": int(correct.sum()),
    }
    nonzero = y != 0
    for k, d in enumerate(DIMS):
        out[f"l1_{d}"] = float(l1[correct, k].mean()) if correct.any() else None
        out[f"l1_all_{d}"] = float(l1[:, k].mean())
        out[f"converging_{d}"] = 100.0 * float(conv[:, k].mean())
        nz = nonzero[:, k]
        out[f"direction_{d}"] = 100.0 * float((np.sign(a[nz, k]) == np.sign(y[nz, k])).mean()) if nz.any() else None
        out[f"zero_labels_{d}"] = int((~nz).sum())
    return out


def pair_correct(error, action, dims: tuple[int, int]) -> np.ndarray:
    """The correctness of the paper's figure 4 for a pair of dimensions: for (x, y), the action reduces the
    planar position deviation; for a pair with rz, it reduces the deviation along at least one of the two."""
    e = _check("error", error)
    a = _check("action", action, len(e))
    i, j = dims
    if (i, j) == (0, 1):
        return np.hypot(*(e + a)[:, :2].T) < np.hypot(*e[:, :2].T)
    return (np.abs(e[:, i] + a[:, i]) < np.abs(e[:, i])) | (np.abs(e[:, j] + a[:, j]) < np.abs(e[:, j]))
