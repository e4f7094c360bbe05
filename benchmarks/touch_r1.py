"""Touch-R1 in simulation, end to end on this machine's CPU: the dataset, the reference rows, the tiny VLM trained
in three stages, GRPO with and without the counterfactual and the consistency rewards, the benchmark table and the
paper's claims checked against it.

    python benchmarks/touch_r1.py [--root runs/touch_r1] [--out docs/results] [--quick]

Every step writes its result into --root and is skipped when the script runs again (the dataset resumes, finished
training runs and evaluations are kept), so the run can be continued across sessions. Progress goes to stdout;
run it in the background with a log file. Writes docs/results/touch_r1.md and its figures in docs/results/touch_r1/.
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

import numpy as np  # noqa: E402

from taclab.data.generate import generate, read_config  # noqa: E402
from taclab.papers.touchr1 import dataset as _dataset  # noqa: E402,F401 - registers the generator
from taclab.utils import system_info  # noqa: E402

IMAGE_SIZE = 168
STAGE1 = {"epochs": 2, "max_pairs": 4000, "batch_size": 32}
SFT = {
    "epochs": 10,
    "batch_size": 8,
    "lr": 5e-4,
    "questions": {"level": 300, "compare": 120, "rank": 80, "cross_sensor": 40, "conflict": 80},
}
GRPO = {"steps": 60, "prompts_per_step": 4, "num_generations": 4, "max_completion_length": 64, "lr": 1e-4}
GRPO_RUNS = {  # row name: reward weight overrides
    "GRPO (full)": {},
    "GRPO without counterfactual reward": {"counterfactual": 0.0},
    "GRPO without consistency reward": {"consistency": 0.0},
}
QUICK = {
    "data": {"groups": 4, "groups_per_shard": 2},
    "stage1": {"epochs": 1, "max_pairs": 64},
    "sft": {"epochs": 1, "questions": {"level": 8, "compare": 2, "rank": 2, "cross_sensor": 1, "conflict": 2}},
    "grpo": {"steps": 2, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 24},
}
CENTER_SFT = "SFT only, centred touch"
CENTER_GRPO = "GRPO (full), centred touch"
"""Rows of the model whose tactile tiles are in the ``center`` representation (the others: relative to the gel)."""
PAPER = {"Touch-R1-7B": (0.24, 39.5, 71.3), "Gemini-2.5-Pro": (0.67, 13.8, 41.8), "SToLa": (0.45, 22.1, 51.9)}
"""OMAE, L2-EM, CSC reported by the paper (its metric definitions are not public)."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def step_data(root: Path, quick: bool, workers: int) -> Path:
    data = root / "data"
    over = QUICK["data"] if quick else None
    t = time.perf_counter()
    for cfg in read_config(ROOT / "configs" / "touchr1_data.yaml", over):
        generate(cfg, data, workers=workers)
    log(f"dataset ready ({time.perf_counter() - t:.0f} s): {data}")
    return data


