"""Offline evaluation: a policy's actions on a dataset split, scored with the dataset's learning spec."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from taclab.policies.base import Policy
from taclab.train.loop import dataset_generator, load_columns, policy_batch
from taclab.train.spec import DataSpec, data_spec
from taclab.utils import atomic_write_bytes, atomic_write_text


def action_box(spec: DataSpec):
    """The dataset's action box as a Gymnasium ``Box`` (what reference policies draw from)."""
    from gymnasium import spaces

    return spaces.Box(np.array(spec.action_low, np.float32), np.array(spec.action_high, np.float32))


def predict_columns(
    policy: Policy, columns: dict, spec: DataSpec, batch_size: int = 64, seed: int = 0, progress: bool = True
):
    """(actions (N, action_dim), malformed (N,), seconds) of ``policy`` on the rows of ``columns``.

    Learned policies run batched through their shared preprocessing; other policies act sample by sample on the
    observation columns (privileged ones get the metric columns, e.g. the true error, as ``info``)."""
    from rich.progress import Progress

    from taclab.eval.rollout import safe_act
    from taclab.policies.learned import LearnedPolicy

    n = len(columns[spec.action])
    box = action_box(spec)
    policy.bind(box)
    actions = np.zeros((n, len(spec.action_low)))
    malformed = np.zeros(n, bool)
    t0 = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"predicting ({policy.name})", total=n)
        if isinstance(policy, LearnedPolicy):
            for i in range(0, n, batch_size):
                sl = slice(i, min(n, i + batch_size))
                pred = policy.predict(policy_batch(columns, spec, sl), seed=seed + i)
                actions[sl], malformed[sl] = pred.actions, pred.malformed
                bar.advance(task, sl.stop - sl.start)
        else:
            for i in range(n):
                policy.reset({k: columns[k][i].item() for k in spec.task_keys}, seed=seed + i)
                obs = {k: columns[k][i] for k in spec.observations}
                info = {k: columns[k][i] for k in spec.metric_columns}
                a, err, bad = safe_act(policy, obs, info, box)
                actions[i], malformed[i] = a, err is not None or bad
                bar.advance(task)
    return actions, malformed, time.perf_counter() - t0


def evaluate_offline(
    policy: str | Path | Policy,
    data: str | Path,
    split: str = "test",
    name: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 64,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
    policy_overrides: dict | None = None,
) -> dict:
    """Score a policy on a split with the metrics of the dataset's learning spec. With ``out``, writes
    ``offline_<split>.json`` (the record returned) and ``offline_<split>_predictions.npz`` (the actions, the
    malformed flags and every non-image column). ``policy_overrides`` change the checkpoint's inference settings
    (``Policy.INFERENCE_KEYS``) and are recorded."""
    from taclab.data import read_meta
    from taclab.policies.base import resolve

    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the evaluation record")
    meta = read_meta(data)
    if split not in meta["splits"]:
        raise ValueError(f"{data} has no split {split!r}; splits: {sorted(meta['splits'])}")
    spec = data_spec(dataset_generator(meta, split))
    pol = resolve(policy, overrides=policy_overrides)
    columns = load_columns(Path(data), split, spec.columns(), limit, progress)
    actions, malformed, seconds = predict_columns(pol, columns, spec, batch_size, seed, progress)
    metrics = spec.score(columns, actions)
    n = len(actions)
    metrics["malformed"] = int(malformed.sum())
    metrics["malformed_rate"] = 100.0 * float(malformed.mean())
    metrics["ms_per_sample"] = 1000.0 * seconds / n
    record = {
        "kind": "offline",
        "name": name or pol.name,
        "policy": pol.name,
        "policy_path": str(policy) if not isinstance(policy, Policy) else None,
        "policy_overrides": dict(policy_overrides or {}),
        "dataset": str(data),
        "split": split,
        "samples": n,
        "metrics": metrics,
    }
    for k in spec.task_keys:
        record[f"{k}s" if not k.endswith("s") else k] = sorted({str(v) for v in columns[k]})
    if out is not None:
        import io

        out = Path(out)
        atomic_write_text(out / f"offline_{split}.json", json.dumps(record, indent=2))
        buf = io.BytesIO()
        kept = {k: v for k, v in columns.items() if k not in spec.observations}
        np.savez_compressed(buf, **kept, action=actions, malformed=malformed)
        atomic_write_bytes(out / f"offline_{split}_predictions.npz", buf.getvalue())
    return record
