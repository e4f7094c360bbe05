"""VT-Refine on this machine: demonstrations -> point-cloud diffusion policy -> DPPO fine-tuning, for both
assemblies and both modalities, plus RL from scratch; writes docs/results/vt_refine.md, the success curves
(docs/results/vt_refine_curves.png / .csv) and keeps every run under ``--root``.

Each run (per assembly: ``vt``, ``vision``, then ``scratch``) goes through the stages below end to end before
the next starts. Each stage skips what is finished and resumes what was interrupted, and the report is rewritten
after each, so the benchmark can be continued across sessions by running the same command again:

1. ``demos``: ``--demos`` successful scripted demonstrations per assembly (default scene);
2. ``dp``: the point-cloud diffusion policy per assembly and modality (``vt``: visual + tactile points,
   ``vision``: the same policy without the tactile points), ``--dp-steps`` steps of the shared loop;
3. ``dppo``: DPPO from each pre-trained policy (a run made with another DPPO config or an older DPPO is moved to
   ``stale/`` with its evaluation and run again), and from a randomly initialized policy of the same architecture
   (RL from scratch, visuo-tactile), ``--dppo-env-steps`` env steps each over ``--num-envs`` async envs;
4. ``eval``: ``--eval-episodes`` seeded episodes per policy (the same seeds for every policy of an assembly);
5. ``signal`` (only when named in ``--stages``): how much of DPPO's policy gradient is signal for each
   pre-trained policy (:func:`taclab.papers.vtrefine.drift.gradient_agreement`): ``--signal-decisions``
   stochastic decisions in grouped rounds of ``--signal-group`` envs started from one state, batch sizes
   ``--signal-sizes``; written to ``signal_RUN.csv`` and reported against the decisions DPPO gets per update.

Usage: python benchmarks/vt_refine.py [--root runs/vt_refine] [--stages demos dp dppo eval]
       [--assemblies round square] [--modalities vt vision] [--no-scratch] [--demos 30] [--dp-steps 800]
       [--dppo-env-steps 16384] [--sampling-std 0.03] [--num-envs 2] [--n-steps 64] [--minibatch-size 128]
       [--critic-warmup 2] [--actor-lr 3e-6] [--eval-episodes 100] [--workers 2] [--threads 1] [--only RUN ...]
       [--signal-decisions 3072] [--signal-group 4] [--signal-sizes 64 256 1024] [--report]
       [--out docs/results/vt_refine.md]

DPPO's settings here (not `DPPOConfig`'s defaults): 128 decisions (1024 env steps) per iteration updated as one
minibatch, the critic alone for the first 2 iterations, actor lr 3e-6; with 32 decisions per iteration, minibatches
of 16 and lr 1e-5 the actor's updates were noise that moved the policy away from the demonstrations
(docs/vt_refine.md, "Why the first fine-tuning made the policy worse").
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import taclab.papers  # noqa: F401 - registers the generator, the learning spec and the policies
from taclab.papers.vtrefine import pipeline
from taclab.utils import atomic_write_text

STAGES = ("demos", "dp", "dppo", "eval")
OPTIONAL_STAGES = ("signal",)
"""stages run only when named in ``--stages``"""
MODALITIES = {"vt": {"use_tactile": True}, "vision": {"use_tactile": False}}
MODEL = {"tactile_keep": 4}
"""the policy of configs/vtrefine_dp.yaml with every fourth tactile point (640 points: the CPU budget)"""
PAPER = {"vt": (0.46, 0.85), "vision": (0.34, 0.53)}
"""the paper's real-world success before and after fine-tuning"""


def log(msg: str, root: Path) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
    print(line, flush=True)
    with open(root / "benchmark.log", "a") as fh:
        fh.write(line + "\n")


def cells(args) -> list[tuple[str, str]]:
    """(run name, assembly) of every DPPO run: per assembly each modality, then RL from scratch."""
    out = [(f"{a}_{m}", a) for a in args.assemblies for m in args.modalities]
    if args.scratch:
        out += [(f"{a}_scratch", a) for a in args.assemblies]
    return out