def evaluate_row(root: Path, name: str, answerer_fn, data: Path, quick: bool) -> dict:
    """Evaluate unless ``root/eval/<slug>/reason_test.json`` exists."""
    from taclab.papers.touchr1.evaluate import TEST_QUESTIONS, evaluate
    from taclab.papers.touchr1.questions import QuestionConfig

    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    target = root / "eval" / slug / "reason_test.json"
    if not target.is_file():
        log(f"evaluating {name}")
        q = QuestionConfig(level=6, compare=2, rank=2, cross_sensor=1, conflict=2) if quick else TEST_QUESTIONS
        evaluate(answerer_fn(), data, "test", q, image_size=IMAGE_SIZE, out=target.parent, name=name)
    return json.loads(target.read_text())


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT / "runs" / "touch_r1", help="work folder")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results", help="where the report goes")
    ap.add_argument("--workers", type=int, default=2, help="dataset generation workers")
    ap.add_argument("--quick", action="store_true", help="tiny budgets everywhere: a smoke run, not for the docs")
    ap.add_argument("--no-center-grpo", action="store_true", help="stop after the centred-touch SFT row")
    ap.add_argument(
        "--center-grpo-runs",
        type=int,
        default=len(GRPO_RUNS),
        help="how many GRPO runs (in table order) to run from the centred-touch SFT model",
    )
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="training seeds of the centred-touch SFT and GRPO rows (seed 0 is the main table's; 2 or more adds "
        "the seed table and checks the claims across seeds)",
    )
    args = ap.parse_args()
    if args.seeds < 1:
        ap.error(f"--seeds {args.seeds}: must be at least 1")
    torch.set_num_threads(1)
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    timings = {}

    from taclab.papers.touchr1.baselines import LevelAnswerer, load_cnn, train_baselines
    from taclab.papers.touchr1.evaluate import ModelAnswerer
    from taclab.papers.touchr1.grpo import run_grpo
    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.pretrain import run_pretrain
    from taclab.papers.touchr1.sft import run_sft
    from taclab.papers.touchr1.tiny import init_tiny

    data = step_data(root, args.quick, args.workers)

    # reference rows
    t = time.perf_counter()
    base = train_baselines(data, root / "baselines", {"epochs": 2} if args.quick else {"epochs": 10})
    timings["reference CNNs"] = base["seconds"]
    log(f"reference CNNs trained ({time.perf_counter() - t:.0f} s)")
    rows = {}
    rows["chance"] = evaluate_row(root, "chance", lambda: LevelAnswerer("chance"), data, args.quick)
    rows["oracle (privileged)"] = evaluate_row(root, "oracle", lambda: LevelAnswerer("oracle"), data, args.quick)
    rows["vision-only CNN"] = evaluate_row(
        root,
        "vision-only CNN",
        lambda: LevelAnswerer("vision-cnn", load_cnn(root / "baselines" / "vision_cnn.pt")),
        data,
        args.quick,
    )
    rows["tactile-only CNN"] = evaluate_row(
        root,
        "tactile-only CNN",
        lambda: LevelAnswerer("tactile-cnn", load_cnn(root / "baselines" / "tactile_cnn.pt")),
        data,
        args.quick,
    )

    # the VLM: tiny init, stage 1, stage 2
    tiny = root / "tiny"
    if not (tiny / "tiny_init.json").is_file():
        init_tiny(tiny, image_size=IMAGE_SIZE)
    s1cfg = merge(STAGE1, QUICK["stage1"]) if args.quick else STAGE1
    s1 = run_pretrain(TouchR1Model({"model": str(tiny), "image_size": IMAGE_SIZE}), data, root / "stage1", s1cfg)
    timings["stage 1 (pre-training)"] = s1["seconds"]
    log(f"stage 1 done: {s1['test']}")
    sftcfg = merge(SFT, QUICK["sft"]) if args.quick else SFT
    s2 = run_sft(TouchR1Model.load(root / "stage1" / "model"), data, root / "sft", sftcfg)
    timings["stage 2 (SFT)"] = s2["seconds"]
    log(f"stage 2 done: final loss {s2['final_loss']:.3f}")
    rows["SFT only"] = evaluate_row(
        root, "SFT only", lambda: ModelAnswerer(TouchR1Model.load(root / "sft" / "model")), data, args.quick
    )

    # stage 3, three reward sets, each from the SFT model
    grpo_summaries = {}
    for name, weights in GRPO_RUNS.items():
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        cfg = merge(GRPO, QUICK["grpo"]) if args.quick else dict(GRPO)
        cfg["rewards"] = weights
        log(f"stage 3: {name}")
        s3 = run_grpo(TouchR1Model.load(root / "sft" / "model"), data, root / slug, cfg)
        grpo_summaries[name] = s3
        timings[f"stage 3: {name}"] = s3["seconds"]
        rows[name] = evaluate_row(
            root, name, lambda s=slug: ModelAnswerer(TouchR1Model.load(root / s / "model")), data, args.quick
        )

    # the same SFT (and GRPO) with the tactile tiles in the centred representation (new run folders and rows)
    from taclab.papers.touchr1.inputs import CENTER

    tac = {"tactile": CENTER}
    s2c = run_sft(TouchR1Model.load(root / "stage1" / "model", **tac), data, root / "sft_center", sftcfg)
    timings["stage 2 (SFT), centred touch"] = s2c["seconds"]
    log(f"stage 2 (centred touch) done: final loss {s2c['final_loss']:.3f}")
    rows[CENTER_SFT] = evaluate_row(
        root, CENTER_SFT, lambda: ModelAnswerer(TouchR1Model.load(root / "sft_center" / "model")), data, args.quick
    )
    sfts = {"SFT": s2, "SFT, centred touch": s2c}
    write_report(args.out, root, rows, s1, sfts, grpo_summaries, timings, args.quick)
    center_runs = [] if args.no_center_grpo else list(GRPO_RUNS.items())[: args.center_grpo_runs]
    for name, weights in center_runs:
        cname = f"{name}, centred touch"  # "GRPO (full)" gives CENTER_GRPO
        cfg = merge(GRPO, QUICK["grpo"]) if args.quick else dict(GRPO)
        cfg["rewards"] = weights
        log(f"stage 3: {cname}")
        slug = "".join(c if c.isalnum() else "_" for c in cname).strip("_").lower()  # as write_report
        s3 = run_grpo(TouchR1Model.load(root / "sft_center" / "model"), data, root / slug, cfg)
        grpo_summaries[cname] = s3
        timings[f"stage 3: {cname}"] = s3["seconds"]
        rows[cname] = evaluate_row(
            root, cname, lambda s=slug: ModelAnswerer(TouchR1Model.load(root / s / "model")), data, args.quick
        )
        write_report(args.out, root, rows, s1, sfts, grpo_summaries, timings, args.quick)
    # more training seeds of the centred-touch rows (same stage-1 checkpoint; the seed orders SFT's batches and
    # drives GRPO's sampling): row name -> {seed: result}, seed 0 being the main table's run
    seed_rows = {}
    if args.seeds > 1 and not args.no_center_grpo:
        names = [CENTER_SFT] + [f"{n}, centred touch" for n, _ in center_runs]
        seed_rows = {n: {0: rows[n]} for n in names if n in rows}
        for k in range(1, args.seeds):
            sft_dir = root / f"sft_center_s{k}"
            s2k = run_sft(TouchR1Model.load(root / "stage1" / "model", **tac), data, sft_dir, {**sftcfg, "seed": k})
            timings[f"stage 2 (SFT), centred touch, seed {k}"] = s2k["seconds"]
            seed_rows[CENTER_SFT][k] = evaluate_row(
                root,
                f"{CENTER_SFT} seed {k}",
                lambda d=sft_dir: ModelAnswerer(TouchR1Model.load(d / "model")),
                data,
                args.quick,
            )
            for name, weights in center_runs:
                cname = f"{name}, centred touch"
                cfg = merge(GRPO, QUICK["grpo"]) if args.quick else dict(GRPO)
                cfg["rewards"], cfg["seed"] = weights, k
                slug = "".join(c if c.isalnum() else "_" for c in cname).strip("_").lower() + f"_s{k}"
                log(f"stage 3: {cname}, seed {k}")
                s3 = run_grpo(TouchR1Model.load(sft_dir / "model"), data, root / slug, cfg)
                timings[f"stage 3: {cname}, seed {k}"] = s3["seconds"]
                seed_rows[cname][k] = evaluate_row(
                    root,
                    f"{cname} seed {k}",
                    lambda s=slug: ModelAnswerer(TouchR1Model.load(root / s / "model")),
                    data,
                    args.quick,
                )
                write_report(args.out, root, rows, s1, sfts, grpo_summaries, timings, args.quick, seed_rows)
    timings["total (this invocation; finished steps are skipped)"] = time.perf_counter() - t_all
    write_report(args.out, root, rows, s1, sfts, grpo_summaries, timings, args.quick, seed_rows)


