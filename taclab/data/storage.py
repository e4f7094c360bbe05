"""Loading taclab datasets, with checks that name the file and the key that is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taclab.data.generate import COLUMNS, FORMAT_VERSION, untile_sequence
from taclab.utils import read_json_record


class DatasetError(ValueError):
    """A dataset folder that is missing, incomplete, corrupt or of the wrong schema."""


def read_meta(path: str | Path) -> dict:
    p = Path(path) / "dataset.json"
    if not p.is_file():
        raise DatasetError(f"{p} not found: {path} is not a taclab dataset (run `taclab generate` first)")
    meta = read_json_record(p, ("format_version", "splits", "columns"), "not a taclab dataset", DatasetError)
    if meta["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{p}: format version {meta['format_version']}, this taclab reads {FORMAT_VERSION}")
    return meta


def load(path: str | Path, split: str = "train"):
    """The split as a ``datasets.Dataset``, after checking every shard's presence, row count and schema."""
    import datasets
    import pyarrow.parquet as pq

    from taclab.data.generate import _features

    path = Path(path)
    meta = read_meta(path)
    if split not in meta["splits"]:
        raise DatasetError(f"{path} has no split {split!r}; splits: {sorted(meta['splits'])}")
    sp = meta["splits"][split]
    files = [path / f for f in sp["files"]]
    expected = set(COLUMNS)
    total = 0
    for f in files:
        if not f.is_file():
            raise DatasetError(f"shard {f} of split {split!r} is missing (an interrupted run? run it again)")
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # noqa: BLE001 - reported with the file's name
            raise DatasetError(f"shard {f} is corrupt or truncated: {e}") from None
        names = set(pf.schema_arrow.names)
        missing = sorted(expected - names)
        if missing:
            raise DatasetError(f"shard {f} lacks the key(s) {missing}")
        total += pf.metadata.num_rows
    if total != sp["samples"]:
        raise DatasetError(f"split {split!r} of {path} has {total} rows, its card says {sp['samples']}")
    datasets.disable_progress_bars()  # taclab shows its own progress
    ds = datasets.Dataset.from_parquet([str(f) for f in files], features=_features(), keep_in_memory=False)
    return ds


def tactile_array(example: dict) -> np.ndarray:
    """The (4, 2, H, W, 3) uint8 tactile sequence of a loaded sample."""
    img = example["tactile"]
    arr = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] % 4 or arr.shape[1] % 2:
        raise DatasetError(f"tactile image of shape {arr.shape} is not 4 frames x 2 pads of tiles")
    return untile_sequence(arr)


@dataclass
class TactileArrays:
    """A split held in memory: the decoded tactile sequences and their per-sample columns."""

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
    """Load a split (checked as by :func:`load`) and decode every tactile image into one uint8 array.

    ``limit`` keeps the first samples only (for quick runs).
    """
    from rich.progress import Progress

    ds = load(path, split)
    n = len(ds) if limit is None else min(len(ds), int(limit))
    if n == 0:
        raise DatasetError(f"split {split!r} of {path} is empty")
    cols = ds.select(range(n)).select_columns(["error", "label", "shape", "clearance_mm"]).to_dict()
    images = ds.select(range(n)).select_columns(["tactile"])
    first = tactile_array(images[0])
    tactile = np.empty((n, *first.shape), np.uint8)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"decoding {split}", total=n)
        for i, ex in enumerate(images):
            tactile[i] = tactile_array(ex)
            bar.advance(task)
    return TactileArrays(
        tactile=tactile,
        error=np.asarray(cols["error"], dtype=np.float64),
        label=np.asarray(cols["label"], dtype=np.float64),
        shape=np.asarray(cols["shape"], dtype=str),
        clearance_mm=np.asarray(cols["clearance_mm"], dtype=np.float64),
    )