def cell_seed(name: str) -> int:
    """The DPPO seed of a cell, the same whichever assemblies, modalities or ``--only`` a command names:
    round_vt 0, round_vision 1, round_scratch 2, square_vt 3, square_vision 4, square_scratch 5."""
    assembly, kind = name.split("_", 1)
    return 3 * ["round", "square"].index(assembly) + ["vt", "vision", "scratch"].index(kind)


def dppo_config(args, assembly: str, seed: int) -> dict:
    return {"env": {"assembly": assembly}, "num_envs": args.num_envs, "n_steps": args.n_steps,
            "total_env_steps": args.dppo_env_steps, "seed": seed, "threads": args.threads,
            "min_sampling_std": args.sampling_std, "min_logprob_std": args.sampling_std,
            "minibatch_size": args.minibatch_size, "critic_warmup_iters": args.critic_warmup,
            "actor_lr": args.actor_lr}  # fmt: skip


def retire_stale(root: Path, name: str, config: dict) -> bool:
    """Move ``dppo_NAME`` and ``eval_ft_NAME`` aside (``stale/``) when the DPPO run there was made with another
    config (other than its env-step budget, which a resumed run may grow) or by another version of the
    algorithm (a log without today's columns); returns whether it did."""
    from dataclasses import asdict

    from taclab.rl.dppo import LOG_COLUMNS, DPPOConfig

    run = root / f"dppo_{name}"
    if not (run / "run.json").is_file():
        return False
    old = dict(json.loads((run / "run.json").read_text())["config"])
    new = json.loads(json.dumps(asdict(DPPOConfig.from_dict(config))))
    old.pop("total_env_steps", None), new.pop("total_env_steps")
    log_file = run / "log.csv"
    header = log_file.read_text().splitlines()[0].split(",") if log_file.is_file() else list(LOG_COLUMNS)
    if old == new and header == list(LOG_COLUMNS):
        return False
    stale = root / "stale" / time.strftime("%Y%m%d-%H%M%S")
    stale.mkdir(parents=True, exist_ok=True)
    for d in (run, root / f"eval_ft_{name}"):
        if d.exists():
            d.rename(stale / d.name)
    return True


def run(args) -> None:
    root = args.root
    if args.report:
        if not root.is_dir():
            print(f"error: --root {root} holds no benchmark runs", file=sys.stderr)
            raise SystemExit(2)
        write_report(args)
        return
    root.mkdir(parents=True, exist_ok=True)
    data = root / "demos"
    log(f"benchmark: {vars(args)}", root)
    if "demos" in args.stages:
        t = time.perf_counter()
        pipeline.demonstrations(data, list(args.assemblies), args.demos, 300, {}, args.workers)
        log(f"demos ready ({time.perf_counter() - t:.0f} s)", root)
    write_report(args)
    train = {"batch_size": 64, "lr": 1e-3, "ema_decay": 0.995, "val_fraction": 0.05, "checkpoint_every": 100,
             "threads": args.threads, "seed": 0}  # fmt: skip
    for name, a in cells(args):  # each cell end to end: its row of the table fills early
        if args.only and name not in args.only:
            continue
        i = cell_seed(name)
        m = name.split("_", 1)[1]
        if m == "scratch":
            pre = pipeline.untrained(data, a, root / f"init_{name}", {**MODEL, "use_tactile": True})
        elif "dp" in args.stages or (root / f"dp_{name}" / "summary.json").is_file():
            t = time.perf_counter()
            pre = pipeline.pretrain(data, a, root / f"dp_{name}", {**MODEL, **MODALITIES[m]}, train, args.dp_steps)
            log(f"dp_{name} ready ({time.perf_counter() - t:.0f} s)", root)
            write_report(args)
        else:
            continue
        if "eval" in args.stages:  # the pre-trained policy first: its number does not depend on the RL budget
            t = time.perf_counter()
            r = pipeline.evaluate(pre, root / f"eval_pre_{name}", a, args.eval_episodes, 1, args.workers, {})
            log(f"eval pre {name}: {r['successes']}/{r['episodes']} ({time.perf_counter() - t:.0f} s)", root)
            write_report(args)
        if "signal" in args.stages and m != "scratch":
            signal(args, name, a, pre, dppo_config(args, a, i))
        if "dppo" in args.stages:
            if retire_stale(root, name, dppo_config(args, a, i)):
                log(f"dppo_{name}: made with another DPPO config or version, moved to {root / 'stale'}", root)
            t = time.perf_counter()
            pipeline.fine_tune(pre, root / f"dppo_{name}", dppo_config(args, a, i), progress=False)
            log(f"dppo_{name} ready ({time.perf_counter() - t:.0f} s)", root)
            write_report(args)
        tuned = root / f"dppo_{name}" / "policy"
        if "eval" in args.stages and (tuned / "policy.json").is_file():
            t = time.perf_counter()
            r = pipeline.evaluate(tuned, root / f"eval_ft_{name}", a, args.eval_episodes, 1, args.workers, {})
            log(f"eval fine-tuned {name}: {r['successes']}/{r['episodes']} ({time.perf_counter() - t:.0f} s)", root)
            write_report(args)


