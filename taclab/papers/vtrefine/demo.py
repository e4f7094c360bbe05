"""VT-Refine's pipeline in miniature (``taclab demo vtrefine``), on a small scene (fewer visual points, every
fourth taxel, a small depth image) so that it runs in a few minutes on a laptop CPU:

1. a few scripted demonstrations of one assembly (``data/``);
2. a small point-cloud diffusion policy trained on them with the shared loop (``dp/``);
3. a short DPPO fine-tuning run from it (``dppo/``: log, success curve, the fine-tuned policy);
4. closed-loop evaluation of the pre-trained and the fine-tuned policy on the same seeds (``eval/``), a table.

The numbers of a miniature are no evidence for or against the paper (a few demonstrations, a few hundred
training steps, a few hundred env steps of RL); ``benchmarks/vt_refine.py`` runs the real comparison. A rerun in
the same folder reuses what is complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from taclab.utils import atomic_write_text

SMALL_SCENE = {"visual_points": 64, "tactile_stride": 4, "camera_size": (30, 40), "max_steps": 100}
SMALL_MODEL = {
    "point_widths": (32, 64),
    "feature_dim": 64,
    "step_embed": 32,
    "unet_channels": (32, 64),
    "tactile_keep": 1,
}


class DemoConfig(BaseModel):
    """What ``taclab demo vtrefine --set vtrefine.<key>=value`` may set. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assembly: str = Field("square", description="the assembly: 'round' or 'square'")
    demos: int = Field(4, ge=1, description="scripted demonstrations")
    dp_steps: int = Field(200, ge=1, description="training steps of the diffusion policy")
    dppo_env_steps: int = Field(512, ge=1, description="env steps of DPPO fine-tuning")
    episodes: int = Field(4, ge=1, description="closed-loop episodes per policy")
    env: dict = Field(default_factory=dict, description="BimanualAssembly-v0 overrides of the small scene")


def demo(out: str | Path, seed: int = 0, workers: int | None = None, config: dict | None = None) -> dict:
    """``taclab demo vtrefine``: the miniature pipeline with a validated :class:`DemoConfig`."""
    from taclab.envs.bimanual import check_assembly
    from taclab.utils import validation_message

    try:
        cfg = DemoConfig(**(config or {}))
    except ValueError as e:
        raise ValueError(f"invalid demo config for vtrefine: {validation_message(e, prefix='vtrefine.')}") from None
    check_assembly(cfg.assembly)
    for key in ("assembly", "clearance_mm", "tactile"):
        if key in cfg.env:
            raise ValueError(
                f"--set vtrefine.env.{key} is not allowed: set vtrefine.assembly (the demo is visuo-tactile)"
            )
    return run_demo(Path(out), cfg, seed=seed, workers=workers or 2)


def run_demo(out: Path, cfg: DemoConfig, seed: int = 0, workers: int = 2) -> dict:
    from taclab.papers.vtrefine import pipeline

    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    env = {**SMALL_SCENE, **cfg.env}
    t0 = time.perf_counter()
    times = {}

    console.rule(f"1/4 {cfg.demos} demonstrations ({cfg.assembly})")
    data = pipeline.demonstrations(out / "data", [cfg.assembly], cfg.demos, seed, env, workers)
    times["demos_s"] = time.perf_counter() - t0

    console.rule(f"2/4 point-cloud diffusion policy, {cfg.dp_steps} steps")
    t = time.perf_counter()
    train = {"batch_size": 32, "lr": 2e-3, "ema_decay": 0.99, "val_fraction": 0.05, "checkpoint_every": 100,
             "seed": seed, "log_every": 25, "threads": 1, "warmup_fraction": 0.02}  # fmt: skip
    dp = pipeline.pretrain(data, cfg.assembly, out / "dp", SMALL_MODEL, train, cfg.dp_steps, progress=True)
    times["dp_s"] = time.perf_counter() - t

    console.rule(f"3/4 DPPO, {cfg.dppo_env_steps} env steps")
    t = time.perf_counter()
    dppo_cfg = {"env": {**env, "assembly": cfg.assembly}, "num_envs": workers, "n_steps": 4,
                "total_env_steps": cfg.dppo_env_steps, "seed": seed, "threads": 1}  # fmt: skip
    tuned = pipeline.fine_tune(dp, out / "dppo", dppo_cfg, progress=True)
    times["dppo_s"] = time.perf_counter() - t

    console.rule(f"4/4 evaluation, {cfg.episodes} episodes each")
    t = time.perf_counter()
    rows = {}
    for name, pol in (("pre-trained", dp), ("fine-tuned", tuned)):
        ev = out / "eval" / name
        rows[name] = pipeline.evaluate(pol, ev, cfg.assembly, cfg.episodes, seed + 1, workers, env, backend="async")
    times["eval_s"] = time.perf_counter() - t
    elapsed = time.perf_counter() - t0

    dppo_summary = json.loads((out / "dppo" / "summary.json").read_text())
    table = Table(title=f"VT-Refine miniature: {cfg.assembly}, visuo-tactile, {cfg.episodes} episodes per policy")
    for c in ("policy", "success", "95 % interval", "dropped"):
        table.add_column(c, justify="left" if c == "policy" else "right")
    for name, r in rows.items():
        lo, hi = r["interval"]
        table.add_row(name, f"{r['successes']}/{r['episodes']}", f"{lo:.2f}-{hi:.2f}", str(r["dropped"]))
    console.print(table)
    report = out / "report.md"
    lines = [
        f"# VT-Refine miniature ({cfg.assembly}, visuo-tactile)",
        "",
        f"{cfg.demos} demonstrations, {cfg.dp_steps} diffusion-policy steps, {dppo_summary['env_steps']} DPPO env "
        f"steps ({dppo_summary['env_steps_per_s']} env steps/s), {cfg.episodes} evaluation episodes per policy; "
        "a miniature, not evidence about the paper.",
        "",
        "| policy | success | 95 % interval | dropped |",
        "|---|---|---|---|",
        *[
            f"| {n} | {r['successes']}/{r['episodes']} | {lo:.2f}-{hi:.2f} | {r['dropped']} |"
            for n, r in rows.items()
            for lo, hi in [r["interval"]]
        ],
        "",
        "Curves: `dp/learning_curve.png`, `dppo/success_curve.png`.",
    ]
    atomic_write_text(report, "\n".join(lines) + "\n")
    summary = {
        "seconds": round(elapsed, 1),
        **{k: round(v, 1) for k, v in times.items()},
        "assembly": cfg.assembly,
        "demos": cfg.demos,
        "dp_steps": cfg.dp_steps,
        "dppo_env_steps": dppo_summary["env_steps"],
        "dppo_env_steps_per_s": dppo_summary["env_steps_per_s"],
        "success": {n: r["success"] for n, r in rows.items()},
        "report": str(report),
        "figures": [str(out / "dp" / "learning_curve.png"), str(out / "dppo" / "success_curve.png")],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    console.print(f"report: {report}")
    return summary
