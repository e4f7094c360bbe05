"""The TLA paper's pipeline in miniature (``taclab demo tla``).

1. generate a small single-peg dataset with the random insertion policy (``data/``);
2. train behavior cloning on it (``bc/``: logs, checkpoints, learning curve);
3. evaluate BC, the oracle and the zero action offline on the test split, and BC, the oracle, the random and
   the zero-action policies in closed loop on the tasks of the paper's tables III and IV (``eval/``);
4. write the report with tables I-IV and figures (``report/``) and example tactile images (``examples/``).

A rerun in the same folder reuses what is complete (the dataset, a finished training run) and resumes an
interrupted training run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from taclab.utils import atomic_write_text

DEMO_BASELINES = ("oracle", "random", "zero")


class DemoConfig(BaseModel):
    """What ``taclab demo tla --set tla.<key>=value`` may set. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_samples: int = Field(1200, ge=1, description="samples of the demo's training split")
    test_samples: int = Field(300, ge=1, description="samples of the demo's test split")
    epochs: int = Field(10, ge=1, description="BC training epochs")
    episodes: int = Field(20, ge=1, description="closed-loop episodes per policy and task")
    env: dict = Field(default_factory=dict, description="taclab/PegInHole-v0 config overrides")


def demo(out: str | Path, seed: int = 0, workers: int | None = None, config: dict | None = None) -> dict:
    """``taclab demo tla``: :func:`run_demo` with a validated :class:`DemoConfig`."""
    from taclab.utils import validation_message

    try:
        cfg = DemoConfig(**(config or {}))
    except ValueError as e:
        raise ValueError(f"invalid demo config for tla: {validation_message(e, prefix='tla.')}") from None
    for key in ("shape", "clearance_mm"):
        if key in cfg.env:
            raise ValueError(f"--set tla.env.{key} is not allowed: the demo evaluates the tasks of tables III and IV")
    return run_demo(
        out, train_samples=cfg.train_samples, test_samples=cfg.test_samples, epochs=cfg.epochs,
        episodes=cfg.episodes, seed=seed, workers=workers, env_overrides=cfg.env,
    )  # fmt: skip


def run_demo(
    out: str | Path,
    train_samples: int = 1200,
    test_samples: int = 300,
    epochs: int = 10,
    episodes: int = 20,
    seed: int = 0,
    workers: int | None = None,
    env_overrides: dict | None = None,
) -> dict:
    """Run the pipeline in miniature into ``out``; returns the summary written to ``summary.json``."""
    import os

    from taclab.data.generate import generate
    from taclab.eval.closed_loop import evaluate_closed_loop
    from taclab.eval.offline import evaluate_offline
    from taclab.eval.report import make_report
    from taclab.papers.tla.dataset import TLADatasetConfig as GenerateConfig
    from taclab.papers.tla.learning import ENV_ID, PAPER_TASKS
    from taclab.papers.tla.render import render_examples
    from taclab.train import load_run_config, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    env = dict(env_overrides or {})
    workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    times = {}

    console.rule("1/4 dataset")
    data = out / "data"
    for split, n, s in (("train", train_samples, 2 * seed), ("test", test_samples, 2 * seed + 1)):
        generate(GenerateConfig(split=split, samples=n, seed=s, shard_size=300, env=env), data, workers=workers)
    times["dataset_s"] = time.perf_counter() - t0

    console.rule("2/4 train BC")
    t = time.perf_counter()
    run = load_run_config(policy="bc", overrides={"train.epochs": epochs, "train.seed": seed})
    bc = out / "bc"
    if not (bc / "summary.json").is_file():
        resume = (bc / "checkpoints" / "last" / "state.json").is_file()
        train(run, data, bc, resume=resume)
    times["train_s"] = time.perf_counter() - t

    console.rule("3/4 evaluate")
    t = time.perf_counter()
    ev = out / "eval"
    policies = {"BC": bc, **{name: name for name in DEMO_BASELINES}}
    for name, spec in policies.items():
        if name != "random":
            evaluate_offline(spec, data, "test", name=name, out=ev / name.lower())
        console.print(f"closed loop: {name}")
        evaluate_closed_loop(
            spec, ENV_ID, list(PAPER_TASKS), episodes, seed=seed, workers=workers, name=name, out=ev / name.lower(),
            env_config=env,
        )  # fmt: skip
    times["eval_s"] = time.perf_counter() - t

    console.rule("4/4 report")
    report = make_report([ev], out / "report", "tla", title="taclab demo: BC on a small single-peg dataset")
    examples = render_examples(out / "examples")
    elapsed = time.perf_counter() - t0

    records = {n: json.loads((ev / n.lower() / "closed_loop.json").read_text()) for n in policies}
    table = Table(title=f"closed loop, {episodes} episodes per task (success % / corrective steps)")
    table.add_column("policy")
    for task in PAPER_TASKS:
        table.add_column(f"{task['shape']} {task['clearance_mm']}", justify="right")
    for n, rec in records.items():
        cells = []
        for t in rec["tasks"]:
            steps = "-" if t["mean_steps"] is None else f"{t['mean_steps']:.1f}"
            cells.append(f"{t['success_rate']:.0f} / {steps}")
        table.add_row(n, *cells)
    console.print(table)
    summary = {
        "seconds": round(elapsed, 1),
        **{k: round(v, 1) for k, v in times.items()},
        "train_samples": train_samples,
        "test_samples": test_samples,
        "epochs": epochs,
        "episodes_per_task": episodes,
        "success_rate": {
            n: {f"{t['shape']} {t['clearance_mm']}": t["success_rate"] for t in r["tasks"]} for n, r in records.items()
        },
        "report": str(report),
        "figures": [str(p) for p in sorted((out / "report").glob("*.png"))] + [str(p) for p in examples],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    console.print(f"report: {report}")
    return summary
