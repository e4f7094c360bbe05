"""Tactile-action datasets of the TLA paper: generation with the random insertion policy, parquet shards.

Generation runs episodes of ``taclab/PegInHole-v0`` with the **random insertion policy**: after the env's random
blocking misalignment, every correction is drawn uniformly from the action box (+-1 mm, +-1 mm, +-1.5 deg),
so the peg random-walks over a wide spread of errors of both signs. Every failed attempt is one sample.

The samples of each shape are cut into shards of ``shard_size``; shard ``k`` of shape ``s`` draws its episodes
from its own seed sequence ``(seed, s, k)``, so the result depends only on the seed, never on the number of
workers or on the order shards finish in. A shard is written to a temporary file and renamed into place, so a
killed run leaves only complete shards; running the same command again skips them and writes the rest.
"""

from __future__ import annotations

import io
import json
import math
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.papers.tla.labels import DELTA_MM, MAX_ROT_DEG

FORMAT_VERSION = 1
ACTION_LIMITS = np.array([DELTA_MM, DELTA_MM, MAX_ROT_DEG])

COLUMNS = {
    "tactile": "PNG image: the 4 frames x 2 pads tiled, frame t in row t, pad k in column k (uint8 RGB)",
    "error": "true pose error (ex_mm, ey_mm, erz_deg) of the attempt",
    "label": "action of equations (1)-(3) for that error (dx_mm, dy_mm, drz_deg)",
    "shape": "peg shape",
    "clearance_mm": "clearance c (mm)",
    "episode": "episode index within the shard",
    "attempt": "attempt index within the episode (1 = the first attempt)",
    "episode_seed": "seed of env.reset that reproduces the episode",
    "shard": "shard file the sample comes from",
}


class GenerateConfig(BaseModel):
    """One split of a dataset. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str = Field("train", description="split name: train, test, test_id, test_ood, ...")
    shapes: tuple[str, ...] = Field(("square",), description="peg shapes, in equal parts")
    clearance_mm: float = Field(2.0, gt=0, description="clearance c (mm)")
    samples: int = Field(1000, ge=1, description="number of samples (failed attempts) in the split")
    seed: int = Field(0, ge=0, description="seed of the whole split")
    shard_size: int = Field(500, ge=1, description="samples per shard file")
    env: dict[str, Any] = Field(default_factory=dict, description="PegInHole-v0 config overrides")

    @field_validator("split")
    @classmethod
    def _split(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError(f"split must be letters, digits and '_', got {v!r}")
        return v


def shard_plan(cfg: GenerateConfig) -> list[dict[str, Any]]:
    """The shards of a split: for each, its file name, shape, index and number of samples."""
    n_shapes = len(cfg.shapes)
    plan = []
    for s, shape in enumerate(cfg.shapes):
        n = cfg.samples // n_shapes + (1 if s < cfg.samples % n_shapes else 0)
        for k in range(math.ceil(n / cfg.shard_size)):
            count = min(cfg.shard_size, n - k * cfg.shard_size)
            name = f"{cfg.split}-{shape.replace(':', '')}-{k:05d}.parquet"
            plan.append({"file": name, "shape": shape, "shape_index": s, "index": k, "samples": count})
    return plan


def tile_sequence(tactile: np.ndarray) -> np.ndarray:
    """(4, 2, H, W, 3) -> (4H, 2W, 3): frame t in row t, pad k in column k."""
    t, p, h, w, c = tactile.shape
    return tactile.transpose(0, 2, 1, 3, 4).reshape(t * h, p * w, c)


def untile_sequence(image: np.ndarray, frames: int = 4, pads: int = 2) -> np.ndarray:
    """Inverse of :func:`tile_sequence`."""
    th, pw, c = image.shape
    return image.reshape(frames, th // frames, pads, pw // pads, c).transpose(0, 2, 1, 3, 4)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="png", compress_level=1)
    return buf.getvalue()


def generate_shard(cfg: GenerateConfig, shard: dict[str, Any]) -> dict[str, list]:
    """The rows of one shard, deterministic for (seed, shape, shard index)."""
    from taclab.envs.peg_in_hole import PegInHoleEnv

    env = PegInHoleEnv(**{**cfg.env, "shape": shard["shape"], "clearance_mm": cfg.clearance_mm})
    ss = np.random.SeedSequence([cfg.seed, shard["shape_index"], shard["index"]])
    rng = np.random.default_rng(ss)
    rows: dict[str, list] = {k: [] for k in COLUMNS}

    def add(obs, info, episode, seed):
        rows["tactile"].append({"bytes": _png(tile_sequence(obs["tactile"])), "path": None})
        rows["error"].append([float(v) for v in info["error"]])
        rows["label"].append([float(v) for v in info["label"]])
        rows["shape"].append(shard["shape"])
        rows["clearance_mm"].append(float(cfg.clearance_mm))
        rows["episode"].append(episode)
        rows["attempt"].append(int(info["attempt"]))
        rows["episode_seed"].append(seed)
        rows["shard"].append(shard["file"])

    episode = 0
    while len(rows["error"]) < shard["samples"]:
        seed = int(rng.integers(0, 2**31 - 1))
        obs, info = env.reset(seed=seed)
        add(obs, info, episode, seed)
        while len(rows["error"]) < shard["samples"]:
            obs, _, term, trunc, info = env.step(rng.uniform(-ACTION_LIMITS, ACTION_LIMITS))
            if term:
                break
            add(obs, info, episode, seed)
            if trunc:
                break
        episode += 1
    env.close()
    return rows


def _features():
    import datasets

    return datasets.Features(
        {
            "tactile": datasets.Image(),
            "error": datasets.Sequence(datasets.Value("float32"), length=3),
            "label": datasets.Sequence(datasets.Value("float32"), length=3),
            "shape": datasets.Value("string"),
            "clearance_mm": datasets.Value("float32"),
            "episode": datasets.Value("int32"),
            "attempt": datasets.Value("int32"),
            "episode_seed": datasets.Value("int64"),
            "shard": datasets.Value("string"),
        }
    )


def _write_shard(job: tuple[GenerateConfig, dict, str]) -> str:
    cfg, shard, folder = job
    import datasets

    datasets.disable_progress_bars()
    rows = generate_shard(cfg, shard)
    ds = datasets.Dataset.from_dict(rows, features=_features())
    final = Path(folder) / shard["file"]
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    ds.to_parquet(str(tmp))
    tmp.replace(final)
    return shard["file"]


def _shard_complete(path: Path, samples: int) -> bool:
    if not path.is_file():
        return False
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows == samples
    except Exception:  # noqa: BLE001 - a corrupt or truncated file is simply regenerated
        return False


def generate(cfg: GenerateConfig, out: str | Path, workers: int = 1, progress: bool = True) -> Path:
    """Generate (or finish generating) one split into ``out/data/``; returns the dataset folder."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    out = Path(out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    plan = shard_plan(cfg)
    todo = [s for s in plan if not _shard_complete(data / s["file"], s["samples"])]
    done_samples = sum(s["samples"] for s in plan) - sum(s["samples"] for s in todo)
    t0 = time.perf_counter()
    with Progress(
        TextColumn(f"{cfg.split}"), BarColumn(), TextColumn("{task.completed}/{task.total} samples"),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
    ) as bar:  # fmt: skip
        task = bar.add_task("gen", total=cfg.samples, completed=done_samples, rate="")
        jobs = [(cfg, s, str(data)) for s in todo]
        by_file = {s["file"]: s for s in todo}
        new = 0
        if workers <= 1 or len(jobs) <= 1:
            results = map(_write_shard, jobs)
            for name in results:
                new += by_file[name]["samples"]
                bar.update(task, advance=by_file[name]["samples"], rate=f"{new / (time.perf_counter() - t0):.0f}/s")
        else:
            with mp.get_context("spawn").Pool(workers) as pool:
                for name in pool.imap_unordered(_write_shard, jobs):
                    new += by_file[name]["samples"]
                    bar.update(task, advance=by_file[name]["samples"], rate=f"{new / (time.perf_counter() - t0):.0f}/s")
    _update_card(out, cfg, plan)
    return out