def _f(v, fmt=".1f") -> str:
    return "-" if v is None else format(v, fmt)


def write_report(out: Path, root: Path, rows, s1, s2, grpo, timings, quick, seed_rows=None) -> None:
    from taclab.papers.touchr1.sft import plot_curve

    figs = out / "touch_r1"
    figs.mkdir(parents=True, exist_ok=True)
    pngs = [(root / "sft" / "loss.png", "sft_loss.png"), (root / "stage1" / "loss.png", "stage1_loss.png")]
    pngs.append((root / "sft_center" / "loss.png", "sft_center_loss.png"))
    for src, dst in pngs:
        if src.is_file():
            shutil.copy(src, figs / dst)
    curves = {}
    for name in grpo:
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        hist = json.loads((root / slug / "log.json").read_text())
        curves[name] = [
            float(h["reward"]) if h.get("reward") is not None else float("nan") for h in hist if "reward" in h
        ]
        if (root / slug / "rewards.png").is_file():
            shutil.copy(root / slug / "rewards.png", figs / f"rewards_{slug}.png")
    if curves:
        plot_curve(figs / "grpo_total_reward.png", curves, "weighted reward", "Stage 3: GRPO, total reward per step")

    L = ["# Touch-R1 in simulation: benchmark", ""]
    if quick:
        L += ["**Smoke run with tiny budgets (`--quick`): the numbers below mean nothing.**", ""]
    L += [
        "Written by `benchmarks/touch_r1.py` (definitions in [docs/touch_r1.md](../touch_r1.md)). Test split: "
        "held-out object groups; questions of `TEST_QUESTIONS` (each cross-sensor group holds one question per "
        "sensor). Tiny Qwen2-VL (random init, 1.2M parameters) trained on this 2-core CPU, one seed.",
        "",
        "## Benchmark",
        "",
        "| row | OMAE | EM % | CSC % | CSC-correct % | format errors % | tactile reliance (EM points: removed / "
        "shuffled / noised) | OMAE with the touch removed / shuffled / noised |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        o, tr = r["overall"], r.get("tactile_reliance", {})
        rel = " / ".join(_f(tr.get(k)) for k in ("removed", "shuffled", "noised"))
        cf = r.get("counterfactual", {})
        cf_omae = " / ".join(_f(cf.get(k, {}).get("omae"), ".3f") for k in ("removed", "shuffled", "noised"))
        L.append(
            f"| {name} | {_f(o['omae'], '.3f')} | {_f(o['exact_match'])} | {_f(o['csc'])} | "
            f"{_f(o['csc_correct'])} | {_f(o['format_error'])} | {rel} | {cf_omae} |"
        )
    L += [
        "",
        "Exact match per question type (%):",
        "",
        "| row | level | compare | rank | cross-sensor | conflict |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        bt = r["by_type"]
        L.append(
            f"| {name} | "
            + " | ".join(_f(bt[t]["exact_match"]) for t in ("level", "compare", "rank", "cross_sensor", "conflict"))
            + " |"
        )
    L += [
        "",
        "The paper's numbers (Qwen2.5-VL-7B and others on real data; its metric definitions are not public, so "
        "they are not comparable to the rows above):",
        "",
        "| model | OMAE | L2-EM | CSC |",
        "|---|---|---|---|",
    ]
    for name, (a, b, c) in PAPER.items():
        L.append(f"| {name} | {a} | {b} | {c} |")
    L += ["", "## The paper's claims, checked", ""]
    L += claims(rows)
    if seed_rows and max(len(v) for v in seed_rows.values()) > 1:
        L += seed_section(seed_rows)
    L += [
        "",
        "## Training",
        "",
        f"- Stage 1 (next tactile field, test MSE in units of (0.1 mm)^2): model {_f(s1['test']['model_mse'], '.4f')}, "
        f"copy the current field {_f(s1['test']['copy_mse'], '.4f')}, "
        f"predict the mean {_f(s1['test']['mean_mse'], '.4f')}.",
    ]
    for name, s in s2.items():
        L.append(
            f"- Stage 2 ({name}): {s['questions']} questions, {s['steps']} steps, final loss {s['final_loss']:.3f}."
        )
    for name, s in grpo.items():
        fin = ", ".join(f"{k} {_f(v, '.3f')}" for k, v in s["final"].items())
        L.append(f"- Stage 3, {name}: {s['steps']} steps; mean of the last 10 logged rewards: {fin}.")
    L += ["", "![SFT loss](touch_r1/sft_loss.png)", ""]
    if "SFT, centred touch" in s2:
        L += ["![SFT loss, centred touch](touch_r1/sft_center_loss.png)", ""]
    L += ["![GRPO reward](touch_r1/grpo_total_reward.png)", ""]
    for name in grpo:
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        L.append(f"![{name} rewards](touch_r1/rewards_{slug}.png)")
    L += ["", "## Time", "", "| step | seconds |", "|---|---|"]
    L += [f"| {k} | {v:.0f} |" for k, v in timings.items()]
    info = system_info()
    L += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), ""]
    (out / "touch_r1.md").write_text("\n".join(L))
    log(f"wrote {out / 'touch_r1.md'}")