def signal(args, name: str, assembly: str, pre: Path, config: dict) -> None:
    """The gradient-signal measurement of a pre-trained policy into ``signal_NAME.csv`` (skipped when there with
    the same settings; its settings in ``signal_NAME.json``)."""
    import torch

    from taclab.papers.vtrefine.drift import gradient_agreement, rollout
    from taclab.policies import load_policy
    from taclab.rl.dppo import DPPOConfig

    root = args.root
    settings = {"policy": str(pre), "decisions": args.signal_decisions, "group": args.signal_group,
                "sizes": list(args.signal_sizes), "dppo": config}  # fmt: skip
    meta, out = root / f"signal_{name}.json", root / f"signal_{name}.csv"
    if out.is_file() and meta.is_file() and json.loads(meta.read_text()) == settings:
        return
    t = time.perf_counter()
    cfg = DPPOConfig.from_dict({**config, "num_envs": args.signal_group})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    policy = load_policy(pre)
    data = rollout(policy, cfg, args.signal_decisions, seed=cell_seed(name), grouped=True, report=lambda _m: None)
    rows = gradient_agreement(policy, data, list(args.signal_sizes), cfg, report=lambda _m: None)
    success = float(np.mean(data["success"]))
    for r in rows:
        r["episodes"], r["success"] = len(data["success"]), success
    if rows:
        lines = [",".join(rows[0])] + [",".join(str(v) for v in r.values()) for r in rows]
        atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_text(meta, json.dumps(settings, indent=2))
    log(f"signal {name}: {len(data['success'])} episodes, {len(rows)} batch sizes ({time.perf_counter() - t:.0f} s)",
        root)  # fmt: skip
    write_report(args)


