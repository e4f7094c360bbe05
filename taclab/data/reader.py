"""Reading taclab datasets: checked shards, a ``datasets.Dataset`` without a cache copy, decoded arrays,
streamed batches, checksums and the split fingerprint.

Every read first checks the split against ``dataset.json``: the split exists and is complete, every shard is
present with its recorded size and row count, and its columns are the declared features with their declared
storage types. Reading then verifies the parquet page checksums written with every shard, so a flipped byte
is reported with its file instead of surfacing later as a broken image. :func:`verify` (``taclab dataset info``)
compares the full SHA-256 of every shard with ``dataset.json``.

:func:`load` builds the ``datasets.Dataset`` from the shards' Arrow tables in memory: nothing is copied into
the Hugging Face cache (``~/.cache/huggingface/datasets``), and a split larger than the available memory is
refused with a pointer to :func:`iter_batches`, which streams one shard at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from taclab.data.meta import DatasetError, read_meta, sha256_file, split_schema
from taclab.data.schema import Schema


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _split_entry(path: Path, meta: dict, split: str) -> dict:
    if not isinstance(split, str) or split not in meta["splits"]:
        raise DatasetError(f"{path} has no split {split!r}; splits: {sorted(meta['splits'])}")
    sp = meta["splits"][split]
    if not sp.get("complete"):
        planned = sp.get("planned_shards", "?")
        raise DatasetError(
            f"split {split!r} of {path} is incomplete ({len(sp['shards'])} of {planned} shards written): run the "
            "same `taclab generate` command again to finish it"
        )
    return sp


def _check_shards(path: Path, split: str, sp: dict, schema: Schema) -> list[tuple[Path, int]]:
    """(file, rows) of every shard, after the cheap checks: presence, size, footer, schema, row count."""
    import pyarrow.parquet as pq

    out = []
    for rec in sp["shards"]:
        f = path / rec["file"]
        if not f.is_file():
            raise DatasetError(
                f"shard {f} of split {split!r} is missing: run the same `taclab generate` command to rebuild it"
            )
        size = f.stat().st_size
        if rec.get("bytes") is not None and size != rec["bytes"]:
            raise DatasetError(
                f"shard {f} has {size} bytes, dataset.json records {rec['bytes']}: the file is damaged or was "
                "replaced; run the same `taclab generate` command to rebuild it"
            )
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # noqa: BLE001 - reported with the file's name
            raise DatasetError(f"shard {f} is corrupt or truncated: {_one_line(e)}") from None
        try:
            schema.check_arrow_schema(pf.schema_arrow, f"shard {f}")
        except ValueError as e:
            raise DatasetError(str(e)) from None
        rows = pf.metadata.num_rows
        if rec.get("rows") is not None and rows != rec["rows"]:
            raise DatasetError(f"shard {f} has {rows} rows, dataset.json records {rec['rows']}")
        out.append((f, rows))
    total = sum(r for _, r in out)
    if sp.get("rows") is not None and total != sp["rows"]:
        raise DatasetError(f"split {split!r} of {path} has {total} rows, its dataset.json says {sp['rows']}")
    return out


def checked_split(path: str | Path, split: str = "train") -> tuple[dict, Schema, list[tuple[Path, int]]]:
    """(metadata, declaration, [(shard file, rows)]) of a split, after the cheap checks of every shard."""
    path = Path(path)
    meta = read_meta(path)
    sp = _split_entry(path, meta, split)
    schema = split_schema(meta, split, str(path / "dataset.json"))
    return meta, schema, _check_shards(path, split, sp, schema)


def _read_table(f: Path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(f, columns=columns, memory_map=True, page_checksum_verification=True)
    except Exception as e:  # noqa: BLE001 - reported with the file's name
        raise DatasetError(
            f"shard {f} is damaged ({_one_line(e)}): run the same `taclab generate` command to rebuild it"
        ) from None


def load(path: str | Path, split: str = "train"):
    """The split as a ``datasets.Dataset`` after checking every shard (see the module docstring).

    The Arrow tables are read straight from the shards (memory-mapped, page checksums verified); nothing is
    copied into the Hugging Face cache. Images decode to PIL images as with ``datasets.Image``.
    """
    import datasets
    import pyarrow as pa

    from taclab.utils import available_memory_bytes, human_bytes

    path = Path(path)
    meta, schema, shards = checked_split(path, split)
    size = sum(f.stat().st_size for f, _ in shards)
    free = available_memory_bytes()
    if size > 0.8 * free:
        raise DatasetError(
            f"split {split!r} of {path} holds {human_bytes(size)} of shards, more than the memory available "
            f"({human_bytes(free)}): read it in batches with taclab.data.iter_batches or pick columns with "
            "taclab.data.load_arrays(columns=...)"
        )
    target = schema.arrow_schema()
    tables = [_read_table(f).select(schema.names).cast(target) for f, _ in shards]
    table = pa.concat_tables(tables) if tables else target.empty_table()
    datasets.disable_progress_bars()  # taclab shows its own progress
    info = datasets.DatasetInfo(features=schema.hf_features(), description=f"taclab dataset {path}, split {split}")
    return datasets.Dataset(table, info=info, split=split)


def iter_batches(
    path: str | Path,
    split: str = "train",
    columns: list[str] | None = None,
    batch_size: int = 256,
    limit: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Decoded batches of a split, one shard in memory at a time: ``{key: array}`` per batch (see
    :func:`load_arrays` for the arrays), at most ``batch_size`` rows each, the first ``limit`` rows in all."""
    path = Path(path)
    _, schema, shards = checked_split(path, split)
    cols = _columns(schema, columns, path)
    if int(batch_size) < 1:
        raise DatasetError(f"batch_size must be >= 1, got {batch_size}")
    left = _limit(limit, sum(r for _, r in shards))
    for f, _rows in shards:
        if left <= 0:
            return
        table = _read_table(f, cols)
        for start in range(0, min(table.num_rows, left), batch_size):
            stop = min(start + batch_size, table.num_rows, left)
            part = table.slice(start, stop - start)
            yield {c: _decode(schema, c, part.column(c), f, start) for c in cols}
        left -= table.num_rows


