"""The steps of VT-Refine's pipeline, shared by ``taclab demo vtrefine`` and ``benchmarks/vt_refine.py``: each
writes into its own folder and is skipped when that folder holds a finished result (an interrupted training or
fine-tuning run is resumed), so a pipeline can be continued across sessions.

1. :func:`demonstrations`: scripted demonstrations per assembly (generator ``vtrefine``);
2. :func:`pretrain`: the point-cloud diffusion policy on one assembly's demonstrations (the shared loop), or
   :func:`untrained`: the same policy with random weights (for RL from scratch);
3. :func:`fine_tune`: DPPO (:mod:`taclab.rl.dppo`);
4. :func:`evaluate`: seeded closed-loop episodes (:func:`taclab.eval.rollout.evaluate`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from taclab.utils import atomic_write_text

ENV_ID = "taclab/BimanualAssembly-v0"


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def demonstrations(out: Path, assemblies: list[str], episodes: int, seed: int, env: dict, workers: int) -> Path:
    """A ``vtrefine`` dataset with one split per assembly (successful takes only); kept when complete."""
    from taclab.data import generate
    from taclab.papers.vtrefine.dataset import VTRefineDemoConfig

    meta = out / "dataset.json"
    if meta.is_file():
        splits = json.loads(meta.read_text())["splits"]
        if all(a in splits and splits[a].get("episodes") == episodes for a in assemblies):
            return out
    cfgs = [
        VTRefineDemoConfig(
            split=a, assembly=a, episodes=episodes, seed=seed + i, env=env, shard_size=max(1, episodes // 2)
        )
        for i, a in enumerate(assemblies)
    ]
    generate(cfgs, out, workers=workers, progress=False)
    return out


def pretrain(data: Path, split: str, out: Path, model: dict, train: dict, steps: int, progress: bool = False) -> Path:
    """Train ``pointcloud_dp`` on a split with the shared loop for about ``steps`` optimizer steps (whole epochs,
    so that the learning-rate schedule ends with the run; four validations); returns the policy folder (kept when
    done)."""
    from taclab.train import load_run_config
    from taclab.train import train as run_training

    if (out / "summary.json").is_file():
        return out / "policy"
    rows = json.loads((data / "dataset.json").read_text())["splits"][split]["rows"]
    val = train.get("val_fraction", 0.05)
    per_epoch = max(1, (rows - int(round(rows * val))) // train.get("batch_size", 64))
    epochs = max(1, math.ceil(steps / per_epoch))
    train = {**train, "epochs": epochs, "val_every": max(1, epochs // 4), "split": split}
    sets = {f"model.{k}": v for k, v in model.items()} | {f"train.{k}": v for k, v in train.items()}
    run = load_run_config(policy="pointcloud_dp", overrides=sets)
    resume = (out / "checkpoints" / "last" / "state.json").is_file()
    return run_training(run, data, out, resume=resume, progress=progress)


def untrained(data: Path, split: str, out: Path, model: dict, seed: int = 0) -> Path:
    """A ``pointcloud_dp`` with random weights and the split's normalization statistics (RL from scratch)."""
    from taclab.data import load_arrays
    from taclab.papers.vtrefine.learning import SPEC
    from taclab.policies import make_policy
    from taclab.train.loop import policy_io

    if (out / "policy.json").is_file():
        return out
    from taclab.policies.base import POLICIES

    cols = load_arrays(data, split, columns=SPEC.columns(), progress=False)
    cols.update(SPEC.derive(cols))
    io = policy_io(POLICIES["pointcloud_dp"], SPEC, cols)
    p = make_policy("pointcloud_dp", config={**model, "seed": seed}, io=io)
    p.fit_stats({k: cols[k] for k in SPEC.observations}, cols[SPEC.target_column])
    return p.save(out)


def fine_tune(pretrained: Path, out: Path, config: dict[str, Any], progress: bool = False) -> Path:
    """DPPO from ``pretrained`` into ``out``; resumed when interrupted, kept when done."""
    from taclab.rl.dppo import DPPOConfig
    from taclab.rl.dppo import train as dppo

    if (out / "summary.json").is_file() and (out / "policy" / "policy.json").is_file():
        return out / "policy"
    return dppo(DPPOConfig.from_dict(config), pretrained, out, resume=(out / "run.json").is_file(), progress=progress)


def evaluate(
    policy: Path,
    out: Path,
    assembly: str,
    episodes: int,
    seed: int,
    workers: int,
    env: dict,
    progress: bool = False,
    backend: str = "process",
) -> dict:
    """Closed-loop success of a policy on one assembly over ``episodes`` seeded episodes (kept in
    ``out/eval.json`` once done); ``backend`` as in :func:`taclab.eval.rollout.evaluate`."""
    from taclab.eval.rollout import evaluate as run_episodes
    from taclab.eval.rollout import success_stats

    f = out / "eval.json"
    if f.is_file():
        rec = json.loads(f.read_text())
        if rec["episodes"] == episodes and rec["seed"] == seed:
            return rec
    task = {"assembly": assembly, "clearance_mm": 0.8}
    res = run_episodes(
        str(policy), ENV_ID, [task], episodes, seed=seed, workers=workers, env_config=env, progress=progress
    )[0]
    stats = success_stats(res)
    k = sum(r.success for r in res)
    rec = {
        "policy": str(policy),
        "assembly": assembly,
        "episodes": episodes,
        "seed": seed,
        "successes": k,
        "success": k / episodes,
        "interval": wilson(k, episodes),
        "dropped": sum(bool(r.fields.get("dropped")) for r in res),
        "mean_steps_success": stats["mean_steps"],
        "ms_per_action": stats["ms_per_action"],
        "errors": stats["episodes_with_errors"],
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(rec, indent=2))
    return rec
