"""Dataset generation: a registry of generators and one driver for all of them.

A **generator** makes the rows of a dataset. It is a :class:`Generator` subclass registered under a name::

    @register_generator("my_task")
    class MyGenerator(Generator):
        Config = MyConfig                 # a SplitConfig subclass: the keys of one split in a dataset config
        layout = "sample"                 # or "episode"
        description = "what a row is"     # a paragraph of the dataset card

        def features(self, cfg): ...      # the declared Features
        def rows(self, cfg, shard, rng): ...      # "sample" layout: yield one {key: value} per row
        def episodes(self, cfg, shard, rng): ...  # "episode" layout: yield {key: per-frame values} per episode

The default shard plan cuts ``cfg.samples`` (or ``cfg.episodes``) into shards of ``cfg.shard_size``; a
generator may plan its own (:meth:`Generator.shards`). For the episode layout the driver adds the
``episode_index`` (numbered over the split), ``frame_index`` and ``timestamp`` columns (``frame_index / fps``
unless the generator gives ``timestamp`` itself).

The **driver** (:func:`generate`) does the rest for every generator:

- *determinism*: shard ``s`` draws from ``numpy.random.default_rng(SeedSequence([seed, *s.key]))``, so the data
  depend on the config only, never on the number of workers or the order in which shards finish;
- *workers*: shards are made by a pool of spawned processes (one shard per task);
- *atomic, streamed shards*: rows are written in row groups to a temporary file that is renamed into place when
  complete, so a worker never holds more than a row group and an interrupted run leaves only complete shards;
- *checksums*: ``dataset.json`` records each shard's rows, size and SHA-256 as it completes;
- *resume*: rerunning the same config verifies the recorded shards (SHA-256) and makes only the missing or
  damaged ones; a split generated from another config (another clearance, image size, seed, ...) is refused
  with a message naming what changed (the config hash is stored per split);
- *lock*: the dataset folder is locked while it is written; a second writer is refused naming the holder;
- *bounds*: the size of what is left to write is estimated and checked against the free disk before starting,
  and a row group against the free memory;
- *interrupts*: Ctrl-C stops the workers at once and removes their partial files (within about a second).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import multiprocessing as mp
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taclab.data.meta import (
    DATA_DIR,
    META_FILE,
    DatasetError,
    config_diff,
    config_hash,
    dataset_schema,
    new_meta,
    read_meta,
    sha256_file,
    write_meta,
)
from taclab.data.schema import EPISODE_FEATURES, EPISODE_KEYS, LAYOUTS, Feature, Schema

ROW_GROUP_BYTES = 64 << 20
"""Rows are written in row groups of about this many decoded bytes: what a worker holds at most."""
WORKER_BASE_BYTES = 400 << 20
"""Memory of a worker process before it holds any rows (interpreter, simulator, libraries)."""
DISK_MARGIN = 1.05
"""The estimated size of a run must fit in the free disk with this margin."""


class ConfigError(ValueError):
    """A dataset config (file, split or override) that is wrong; the message is one line."""


class GenerationInterrupted(KeyboardInterrupt):
    """Generation stopped by Ctrl-C; complete shards are kept and a rerun of the same command resumes."""


class SplitConfig(BaseModel):
    """Keys every split config has. Generators extend it; unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str = Field("train", description="split name: letters, digits and '_'")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="seed of the whole split")

    @field_validator("split")
    @classmethod
    def _split(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError(f"split must be letters, digits and '_', got {v!r}")
        return v


@dataclass(frozen=True)
class Shard:
    """One file of a split's plan: its name (under ``data/``), how many samples or episodes it holds, the key
    that seeds it (with the split's seed) and what the generator needs to make it."""

    file: str
    size: int
    key: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict)


