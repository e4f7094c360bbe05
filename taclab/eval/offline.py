"""Offline evaluation: a policy's actions on a dataset split, scored with :mod:`taclab.eval.metrics`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from taclab.eval.metrics import action_metrics
from taclab.policies.base import Policy
from taclab.utils import atomic_write_bytes, atomic_write_text


def policy_from_spec(spec: str | Path | Policy) -> Policy:
    """A policy from a checkpoint folder (or training run folder), a registered name, or a Policy."""
    from taclab.policies import POLICIES, load_policy, make_policy

    if isinstance(spec, Policy):
        return spec
    p = Path(spec)
    if p.exists():
        return load_policy(p)
    if str(spec) in POLICIES:
        return make_policy(str(spec))
    raise ValueError(f"policy {spec!r} is neither a checkpoint folder nor a registered policy {sorted(POLICIES)}")


def predict_arrays(policy: Policy, arrays, batch_size: int = 64, seed: int = 0, progress: bool = True):
    """(actions (N, 3), malformed (N,), seconds) of ``policy`` on the samples of ``arrays``.

    Learned policies run batched through their shared preprocessing; other policies act sample by sample
    (privileged ones get the sample's error and clearance as ``info``)."""
    from rich.progress import Progress

    from taclab.eval.rollout import safe_act
    from taclab.policies.learned import LearnedPolicy

    n = len(arrays)
    actions = np.zeros((n, 3))
    malformed = np.zeros(n, bool)
    t0 = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"predicting ({policy.name})", total=n)
        if isinstance(policy, LearnedPolicy):
            for i in range(0, n, batch_size):
                sl = slice(i, min(n, i + batch_size))
                pred = policy.predict(arrays.tactile[sl], list(arrays.shape[sl]), seed=seed + i)
                actions[sl], malformed[sl] = pred.actions, pred.malformed
                bar.advance(task, sl.stop - sl.start)
        else:
            for i in range(n):
                policy.reset({"shape": str(arrays.shape[i]), "clearance_mm": float(arrays.clearance_mm[i])})
                info = {"error": arrays.error[i], "clearance_mm": float(arrays.clearance_mm[i])}
                a, failed, bad = safe_act(policy, {"tactile": arrays.tactile[i]}, info if policy.privileged else None)
                actions[i], malformed[i] = a, failed or bad
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
) -> dict:
    """Score a policy on a split. With ``out``, writes ``offline_<split>.json`` (the record returned) and
    ``offline_<split>_predictions.npz`` (errors, labels, actions, clearances, shapes, malformed flags)."""
    from taclab.data.storage import load_arrays

    pol = policy_from_spec(policy)
    arrays = load_arrays(data, split, limit=limit, progress=progress)
    actions, malformed, seconds = predict_arrays(pol, arrays, batch_size, seed, progress)
    metrics = action_metrics(arrays.error, arrays.label, actions, arrays.clearance_mm)
    metrics["malformed"] = int(malformed.sum())
    metrics["malformed_rate"] = 100.0 * float(malformed.mean())
    metrics["ms_per_sample"] = 1000.0 * seconds / len(arrays)
    record = {
        "kind": "offline",
        "name": name or pol.name,
        "policy": pol.name,
        "policy_path": str(policy) if not isinstance(policy, Policy) else None,
        "dataset": str(data),
        "split": split,
        "shapes": sorted(set(arrays.shape.tolist())),
        "metrics": metrics,
    }
    if out is not None:
        import io

        out = Path(out)
        atomic_write_text(out / f"offline_{split}.json", json.dumps(record, indent=2))
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            error=arrays.error,
            label=arrays.label,
            action=actions,
            clearance_mm=arrays.clearance_mm,
            shape=arrays.shape,
            malformed=malformed,
        )
        atomic_write_bytes(out / f"offline_{split}_predictions.npz", buf.getvalue())
    return record
