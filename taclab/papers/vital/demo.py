"""VITAL's learning pipeline in miniature (``taclab demo vital``).

1. a few scripted demonstrations of one task (``data/``, small wrist images);
2. VITAL-BC (ViSk with semantic augmentation) trained on them for a short run (``bc/``);
3. residual RL on the frozen VITAL-BC for a few hundred env steps (``rl/``: episodes.csv, eval.csv, curves.png);
4. both evaluated in closed loop on the task at its trained position (``paper``) and with a cluttered background
   (``scene``), beside the scripted demonstrator; a small table and ``summary.json``.

The numbers of so short a run say that the pipeline runs end to end, not how well VITAL works (see
benchmarks/vital.py and docs/results/vital.md). A rerun in the same folder reuses what is complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.console import Console
from rich.table import Table

from taclab.utils import atomic_write_text


class DemoConfig(BaseModel):
    """What ``taclab demo vital --set vital.<key>=value`` may set. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field("usb", description="VITAL task: plug, usb, card, key or pick")
    demos: int = Field(6, ge=1, description="scripted demonstrations")
    image_size: int = Field(48, ge=16, le=128, description="wrist image size of the demo's env and data")
    bc_steps: int = Field(150, ge=1, description="VITAL-BC optimizer steps")
    rl_steps: int = Field(300, ge=1, description="residual RL env steps")
    episodes: int = Field(6, ge=1, description="closed-loop episodes per policy and task list")

    @field_validator("task")
    @classmethod
    def _task(cls, v):
        from taclab.envs.vital import check_task

        return check_task(v)


BC_MODEL = {"augment": "semantic", "resnet_stages": 2, "width": 128, "layers": 4, "keypoints": 64}
"""the demo's VITAL-BC: the CPU config's model, narrower and shallower, so that it trains in seconds"""


def demo(out: str | Path, seed: int = 0, workers: int | None = None, config: dict | None = None) -> dict:
    """``taclab demo vital``: the pipeline in miniature into ``out``; returns the summary."""
    import os

    from taclab.data import generate
    from taclab.envs.vital import ENV_IDS
    from taclab.eval.rollout import evaluate
    from taclab.papers.vital.dataset import VitalDemoConfig
    from taclab.papers.vital.demonstrator import VitalDemonstrator
    from taclab.rl.residual import ResidualConfig, train_residual
    from taclab.train import load_run_config, train
    from taclab.utils import validation_message

    try:
        cfg = DemoConfig(**(config or {}))
    except ValueError as e:
        raise ValueError(f"invalid demo config (vital.<key>): {validation_message(e)}") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = min(2, workers or os.cpu_count() or 1)
    # one torch thread when other jobs already keep every core busy (several threads then mostly wait on each other)
    threads = 1 if os.getloadavg()[0] >= (os.cpu_count() or 1) else None
    console = Console()
    env = {"image_size": [cfg.image_size, cfg.image_size]}
    t0 = time.perf_counter()
    times = {}

    console.rule(f"1/4 {cfg.demos} demonstrations of {cfg.task}")
    data = out / "data"
    if not (data / "dataset.json").is_file():
        split = VitalDemoConfig(split=cfg.task, task=cfg.task, episodes=cfg.demos, seed=seed, env=env)
        generate([split], data, workers=1, progress=False)
    times["demos_s"] = time.perf_counter() - t0

    console.rule(f"2/4 VITAL-BC, {cfg.bc_steps} steps")
    t = time.perf_counter()
    bc = out / "bc"
    if not (bc / "summary.json").is_file():
        sets = {f"model.{k}": v for k, v in BC_MODEL.items()}
        sets |= {
            "train.split": cfg.task,
            "train.max_steps": cfg.bc_steps,
            "train.batch_size": 32,
            "train.lr": 3e-4,
            "train.seed": seed,
            "train.val_every": 1000,
            "train.checkpoint_every": 100,
            "train.threads": threads,
            "train.epochs": 100_000,  # bc_steps decides
        }
        resume = (bc / "checkpoints" / "last" / "state.json").is_file()
        train(load_run_config(policy="visk", overrides=sets), data, bc, resume=resume, progress=False)
    times["bc_s"] = time.perf_counter() - t

    console.rule(f"3/4 residual RL, {cfg.rl_steps} env steps")
    t = time.perf_counter()
    rl = out / "rl"
    if not (rl / "summary.json").is_file():
        rcfg = ResidualConfig(
            base=str(bc / "policy"), demos=str(data), task=cfg.task, total_steps=cfg.rl_steps, utd=4,
            batch_size=64, aug_views=1, eval_every=0, eval_episodes=0, checkpoint_every=100, seed=seed,
            threads=threads,
        )  # fmt: skip
        train_residual(rcfg, rl, resume=(rl / "checkpoint" / "state.json").is_file(), progress=False)
    times["rl_s"] = time.perf_counter() - t

    console.rule("4/4 closed loop")
    t = time.perf_counter()
    demonstrator = str(VitalDemonstrator().save(out / "demonstrator"))
    policies = {"demonstrator": demonstrator, "VITAL-BC": str(bc / "policy"), "VITAL": str(rl / "policy")}
    lists = ("paper", "scene")
    from taclab.envs.vital import ENV_CLASSES

    success: dict[str, dict[str, float]] = {}
    for name, spec in policies.items():
        success[name] = {}
        for lst in lists:
            tasks = list(ENV_CLASSES[cfg.task].TASK_LISTS[lst])
            res = evaluate(spec, ENV_IDS[cfg.task], tasks, cfg.episodes, seed=seed, workers=workers,
                           env_config=env, progress=False)  # fmt: skip
            eps = [r for rs in res.values() for r in rs]
            success[name][lst] = round(100.0 * sum(r.success for r in eps) / len(eps), 1)
    times["eval_s"] = time.perf_counter() - t

    table = Table(title=f"VITAL demo: {cfg.task}, {cfg.episodes} episodes per cell (success %)")
    table.add_column("policy")
    for lst in lists:
        table.add_column({"paper": "trained position", "scene": "cluttered scene"}[lst], justify="right")
    for name, row in success.items():
        table.add_row(name, *(f"{row[lst]:.0f}" for lst in lists))
    console.print(table)
    names = {"paper": "trained position", "scene": "cluttered scene"}
    lines = [
        f"# VITAL demo: {cfg.task}",
        "",
        f"{cfg.demos} demonstrations, VITAL-BC {cfg.bc_steps} steps, residual RL "
        f"{cfg.rl_steps} env steps; success % over {cfg.episodes} episodes per cell.",
        "",
        "| policy | " + " | ".join(names[lst] for lst in lists) + " |",
        "|---|" + "---|" * len(lists),
    ]
    lines += [f"| {n} | " + " | ".join(f"{row[lst]:.0f}" for lst in lists) + " |" for n, row in success.items()]
    report = atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    summary = {
        "seconds": round(time.perf_counter() - t0, 1),
        **{k: round(v, 1) for k, v in times.items()},
        "task": cfg.task,
        "demos": cfg.demos,
        "bc_steps": cfg.bc_steps,
        "rl_steps": cfg.rl_steps,
        "episodes": cfg.episodes,
        "success": success,
        "report": str(report),
        "figures": [str(p) for p in (bc / "learning_curve.png", rl / "curves.png") if p.is_file()],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