class Generator:
    """Base class of dataset generators (see the module docstring)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[SplitConfig]] = SplitConfig
    layout: ClassVar[str] = "sample"
    version: ClassVar[int] = 1
    """Raise it when the same config would now give other data: old splits then no longer resume."""
    description: ClassVar[str] = ""

    # -- what a generator declares
    def features(self, cfg: SplitConfig) -> list[Feature]:
        raise NotImplementedError

    def size(self, cfg: SplitConfig) -> int:
        """Samples (``sample`` layout) or episodes (``episode`` layout) of the split."""
        for key in ("samples", "episodes"):
            if hasattr(cfg, key):
                return int(getattr(cfg, key))
        raise NotImplementedError(f"{type(self).__name__} must define size(cfg) (no 'samples' or 'episodes' key)")

    def shards(self, cfg: SplitConfig) -> list[Shard]:
        """The plan: ``size`` cut into shards of ``cfg.shard_size``, seeded by their index."""
        n, per = self.size(cfg), int(getattr(cfg, "shard_size", 500))
        return [Shard(f"{cfg.split}-{k:05d}.parquet", min(per, n - k * per), (k,)) for k in range(math.ceil(n / per))]

    def rows(self, cfg: SplitConfig, shard: Shard, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """``sample`` layout: exactly ``shard.size`` rows, each ``{key: value}`` for every declared feature."""
        raise NotImplementedError

    def episodes(self, cfg: SplitConfig, shard: Shard, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """``episode`` layout: exactly ``shard.size`` episodes, each ``{key: per-frame values}``: arrays with the
        frames along the first axis; a single string or number is repeated for every frame."""
        raise NotImplementedError

    def fps(self, cfg: SplitConfig) -> float:
        """Frames per second of the episode layout's timestamps."""
        return float(getattr(cfg, "fps", 10.0))

    def max_frames(self, cfg: SplitConfig) -> int:
        """An upper estimate of an episode's frames (for the size check before starting)."""
        return int(getattr(cfg, "max_frames", 1000))

    # -- derived
    def schema(self, cfg: SplitConfig) -> Schema:
        feats = list(self.features(cfg))
        if self.layout == "episode":
            clash = [f.name for f in feats if f.name in EPISODE_KEYS]
            if clash:
                raise ValueError(f"generator {self.name!r} declares {clash}: the driver adds the episode columns")
            feats += list(EPISODE_FEATURES)
        return Schema(self.layout, tuple(feats))

    def rows_estimate(self, cfg: SplitConfig, size: int) -> int:
        return size if self.layout == "sample" else size * self.max_frames(cfg)


GENERATORS: dict[str, Generator] = {}
"""Registered generators by name. Paper packages register theirs when imported (``import taclab.papers``)."""


