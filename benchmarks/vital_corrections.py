"""Do VITAL's policies correct a sideways error as they come down to the target? A closed-loop trace.

BC on the insertion tasks lands the part millimetres off the hole and presses it onto the surface until the skin
abort (docs/vital.md, "Why BC fails on the insertions"). This trace runs each policy in closed loop on the
task's `paper` list (green screen, trained position) and, at every step, pairs the part's sideways error from its
goal before the step (x, y, mm, privileged) with the sideways move the policy commands (hand x, y, mm). Per band
of the part's height above its goal it reports the mean error, the mean commanded move and the correction gain:
the least-squares slope of the move on minus the error (1: the move cancels the error; 0: the error is ignored).
The scripted demonstrator (privileged) is the reference.

    python benchmarks/vital_corrections.py --task plug --policy "BAKU=runs/vital_b/bc/baku_plug/policy"
                                           [--policy NAME=PATH ...] [--episodes 10]
                                           [--out docs/results/vital_corrections.md]

Writes the table (markdown, JSON) and a PNG of the gain per band.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BANDS = ((50.0, np.inf), (20.0, 50.0), (-np.inf, 20.0))
BAND_NAMES = ("above 50 mm", "20-50 mm", "below 20 mm")


def trace(policy: str, task: str, episodes: int, seed: int) -> dict:
    """(error before the step, commanded sideways move, success) over ``episodes`` closed-loop episodes."""
    import torch

    from taclab.envs.base import make
    from taclab.envs.vital import ENV_CLASSES, ENV_IDS

    torch.set_num_threads(1)
    (paper,) = ENV_CLASSES[task].TASK_LISTS["paper"]
    if policy == "demonstrator":
        from taclab.envs.vital import VitalConfig
        from taclab.papers.vital.dataset import demonstrator_for

        env = make(ENV_IDS[task])
        pol = demonstrator_for(task, VitalConfig())
    else:
        from taclab.policies import load_policy

        pol = load_policy(policy)
        frozen = getattr(pol, "base", None) or getattr(pol, "enc", None)
        io = (frozen.policy if frozen is not None else pol).io
        env = make(ENV_IDS[task], image_size=list(io.inputs["observation.wrist_rgb"].shape[:2]))
    errs, moves, wins = [], [], 0
    try:
        for i in range(episodes):
            s = seed + i
            obs, info = env.reset(seed=s, options=dict(paper))
            pol.reset(env.unwrapped.task_of(info), seed=s)
            err = np.asarray(info["goal_error_mm"], float)
            while True:
                a = np.asarray(pol.select_action(obs, info), float)
                errs.append(err)
                moves.append(a[:2])
                obs, _, term, trunc, info = env.step(a)
                err = np.asarray(info["goal_error_mm"], float)
                if term or trunc:
                    wins += bool(info["is_success"])
                    break
    finally:
        env.close()
    return {"errors": np.array(errs), "moves": np.array(moves), "success": wins, "episodes": episodes}


def bands(t: dict) -> list[dict]:
    e, m = t["errors"], t["moves"]
    out = []
    for lo, hi in BANDS:
        k = (e[:, 2] >= lo) & (e[:, 2] < hi)
        ek, mk = e[k, :2].ravel(), m[k].ravel()
        out.append(
            {
                "steps": int(k.sum()),
                "mean_abs_error_mm": float(np.abs(ek).mean()) if k.any() else None,
                "mean_abs_move_mm": float(np.abs(mk).mean()) if k.any() else None,
                "gain": float(-(mk @ ek) / (ek @ ek)) if k.any() and ek @ ek > 0 else None,
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="plug", help="plug, usb, key (an insertion task)")
    p.add_argument("--policy", action="append", default=[], help="NAME=PATH of a policy folder (repeatable)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=1_000_000)
    p.add_argument("--no-demonstrator", action="store_true", help="leave out the scripted reference")
    p.add_argument("--out", type=Path, default=ROOT / "docs/results/vital_corrections.md")
    args = p.parse_args()
    if args.task not in ("plug", "usb", "key"):
        p.error(f"--task {args.task!r}: expected an insertion task, one of plug, usb, key")
    runs = [] if args.no_demonstrator else [("demonstrator", "demonstrator")]
    for spec in args.policy:
        name, sep, path = spec.partition("=")
        if not sep or not name or not (Path(path) / "policy.json").is_file():
            p.error(f"--policy {spec!r}: expected NAME=PATH of a policy folder holding policy.json")
        runs.append((name, path))
    if args.episodes < 1:
        p.error(f"--episodes {args.episodes}: expected at least 1")
    rows = []
    for name, path in runs:
        t = trace(path, args.task, args.episodes, args.seed)
        rows.append(
            {"name": name, "policy": path, "success": t["success"], "episodes": t["episodes"], "bands": bands(t)}
        )
        print(json.dumps(rows[-1]), flush=True)
    f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
    lines = [
        f"# Do the policies correct a sideways error near the target? ({args.task})",
        "",
        "`"
        + " ".join(
            [f"python benchmarks/vital_corrections.py --task {args.task} --episodes {args.episodes}"]
            + (["--no-demonstrator"] if args.no_demonstrator else [])
            + [f'--policy "{r["name"]}={r["policy"]}"' for r in rows if r["policy"] != "demonstrator"]
        )
        + f"`: closed loop on the `paper` list, episode seeds from {args.seed}. Per band of the part's height above "
        "its goal: the mean sideways error before a step (|x|, |y|, mm), the mean commanded sideways move (mm) and "
        "the correction gain (least-squares slope of the move on minus the error; 1 cancels the error, 0 ignores "
        "it). The demonstrator is privileged: the reference.",
        "",
        "| policy | success | " + " | ".join(f"{b}: error / move / gain (steps)" for b in BAND_NAMES) + " |",
        "|---|---|" + "---|" * len(BAND_NAMES),
    ]
    for r in rows:
        cells = [
            f"{f(b['mean_abs_error_mm'])} / {f(b['mean_abs_move_mm'])} / {f(b['gain'], 2)} ({b['steps']})"
            for b in r["bands"]
        ]
        lines.append(f"| {r['name']} | {r['success']}/{r['episodes']} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    k = np.arange(len(BANDS))
    w = 0.8 / max(1, len(rows))
    for j, r in enumerate(rows):
        ax.bar(k + j * w - 0.4 + w / 2, [b["gain"] or 0.0 for b in r["bands"]], w, label=r["name"])
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xticks(k, BAND_NAMES)
    ax.set_ylabel("correction gain")
    ax.set_title(f"{args.task}: sideways move per mm of sideways error")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
