"""Which action components has a VITAL BC policy learned from its demonstrations, and could its encoder have told it?

BC on the insertions lands the part turned by a few degrees (docs/vital.md, "Why BC fails on the insertions"). This
diagnostic reads a trained BAKU / ViSk / VITAL-BC policy on the frames of its own demonstrations (no augmentation,
no temporal ensemble) and reports, per action component:

- the fit: the coefficient of determination R^2 of the first action of each predicted chunk against the recorded
  action, over every frame (mostly training frames: a low value is underfitting, not a generalization gap);
- the readout: R^2 of a ridge regression of the recorded action on the policy's own image token (the trained
  encoder's 256-d output), fitted on the demonstrations whose episode index is not a multiple of 5 and scored on
  those that are (held out); the penalty is chosen on the episodes with index 1 mod 5, then refitted on all the
  fitting episodes. A readout well above the fit means the encoder carries what the head does not use.

    python benchmarks/vital_fit.py --demos runs/vital_dart2/demos --task plug
                                   --policy "BAKU=runs/vital_dart2/baku_plug/policy" [--policy NAME=PATH ...]
                                   [--adam-steps N] [--out docs/results/vital_fit.md]

Writes the table (markdown, JSON) and a PNG of both R^2 per component.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACTIONS = ("dx_mm", "dy_mm", "dz_mm", "drx_deg", "dry_deg", "drz_deg", "gripper")
READ = ("dx_mm", "dy_mm", "drz_deg")  # components the readout is fitted for
PENALTIES = (0.1, 1.0, 10.0, 100.0, 1000.0)
INPUTS = ("observation.wrist_rgb", "observation.wrist_mask", "observation.skin")


class PolicyKindError(ValueError):
    """A policy that is not one of VITAL's BC policies."""


def r2(pred: np.ndarray, target: np.ndarray) -> float | None:
    """1 - mean squared error / variance of the target; None for a constant target."""
    v = float(np.var(target))
    if v == 0.0:
        return None
    return 1.0 - float(np.mean((pred - target) ** 2)) / v


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    mean = float(y.mean())
    w = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ (y - mean))
    return w, mean