def register_generator(name: str):
    """Class decorator: register a :class:`Generator` subclass under ``name``."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"a generator name is lowercase letters, digits and '_', got {name!r}")

    def deco(cls: type[Generator]) -> type[Generator]:
        if not (isinstance(cls, type) and issubclass(cls, Generator)):
            raise TypeError(f"register_generator({name!r}) decorates a Generator subclass, got {cls!r}")
        if not (isinstance(cls.Config, type) and issubclass(cls.Config, SplitConfig)):
            raise TypeError(f"{cls.__name__}.Config must subclass taclab.data.generate.SplitConfig")
        if cls.layout not in LAYOUTS:
            raise ValueError(f"{cls.__name__}.layout must be one of {LAYOUTS}, got {cls.layout!r}")
        old = GENERATORS.get(name)
        if old is not None and f"{type(old).__module__}.{type(old).__qualname__}" != (
            f"{cls.__module__}.{cls.__qualname__}"
        ):
            raise ValueError(f"generator name {name!r} is taken by {type(old).__module__}.{type(old).__qualname__}")
        cls.name = name
        GENERATORS[name] = cls()
        return cls

    return deco


def get_generator(name: str) -> Generator:
    if name not in GENERATORS:
        raise ConfigError(f"unknown generator {name!r}; registered generators: {', '.join(sorted(GENERATORS)) or '-'}")
    return GENERATORS[name]


def generator_for(cfg: SplitConfig) -> Generator:
    for g in GENERATORS.values():
        if type(cfg) is g.Config:
            return g
    known = ", ".join(f"{n} ({g.Config.__name__})" for n, g in GENERATORS.items()) or "-"
    raise ConfigError(f"no registered generator takes a {type(cfg).__name__}; registered generators: {known}")


# --------------------------------------------------------------------------- config files
def _set_dotted(d: dict, key: str, value: Any, where: str) -> None:
    parts = key.split(".")
    cur = d
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"{where}: --set {key}: {'.'.join(parts[: i + 1])} is not a mapping")
        cur = nxt
    cur[parts[-1]] = value


def read_config(path: str | Path, overrides: dict[str, Any] | None = None) -> list[SplitConfig]:
    """The splits of a dataset config file, each validated by its generator's config model::

        generator: tla
        splits:
          - {split: train, shapes: [square], samples: 6000, seed: 100}

    ``overrides`` (``--set key=value``; dotted keys reach into mappings, e.g. ``env.image_size``) apply to every
    split. Every problem raises :class:`ConfigError` with a one-line message naming the file, the split, the key
    and what is allowed.
    """
    import yaml

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"dataset config {p} is a folder; expected a YAML file")
    if not p.is_file():
        raise ConfigError(f"dataset config {p} not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"dataset config {p} is not a text file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"dataset config {p} is not valid YAML{at}: {problem}") from None
    known = ", ".join(sorted(GENERATORS)) or "-"
    if raw is None:
        raise ConfigError(f"dataset config {p} is empty; expected 'generator: NAME' ({known}) and a list 'splits'")
    if not isinstance(raw, dict):
        raise ConfigError(f"dataset config {p}: expected a mapping with 'generator' and 'splits', got {raw!r:.60}")
    unknown = sorted(set(raw) - {"generator", "splits"})
    if unknown:
        raise ConfigError(f"{p}: unknown top-level key(s) {unknown}; allowed: generator, splits")
    if "generator" not in raw:
        raise ConfigError(f"{p} does not name its generator: add 'generator: NAME'; registered generators: {known}")
    gen = raw["generator"]
    if not isinstance(gen, str) or gen not in GENERATORS:
        raise ConfigError(f"{p}: unknown generator {gen!r}; registered generators: {known}")
    generator = GENERATORS[gen]
    splits = raw.get("splits")
    if not isinstance(splits, list) or not splits or not all(isinstance(s, dict) for s in splits):
        raise ConfigError(f"{p}: 'splits' must be a non-empty list of mappings (one per split)")
    overrides = dict(overrides or {})
    fields = sorted(generator.Config.model_fields)
    for key in overrides:
        top = str(key).split(".")[0]
        if top in ("split", "generator"):
            raise ConfigError(
                f"--set {key}: not allowed: the config names each split and the generator; select splits with --split"
            )
        if top not in fields:
            raise ConfigError(f"--set {key}: unknown key {top!r} for generator {gen!r}; allowed: {', '.join(fields)}")
    out = []
    for i, s in enumerate(splits):
        d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in s.items()}
        name = d.get("split", f"#{i}")
        where = f"{p}, split {name!r}"
        for key, value in overrides.items():
            _set_dotted(d, str(key), value, where)
        try:
            out.append(generator.Config(**d))
        except ValidationError as e:
            from taclab.utils import validation_message

            raise ConfigError(validation_message(e, where, {"": fields})) from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where}: {' '.join(str(e).split())}") from None
    names = [c.split for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{p}: split name(s) {dup} appear twice")
    return out


# --------------------------------------------------------------------------- making one shard
def _episode_columns(
    schema: Schema, episode: dict[str, Any], index: int, fps: float, where: str
) -> dict[str, list[Any]]:
    """The per-frame rows of one episode, with the episode columns filled in."""
    declared = [n for n in schema.names if n not in EPISODE_KEYS]
    keys = set(episode)
    missing = [n for n in declared if n not in keys]
    extra = sorted(keys - set(declared) - {"timestamp"})
    if missing or extra:
        raise ValueError(f"{where}: an episode lacks the key(s) {missing} / has undeclared key(s) {extra}")
    lengths = {}
    for n in declared:
        f, v = schema[n], episode[n]
        broadcast = (f.kind == "text" and isinstance(v, str)) or (f.kind == "scalar" and np.ndim(v) == 0)
        if not broadcast:
            lengths[n] = len(v)
    frames = set(lengths.values())
    if len(frames) > 1:
        raise ValueError(f"{where}: the keys of an episode have different frame counts {lengths}")
    t = frames.pop() if frames else 1
    if t < 1:
        raise ValueError(f"{where}: an episode has no frames")
    cols: dict[str, list[Any]] = {}
    for n in declared:
        v = episode[n]
        cols[n] = list(v) if n in lengths else [v] * t
    cols["episode_index"] = [index] * t
    cols["frame_index"] = list(range(t))
    if "timestamp" in episode:
        ts = np.asarray(episode["timestamp"], dtype=np.float64)
        if ts.shape != (t,):
            raise ValueError(f"{where}: 'timestamp' must hold one time per frame ({t}), got shape {ts.shape}")
        cols["timestamp"] = list(ts)
    else:
        cols["timestamp"] = list(np.arange(t) / fps)
    return cols


def _group_rows(schema: Schema) -> int:
    return max(1, min(4096, ROW_GROUP_BYTES // schema.row_bytes()))


def write_shard(
    generator: Generator, cfg: SplitConfig, shard: Shard, folder: str | Path, episode_start: int = 0
) -> dict[str, Any]:
    """Make one shard into ``folder`` (atomically) and return its record for ``dataset.json``."""
    import pyarrow.parquet as pq

    schema = generator.schema(cfg)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, *shard.key]))
    group = _group_rows(schema)
    final = Path(folder) / shard.file
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    arrow_schema = schema.arrow_schema()
    image_cols = [f.name for f in schema.features if f.kind in ("image", "image_sequence")]
    compression = {n: ("NONE" if n in image_cols else "SNAPPY") for n in schema.names}
    buf: dict[str, list] = {n: [] for n in schema.names}
    rows = episodes = 0
    where = f"generator {generator.name!r}, shard {shard.file}"

    def flush(writer):
        import pyarrow as pa

        n = len(buf[schema.names[0]])
        if n == 0:
            return
        try:
            arrays = [schema[k].to_arrow(buf[k]) for k in schema.names]
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        writer.write_table(pa.Table.from_arrays(arrays, schema=arrow_schema), row_group_size=n)
        for k in buf:
            buf[k] = []

    try:
        with pq.ParquetWriter(tmp, arrow_schema, compression=compression, write_page_checksum=True) as writer:
            if generator.layout == "sample":
                for row in generator.rows(cfg, shard, rng):
                    if set(row) != set(schema.names):
                        missing = [n for n in schema.names if n not in row]
                        extra = sorted(set(row) - set(schema.names))
                        raise ValueError(f"{where}: a row lacks the key(s) {missing} / has undeclared key(s) {extra}")
                    for k in schema.names:
                        buf[k].append(row[k])
                    rows += 1
                    if rows > shard.size:
                        raise ValueError(f"{where}: more rows than the {shard.size} of the plan")
                    if len(buf[schema.names[0]]) >= group:
                        flush(writer)
                if rows != shard.size:
                    raise ValueError(f"{where}: {rows} rows, the plan says {shard.size}")
            else:
                fps = generator.fps(cfg)
                for episode in generator.episodes(cfg, shard, rng):
                    cols = _episode_columns(schema, episode, episode_start + episodes, fps, where)
                    for k in schema.names:
                        buf[k].extend(cols[k])
                    episodes += 1
                    rows += len(cols["frame_index"])
                    if episodes > shard.size:
                        raise ValueError(f"{where}: more episodes than the {shard.size} of the plan")
                    if len(buf[schema.names[0]]) >= group:
                        flush(writer)
                if episodes != shard.size:
                    raise ValueError(f"{where}: {episodes} episodes, the plan says {shard.size}")
            flush(writer)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        record = {"file": f"{DATA_DIR}/{shard.file}", "rows": rows, "bytes": tmp.stat().st_size}
        record["sha256"] = sha256_file(tmp)
        if generator.layout == "episode":
            record["episodes"] = episodes
        os.replace(tmp, final)
        return record
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _worker_init() -> None:  # pragma: no cover - runs in the pool's processes
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    with contextlib.suppress(Exception):  # Linux: exit when the parent dies, however it dies
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _pool_job(job: tuple) -> tuple[int, dict]:  # pragma: no cover - runs in the pool's processes
    module, name, config, shard, folder, episode_start, index = job
    importlib.import_module(module)  # registers the generator in this process
    generator = GENERATORS[name]
    return index, write_shard(generator, generator.Config.model_validate(config), shard, folder, episode_start)


# --------------------------------------------------------------------------- the driver
@dataclass
class _Job:
    generator: Generator
    cfg: SplitConfig
    hash: str
    schema: Schema
    plan: list[Shard] | None = None


def _check_plan(job: _Job) -> list[Shard]:
    plan = list(job.generator.shards(job.cfg))
    name = job.generator.name
    files = [s.file for s in plan]
    for s in plan:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+\.parquet", s.file) or s.file.startswith("."):
            raise ValueError(f"generator {name!r} plans a shard named {s.file!r}: a plain file name ending .parquet")
        if int(s.size) < 1:
            raise ValueError(f"generator {name!r} plans shard {s.file} with size {s.size}")
    if len(set(files)) != len(files):
        raise ValueError(f"generator {name!r} plans the same shard file twice")
    if sum(s.size for s in plan) != job.generator.size(job.cfg):
        raise ValueError(f"generator {name!r}: its shards hold {sum(s.size for s in plan)}, the split needs "
                         f"{job.generator.size(job.cfg)}")  # fmt: skip
    return plan


def _clean_partial_files(data: Path) -> None:
    if data.is_dir():
        for f in data.glob(".*.tmp*"):
            with contextlib.suppress(OSError):
                f.unlink()


def _recorded_ok(out: Path, rec: dict) -> bool:
    f = out / rec["file"]
    try:
        return f.is_file() and f.stat().st_size == rec["bytes"] and sha256_file(f) == rec["sha256"]
    except OSError:
        return False


def generate(
    configs: SplitConfig | list[SplitConfig], out: str | Path, workers: int = 1, progress: bool = True
) -> Path:
    """Generate (or finish generating) the splits of ``configs`` into the dataset folder ``out``.

    Each config is the ``Config`` of a registered generator. Everything is checked before anything is written:
    the folder is a dataset (or new, or empty), the splits declare the same features as the dataset, a split
    already there was generated from the same config (else :class:`DatasetError` naming what changed), and the
    estimated size fits on the disk. Returns ``out``.
    """
    from taclab.utils import FolderLock, available_memory_bytes, free_disk_bytes, human_bytes

    cfgs = configs if isinstance(configs, (list, tuple)) else [configs]
    if not cfgs:
        raise ConfigError("no split to generate")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; generate writes a dataset folder: give a folder path")
    jobs = []
    for cfg in cfgs:
        if not isinstance(cfg, SplitConfig):
            raise ConfigError(f"expected a generator's split config, got {type(cfg).__name__}")
        g = generator_for(cfg)
        jobs.append(_Job(g, cfg, config_hash(g.name, g.version, cfg.model_dump(mode="json")), g.schema(cfg)))
    names = [j.cfg.split for j in jobs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"split name(s) {dup} given twice")

    meta = None
    if (out / META_FILE).exists():
        meta = read_meta(out)
        if meta.get("source_format_version") == 1:
            raise DatasetError(
                f"{out} is a dataset of format version 1: run `taclab dataset migrate {out}` once, then generate"
            )
    elif out.is_dir():
        leftovers = sorted(p.name for p in out.iterdir() if p.name not in (DATA_DIR, ".taclab.lock"))
        data = out / DATA_DIR
        if leftovers or (data.is_dir() and any(not p.name.startswith(".") for p in data.iterdir())):
            raise DatasetError(
                f"{out} is a folder that holds other files ({', '.join(leftovers) or 'data/'}) and no {META_FILE}: "
                "generate into a new or empty folder"
            )
    base = dataset_schema(meta) if meta else jobs[0].schema
    for j in jobs:
        prev = (meta or {}).get("splits", {}).get(j.cfg.split)
        if prev is not None and prev["config_hash"] != j.hash:
            if prev["generator"] != j.generator.name:
                what = f"generator {prev['generator']} -> {j.generator.name}"
            elif prev.get("generator_version") != j.generator.version:
                what = f"generator version {prev.get('generator_version')} -> {j.generator.version}"
            else:
                what = ", ".join(config_diff(prev["config"], j.cfg.model_dump(mode="json"))) or "the config"
            raise DatasetError(
                f"split {j.cfg.split!r} in {out} was generated from another config ({what}): a rerun only resumes "
                "the same config; generate into another folder or delete this one"
            )
        d = base.diff(j.schema)
        if d:
            where = f"the dataset in {out}" if meta else f"split {jobs[0].cfg.split!r}"
            raise DatasetError(
                f"split {j.cfg.split!r} declares other features than {where}: {d}; a dataset has one declaration "
                "(generate into another folder)"
            )

    # bounds, before planning: what is left to write must fit on the disk, a row group in memory per worker
    need = 0
    for j in jobs:
        prev = (meta or {}).get("splits", {}).get(j.cfg.split)
        unit = "rows" if j.generator.layout == "sample" else "episodes"
        done = sum(r.get(unit) or 0 for r in prev["shards"]) if prev else 0
        left = max(0, j.generator.size(j.cfg) - done)
        need += j.generator.rows_estimate(j.cfg, left) * j.schema.row_bytes()
    free = free_disk_bytes(out)
    if need * DISK_MARGIN > free:
        raise DatasetError(
            f"generating into {out} needs about {human_bytes(need)} (estimated from the declared features), "
            f"the disk has {human_bytes(free)} free: reduce the samples or free space"
        )
    per_worker = max(_group_rows(j.schema) * j.schema.row_bytes() for j in jobs) * 3 + WORKER_BASE_BYTES
    mem = available_memory_bytes()
    if per_worker > mem:
        raise DatasetError(
            f"one worker needs about {human_bytes(per_worker)} of memory, {human_bytes(mem)} is available"
        )
    n_workers = max(1, min(int(workers), mem // per_worker))
    for j in jobs:
        j.plan = _check_plan(j)

    with FolderLock(out, "dataset generation"), _Pool(n_workers) as pool:
        data = out / DATA_DIR
        _clean_partial_files(data)
        data.mkdir(exist_ok=True)
        if meta is None:
            meta = new_meta(base)
        for j in jobs:
            _run_split(j, out, meta, pool, progress)
    return out


class _Pool:
    """A spawn pool of ``workers`` processes, started when first needed and shared by the splits of a run."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def get(self):
        if self.pool is None:
            self.pool = mp.get_context("spawn").Pool(self.workers, initializer=_worker_init)
        return self.pool

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self.pool is None:
            return
        if exc_type is None:
            self.pool.close()
        else:
            self.pool.terminate()
        self.pool.join()
        self.pool = None