def signal_section(args) -> list[str]:
    """The gradient-signal table of the policies measured (``signal_*.csv``), against DPPO's decisions per
    update and per run."""
    root = args.root
    found = [(n, root / f"signal_{n}.csv") for n, _ in cells(args) if (root / f"signal_{n}.csv").is_file()]
    if not found:
        return []
    per_update = args.num_envs * args.n_steps
    per_run = args.dppo_env_steps // 8
    out = ["", "## How much of DPPO's policy gradient is signal", "",
           "Stochastic decisions of each pre-trained policy (DPPO's chain and exploration std) in rounds of envs "
           "started from one state; each episode's advantage is its return minus the mean return of the rest of its "
           "group (the baseline of a critic that knew the initial state exactly); the gradients of disjoint batches "
           "of whole groups agree only in their signal, so the mean dot product of different batches' gradients over "
           "their mean squared norm estimates the signal fraction of a batch's gradient (`taclab.papers.vtrefine."
           f"drift.gradient_agreement`). DPPO here updates on {per_update} decisions per iteration, {per_run} in a "
           "whole run.", "",
           "| policy | episodes (success) | batch (decisions) | batches | signal fraction (+- jackknife s.e.) | "
           "batch at half signal (decisions) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in found:
        for r in csv.DictReader(open(f)):
            sig, se, half = float(r["signal"]), float(r["signal_se"]), float(r["half_b"])
            half_txt = f"{half:.0f}" if np.isfinite(half) else "-"
            se_txt = f"+- {se:.4f}" if np.isfinite(se) else "(one pair: no error estimate)"
            out.append(
                f"| {name} | {r['episodes']} ({float(r['success']):.2f}) | {float(r['mean_decisions']):.0f} | "
                f"{r['batches']} | {sig:.4f} {se_txt} | "
                f"{half_txt} |"
            )
    return out


# ------------------------------------------------------------------------------------------------------ report
def _read(p: Path) -> dict | None:
    return json.loads(p.read_text()) if p.is_file() else None


def _cell(r: dict | None) -> str:
    if r is None:
        return "pending"
    lo, hi = r["interval"]
    return f"{r['success']:.2f} ({lo:.2f}-{hi:.2f}, n={r['episodes']})"


def curves(args) -> list[str]:
    """Success of the training episodes against env steps for every DPPO run: one PNG, one CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.utils import save_png

    root, res = args.root, args.out.parent
    rows, found = [], []
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, _ in cells(args):
        f = root / f"dppo_{name}" / "success_curve.csv"
        if not f.is_file():
            continue
        data = list(csv.DictReader(open(f)))
        if not data:
            continue
        found.append(name)
        steps = [int(r["env_steps"]) for r in data]
        run_col = [k for k in data[0] if k.startswith("success_rate_running")][0]
        ax.plot(steps, [float(r[run_col]) for r in data], label=name)
        rows += [{"run": name, **r} for r in data]
    if not found:
        plt.close(fig)
        return []
    ax.set_xlabel("env steps")
    ax.set_ylabel("success of training episodes (running mean)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(res / "vt_refine_curves.png", fig)
    plt.close(fig)
    with open(res / "vt_refine_curves.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["run", *(k for k in rows[0] if k != "run")])
        w.writeheader()
        w.writerows(rows)
    return found


def final_drift(log_csv: Path) -> float:
    """The last ``action_drift`` of a DPPO log (RMS change of the executed actions in the [-1, 1] scale)."""
    rows = list(csv.DictReader(open(log_csv))) if log_csv.is_file() else []
    return float(rows[-1]["action_drift"]) if rows and rows[-1].get("action_drift") else float("nan")


def findings(args) -> list[str]:
    """The paper's three findings, each reproduced or not with the numbers of the finished runs."""
    root = args.root
    ev = {
        (a, m, k): _read(root / f"eval_{k}_{a}_{m}" / "eval.json")
        for a in args.assemblies
        for m in ("vt", "vision", "scratch")
        for k in ("pre", "ft")
    }

    def ci(r: dict) -> str:
        return f"{r['success']:.2f} ({r['interval'][0]:.2f}-{r['interval'][1]:.2f})"

    def disjoint(r1: dict, r2: dict) -> bool:
        return r1["interval"][1] < r2["interval"][0] or r2["interval"][1] < r1["interval"][0]

    out = ["", "## The paper's findings", ""]
    for a in args.assemblies:
        pre, ft = ev[(a, "vt", "pre")], ev[(a, "vt", "ft")]
        if pre and ft:
            d = ft["success"] - pre["success"]
            verdict = "reproduced" if d >= 0.30 else "not reproduced"
            sig = "95 % intervals disjoint" if disjoint(pre, ft) else "95 % intervals overlap: no significant change"
            out.append(f"- {a}: fine-tuning lifts visuo-tactile by 30 points or more: **{verdict}**, {ci(pre)} -> "
                       f"{ci(ft)}, {d:+.2f} ({sig}).")  # fmt: skip
        else:
            out.append(f"- {a}: fine-tuning lifts visuo-tactile by 30 points or more: pending.")
        vt, vis = ev[(a, "vt", "ft")], ev[(a, "vision", "ft")]
        if vt and vis:
            d = vt["success"] - vis["success"]
            verdict = "reproduced" if d > 0 and disjoint(vt, vis) else "not reproduced"
            why = "95 % intervals disjoint" if disjoint(vt, vis) else "95 % intervals overlap"
            out.append(f"- {a}: after fine-tuning visuo-tactile beats vision only: **{verdict}**, {ci(vt)} against "
                       f"{ci(vis)}, {d:+.2f} ({why}).")  # fmt: skip
        else:
            out.append(f"- {a}: after fine-tuning visuo-tactile beats vision only: pending.")
        sc = ev[(a, "scratch", "ft")]
        if sc:
            verdict = "reproduced" if sc["success"] <= 0.02 else "not reproduced"
            run = _read(root / f"dppo_{a}_scratch" / "summary.json")
            steps = f"{run['env_steps']} env steps" if run else "its DPPO run"
            out.append(f"- {a}: RL from scratch fails within the same budget: **{verdict}**, {ci(sc)} after "
                       f"{steps}.")  # fmt: skip
        else:
            out.append(f"- {a}: RL from scratch fails within the same budget: pending.")
    return out


def write_report(args) -> None:
    root = args.root
    found = curves(args)
    lines = [
        "# VT-Refine: diffusion policy from demonstrations, DPPO fine-tuning, RL from scratch",
        "",
        f"Written by `benchmarks/vt_refine.py` ({' '.join(args.argv) or 'defaults'}) on {platform.machine()} with "
        f"{os.cpu_count()} CPU cores shared with other jobs; runs under `{root}`. Env `taclab/BimanualAssembly-v0`, "
        f"default scene (clearance 0.8 mm, 10 Hz, 150-step limit). {args.demos} successful demonstrations per "
        f"assembly; the point-cloud diffusion policy ({MODEL}, otherwise `configs/vtrefine_dp.yaml`'s model) trained "
        f"{args.dp_steps} steps; DPPO for {args.dppo_env_steps} env steps over {args.num_envs} async envs "
        f"({args.n_steps} decisions of 8 actions per env per iteration, minibatches of {args.minibatch_size} "
        f"decisions, the first {args.critic_warmup} iterations training only the critic, actor lr {args.actor_lr:g}, "
        f"exploration std {args.sampling_std}, the rest `DPPOConfig`'s defaults); "
        f"{args.eval_episodes} evaluation episodes per policy, seeds of `taclab.eval.rollout` with seed 1, "
        "deterministic DDIM sampling. Intervals are 95 % Wilson intervals. 'pending' marks runs not finished yet.",
        "",
        "## Success",
        "",
        "| assembly | policy | pre-trained | fine-tuned (DPPO) | change | paper (real world) |",
        "|---|---|---|---|---|---|",
    ]
    for a in args.assemblies:
        for m in [*args.modalities, *(["scratch"] if args.scratch else [])]:
            name = f"{a}_{m}"
            pre, ft = _read(root / f"eval_pre_{name}" / "eval.json"), _read(root / f"eval_ft_{name}" / "eval.json")
            change = f"{ft['success'] - pre['success']:+.2f}" if pre and ft else "pending"
            label = {"vt": "visuo-tactile", "vision": "vision only", "scratch": "RL from scratch (visuo-tactile)"}[m]
            paper = f"{PAPER[m][0]:.2f} -> {PAPER[m][1]:.2f}" if m in PAPER else "0 (simulation)"
            lines.append(f"| {a} | {label} | {_cell(pre)} | {_cell(ft)} | {change} | {paper} |")
    lines += ["", "## Cost", "", "| run | stage | steps | wall time (min) | rate |", "|---|---|---|---|---|"]
    for a in args.assemblies:
        for m in args.modalities:
            s = _read(root / f"dp_{a}_{m}" / "summary.json")
            if s:
                lines.append(
                    f"| {a}_{m} | diffusion policy | {s['steps']} | {s['train_time_s'] / 60:.1f} | "
                    f"{s['samples_per_s']} samples/s |"
                )
    for name, _ in cells(args):
        s = _read(root / f"dppo_{name}" / "summary.json")
        if s:
            drift = final_drift(root / f"dppo_{name}" / "log.csv")
            lines.append(
                f"| {name} | DPPO | {s['env_steps']} env steps | {s['train_time_s'] / 60:.1f} | "
                f"{s['env_steps_per_s']} env steps/s (rollout and update); action drift at the end "
                f"{drift:.3f} |"
            )
    lines += findings(args)
    lines += signal_section(args)
    stale = sorted((root / "stale").glob("*/dppo_*/run.json")) if (root / "stale").is_dir() else []
    if stale:
        lines += ["", "## Earlier DPPO runs (other config or older DPPO; moved to `stale/`)", "",
                  "| run | DPPO config | env steps | fine-tuned success |", "|---|---|---|---|"]  # fmt: skip
        for f in stale:
            c, name = json.loads(f.read_text())["config"], f.parent.name.removeprefix("dppo_")
            s = _read(f.parent / "summary.json")
            keys = ("n_steps", "minibatch_size", "actor_lr", "critic_warmup_iters", "min_sampling_std")
            desc = ", ".join(f"{k} {c[k]}" for k in keys if k in c)
            steps = s["env_steps"] if s else "unfinished"
            ft = _read(f.parent.parent / f"eval_ft_{name}" / "eval.json")
            lines.append(f"| {f.parent.parent.name}/{name} | {desc} | {steps} | {_cell(ft)} |")
    if found:
        lines += ["", "## Learning curves", "", "![curves](vt_refine_curves.png)", "",
                  "Success of the DPPO training episodes (with exploration noise) against env steps, running mean "
                  "over 5 iterations; numbers in `vt_refine_curves.csv`."]  # fmt: skip
    atomic_write_text(args.out, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("runs/vt_refine"))
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES + OPTIONAL_STAGES)
    ap.add_argument("--assemblies", nargs="+", default=["round", "square"], choices=["round", "square"])
    ap.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=list(MODALITIES))
    ap.add_argument("--no-scratch", dest="scratch", action="store_false", help="skip RL from scratch")
    ap.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="RUN",
        help="run only these cells (e.g. round_vt round_scratch); the report covers all",
    )
    ap.add_argument("--report", action="store_true", help="only rewrite the report from the finished runs")
    ap.add_argument("--demos", type=int, default=30)
    ap.add_argument("--dp-steps", type=int, default=800)
    ap.add_argument("--dppo-env-steps", type=int, default=16_384)
    ap.add_argument("--num-envs", type=int, default=2)
    ap.add_argument("--n-steps", type=int, default=64, help="decisions per env per DPPO iteration")
    ap.add_argument("--minibatch-size", type=int, default=128, help="decisions per DPPO minibatch")
    ap.add_argument("--critic-warmup", type=int, default=2, help="DPPO iterations that train only the critic")
    ap.add_argument("--actor-lr", type=float, default=3e-6, help="DPPO's actor learning rate")
    ap.add_argument("--sampling-std", type=float, default=0.03, help="DPPO's min_sampling_std and min_logprob_std")
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--signal-decisions", type=int, default=3072, help="decisions of the signal stage's rollout")
    ap.add_argument("--signal-group", type=int, default=4, help="envs started from one state per round (signal)")
    ap.add_argument("--signal-sizes", type=int, nargs="+", default=[64, 256, 1024], help="batches (signal)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/results/vt_refine.md"))
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    for k in (
        "demos",
        "dp_steps",
        "dppo_env_steps",
        "num_envs",
        "n_steps",
        "minibatch_size",
        "eval_episodes",
        "signal_decisions",
        "workers",
        "threads",
    ):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(args, k)}")
    if args.signal_group < 2 or min(args.signal_sizes) < 1:
        ap.error(f"--signal-group must be >= 2 and --signal-sizes >= 1, got {args.signal_group}, {args.signal_sizes}")
    if args.critic_warmup < 0:
        ap.error(f"--critic-warmup must be >= 0, got {args.critic_warmup}")
    if not args.actor_lr >= 0:
        ap.error(f"--actor-lr must be >= 0, got {args.actor_lr}")
    if not args.sampling_std > 0:
        ap.error(f"--sampling-std must be > 0, got {args.sampling_std}")
    names = [n for n, _ in cells(args)]
    bad = [n for n in args.only if n not in names]
    if bad:
        ap.error(f"--only {bad[0]} is not a cell of this benchmark; allowed: {', '.join(names)}")
    np.seterr(all="ignore")
    run(args)


if __name__ == "__main__":
    main()
