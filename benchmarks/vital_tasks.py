"""VITAL tasks: does each task work, and does touch matter? Writes docs/results/vital_tasks.md.

1. Success over ``--episodes`` seeded episodes per task (the evaluation runner's seeds) of the scripted
   demonstrator (must be >= 95 %), the zero action and the random policy (must be < 5 %), and of the
   demonstrator without its contact-driven corrections.
2. A probe of the skin: episodes in which the demonstrator judges the target badly from close by (its near
   belief error 1.2 mm instead of 0.7 mm), so that the part often catches the rim, with the target at a random
   place. At the first felt contact the 30 skin values (both pads) are recorded with the true lateral error of the
   part's tip from the hole (in the target frame). A ridge classifier on the skin reading (scaled to unit norm)
   predicts the sign of the error along each axis where the error is larger than the play; 5-fold
   cross-validated accuracy against the majority class, the hand's position (the control: it cannot know where
   the hole is) and the hand's rotation (the compliant wrist tilts under a contact).

The reference policies and the demonstrator do not read images: the cameras are off (``cameras=False``).

Usage: python benchmarks/vital_tasks.py [--episodes 100] [--probe-episodes 150] [--workers 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import json
import math
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np

from taclab.envs.vital import ENV_IDS
from taclab.eval.rollout import evaluate, success_stats
from taclab.sim.vital import TASKS
from taclab.utils import atomic_write_text

PACKAGES = ("taclab.papers", "taclab.papers.vital")
FAST = {"cameras": False, "masks": False, "image_size": [16, 16]}
PROBE_TASKS = ("plug", "usb", "key")


def _demo_folder(root: Path, **config) -> str:
    """A checkpoint folder of the demonstrator with a config (the runner loads policies by name or folder)."""
    from taclab.papers.vital.demonstrator import VitalDemonstrator

    name = "_".join(f"{k}-{v}" for k, v in config.items()) or "default"
    return str(VitalDemonstrator(**config).save(root / name))


def success_table(episodes: int, workers: int, root: Path) -> dict:
    policies = {
        "demonstrator": _demo_folder(root),
        "demonstrator without touch": _demo_folder(root, use_touch=False),
        "zero": "zero",
        "random": "random",
    }
    out = {}
    for task in TASKS:
        out[task] = {}
        for label, spec in policies.items():
            res = evaluate(spec, ENV_IDS[task], [{}], episodes, seed=0, workers=workers, env_config=FAST,
                           progress=False, packages=PACKAGES)[0]  # fmt: skip
            stats = success_stats(res)
            fails: dict[str, int] = {}
            for r in res:
                if not r.success:
                    key = str(r.fields.get("failure"))
                    fails[key] = fails.get(key, 0) + 1
            stats["failures_by_kind"] = fails
            out[task][label] = stats
            print(f"{task:5s} {label:28s} {stats['success_rate']:5.1f} %  {fails}", flush=True)
    return out


def _probe_episode(job) -> list[dict]:
    """Run one demonstrator episode and return the skin and tip error at each felt contact before insertion."""
    import taclab  # noqa: F401
    from taclab.envs.base import make
    from taclab.papers.vital.demonstrator import VitalDemonstrator

    task, seed = job
    env = make(ENV_IDS[task], **FAST)
    policy = VitalDemonstrator(task=task, noise={"near_bias_mm": 1.2})
    obs, info = env.reset(seed=seed, options={"target": "novel"})
    policy.reset({}, seed=seed)
    rows = []
    while True:
        before = policy.corrections
        a = policy.select_action(obs, info)
        if policy.corrections > before and len(rows) == 0:
            yaw = info["target_yaw"]
            d = (info["object_pos"] - info["target_pos"])[:2]
            c, s = math.cos(yaw), math.sin(yaw)
            rows.append(
                {
                    "skin": obs["skin"].reshape(-1).tolist(),
                    "proprio": obs["proprio"].tolist(),
                    "error_mm": [1000 * (c * d[0] + s * d[1]), 1000 * (-s * d[0] + c * d[1])],
                }
            )
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:
            break
    env.close()
    return rows


def _cv_accuracy(x: np.ndarray, y: np.ndarray, folds: int = 5, lam: float = 1.0, seed: int = 0) -> float:
    """Cross-validated accuracy of a ridge classifier (targets +-1) on standardized features."""
    idx = np.random.default_rng(seed).permutation(len(y))
    correct = 0
    for k in range(folds):
        test = idx[k::folds]
        train = np.setdiff1d(idx, test)
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
        a = np.c_[(x[train] - mu) / sd, np.ones(len(train))]
        w = np.linalg.solve(a.T @ a + lam * len(train) * np.eye(a.shape[1]), a.T @ y[train])
        pred = np.sign(np.c_[(x[test] - mu) / sd, np.ones(len(test))] @ w)
        correct += int((pred == y[test]).sum())
    return correct / len(y)


def probe(episodes: int, workers: int) -> dict:
    from taclab.sim.vital import VitalSceneConfig

    scene = VitalSceneConfig()
    play = {"plug": scene.plug_clearance_mm, "usb": scene.usb_clearance_mm, "key": scene.key_clearance_mm}
    out = {}
    with mp.get_context("spawn").Pool(workers) as pool:
        for task in PROBE_TASKS:
            rows = [r for rs in pool.map(_probe_episode, [(task, 50_000 + i) for i in range(episodes)]) for r in rs]
            skin = np.array([r["skin"] for r in rows])
            skin = skin / (np.linalg.norm(skin, axis=1, keepdims=True) + 1e-9)
            prop = np.array([r["proprio"] for r in rows])
            err = np.array([r["error_mm"] for r in rows])
            res = {"contacts": len(rows)}
            for ax, name in enumerate(("x", "y")):
                sel = np.abs(err[:, ax]) > play[task] / 2
                alone = sel & (np.abs(err[:, 1 - ax]) <= play[task] / 2)  # only this axis is out of play
                y = np.sign(err[sel, ax])
                if len(y) < 10:
                    res[name] = None
                    continue
                res[name] = {
                    "samples": int(len(y)),
                    "majority": float(max((y > 0).mean(), (y < 0).mean())),
                    "skin": _cv_accuracy(skin[sel], y),
                    "hand_position": _cv_accuracy(prop[sel, :3], y),
                    "hand_rotation": _cv_accuracy(prop[sel, 3:6], y),
                    "alone_samples": int(alone.sum()),
                    "skin_alone": _cv_accuracy(skin[alone], np.sign(err[alone, ax])) if alone.sum() >= 10 else None,
                }
            out[task] = res
            print(task, json.dumps(res), flush=True)
    return out


def write(out: Path, table: dict, probe_res: dict, args, elapsed: float) -> None:
    pct = lambda s: f"{s['success_rate']:.0f}"  # noqa: E731
    load = os.getloadavg()[0]
    lines = [
        "# VITAL tasks: success and the role of touch",
        "",
        f"Written by `python benchmarks/vital_tasks.py --episodes {args.episodes} --probe-episodes "
        f"{args.probe_episodes} --workers {args.workers}` in {elapsed / 60:.0f} min on a 2-core machine shared with "
        f"other jobs (load average {load:.1f} at the end). Cameras off: none of these policies reads images.",
        "",
        f"## Success over {args.episodes} seeded episodes per task (%)",
        "",
        "Seeds are the evaluation runner's (`taclab.eval.rollout.evaluate`, seed 0). The demonstrator is "
        "`taclab.papers.vital.demonstrator.VitalDemonstrator` with its defaults; *without touch* it makes no "
        "contact-driven corrections (it neither backs off when the skin says the part caught the rim nor when "
        "the reading nears the abort threshold). The zero policy sends seven zeros (no motion, no grip force: an "
        "in-hand part falls out); the random policy draws uniformly from the action box.",
        "",
        "| task | demonstrator | demonstrator without touch | zero | random | demonstrator steps (mean) | "
        "failures of the demonstrator without touch |",
        "|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        r = table[task]
        lines.append(
            f"| {task} | {pct(r['demonstrator'])} | {pct(r['demonstrator without touch'])} | {pct(r['zero'])} | "
            f"{pct(r['random'])} | {r['demonstrator']['mean_steps']:.1f} | "
            f"{r['demonstrator without touch']['failures_by_kind'] or '-'} |"
        )
    ok = all(table[t]["demonstrator"]["success_rate"] >= 95 for t in TASKS) and all(
        table[t][p]["success_rate"] < 5 for t in TASKS for p in ("zero", "random")
    )
    lines += [
        "",
        f"Acceptance (demonstrator >= 95 %, zero and random < 5 % on every task): **{'met' if ok else 'NOT met'}**.",
        "",
        "## Does the skin carry the contact state?",
        "",
        "Episodes of the demonstrator with a poor close-range estimate (near belief error 1.2 mm) on the insertion "
        "tasks, the target at a random place (reset option `target=novel`, 8-20 cm from the training spot); at the "
        "first felt contact, the skin reading (30 values, scaled to unit norm) and the true lateral error of the "
        "tip from the hole. A ridge classifier predicts the sign of the error along each axis of the target frame "
        "where the error exceeds half the play; 5-fold cross-validated accuracy (%) beside the majority class, "
        "and the same probe on the hand's position (which cannot know where the hole is: the control) and on the "
        "hand's rotation (the wrist servos are compliant: a part that catches the rim tilts the hand, a second, "
        "proprioceptive sense of touch). *Alone*: contacts where only this axis is out of play.",
        "",
        "| task | contacts | axis | samples | majority | skin | hand position | hand rotation | skin, alone (n) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, res in probe_res.items():
        for ax in ("x", "y"):
            a = res.get(ax)
            if a is None:
                lines.append(f"| {task} | {res['contacts']} | {ax} | <10 | - | - | - | - | - |")
                continue
            alone = "-" if a["skin_alone"] is None else f"{100 * a['skin_alone']:.0f}"
            lines.append(
                f"| {task} | {res['contacts']} | {ax} | {a['samples']} | {100 * a['majority']:.0f} | "
                f"{100 * a['skin']:.0f} | {100 * a['hand_position']:.0f} | {100 * a['hand_rotation']:.0f} | "
                f"{alone} ({a['alone_samples']}) |"
            )
    lines += [
        "",
        "x runs along the part's long side (the pads' plane), y across it (the pads' normal). Raw numbers: "
        "`docs/results/vital_tasks.json`.",
        "",
    ]
    atomic_write_text(out, "\n".join(lines))
    atomic_write_text(out.with_suffix(".json"), json.dumps({"success": table, "probe": probe_res}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--probe-episodes", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/results/vital_tasks.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        table = success_table(args.episodes, args.workers, Path(tmp))
    probe_res = probe(args.probe_episodes, args.workers)
    write(args.out, table, probe_res, args, time.perf_counter() - t0)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
