"""Tables I-IV of the TLA paper for the BC and Diffusion Policy baselines, trained and evaluated on this machine.

The whole pipeline: generate the single-peg (SP) and multi-peg (MP) datasets of configs/tla_*.yaml, train BC and
DP on each (20 epochs on SP, 10 on MP, as the paper trains its models), score them offline on the test splits,
run them in closed loop on the tasks of tables III and IV (50 episodes per task), with the oracle and the
zero-action policy as the upper and lower bounds and the random policy beside them, and write the report. DP is
evaluated with the mean of 16 draws per observation (`INFERENCE`; `num_samples`, docs/training.md).

    python benchmarks/tla_baselines.py [--root runs/tla_baselines] [--data-root DIR] [--episodes 50] [--quick]
                                       [--only NAME ...] [--threads N] [--epochs N]
                                       [--max-steps N]

Completed steps are skipped when the script is run again (datasets resume, finished runs and evaluations are
kept). Writes docs/results/tla_baselines.md and its figures in docs/results/tla_baselines/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import taclab.papers  # noqa: E402,F401 - registers the tla generator, its learning spec and its policies
from taclab.data.generate import generate, read_config  # noqa: E402
from taclab.eval.closed_loop import evaluate_closed_loop  # noqa: E402
from taclab.eval.offline import evaluate_offline  # noqa: E402
from taclab.eval.report import make_report  # noqa: E402
from taclab.papers.tla.learning import ENV_ID, PAPER_TASKS  # noqa: E402
from taclab.train import load_run_config, train  # noqa: E402
from taclab.utils import system_info  # noqa: E402

RUNS = {  # name: (policy, dataset, epochs)
    "BC (SP)": ("bc", "sp", 20),
    "DP (SP)": ("dp", "sp", 20),
    "BC (MP)": ("bc", "mp", 10),
    "DP (MP)": ("dp", "mp", 10),
}
INFERENCE = {"DP (SP)": {"num_samples": 16}, "DP (MP)": {"num_samples": 16}}
"""Inference settings the runs are evaluated with: DP's action is the mean of 16 draws (docs/tla_recipe.md,
section 2: one draw samples the sign of an axis it is unsure of, rz, at random)."""
SPLITS = {"sp": ["test"], "mp": ["test_id", "test_ood"]}
BASELINES = ("oracle", "zero", "random")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def datasets(data_root: Path, workers: int, quick: bool, timings: dict) -> dict[str, Path]:
    """Generate (or complete) the SP and MP datasets of configs/tla_*.yaml."""
    data = {}
    for key, cfg_file in (("sp", "tla_single_peg.yaml"), ("mp", "tla_multi_peg.yaml")):
        data[key] = data_root / f"tla_{key}"
        overrides = {"samples": 60, "shard_size": 60} if quick else None
        t = time.perf_counter()
        for cfg in read_config(ROOT / "configs" / cfg_file, overrides):
            generate(cfg, data[key], workers=workers)
        timings[f"generate {key.upper()} (all splits)"] = {"seconds": round(time.perf_counter() - t, 1)}
    return data


def train_run(out: Path, run, data: Path, name: str, timings: dict) -> None:
    """Train unless finished; resume an interrupted run."""
    if not (out / "summary.json").is_file():
        resume = (out / "checkpoints" / "last" / "state.json").is_file()
        train(run, data, out, resume=resume)
    s = json.loads((out / "summary.json").read_text())
    timings[name] = {"train_s": s["train_time_s"], "samples_per_s": s["samples_per_s"], "params": s["parameters"]}


def current(target: Path, overrides: dict | None) -> bool:
    """Whether an evaluation record exists and was made with these inference settings (``policy_overrides``);
    one made with others is evaluated again (and replaced), never reused."""
    if not target.is_file():
        return False
    return json.loads(target.read_text()).get("policy_overrides", {}) == dict(overrides or {})


def offline(ev: Path, spec, name: str, data: Path, splits: list[str], overrides: dict | None = None) -> None:
    for split in splits:
        target = ev / slug(name) / f"offline_{split}.json"
        if not current(target, overrides):
            evaluate_offline(spec, data, split, name=name, out=target.parent, policy_overrides=overrides)


def closed(
    ev: Path, spec, name: str, episodes: int, workers: int, timings: dict, overrides: dict | None = None
) -> None:
    target = ev / slug(name) / "closed_loop.json"
    if not current(target, overrides):
        t = time.perf_counter()
        evaluate_closed_loop(
            spec, ENV_ID, list(PAPER_TASKS), episodes, workers=workers, name=name, out=target.parent,
            policy_overrides=overrides,
        )  # fmt: skip
        rec = json.loads(target.read_text())
        rec["wall_s"] = round(time.perf_counter() - t, 1)
        target.write_text(json.dumps(rec, indent=2))
    rec = json.loads(target.read_text())
    timings.setdefault(name, {}).update(
        {
            "eval_episodes": rec["overall"]["episodes"],
            "eval_s": rec.get("wall_s"),
            "ms_per_action": rec["overall"]["ms_per_action"],
        }
    )


def arguments(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "tla_baselines", help="work folder")
    ap.add_argument("--data-root", type=Path, default=None, help="dataset folder (default ROOT/data)")
    ap.add_argument("--episodes", type=int, default=50, help="closed-loop episodes per task")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="tiny datasets and 1 epoch: a smoke run, not for the docs")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results", help="where the report goes")
    ap.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME",
        help="train and evaluate only these runs, e.g. "
        "'BC (SP)' (repeatable; the reference policies always run); the report holds every evaluation under --root",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of each training run")
    ap.add_argument(
        "--epochs", type=int, default=None, help="train every selected run for this many epochs instead of its own"
    )
    ap.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="stop every selected run after this many optimizer steps (an "
        "interrupted run resumes from its last checkpoint and stops there)",
    )
    args = ap.parse_args()
    return args


def selected(runs: dict, only: list[str] | None) -> dict:
    """The runs ``--only`` names (all without it); an unknown name ends the script with one error line."""
    if not only:
        return runs
    unknown = [n for n in only if n not in runs]
    if unknown:
        raise SystemExit(f"error: unknown run(s) {unknown} for --only; allowed: {list(runs)}")
    return {n: r for n, r in runs.items() if n in only}


def main() -> None:
    args = arguments(__doc__)
    root = args.root
    timings: dict[str, dict] = {}
    t_all = time.perf_counter()
    data = datasets(args.data_root or root / "data", args.workers, args.quick, timings)
    ev = root / "eval"
    runs = selected(RUNS, args.only)
    for name, (policy, key, epochs) in runs.items():
        sets = {"train.epochs": 1 if args.quick else (args.epochs or epochs)}
        sets |= {"train.threads": args.threads} if args.threads else {}
        sets |= {"train.max_steps": args.max_steps} if args.max_steps else {}
        run = load_run_config(policy=policy, overrides=sets)
        train_run(root / slug(name), run, data[key], name, timings)
    for name, (_, key, _) in runs.items():
        offline(ev, root / slug(name), name, data[key], SPLITS[key], INFERENCE.get(name))
        closed(ev, root / slug(name), name, args.episodes, args.workers, timings, INFERENCE.get(name))
    for b in BASELINES:
        if b != "random":
            offline(ev, b, b, data["sp"], SPLITS["sp"])
            offline(ev, b, b, data["mp"], SPLITS["mp"])
        closed(ev, b, b, args.episodes, args.workers, timings)
    timings["baselines total"] = {"seconds": round(time.perf_counter() - t_all, 1)}
    old = root / "timings_baselines.json"
    previous = json.loads(old.read_text()) if old.is_file() else {}
    old.write_text(json.dumps(previous | timings, indent=2))
    print(write_results(root, args.out, quick=args.quick))


def write_results(root: Path, out: Path, quick: bool = False) -> Path:
    """The report of every evaluation under ``root/eval`` and the cost table of every ``root/timings_*.json``,
    as ``out/tla_baselines.md`` with its figures in ``out/tla_baselines/``."""
    report_dir = out / "tla_baselines"
    if report_dir.exists():
        shutil.rmtree(report_dir)
    report = make_report([root / "eval"], report_dir, title="TLA tables I-IV on taclab's simulator")
    body = report.read_text().replace("](", "](tla_baselines/")
    info = system_info()
    lines = [
        body.replace("# TLA tables I-IV", "# TLA tables I-IV" + (" (QUICK SMOKE RUN)" if quick else ""), 1),
        "## Cost on this machine",
        "",
        f"Measured by `python benchmarks/tla_baselines.py` and `python benchmarks/tla_model.py` ({info['cpus']} CPU "
        f"cores, torch {info['torch']}); ms/action is the mean time of `act` in one worker process with one thread. "
        "Times are wall clock: they depend on what else the machine ran. Epochs and optimizer steps are those each "
        "run trained (`--epochs` / `--max-steps` shorten a run).",
        "",
        "| step | epochs | optimizer steps | training time (s) | samples/s | parameters | closed-loop episodes "
        "| closed-loop time (s) | ms/action |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in sorted(root.glob("timings_*.json")):
        for name, t in json.loads(f.read_text()).items():
            if "seconds" in t:
                lines.append(f"| {name} | | | {t['seconds']} | | | | | |")
                continue
            ms = t.get("ms_per_action")
            summary = root / slug(name) / "summary.json"
            s = json.loads(summary.read_text()) if summary.is_file() else {}
            lines.append(
                f"| {name} | {s.get('epochs_done', '')} | {s.get('steps', '')} | {t.get('train_s', '')} | "
                f"{t.get('samples_per_s', '')} | {t.get('params', '')} | "
                f"{t.get('eval_episodes', '')} | {t.get('eval_s', '')} | {'' if ms is None else f'{ms:.2f}'} |"
            )
    lines.append("")
    out_md = out / "tla_baselines.md"
    out_md.write_text("\n".join(lines) + "\n")
    return out_md


if __name__ == "__main__":
    main()
