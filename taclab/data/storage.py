"""Compatibility module: the names the first release exported from here.

New code uses :mod:`taclab.data` (``load``, ``load_arrays`` returning a dict of the requested columns,
``fingerprint``, ``read_meta``, ``DatasetError``). :class:`TactileArrays` and this module's :func:`load_arrays`
keep the TLA-shaped access (``arrays.tactile``, ``arrays.label``, ...) until their last callers move over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taclab.data.meta import DatasetError, read_meta
from taclab.data.reader import fingerprint, load
from taclab.data.reader import load_arrays as load_columns

__all__ = ["DatasetError", "TactileArrays", "fingerprint", "load", "load_arrays", "read_meta"]


@dataclass
class TactileArrays:
    """A TLA split held in memory: the decoded tactile sequences and their per-sample columns."""

    tactile: np.ndarray  # (N, 4, 2, H, W, 3) uint8
    error: np.ndarray  # (N, 3) float64: ex_mm, ey_mm, erz_deg
    label: np.ndarray  # (N, 3) float64: dx_mm, dy_mm, drz_deg
    shape: np.ndarray  # (N,) str
    clearance_mm: np.ndarray  # (N,) float64

    def __len__(self) -> int:
        return len(self.tactile)

    def subset(self, idx) -> TactileArrays:
        idx = np.asarray(idx)
        return TactileArrays(
            self.tactile[idx], self.error[idx], self.label[idx], self.shape[idx], self.clearance_mm[idx]
        )


def load_arrays(
    path: str | Path, split: str = "train", limit: int | None = None, progress: bool = True
) -> TactileArrays:
    """A TLA split as :class:`TactileArrays` (float columns as float64, as the first release returned them)."""
    cols = load_columns(path, split, ["tactile", "error", "label", "shape", "clearance_mm"], limit, progress)
    return TactileArrays(
        tactile=cols["tactile"],
        error=cols["error"].astype(np.float64),
        label=cols["label"].astype(np.float64),
        shape=cols["shape"],
        clearance_mm=cols["clearance_mm"].astype(np.float64),
    )
