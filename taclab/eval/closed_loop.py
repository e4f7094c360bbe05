"""Closed-loop evaluation in ``taclab/PegInHole-v0``: the tasks of the TLA paper's tables III and IV."""

from __future__ import annotations

import json
import os
from pathlib import Path

from taclab.eval.rollout import evaluate, success_stats
from taclab.utils import atomic_write_text

PAPER_TASKS: tuple[dict, ...] = (
    {"shape": "square", "clearance_mm": 2.0},
    {"shape": "square", "clearance_mm": 1.6},
    {"shape": "square", "clearance_mm": 1.0},
    {"shape": "triangle", "clearance_mm": 2.0},
    {"shape": "round", "clearance_mm": 2.0},
    {"shape": "hexagon", "clearance_mm": 2.0},
)
"""Table III: the square peg at 2.0, 1.6 and 1.0 mm; table IV: the four shapes at 2.0 mm."""


def parse_tasks(text: str) -> list[dict]:
    """``"paper"`` or a comma-separated list of ``shape:clearance_mm`` (e.g. ``square:2.0,round:1.6``)."""
    if text.strip() == "paper":
        return [dict(t) for t in PAPER_TASKS]
    tasks = []
    for item in text.split(","):
        shape, sep, c = item.strip().partition(":")
        try:
            clearance = float(c) if sep else 2.0
        except ValueError:
            raise ValueError(f"task {item!r}: clearance {c!r} is not a number (expected shape:clearance_mm)") from None
        tasks.append({"shape": shape, "clearance_mm": clearance})
    from taclab.envs.peg_in_hole import check_shape

    for t in tasks:
        check_shape(t["shape"])
        if t["clearance_mm"] <= 0:
            raise ValueError(f"clearance must be > 0 mm, got {t['clearance_mm']}")
    return tasks


def evaluate_closed_loop(
    policy: str | Path | dict,
    tasks: list[dict] | None = None,
    episodes: int = 50,
    seed: int = 0,
    workers: int | None = None,
    name: str | None = None,
    out: str | Path | None = None,
    env_overrides: dict | None = None,
    progress: bool = True,
) -> dict:
    """Run ``episodes`` seeded episodes per task on ``workers`` processes (all cores by default).

    ``policy`` is a checkpoint folder, a training run folder or a registered policy name. Per task the record
    holds the success rate, the mean corrective steps of the successful episodes, inference failures and
    malformed actions (counted, never fatal), ms per action and every episode. With ``out``, it is written to
    ``closed_loop.json``."""
    from taclab.eval.offline import policy_from_spec

    pol = policy_from_spec(policy)  # fails early on a bad spec
    spec = str(policy) if Path(str(policy)).exists() else {"name": pol.name, "kwargs": pol.config()}
    tasks = [dict(t) for t in (tasks or PAPER_TASKS)]
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    workers = workers or os.cpu_count() or 1
    results = evaluate(
        spec, tasks, episodes, seed=seed, workers=workers, env_overrides=env_overrides, progress=progress
    )
    rows = []
    for t, task in enumerate(tasks):
        rows.append({**task, **success_stats(results[t]), "episode_results": [r.to_dict() for r in results[t]]})
    every = [r for t in results for r in results[t]]
    record = {
        "kind": "closed_loop",
        "name": name or pol.name,
        "policy": pol.name,
        "policy_path": spec if isinstance(spec, str) else None,
        "episodes_per_task": episodes,
        "seed": seed,
        "env_overrides": env_overrides or {},
        "tasks": rows,
        "overall": success_stats(every),
    }
    if out is not None:
        atomic_write_text(Path(out) / "closed_loop.json", json.dumps(record, indent=2))
    return record
