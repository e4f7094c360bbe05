"""Closed-loop evaluation of a policy in a registered environment, per task, written as ``closed_loop.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from taclab.eval.rollout import evaluate, success_stats
from taclab.utils import atomic_write_text


def evaluate_closed_loop(
    policy: str | Path,
    env_id: str,
    tasks: list[dict],
    episodes: int = 50,
    seed: int = 0,
    workers: int | None = None,
    name: str | None = None,
    out: str | Path | None = None,
    env_config: dict | None = None,
    backend: str = "process",
    progress: bool = True,
    policy_overrides: dict | None = None,
) -> dict:
    """Run ``episodes`` seeded episodes per task on ``workers`` (all cores by default).

    ``policy`` is a checkpoint folder, a training run folder or a registered policy name. Per task the record
    holds the success rate, the mean steps of the successful episodes, inference failures (with the first
    exception of each failing episode), malformed actions, ms per action and every episode. With ``out``, it is
    written to ``closed_loop.json``; a summary of the failures is in ``record["overall"]``. ``policy_overrides``
    change the checkpoint's inference settings (``Policy.INFERENCE_KEYS``) and are recorded."""
    from taclab.policies.base import resolve

    pol = resolve(policy, overrides=policy_overrides)  # fails early on a bad spec or setting
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for one per core), got {workers}")
    workers = workers or os.cpu_count() or 1
    spec = str(policy)
    results = evaluate(
        spec, env_id, tasks, episodes, seed=seed, workers=workers, env_config=env_config, backend=backend,
        progress=progress, policy_overrides=policy_overrides,
    )  # fmt: skip
    rows = []
    for t, task in enumerate(tasks):
        rows.append({**task, **success_stats(results[t]), "episode_results": [r.to_dict() for r in results[t]]})
    every = [r for t in results for r in results[t]]
    errors = {}
    for r in every:
        if r.error is not None:
            errors[r.error] = errors.get(r.error, 0) + 1
    record = {
        "kind": "closed_loop",
        "name": name or pol.name,
        "policy": pol.name,
        "policy_path": spec if Path(spec).exists() else None,
        "policy_overrides": dict(policy_overrides or {}),
        "env_id": env_id,
        "episodes_per_task": episodes,
        "seed": seed,
        "env_config": env_config or {},
        "tasks": rows,
        "overall": {**success_stats(every), "errors": errors},
    }
    if out is not None:
        atomic_write_text(Path(out) / "closed_loop.json", json.dumps(record, indent=2))
    return record
