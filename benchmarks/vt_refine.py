"""VT-Refine on this machine: demonstrations -> point-cloud diffusion policy -> DPPO fine-tuning, for both
assemblies and both modalities, plus RL from scratch; writes docs/results/vt_refine.md, the success curves
(docs/results/vt_refine_curves.png / .csv) and keeps every run under ``--root``.

Each run (per assembly: ``vt``, ``vision``, then ``scratch``) goes through the stages below end to end before
the next starts. Each stage skips what is finished and resumes what was interrupted, and the report is rewritten
after each, so the benchmark can be continued across sessions by running the same command again:

1. ``demos``: ``--demos`` successful scripted demonstrations per assembly (default scene);
2. ``dp``: the point-cloud diffusion policy per assembly and modality (``vt``: visual + tactile points,
   ``vision``: the same policy without the tactile points), ``--dp-steps`` steps of the shared loop;
3. ``dppo``: DPPO from each pre-trained policy, and from a randomly initialized policy of the same architecture
   (RL from scratch, visuo-tactile), ``--dppo-env-steps`` env steps each over ``--num-envs`` async envs;
4. ``eval``: ``--eval-episodes`` seeded episodes per policy (the same seeds for every policy of an assembly).

Usage: python benchmarks/vt_refine.py [--root runs/vt_refine] [--stages demos dp dppo eval]
       [--assemblies round square] [--modalities vt vision] [--no-scratch] [--demos 30] [--dp-steps 800]
       [--dppo-env-steps 24000] [--sampling-std 0.03] [--num-envs 2] [--eval-episodes 100] [--workers 2] [--threads 1]
       [--out docs/results/vt_refine.md]
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
import time
from pathlib import Path

import numpy as np

import taclab.papers  # noqa: F401 - registers the generator, the learning spec and the policies
from taclab.papers.vtrefine import pipeline
from taclab.utils import atomic_write_text

STAGES = ("demos", "dp", "dppo", "eval")
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


def dppo_config(args, assembly: str, seed: int) -> dict:
    return {"env": {"assembly": assembly}, "num_envs": args.num_envs, "n_steps": args.n_steps,
            "total_env_steps": args.dppo_env_steps, "seed": seed, "threads": args.threads,
            "min_sampling_std": args.sampling_std, "min_logprob_std": args.sampling_std}  # fmt: skip


def run(args) -> None:
    root = args.root
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
    for i, (name, a) in enumerate(cells(args)):  # each cell end to end: its row of the table fills early
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
        if "dppo" in args.stages:
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
        w = csv.DictWriter(fh, ["run", *rows[0].keys() - {"run"}])
        w.writeheader()
        w.writerows(rows)
    return found


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
        f"({args.n_steps} decisions of 8 actions per env per iteration, exploration std {args.sampling_std}, the rest "
        "`DPPOConfig`'s defaults); "
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
            lines.append(
                f"| {name} | DPPO | {s['env_steps']} env steps | {s['train_time_s'] / 60:.1f} | "
                f"{s['env_steps_per_s']} env steps/s (rollout and update) |"
            )
    if found:
        lines += ["", "## Learning curves", "", "![curves](vt_refine_curves.png)", "",
                  "Success of the DPPO training episodes (with exploration noise) against env steps, running mean "
                  "over 5 iterations; numbers in `vt_refine_curves.csv`."]  # fmt: skip
    atomic_write_text(args.out, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("runs/vt_refine"))
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--assemblies", nargs="+", default=["round", "square"], choices=["round", "square"])
    ap.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=list(MODALITIES))
    ap.add_argument("--no-scratch", dest="scratch", action="store_false", help="skip RL from scratch")
    ap.add_argument("--demos", type=int, default=30)
    ap.add_argument("--dp-steps", type=int, default=800)
    ap.add_argument("--dppo-env-steps", type=int, default=24_000)
    ap.add_argument("--num-envs", type=int, default=2)
    ap.add_argument("--n-steps", type=int, default=16)
    ap.add_argument("--sampling-std", type=float, default=0.03, help="DPPO's min_sampling_std and min_logprob_std")
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/results/vt_refine.md"))
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    for k in ("demos", "dp_steps", "dppo_env_steps", "num_envs", "n_steps", "eval_episodes", "workers", "threads"):
        if getattr(args, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(args, k)}")
    if not args.sampling_std > 0:
        ap.error(f"--sampling-std must be > 0, got {args.sampling_std}")
    np.seterr(all="ignore")
    run(args)


if __name__ == "__main__":
    main()
