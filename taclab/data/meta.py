"""The on-disk format of a taclab dataset: ``dataset.json``, the card, checksums, format 1 and its migration.

A dataset folder holds::

    dataset.json      format version, layout, declared features, and per split: generator, config, config hash,
                      seed, counts and the shards with their row counts, sizes and SHA-256 checksums
    README.md         the card, generated from dataset.json
    data/*.parquet    the shards

Format 1 (the first release) recorded the columns of the TLA generator, a config and a file list per split, and
no checksums. :func:`read_meta` reads it as format 2 in memory (the features of the known format-1 schema, the
config hash of the ``tla`` generator), so those datasets keep loading; :func:`migrate` rewrites its
``dataset.json`` and card as format 2 once, recording the checksums (``taclab dataset migrate PATH``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from taclab.data.schema import Feature, Schema
from taclab.utils import atomic_write_text

FORMAT_VERSION = 2
META_FILE = "dataset.json"
CARD_FILE = "README.md"
DATA_DIR = "data"


class DatasetError(ValueError):
    """A dataset folder that is missing, incomplete, corrupt or of the wrong schema; the message names the file
    and the key."""


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(generator: str, version: int, config: dict) -> str:
    """The hash that identifies what a split was generated from: its generator, the generator's version, and
    its config (JSON, keys sorted)."""
    text = json.dumps({"generator": generator, "version": version, "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``["clearance_mm 2.0 -> 1.0", "env.image_size [64, 64] -> [32, 32]"]``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            key = f"{prefix}{k}"
            if k not in new:
                out.append(f"{key} {json.dumps(old[k])} -> (unset)")
            elif k not in old:
                out.append(f"{key} (unset) -> {json.dumps(new[k])}")
            else:
                out += config_diff(old[k], new[k], f"{key}.")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')} {json.dumps(old)} -> {json.dumps(new)}"]


# --------------------------------------------------------------------------- format 1
V1_GENERATOR = "tla"
V1_GENERATOR_VERSION = 1
V1_IMAGE_SIZE = (64, 64)  # the env's default tactile image size in that release


def v1_features(config: dict) -> list[Feature]:
    """The features of a format-1 split (all written by the TLA generator), sized by its config."""
    h, w = (config.get("env") or {}).get("image_size", V1_IMAGE_SIZE)
    return [
        Feature(
            "tactile",
            "uint8",
            (4, 2, int(h), int(w), 3),
            "image_sequence",
            "the 4 frames x 2 pads tiled, frame t in row t, pad k in column k",
        ),
        Feature("error", "float32", (3,), "vector", "true pose error (ex_mm, ey_mm, erz_deg) of the attempt"),
        Feature("label", "float32", (3,), "vector", "action of equations (1)-(3) for that error (dx, dy mm, drz deg)"),
        Feature("shape", "string", (), "text", "peg shape"),
        Feature("clearance_mm", "float32", (), "scalar", "clearance c (mm)"),
        Feature("episode", "int32", (), "scalar", "episode index within the shard"),
        Feature("attempt", "int32", (), "scalar", "attempt index within the episode (1 = the first attempt)"),
        Feature("episode_seed", "int64", (), "scalar", "seed of env.reset that reproduces the episode"),
        Feature("shard", "string", (), "text", "shard file the sample comes from"),
    ]


def _from_v1(meta: dict, where: Path) -> dict:
    """A format-1 ``dataset.json`` as format 2, in memory (no checksums: shards have ``sha256`` None)."""
    splits = {}
    first: list[Feature] | None = None
    for name, sp in meta["splits"].items():
        if not isinstance(sp, dict) or not {"config", "files", "samples"} <= set(sp):
            raise DatasetError(f"{where}: split {name!r} lacks one of the keys 'config', 'files', 'samples'")
        feats = v1_features(sp["config"])
        first = first or feats
        splits[name] = {
            "generator": V1_GENERATOR,
            "generator_version": V1_GENERATOR_VERSION,
            "config": sp["config"],
            "config_hash": config_hash(V1_GENERATOR, V1_GENERATOR_VERSION, sp["config"]),
            "seed": sp["config"].get("seed"),
            "complete": True,
            "rows": sp["samples"],
            "planned_shards": len(sp["files"]),
            "shards": [{"file": f, "rows": None, "bytes": None, "sha256": None} for f in sp["files"]],
            "features": [f.to_json() for f in feats],
        }
    return {
        "format_version": FORMAT_VERSION,
        "source_format_version": 1,
        "taclab_version": meta.get("taclab_version"),
        "layout": "sample",
        "features": [f.to_json() for f in (first or v1_features({}))],
        "generators": {V1_GENERATOR: {"version": V1_GENERATOR_VERSION, "description": V1_DESCRIPTION}},
        "splits": splits,
    }


V1_DESCRIPTION = (
    "Tactile-action samples of the TLA paper: episodes of `taclab/PegInHole-v0` with the random insertion "
    "policy; every failed insertion attempt is one sample."
)


# --------------------------------------------------------------------------- reading and writing
def read_meta(path: str | Path) -> dict:
    """The ``dataset.json`` of a dataset folder, as format 2 (a format-1 file is converted in memory and keeps
    ``source_format_version: 1``). Raises :class:`DatasetError` naming the file and the key that is wrong."""
    from taclab.utils import read_json_record

    folder = Path(path)
    p = folder / META_FILE
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{folder} is a file, not a taclab dataset (a folder holding {META_FILE})")
    if not p.is_file():
        raise DatasetError(f"{p} not found: {folder} is not a taclab dataset (run `taclab generate` first)")
    meta = read_json_record(p, ("format_version", "splits"), "not a taclab dataset", DatasetError)
    version = meta["format_version"]
    if not isinstance(meta["splits"], dict):
        raise DatasetError(f"{p}: 'splits' must be a mapping of split names")
    if version == 1:
        if "columns" not in meta:
            raise DatasetError(f"{p} lacks the key 'columns'")
        return _from_v1(meta, p)
    if version != FORMAT_VERSION:
        raise DatasetError(f"{p}: format version {version!r}; this taclab reads versions 1 and {FORMAT_VERSION}")
    for key in ("layout", "features"):
        if key not in meta:
            raise DatasetError(f"{p} lacks the key {key!r}")
    try:
        Schema.from_json(meta["layout"], meta["features"], str(p))
    except ValueError as e:
        raise DatasetError(str(e)) from None
    for name, sp in meta["splits"].items():
        if not isinstance(sp, dict):
            raise DatasetError(f"{p}: split {name!r} is not a mapping")
        for key in ("generator", "config", "config_hash", "complete", "shards"):
            if key not in sp:
                raise DatasetError(f"{p}: split {name!r} lacks the key {key!r}")
        for i, rec in enumerate(sp["shards"]):
            if not isinstance(rec, dict) or not {"file", "rows", "bytes", "sha256"} <= set(rec):
                raise DatasetError(f"{p}: shard {i} of split {name!r} lacks one of the keys file, rows, bytes, sha256")
    return meta


def split_schema(meta: dict, split: str, where: str = META_FILE) -> Schema:
    """The declaration a split's shards follow."""
    sp = meta["splits"][split]
    try:
        return Schema.from_json(meta["layout"], sp.get("features") or meta["features"], where)
    except ValueError as e:
        raise DatasetError(str(e)) from None


