"""The default end-to-end demo: scripted policies in the tactile peg-in-hole environment."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from taclab.envs.peg_in_hole import PegInHoleEnv
from taclab.eval.rollout import run_episode, success_stats
from taclab.policies import make_policy
from taclab.utils import atomic_write_text
from taclab.viz import render_examples, success_bars

DEMO_SHAPES = ("square", "triangle", "round", "hexagon")
DEMO_POLICIES = ("oracle", "random", "zero")


def run_demo(out: str | Path, episodes: int = 20, seed: int = 0, env_overrides: dict | None = None) -> dict:
    """Roll out the oracle, random and zero policies on the four shapes; write a table, bars and tactile PNGs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    env = PegInHoleEnv(**(env_overrides or {}))
    results: dict[str, dict[str, dict]] = {}
    t0 = time.perf_counter()
    total = len(DEMO_SHAPES) * len(DEMO_POLICIES) * episodes
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("episodes", total=total)
        for shape in DEMO_SHAPES:
            results[shape] = {}
            for name in DEMO_POLICIES:
                policy = make_policy(name) if name != "random" else make_policy(name, seed=seed)
                eps = [
                    run_episode(env, policy, seed=seed * 100_000 + i, options={"shape": shape})
                    for i in range(episodes)
                    if bar.advance(task) or True
                ]
                results[shape][name] = success_stats(eps)
    elapsed = time.perf_counter() - t0

    table = Table(title=f"PegInHole-v0, clearance {env.config.clearance_mm} mm, {episodes} episodes each")
    table.add_column("policy")
    for shape in DEMO_SHAPES:
        table.add_column(f"{shape} suc %", justify="right")
        table.add_column("steps", justify="right")
    for name in DEMO_POLICIES:
        row = [name]
        for shape in DEMO_SHAPES:
            s = results[shape][name]
            row += [f"{s['success_rate']:.0f}", "-" if s["mean_steps"] is None else f"{s['mean_steps']:.2f}"]
        table.add_row(*row)
    console.print(table)

    bars = success_bars(
        {s: {p: results[s][p]["success_rate"] for p in DEMO_POLICIES} for s in DEMO_SHAPES},
        "scripted policies in taclab/PegInHole-v0",
        out / "success.png",
    )
    pngs = render_examples(out / "examples")
    summary = {
        "episodes_per_cell": episodes,
        "seconds": round(elapsed, 1),
        "results": results,
        "figures": [str(bars)] + [str(p) for p in pngs],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    console.print(f"wrote {out}/summary.json, {bars} and {len(pngs)} example figures")
    return summary
