"""How precisely can the BC policies' image encoder see where the target is and how the hand is turned? A probe
of the wrist camera's resolution and of the trunk's depth, on VITAL's demonstrations.

The BC policies of the insertion tasks land the part a few millimetres off the hole (docs/vital.md, "Why BC
fails on the insertions"). This probe asks whether the image encoder can see the hand's offset from the goal at
all at a given image size and trunk depth: the policies' own encoder (`taclab.policies.visk.ImageEncoder`:
ResNet-18 stages with GroupNorm, spatial-softmax keypoints, a linear layer) with a linear readout is trained to
regress the sideways goal error (x, y, mm, the env's `goal_error_mm` before the step) and the hand's yaw (deg,
from the proprioception; the target's yaw is fixed on the trained scene, so this is the yaw error up to the
part's turn in the grasp) from the wrist image, on the demonstrations of 26 episodes, and scored on the frames of
the 6 held out, overall and near the target (the part's tip within 30 mm above the entry, where the insertion is
decided). The same steps, batch and learning
rate for every variant; the CPU seconds per step are measured in the same run.

    python benchmarks/vital_perception.py --demos runs/vital_b/demos [--task plug] [--steps 600]
                                          [--variants 64:2,128:2,96:2,64:1] [--out docs/results/vital_perception.md]

Writes the table (markdown) and a PNG of the held-out errors beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frames(demos: Path, task: str):
    """Images (N, 128, 128, 3) uint8, the targets (N, 3): goal error x, y before each step (mm) and the hand's
    yaw (deg); the height above the goal (N,) mm; episode ids (N,)."""
    from taclab.data.reader import load_arrays

    d = load_arrays(
        demos,
        task,
        columns=["observation.wrist_rgb", "observation.proprio", "next.goal_error_mm", "episode_index", "frame_index"],
        progress=False,
    )
    ep, fr, err = d["episode_index"], d["frame_index"], d["next.goal_error_mm"]
    keep = fr > 0  # the error before step t is the error after step t - 1 of the same episode
    prev = np.roll(err, 1, axis=0)
    ok = keep & (np.roll(ep, 1) == ep)
    yaw = np.degrees(d["observation.proprio"][:, 5])
    target = np.c_[prev[:, :2], yaw].astype(np.float32)
    return d["observation.wrist_rgb"][ok], target[ok], prev[ok, 2], ep[ok]


def resize(rgb: np.ndarray, size: int) -> torch.Tensor:
    x = torch.as_tensor(rgb).permute(0, 3, 1, 2).float() / 255
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x


def probe(rgb, err, height, ep, size: int, stages: int, steps: int, batch: int, lr: float, seed: int, held: int):
    from taclab.policies.visk import ImageEncoder

    torch.manual_seed(seed)
    eps = np.unique(ep)
    test_eps = np.random.default_rng(seed).choice(eps, held, replace=False)
    te = np.isin(ep, test_eps)
    x = resize(rgb, size)
    mean, std = x[~te].mean((0, 2, 3), keepdim=True), x[~te].std((0, 2, 3), keepdim=True)
    x = (x - mean) / std
    y = torch.as_tensor(err)
    ym, ys = y[~te].mean(0), y[~te].std(0)
    enc = ImageEncoder(stages, 256, 256)
    head = torch.nn.Linear(256, y.shape[1])
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr)
    tr_idx = np.flatnonzero(~te)
    gen = np.random.default_rng(seed)
    t0 = time.process_time()
    for _ in range(steps):
        i = torch.as_tensor(gen.choice(tr_idx, batch))
        loss = F.mse_loss(head(enc(x[i])), (y[i] - ym) / ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    cpu_per_step = (time.process_time() - t0) / steps
    enc.eval()
    with torch.no_grad():
        pred = torch.cat([head(enc(x[j : j + 64])) for j in range(0, len(x), 64)]) * ys + ym
    ae = (pred - y).abs().numpy()
    near = te & (height < 30)
    base = (y[te] - ym).abs().mean(0).numpy()
    return {
        "size": size,
        "stages": stages,
        "map": size // (2 ** (stages + 1)),
        "train_mae": ae[~te].mean(0).tolist(),
        "test_mae": ae[te].mean(0).tolist(),
        "test_near_mae": ae[near].mean(0).tolist(),
        "test_near_frames": int(near.sum()),
        "test_frames": int(te.sum()),
        "mean_baseline_mae": base.tolist(),
        "cpu_s_per_step": cpu_per_step,
    }


def write(rows: list[dict], out: Path, args) -> None:
    f = lambda v: f"{v[0]:.2f} / {v[1]:.2f} / {v[2]:.2f}"
    lines = [
        "# Can the BC image encoder see the goal? A probe of image size and trunk depth",
        "",
        f"`python benchmarks/vital_perception.py --demos {args.demos} --task {args.task} --steps {args.steps} "
        f"--batch {args.batch} --lr {args.lr} --variants {args.variants}` on the {args.task} demonstrations: "
        "the BC policies' image encoder "
        "(ResNet-18 stages with GroupNorm, 256 spatial-softmax keypoints, linear to 256) and a linear readout "
        "regress the sideways goal error (x / y, mm) and the hand's yaw (deg; the target's is fixed) from the wrist "
        "image; trained on the frames of all but "
        f"{args.held} episodes, scored on the {args.held} held out "
        f"({rows[0]['test_frames']} frames; 'near': the part within 30 mm above the entry, "
        f"{rows[0]['test_near_frames']} frames). Predicting the training mean scores "
        f"{f(rows[0]['mean_baseline_mae'])} mm. One seed, one thread; CPU seconds per training step at batch "
        f"{args.batch}.",
        "",
        "| image px | ResNet stages | keypoint map | held-out MAE x / y (mm) / yaw (deg) | near the entry "
        "| training MAE | CPU s per step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['stages']} | {r['map']} x {r['map']} | {f(r['test_mae'])} | "
            f"{f(r['test_near_mae'])} | {f(r['train_mae'])} | {r['cpu_s_per_step']:.2f} |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [f"{r['size']} px, {r['stages']} st." for r in rows]
    k = np.arange(len(rows))
    for j, (lab, key) in enumerate((("held out", "test_mae"), ("near the entry", "test_near_mae"))):
        ax.bar(k + 0.4 * j - 0.2, [r[key][2] for r in rows], 0.4, label=f"yaw, {lab}")
        ax.plot(k + 0.4 * j - 0.2, [np.mean(r[key][:2]) for r in rows], "k^" if j else "kv", label=f"x, y (mm), {lab}")
    ax.axhline(rows[0]["mean_baseline_mae"][2], color="k", ls="--", lw=1, label="yaw, predicting the mean")
    ax.set_xticks(k, names)
    ax.set_ylabel("mean abs. error (deg; mm)")
    ax.set_title(f"{args.task}: goal offset and yaw read from the wrist image")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--demos", type=Path, default=ROOT / "runs/vital_b/demos")
    p.add_argument("--task", default="plug")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--held", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", default="64:2,128:2,96:2,64:1", help="image_px:resnet_stages,...")
    p.add_argument("--out", type=Path, default=ROOT / "docs/results/vital_perception.md")
    args = p.parse_args()
    try:
        variants = [tuple(int(v) for v in s.split(":")) for s in args.variants.split(",")]
        assert all(len(v) == 2 and 16 <= v[0] <= 512 and 1 <= v[1] <= 4 for v in variants)
    except (ValueError, AssertionError):
        p.error(
            f"--variants {args.variants!r}: expected image_px:stages pairs, e.g. 64:2,128:2 (px 16-512, stages 1-4)"
        )
    if not args.demos.is_dir():
        p.error(f"--demos {args.demos}: no such dataset folder (benchmarks/vital.py writes ROOT/demos)")
    torch.set_num_threads(1)
    rgb, err, height, ep = frames(args.demos, args.task)
    rows = []
    for size, stages in variants:
        r = probe(rgb, err, height, ep, size, stages, args.steps, args.batch, args.lr, args.seed, args.held)
        print(json.dumps(r), flush=True)
        rows.append(r)
        write(rows, args.out, args)


if __name__ == "__main__":
    main()