def _decode(schema: Schema, name: str, column, f: Path, row0: int) -> np.ndarray:
    try:
        return schema[name].decode(column, f"shard {f}, ", row0)
    except ValueError as e:
        raise DatasetError(str(e)) from None


def _columns(schema: Schema, columns: list[str] | None, path: Path) -> list[str]:
    if columns is None:
        return schema.names
    if isinstance(columns, str):
        columns = [columns]
    bad = [c for c in columns if c not in schema.names]
    if bad:
        raise DatasetError(f"{path} has no key(s) {bad}; its features: {schema.names}")
    return list(dict.fromkeys(columns))


def _limit(limit: int | None, total: int) -> int:
    if limit is None:
        return total
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise DatasetError(f"limit must be a whole number >= 1 (or None for every row), got {limit!r}")
    return min(int(limit), total)


def load_arrays(
    path: str | Path,
    split: str = "train",
    columns: list[str] | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Every requested column of a split (all by default), decoded per its declared feature:

    - images and image sequences: uint8 arrays of ``(N, *shape)`` (e.g. ``(N, 4, 2, H, W, 3)``);
    - vectors and scalars: arrays of ``(N, *shape)`` of the declared dtype; texts: str arrays of ``(N,)``;
    - point clouds of unknown size: an object array of ``(n_i, D)`` arrays.

    ``limit`` keeps the first rows only. Shards are read one at a time into the preallocated result.
    """
    from rich.progress import Progress

    path = Path(path)
    _, schema, shards = checked_split(path, split)
    cols = _columns(schema, columns, path)
    n = _limit(limit, sum(r for _, r in shards))
    if n == 0:
        raise DatasetError(f"split {split!r} of {path} is empty")
    out: dict[str, np.ndarray] = {}
    filled = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"decoding {split}", total=n)
        for batch in iter_batches(path, split, cols, batch_size=256, limit=n):
            m = len(next(iter(batch.values())))
            for c, arr in batch.items():
                if c not in out:
                    out[c] = np.empty((n, *arr.shape[1:]), arr.dtype) if arr.dtype != object else np.empty(n, object)
                if arr.dtype.kind == "U" and out[c].dtype.itemsize < arr.dtype.itemsize:
                    out[c] = out[c].astype(arr.dtype)  # a longer string than the batches before
                out[c][filled : filled + m] = arr
            filled += m
            bar.advance(task, m)
    return out


def read_row(path: str | Path, split: str, index: int) -> dict:
    """One row of a split, decoded (``{key: value}``: arrays for images and vectors, str for texts, numbers for
    scalars); reads only the shard that holds it."""
    path = Path(path)
    _, schema, shards = checked_split(path, split)
    total = sum(r for _, r in shards)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < total:
        raise DatasetError(f"index {index!r} out of range: split {split!r} has {total} rows (0 to {total - 1})")
    start = 0
    for f, rows in shards:
        if index < start + rows:
            part = _read_table(f).slice(index - start, 1)
            out = {}
            for name in schema.names:
                value = _decode(schema, name, part.column(name), f, index - start)[0]
                out[name] = value.item() if isinstance(value, np.generic) else value
            return out
        start += rows
    raise AssertionError("unreachable")  # pragma: no cover


def verify(path: str | Path, split: str) -> dict:
    """Full check of a split: the cheap checks, then the SHA-256 of every shard against ``dataset.json``.

    Returns ``{"rows", "shards", "verified"}`` (``verified`` False for a format-1 dataset, which recorded no
    checksums); raises :class:`DatasetError` naming every damaged shard.
    """
    path = Path(path)
    meta = read_meta(path)
    sp = _split_entry(path, meta, split)
    schema = split_schema(meta, split, str(path / "dataset.json"))
    shards = _check_shards(path, split, sp, schema)
    bad = []
    recorded = [rec.get("sha256") for rec in sp["shards"]]
    for (f, _), want in zip(shards, recorded, strict=True):
        if want is not None and sha256_file(f) != want:
            bad.append(f.name)
    if bad:
        raise DatasetError(
            f"{len(bad)} shard(s) of split {split!r} fail their SHA-256 checksum in {path / 'data'}: "
            f"{', '.join(bad)}; run the same `taclab generate` command to rebuild them"
        )
    return {"rows": sum(r for _, r in shards), "shards": len(shards), "verified": all(w for w in recorded)}


def fingerprint(path: str | Path, split: str = "train") -> str:
    """A stable hash of a split's content: its config hash and the SHA-256 of its shards, in order.

    Equal fingerprints mean the same data; a training run records it and refuses to resume on other data.
    (A format-1 dataset recorded no checksums: they are computed here, which reads every shard.)
    """
    path = Path(path)
    meta = read_meta(path)
    sp = _split_entry(path, meta, split)
    sums = []
    for rec in sp["shards"]:
        if rec.get("sha256"):
            sums.append(rec["sha256"])
        else:
            f = path / rec["file"]
            if not f.is_file():
                raise DatasetError(f"shard {f} of split {split!r} is missing")
            sums.append(sha256_file(f))
    text = json.dumps({"config_hash": sp["config_hash"], "shards": sums})
    return hashlib.sha256(text.encode()).hexdigest()