def _metrics(r: dict) -> dict:
    o = r["overall"]
    return {
        "omae": o["omae"],
        "em": o["exact_match"],
        "csc": o["csc"] or 0.0,
        "reliance": r["tactile_reliance"]["mean"],
    }


def seed_section(seed_rows: dict) -> list[str]:
    """The centred-touch rows over training seeds, and the claims checked on differences paired by seed (GRPO of
    seed k starts from the SFT of seed k). A claim is reproduced when the mean difference has the claimed sign and
    exceeds two standard errors, the standard error combining the spread of the paired differences over seeds and
    the per-question noise of one evaluation (divided by the number of seeds)."""
    L = [
        "",
        "## Over training seeds (centred touch)",
        "",
        "Stage 2 and 3 repeated with other seeds (the seed orders SFT's batches and drives GRPO's sampling) from the "
        "same stage-1 checkpoint; mean +- standard deviation over seeds.",
        "",
        "| row | seeds | OMAE | EM % | CSC % | tactile reliance (mean EM points) |",
        "|---|---|---|---|---|---|",
    ]
    for name, per in seed_rows.items():
        m = [_metrics(r) for r in per.values()]
        cells = []
        for key, fmt in (("omae", ".3f"), ("em", ".1f"), ("csc", ".1f"), ("reliance", ".1f")):
            v = np.array([x[key] for x in m], dtype=float)
            cells.append(f"{v.mean():{fmt}} +- {v.std(ddof=1) if len(v) > 1 else 0.0:{fmt}}")
        L.append(f"| {name} | {len(m)} | " + " | ".join(cells) + " |")

    def paired(a_name, b_name, key, sign, margin_key):
        a, b = seed_rows.get(a_name, {}), seed_rows.get(b_name, {})
        ks = sorted(set(a) & set(b))
        if len(ks) < 2:
            return None
        d = np.array([sign * (_metrics(b[k])[key] - _metrics(a[k])[key]) for k in ks])
        noise = np.mean([margins(a[k], b[k])[margin_key] / 2 for k in ks]) / np.sqrt(len(ks))
        se = float(np.sqrt(d.var(ddof=1) / len(ks) + noise**2))
        v = "reproduced" if d.mean() > 2 * se else "refuted" if d.mean() < -2 * se else "not resolved"
        per = ", ".join(f"{x:+.3g}" for x in np.round(d, 6))
        mean = round(float(d.mean()), 6)
        return f"{v} (mean paired difference {mean:+.3g} over {len(ks)} seeds ({per}), +-{2 * se:.3g})"

    sft, full = CENTER_SFT, CENTER_GRPO
    nocf = "GRPO without counterfactual reward, centred touch"
    nocons = "GRPO without consistency reward, centred touch"
    checks = [
        ("GRPO lowers OMAE below SFT", sft, full, "omae", -1, "omae"),
        ("GRPO raises EM above SFT", sft, full, "em", 1, "em"),
        ("GRPO raises CSC above SFT", sft, full, "csc", 1, "csc"),
        ("the counterfactual reward raises tactile reliance", nocf, full, "reliance", 1, "reliance"),
        ("the consistency reward raises CSC", nocons, full, "csc", 1, "csc"),
    ]
    L += ["", "The paper's claims over seeds (centred touch; positive differences favour the claim):", ""]
    for text, a, b, key, sign, mk in checks:
        res = paired(a, b, key, sign, mk)
        if res:
            L.append(f"- {text[0].upper() + text[1:]}: {res}.")
    return L


