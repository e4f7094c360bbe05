"""Loading taclab datasets, with checks that name the file and the key that is wrong."""

from __future__ import annotations

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
    ds = datasets.Dataset.from_parquet([str(f) for f in files], features=_features(), keep_in_memory=False)
    return ds


def tactile_array(example: dict) -> np.ndarray:
    """The (4, 2, H, W, 3) uint8 tactile sequence of a loaded sample."""
    img = example["tactile"]
    arr = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] % 4 or arr.shape[1] % 2:
        raise DatasetError(f"tactile image of shape {arr.shape} is not 4 frames x 2 pads of tiles")
    return untile_sequence(arr)