def _split(features: np.ndarray, episodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The features standardized with the fitting episodes' statistics, and the masks of the fitting episodes and
    of the held-out ones (index 0 mod 5)."""
    test = episodes % 5 == 0
    fit = ~test
    mu, sd = features[fit].mean(0), features[fit].std(0) + 1e-6
    return (features - mu) / sd, fit, test


def readout(features: np.ndarray, y: np.ndarray, episodes: np.ndarray) -> dict:
    """Held-out R^2 of a ridge regression of ``y`` on ``features`` (see the module's docstring for the split)."""
    x, fit, test = _split(features, episodes)
    val = episodes % 5 == 1
    if not test.any() or not val.any() or not (fit & ~val).any():
        raise ValueError("the readout needs episodes with index 0, 1 and 2-4 mod 5")
    inner = fit & ~val
    scores = []
    for p in PENALTIES:
        w, m = _ridge(x[inner], y[inner], p)
        scores.append(r2(x[val] @ w + m, y[val]) or -np.inf)
    best = PENALTIES[int(np.argmax(scores))]
    w, m = _ridge(x[fit], y[fit], best)
    return {"held_out_r2": r2(x[test] @ w + m, y[test]), "fit_r2": r2(x[fit] @ w + m, y[fit]), "penalty": best}


def adam_readout(features: np.ndarray, y: np.ndarray, episodes: np.ndarray, steps: int, lr: float = 1e-4) -> dict:
    """R^2 of a linear map from ``features`` (standardized) to the standardized targets ``y`` (n, k), started at zero
    and trained by Adam (``lr``: the CPU configs' 1e-4) on minibatches of 32 for ``steps`` steps (as the policy's
    head is trained, without the closed form), on the fitting episodes and on the held-out ones (index 0 mod 5), per
    target column."""
    import torch

    xs, fit, test = _split(features, episodes)
    ym, ys = y[fit].mean(0), y[fit].std(0) + 1e-9
    x = torch.as_tensor(xs, dtype=torch.float32)
    t = torch.as_tensor((y - ym) / ys, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], t.shape[1])
    torch.nn.init.zeros_(lin.weight)  # a deterministic start: the fit depends on the steps only
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.Adam(lin.parameters(), lr=lr)
    rows = torch.as_tensor(np.flatnonzero(fit))
    for _ in range(steps):
        idx = rows[torch.randint(len(rows), (32,), generator=g)]
        loss = torch.nn.functional.mse_loss(lin(x[idx]), t[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = lin(x).numpy() * ys + ym
    return {
        "fit_r2": [r2(pred[fit, j], y[fit, j]) for j in range(y.shape[1])],
        "held_out_r2": [r2(pred[test, j], y[test, j]) for j in range(y.shape[1])],
    }


def measure(demos: Path, task: str, policy: Path, adam_steps: int = 0) -> dict:
    import torch

    import taclab.papers  # noqa: F401 - the VITAL policies and learning spec
    from taclab.data.reader import load_arrays
    from taclab.policies import load_policy

    torch.set_num_threads(1)
    d = load_arrays(demos, task, columns=[*INPUTS, "action", "episode_index"], progress=False)
    p = load_policy(policy)
    if not hasattr(p, "chunk") or not hasattr(p, "model") or not hasattr(p.model, "image"):
        raise PolicyKindError(f"{policy} holds a {p.name!r} policy; allowed: baku, visk (VITAL's BC policies)")
    p.model.eval()
    n = len(d["action"])
    preds, feats = [], []
    # the image token the chunk is predicted from, kept as the policy computes it
    hook = p.model.image.register_forward_hook(lambda module, args, token: feats.append(token.double().numpy()))
    try:
        with torch.no_grad():
            for i in range(0, n, 64):
                preds.append(p.chunk(p.prepare({k: d[k][i : i + 64] for k in INPUTS if k in d}))[:, 0].double().numpy())
    finally:
        hook.remove()
    pred, feat, act = np.concatenate(preds), np.concatenate(feats), np.asarray(d["action"], np.float64)
    episodes = np.asarray(d["episode_index"])
    out = {"frames": n, "episodes": int(len(np.unique(episodes))), "components": {}}
    for j, name in enumerate(ACTIONS):
        row = {"std": float(act[:, j].std()), "pred_std": float(pred[:, j].std()), "fit_r2": r2(pred[:, j], act[:, j])}
        if name in READ:
            try:
                row["readout"] = readout(feat, act[:, j], episodes)
            except ValueError:  # too few demonstrations to hold some out
                row["readout"] = None
        out["components"][name] = row
    if adam_steps > 0:
        cols = [ACTIONS.index(c) for c in READ]
        a = adam_readout(feat, act[:, cols], episodes, adam_steps)
        for i, c in enumerate(READ):
            out["components"][c]["adam"] = {
                "steps": adam_steps,
                "fit_r2": a["fit_r2"][i],
                "held_out_r2": a["held_out_r2"][i],
            }
    return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def write(results: dict, out: Path, args) -> None:
    from taclab.utils import atomic_write_text, save_png

    lines = [
        "# What VITAL's BC policies fit of their demonstrations",
        "",
        f"`python benchmarks/vital_fit.py --demos {args.demos} --task {args.task} "
        + " ".join(f'--policy "{s}"' for s in args.policy)
        + (f" --adam-steps {args.adam_steps}" if args.adam_steps else "")
        + "`: per action component, the R^2 of the policy's first predicted action against the recorded action on "
        "every demonstration frame (fit), and the held-out R^2 of a ridge readout of the recorded action from the "
        "policy's own image token (episodes with index 0 mod 5 held out, the penalty chosen on those with index 1 "
        "mod 5). '-': a component that is constant in the demonstrations. With `--adam-steps N`, also a linear map "
        "from the same token, started at zero and trained by Adam (1e-4, the CPU configs' rate, batch 32, N steps) "
        "on the fitting episodes, as a head is "
        "trained: its R^2 on the fitting and on the held-out episodes.",
        "",
        "| policy | frames | component | action std | predicted std | fit R^2 | readout R^2 (held out) "
        "| Adam readout R^2: fitting / held out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for comp, c in r["components"].items():
            ro = c.get("readout")
            lines.append(
                f"| {name} | {r['frames']} | {comp} | {c['std']:.3f} | {c['pred_std']:.3f} | {_f(c['fit_r2'])} | "
                f"{_f(ro['held_out_r2']) if ro else ('-' if comp in READ else '')} | "
                + (f"{_f(c['adam']['fit_r2'])} / {_f(c['adam']['held_out_r2'])} |" if "adam" in c else " |")
            )
    lines += ["", f"![fit and readout]({out.with_suffix('.png').name})", ""]
    atomic_write_text(out, "\n".join(lines))
    atomic_write_text(out.with_suffix(".json"), json.dumps({"command": vars(args), "results": results}, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.2), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        xs = np.arange(len(READ))
        fit = [r["components"][c]["fit_r2"] or 0.0 for c in READ]
        ro = [(r["components"][c]["readout"] or {}).get("held_out_r2") or 0.0 for c in READ]
        ax.bar(xs - 0.2, fit, 0.4, label="policy's fit")
        ax.bar(xs + 0.2, ro, 0.4, label="readout of its image token (held out)")
        ax.set_xticks(xs, READ)
        ax.set_ylim(min(0.0, *fit, *ro), 1.0)
        ax.set_title(name)
        ax.set_ylabel("R^2")
    axes[0][0].legend(fontsize=7)
    save_png(out.with_suffix(".png"), fig)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demos", required=True, help="the demonstrations the policies were trained on (a dataset folder)")
    ap.add_argument("--task", default="plug", help="the split (task) of the demonstrations")
    ap.add_argument("--policy", action="append", required=True, help="NAME=PATH of a policy folder (repeatable)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "vital_fit.md"))
    ap.add_argument("--adam-steps", type=int, default=0, help="also train a linear readout by Adam for N steps")
    args = ap.parse_args()
    pols = {}
    for spec in args.policy:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            ap.error(f"--policy {spec!r}: expected NAME=PATH")
        if not (Path(path) / "policy.json").is_file():
            ap.error(f"--policy {spec!r}: no policy.json in {path}")
        pols[name] = Path(path)
    if args.adam_steps < 0:
        ap.error(f"--adam-steps {args.adam_steps}: expected 0 or more")
    if not (Path(args.demos) / "dataset.json").is_file():
        ap.error(f"--demos {args.demos!r}: not a dataset folder (no dataset.json)")
    from taclab.data.reader import DatasetError

    try:
        results = {name: measure(Path(args.demos), args.task, path, args.adam_steps) for name, path in pols.items()}
    except DatasetError as e:
        ap.error(f"--demos {args.demos!r} --task {args.task!r}: {e}")
    except (ValueError, OSError) as e:  # a policy that is not VITAL's BC, does not load, or reads other inputs
        ap.error(f"--policy: {e}")
    for name, r in results.items():
        for comp in READ:
            c = r["components"][comp]
            ro = (c["readout"] or {}).get("held_out_r2")
            print(f"{name} {comp}: fit R2 {_f(c['fit_r2'])}, readout R2 {_f(ro)}")
    write(results, Path(args.out), args)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