def margins(a: dict, b: dict) -> dict:
    """Two standard errors of the difference between two rows on the same questions. OMAE and EM: from the
    per-question differences, paired by question id (both rows answer the same test questions); CSC: binomial over
    the cross-sensor groups; tactile reliance (a difference of two EM values per row): the EM margin times sqrt 2."""
    n = a["overall"]["n"]
    sa, sb = {s["qid"]: s for s in a["samples"]}, {s["qid"]: s for s in b["samples"]}
    both = sorted(set(sa) & set(sb))
    d_em = np.array([100.0 * (float(sa[q]["exact"]) - float(sb[q]["exact"])) for q in both])
    d_om = np.array([sa[q]["omae"] - sb[q]["omae"] for q in both if "omae" in sa[q] and "omae" in sb[q]])
    em = 2 * float(d_em.std(ddof=1)) / np.sqrt(len(d_em)) if len(d_em) > 1 else 100.0
    omae = 2 * float(d_om.std(ddof=1)) / np.sqrt(len(d_om)) if len(d_om) > 1 else 4.0
    g = a["overall"]["groups"] or 1
    q = ((a["overall"]["csc"] or 0) + (b["overall"]["csc"] or 0)) / 200
    csc = 200 * np.sqrt(2 * max(q * (1 - q), 0.25 / g) / g)
    p = (a["overall"]["exact_match"] + b["overall"]["exact_match"]) / 200
    em_unpaired = 200 * np.sqrt(2 * p * (1 - p) / n)
    return {"em": em, "omae": omae, "csc": csc, "reliance": em_unpaired * np.sqrt(2)}


