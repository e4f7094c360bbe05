"""How much of the pose error the tactile observation carries; writes docs/results/tactile_information.md.

Collects collision attempts from taclab/PegInHole-v0 at its default (benchmarked) settings: the first attempt
of episodes with the env's random misalignments, the tactile observation as the policy sees it (4 frames x 2
pads of 64x64 RGB with sensor noise). A small CNN, trained on 75 % of them, predicts the sign of ex, ey and erz
from the images alone; its accuracy on the other 25 % is reported per axis with the chance level (the majority
class) and a 95 % interval. The same is done from the raw fields (depth, shear) with a small MLP, to separate
what the physics carries from what the optical rendering keeps.

Usage: python benchmarks/tactile_information.py [--samples 8000] [--epochs 16] [--workers 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import math
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

from taclab.utils import atomic_write_text, save_png

AXES = ("ex", "ey", "erz")


def _collect(job):
    seeds, shape, clearance = job
    from taclab.envs.peg_in_hole import PegInHoleEnv

    env = PegInHoleEnv(raw_fields=True)
    imgs, depth, shear, errs = [], [], [], []
    for s in seeds:
        obs, info = env.reset(seed=int(s), options={"shape": shape, "clearance_mm": clearance})
        imgs.append(obs["tactile"])
        depth.append(obs["depth"])
        shear.append(obs["shear"])
        errs.append(info["error"])
    return np.stack(imgs), np.stack(depth), np.stack(shear), np.stack(errs)


def collect(n: int, workers: int, shape: str = "square", clearance: float = 2.0, seed: int = 0):
    seeds = np.arange(n) + seed * 10_000_000
    chunks = [(c, shape, clearance) for c in np.array_split(seeds, max(1, workers * 4))]
    with mp.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_collect, chunks)
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def train_classifier(net, x_train, y_train, x_test, epochs: int, seed: int, lr: float = 1e-3):
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(len(x_train) / 64))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(x_train), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x_test[i : i + 256]) for i in range(0, len(x_test), 256)]).numpy() > 0


def image_net(channels: int):
    """A small CNN that keeps full resolution in its first layer: marker shifts are sub-pixel."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(channels, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(96, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(512, 128), nn.ReLU(), nn.Linear(128, 3),
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("docs/results/tactile_information.md"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.workers)
    t0 = time.perf_counter()
    imgs, depth, shear, err = collect(args.samples, args.workers)
    print(f"collected {len(err)} attempts in {time.perf_counter() - t0:.0f} s", flush=True)
    t_collect = time.perf_counter() - t0
    n = len(err)
    y = (err > 0).astype(np.float32)
    n_train = int(0.75 * n)

    # images: the last frame and what the press changed (frames 1-3 minus the first), 2 pads x RGB each
    x = torch.from_numpy(imgs).permute(0, 1, 2, 5, 3, 4).float() / 255.0  # n, T, pad, 3, H, W
    x = torch.cat([x[:, 3], x[:, 1] - x[:, 0], x[:, 2] - x[:, 0], x[:, 3] - x[:, 0]], dim=1)
    x = x.reshape(n, -1, *imgs.shape[3:5])
    mu, sd = x[:n_train].mean(0, keepdim=True), x[:n_train].std(0, keepdim=True) + 1e-3
    x = (x - mu) / sd
    yt = torch.tensor(y)
    t1 = time.perf_counter()
    pred_img = train_classifier(image_net(x.shape[1]), x[:n_train], yt[:n_train], x[n_train:], args.epochs, 0, lr=2e-3)
    t_img = time.perf_counter() - t1
    print(f"image CNN trained in {t_img:.0f} s", flush=True)

    # raw fields: depth and shear pooled 4x4 -> MLP
    def pool(a):
        s = a.shape
        return a.reshape(s[0], s[1], s[2], s[3] // 4, 4, s[4] // 4, 4, *s[5:]).mean(axis=(4, 6))

    f = np.concatenate([pool(depth).reshape(n, -1) * 1e3, pool(shear).reshape(n, -1) * 1e3], axis=1)
    f = torch.tensor(f, dtype=torch.float32)
    f = (f - f[:n_train].mean(0)) / (f[:n_train].std(0) + 1e-6)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(f.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 3),
    )  # fmt: skip
    pred_raw = train_classifier(mlp, f[:n_train], yt[:n_train], f[n_train:], 60, 0)

    test_err, test_y = err[n_train:], y[n_train:].astype(bool)
    decisive = np.abs(test_err) > np.array([1.0, 1.0, 1.5])  # beyond c/2 (2 mm clearance) and 1.5 deg
    rows = []
    results = {}
    for j, ax in enumerate(AXES):
        chance = max(test_y[:, j].mean(), 1 - test_y[:, j].mean())
        r = {}
        for name, pred in (("images", pred_img), ("raw fields", pred_raw)):
            ok = pred[:, j] == test_y[:, j]
            lo, hi = wilson(int(ok.sum()), len(ok))
            okd = ok[decisive[:, j]]
            r[name] = (ok.mean(), lo, hi, okd.mean(), len(okd))
        results[ax] = (chance, r)
        im, raw = r["images"], r["raw fields"]
        rows.append(
            f"| {ax} | {100 * chance:.1f} | **{100 * im[0]:.1f}** ({100 * im[1]:.1f}-{100 * im[2]:.1f}) | "
            f"{100 * im[3]:.1f} (n={im[4]}) | {100 * raw[0]:.1f} ({100 * raw[1]:.1f}-{100 * raw[2]:.1f}) | "
            f"{100 * raw[3]:.1f} |"
        )
    x_acc, y_acc = results["ex"][1]["images"][0], results["ey"][1]["images"][0]

    # figure: accuracies, and one tactile sequence per sign of ex
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    xs = np.arange(3)
    ax.bar(xs - 0.2, [100 * results[a][1]["images"][0] for a in AXES], 0.4, label="from images")
    ax.bar(xs + 0.2, [100 * results[a][1]["raw fields"][0] for a in AXES], 0.4, label="from raw fields")
    ax.plot([-0.5, 2.5], [50, 50], "k--", lw=1, label="chance")
    ax.set_xticks(xs, [f"sign of {a}" for a in AXES])
    ax.set_ylim(40, 100)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("direction of the pose error from touch alone", fontsize=10)
    fig.tight_layout()
    png = save_png(args.out.with_suffix(".png"), fig)
    plt.close(fig)

    lines = [
        "# Touch carries the pose error",
        "",
        f"Written by `python benchmarks/tactile_information.py --samples {args.samples} --epochs {args.epochs}`.",
        f"{n} collision attempts of a square peg at 2.0 mm clearance (collected in {t_collect:.0f} s), "
        f"{n_train} for training and {n - n_train} for testing; the CNN trained in {t_img:.0f} s.",
        "",
        "The settings are the env's defaults, the ones `benchmarks/sim_speed.py` measures: 32x32 taxels, 64x64 "
        "images with sensor noise, timestep 1 ms.",
        "",
        "| sign of | chance (%) | from images: accuracy (95 % CI) | images, decisive errors | "
        "from raw fields | raw fields, decisive |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Decisive errors: |ex|, |ey| > 1 mm (beyond c/2, where the label moves the peg) and |erz| > 1.5 deg.",
        "",
        f"From the images, the sign of ey is read {'less' if y_acc < x_acc else 'more'} accurately than the sign "
        f"of ex ({100 * y_acc:.1f} % vs {100 * x_acc:.1f} %). "
        + (
            "This agrees with the TLA paper's finding that y, the axis perpendicular to the pads, is harder. "
            if y_acc < x_acc
            else "The TLA paper found y, the axis perpendicular to the pads, harder; this simulator does not "
            "reproduce that. Here ey shows as a difference between the two pads (the gel is pressed harder at the "
            "bottom of one pad and the top of the other, and one pad's markers move up more), which the images "
            "keep well; ex shows as a turn of the marker field within each pad, and that turn stays small because "
            "friction between the peg's tip and the block holds the tip while the hand presses, so the peg "
            "pivots little in the grasp. "
        )
        + "Rotation is the weakest: a rotated peg lands on the rim along a skewed line or on one corner, and what "
        "that changes under the pads is a small shift of the contact load between the pads and along them; the "
        "raw fields carry it better than the 64x64 noisy images keep it.",
        "",
        f"![accuracy]({png.name})",
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