def _run_split(job: _Job, out: Path, meta: dict, pool: _Pool, progress: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    g, cfg, plan = job.generator, job.cfg, job.plan
    assert plan is not None
    unit = "samples" if g.layout == "sample" else "episodes"
    prev = meta["splits"].get(cfg.split)
    recorded = {r["file"]: r for r in prev["shards"]} if prev else {}
    done: dict[int, dict] = {}
    for i, s in enumerate(plan):
        rec = recorded.get(f"{DATA_DIR}/{s.file}")
        if rec is not None and _recorded_ok(out, rec):
            done[i] = rec
    starts = np.concatenate([[0], np.cumsum([s.size for s in plan])]).astype(int).tolist()
    meta["generators"][g.name] = {"version": g.version, "description": g.description}
    entry = {
        "generator": g.name,
        "generator_version": g.version,
        "config": cfg.model_dump(mode="json"),
        "config_hash": job.hash,
        "seed": cfg.seed,
        "complete": False,
        "rows": None,
        "planned_shards": len(plan),
        "shards": [],
    }
    meta["splits"][cfg.split] = entry

    def save(final: bool = False) -> None:
        entry["shards"] = [done[i] for i in sorted(done)]
        if final:
            entry["complete"] = True
            entry["rows"] = sum(r["rows"] for r in entry["shards"])
            if g.layout == "episode":
                entry["episodes"] = sum(r["episodes"] for r in entry["shards"])
        write_meta(out, meta)

    save()
    todo = [i for i in range(len(plan)) if i not in done]
    data = out / DATA_DIR
    t0 = time.perf_counter()
    last_save = t0
    with Progress(
        TextColumn(f"{cfg.split}"), BarColumn(), TextColumn("{task.completed}/{task.total} " + unit),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
    ) as bar:  # fmt: skip
        task = bar.add_task("gen", total=sum(s.size for s in plan), completed=sum(plan[i].size for i in done), rate="")
        new = 0

        def finished(i: int, rec: dict) -> None:
            nonlocal new, last_save
            done[i] = rec
            new += plan[i].size
            bar.update(task, advance=plan[i].size, rate=f"{new / (time.perf_counter() - t0):.0f}/s")
            if time.perf_counter() - last_save > 1.0:
                save()
                last_save = time.perf_counter()

        try:
            if pool.workers <= 1 or (len(todo) <= 1 and pool.pool is None):
                for i in todo:
                    finished(i, write_shard(g, cfg, plan[i], data, starts[i]))
            else:
                module = type(g).__module__
                jobs = [(module, g.name, entry["config"], plan[i], str(data), starts[i], i) for i in todo]
                results = pool.get().imap_unordered(_pool_job, jobs)
                for _ in range(len(jobs)):
                    while True:
                        try:
                            i, rec = results.next(timeout=0.2)
                            break
                        except mp.TimeoutError:
                            continue
                    finished(i, rec)
        except BaseException as e:
            if pool.pool is not None:
                pool.pool.terminate()
                pool.pool.join()
                pool.pool = None
            _clean_partial_files(data)
            save()
            if isinstance(e, KeyboardInterrupt):
                raise GenerationInterrupted(
                    f"split {cfg.split!r}: {len(done)} of {len(plan)} shards complete in {out}; run the same "
                    "command again to finish"
                ) from None
            raise
    save(final=True)


def make_rows(cfg: SplitConfig, shard: Shard | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The raw rows a generator makes for a shard (the first of the plan by default), without writing them; for
    tests and inspection."""
    g = generator_for(cfg)
    shard = shard or g.shards(cfg)[0]
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, *shard.key]))
    it = g.rows(cfg, shard, rng) if g.layout == "sample" else g.episodes(cfg, shard, rng)
    out = []
    for row in it:
        out.append(row)
        if limit is not None and len(out) >= limit:
            break
    return out