def reward_claims(full, nocf, nocons, verdict, label: str = "") -> list[str]:
    """The counterfactual reward's claim (full GRPO against GRPO without it, on tactile reliance) and the
    consistency reward's (on CSC), for one set of GRPO rows; rows that are missing give no line."""
    out = []
    if full and nocf:
        a, b, m = nocf["tactile_reliance"]["mean"], full["tactile_reliance"]["mean"], margins(nocf, full)
        out.append(
            f"- The counterfactual reward raises tactile reliance{label}: {verdict(b - a, m['reliance'])} (mean "
            f"reliance without it {a:.1f}, with it {b:.1f} EM points, +-{m['reliance']:.1f})."
        )
    if full and nocons:
        a, b, m = nocons["overall"]["csc"], full["overall"]["csc"], margins(nocons, full)
        out.append(
            f"- The consistency reward raises CSC{label}: {verdict((b or 0) - (a or 0), m['csc'])} (CSC without it "
            f"{_f(a)}, with it {_f(b)} %, +-{m['csc']:.1f})."
        )
    return out


def claims(rows) -> list[str]:
    """Each claim: ``reproduced`` when the difference has the claimed sign and exceeds two standard errors,
    ``refuted`` when it has the opposite sign beyond them, else ``not resolved``."""
    out = []
    sft, full = rows.get("SFT only"), rows.get("GRPO (full)")
    nocf, nocons = rows.get("GRPO without counterfactual reward"), rows.get("GRPO without consistency reward")

    def verdict(diff, margin):
        return "reproduced" if diff > margin else "refuted" if diff < -margin else "not resolved"

    if sft and full:
        a, b, m = sft["overall"], full["overall"], margins(sft, full)
        parts = [
            f"OMAE {a['omae']:.3f} -> {b['omae']:.3f}: {verdict(a['omae'] - b['omae'], m['omae'])} (+-{m['omae']:.3f})",
            f"EM {a['exact_match']:.1f} -> {b['exact_match']:.1f}: "
            f"{verdict(b['exact_match'] - a['exact_match'], m['em'])} (+-{m['em']:.1f})",
            f"CSC {_f(a['csc'])} -> {_f(b['csc'])}: {verdict((b['csc'] or 0) - (a['csc'] or 0), m['csc'])} "
            f"(+-{m['csc']:.1f})",
        ]
        out.append("- GRPO beats SFT on OMAE, EM and CSC: " + "; ".join(parts) + ".")
    out += reward_claims(full, nocf, nocons, verdict)
    csft, cgrpo = rows.get(CENTER_SFT), rows.get(CENTER_GRPO)
    if sft and csft:
        a, b, m = sft["overall"], csft["overall"], margins(sft, csft)
        out.append(
            f"- The centred tactile representation (SFT) raises EM: {a['exact_match']:.1f} -> {b['exact_match']:.1f} "
            f"{verdict(b['exact_match'] - a['exact_match'], m['em'])} (+-{m['em']:.1f}); tactile reliance "
            f"{sft['tactile_reliance']['mean']:.1f} -> {csft['tactile_reliance']['mean']:.1f} EM points "
            f"({verdict(csft['tactile_reliance']['mean'] - sft['tactile_reliance']['mean'], m['reliance'])}, "
            f"+-{m['reliance']:.1f})."
        )
    if csft and cgrpo:
        a, b, m = csft["overall"], cgrpo["overall"], margins(csft, cgrpo)
        out.append(
            f"- GRPO beats SFT (centred touch): OMAE {a['omae']:.3f} -> {b['omae']:.3f} "
            f"{verdict(a['omae'] - b['omae'], m['omae'])} (+-{m['omae']:.3f}); EM {a['exact_match']:.1f} -> "
            f"{b['exact_match']:.1f} {verdict(b['exact_match'] - a['exact_match'], m['em'])} (+-{m['em']:.1f})."
        )
    cnocf = rows.get("GRPO without counterfactual reward, centred touch")
    cnocons = rows.get("GRPO without consistency reward, centred touch")
    out += reward_claims(cgrpo, cnocf, cnocons, verdict, " (centred touch)")
    out.append(
        "- Margins are two standard errors of the difference (OMAE and EM paired by question); one seed per row, so "
        "run-to-run variation of training is not in them (see the seed table below when it is there)."
    )
    return out


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