def _update_card(out: Path, cfg: GenerateConfig, plan: list[dict]) -> None:
    """Record the split in ``dataset.json`` and rewrite the card ``README.md``."""
    from taclab import __version__
    from taclab.utils import atomic_write_text

    meta_path = out / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"splits": {}}
    counts: dict[str, int] = {}
    for s in plan:
        counts[s["shape"]] = counts.get(s["shape"], 0) + s["samples"]
    meta.update({"format_version": FORMAT_VERSION, "taclab_version": __version__, "columns": COLUMNS})
    meta["splits"][cfg.split] = {
        "config": cfg.model_dump(mode="json"),
        "files": [f"data/{s['file']}" for s in plan],
        "samples": sum(counts.values()),
        "samples_per_shape": counts,
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        *[f"  - split: {name}\n    path: data/{name}-*.parquet" for name in meta["splits"]],
        "---",
        "# taclab tactile-action dataset",
        "",
        f"Generated by taclab {__version__} from `taclab/PegInHole-v0` with the random insertion policy "
        f"(format version {FORMAT_VERSION}). Every sample is one failed insertion attempt.",
        "",
        "## Splits",
        "",
        "| split | samples | per shape | clearance (mm) | seed |",
        "|---|---|---|---|---|",
    ]
    for name, sp in meta["splits"].items():
        per = ", ".join(f"{k} {v}" for k, v in sp["samples_per_shape"].items())
        lines.append(f"| {name} | {sp['samples']} | {per} | {sp['config']['clearance_mm']} | {sp['config']['seed']} |")
    lines += ["", "## Schema", "", "| column | meaning |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in COLUMNS.items()]
    lines += ["", "## Generator configs", ""]
    for name, sp in meta["splits"].items():
        lines += [f"`{name}`:", "", "```json", json.dumps(sp["config"], indent=2), "```", ""]
    atomic_write_text(out / "README.md", "\n".join(lines))


def read_config(path: str | Path, overrides: dict[str, Any] | None = None) -> list[GenerateConfig]:
    """The splits of a dataset config file (YAML: ``splits: [{split: ..., shapes: [...], ...}, ...]``).

    ``overrides`` (e.g. from ``--set samples=100``) apply to every split.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset config {p} not found")
    raw = yaml.safe_load(p.read_text()) or {}
    if not isinstance(raw, dict) or "splits" not in raw or not isinstance(raw["splits"], list):
        raise ValueError(f"{p}: expected a mapping with a list under 'splits'")
    unknown = sorted(set(raw) - {"splits"})
    if unknown:
        raise ValueError(f"{p}: unknown top-level key(s) {unknown}; allowed: ['splits']")
    return [GenerateConfig(**{**s, **(overrides or {})}) for s in raw["splits"]]