def dataset_schema(meta: dict) -> Schema:
    return Schema.from_json(meta["layout"], meta["features"])


def write_meta(folder: str | Path, meta: dict) -> None:
    """Write ``dataset.json`` and the card, each atomically."""
    folder = Path(folder)
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2))
    atomic_write_text(folder / CARD_FILE, card(meta))


def new_meta(schema: Schema) -> dict:
    from taclab import __version__

    return {
        "format_version": FORMAT_VERSION,
        "taclab_version": __version__,
        **schema.to_json(),
        "generators": {},
        "splits": {},
    }


# --------------------------------------------------------------------------- the card
def card(meta: dict) -> str:
    """The card ``README.md`` of a dataset, generated from its ``dataset.json``."""
    layout = meta["layout"]
    complete = {n: sp for n, sp in meta["splits"].items() if sp.get("complete")}
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for name, sp in complete.items():
        lines += [f"  - split: {name}", "    path:"] + [f"    - {r['file']}" for r in sp["shards"]]
    lines += [
        "---",
        "# taclab dataset",
        "",
        f"Written by taclab {meta.get('taclab_version')} (format version {meta['format_version']}), layout "
        f"`{layout}`: "
        + (
            "one row per sample."
            if layout == "sample"
            else "one row per frame; `episode_index`, `frame_index` and `timestamp` place each frame in its "
            "episode (the LeRobot v3 convention)."
        ),
        "",
        "## Generators",
        "",
    ]
    for name, g in meta.get("generators", {}).items():
        lines += [f"**`{name}`** (version {g.get('version')}): {g.get('description') or ''}".rstrip(), ""]
    lines += [
        "## Splits",
        "",
        "| split | generator | rows | episodes | shards | seed | config hash | state |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, sp in meta["splits"].items():
        planned = sp.get("planned_shards", len(sp["shards"]))
        state = "complete" if sp.get("complete") else f"incomplete ({len(sp['shards'])} of {planned} shards)"
        episodes = sp.get("episodes")
        lines.append(
            f"| {name} | {sp['generator']} | {sp.get('rows', '-')} | {'-' if episodes is None else episodes} | "
            f"{len(sp['shards'])} | {sp.get('seed')} | `{sp['config_hash'][:12]}` | {state} |"
        )
    lines += ["", "## Features", "", "| key | kind | dtype | shape | meaning |", "|---|---|---|---|---|"]
    for f in meta["features"]:
        dims = ["N" if d is None else str(d) for d in f["shape"]]
        shape = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        lines.append(f"| `{f['name']}` | {f['kind']} | {f['dtype']} | {shape} | {f.get('description', '')} |")
    lines += [
        "",
        "Images are lossless PNG; an image sequence is one PNG of its tiles (the last grid dimension along the "
        "columns, the others along the rows).",
        "",
        "## Generator configs",
        "",
    ]
    for name, sp in meta["splits"].items():
        lines += [f"`{name}` ({sp['generator']}):", "", "```json", json.dumps(sp["config"], indent=2), "```", ""]
    lines += [
        "## Integrity",
        "",
        f"`{META_FILE}` records the row count, size and SHA-256 of every shard and the hash of each split's "
        "config. `taclab dataset info PATH` verifies them; `taclab.data.load` checks sizes, schemas and row "
        "counts, and the parquet page checksums as it reads.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- migration
def migrate(path: str | Path) -> dict:
    """Rewrite a format-1 dataset's ``dataset.json`` and card as format 2, recording the row count, size and
    SHA-256 of every shard (the shards themselves are unchanged). Returns the new metadata; a dataset already
    in format 2 is left as it is."""
    import pyarrow.parquet as pq

    from taclab.utils import FolderLock

    folder = Path(path)
    with FolderLock(folder, "dataset migration"):
        meta = read_meta(folder)
        if meta.get("source_format_version") != 1:
            return meta
        for name, sp in meta["splits"].items():
            schema = split_schema(meta, name)
            for rec in sp["shards"]:
                f = folder / rec["file"]
                if not f.is_file():
                    raise DatasetError(f"shard {f} of split {name!r} is missing: this dataset cannot be migrated")
                try:
                    pf = pq.ParquetFile(f)
                except Exception as e:  # noqa: BLE001 - reported with the file's name
                    raise DatasetError(f"shard {f} is corrupt or truncated: {' '.join(str(e).split())}") from None
                try:
                    schema.check_arrow_schema(pf.schema_arrow, f"shard {f}")
                except ValueError as e:
                    raise DatasetError(str(e)) from None
                rec.update(rows=pf.metadata.num_rows, bytes=f.stat().st_size, sha256=sha256_file(f))
            total = sum(r["rows"] for r in sp["shards"])
            if total != sp["rows"]:
                raise DatasetError(f"split {name!r} of {folder} has {total} rows, its {META_FILE} says {sp['rows']}")
            if sp["features"] == meta["features"]:
                del sp["features"]
        meta.pop("source_format_version")
        meta["migrated_from_format"] = 1
        write_meta(folder, meta)
        return meta
