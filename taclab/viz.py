"""Figures a person looks at: tactile sequences, gel shear fields, success bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.utils import save_png


def tactile_strip(tactile: np.ndarray, gap: int = 2) -> np.ndarray:
    """Tile a (T, 2, H, W, 3) tactile sequence into one image: a row per pad, a column per frame."""
    t, p, h, w, _ = tactile.shape
    out = np.full((p * h + (p - 1) * gap, t * w + (t - 1) * gap, 3), 255, np.uint8)
    for i in range(t):
        for k in range(p):
            out[k * (h + gap) : k * (h + gap) + h, i * (w + gap) : i * (w + gap) + w] = tactile[i, k]
    return out


def tactile_figure(sequences: list[np.ndarray], titles: list[str], suptitle: str = ""):
    """A matplotlib figure with one tactile strip per sequence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(sequences)
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, seq, title in zip(axes.flat, sequences, titles, strict=False):
        ax.imshow(tactile_strip(seq))
        ax.set_title(title, fontsize=9)
    fig.text(
        0.01, 0.005, "columns: frames 0-3 (first contact -> end of press); rows: pad 0 (-y), pad 1 (+y)", fontsize=7
    )
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def shear_figure(fields: list[tuple[np.ndarray, np.ndarray]], titles: list[str], width_mm: float, height_mm: float):
    """Arrows of the gel's displacement during the press (last frame minus first) under both pads.

    ``fields`` holds, per case, the shear change (2, R, C, 2) in m and the depth (2, R, C) in m.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(fields)
    fig, axes = plt.subplots(n, 2, figsize=(5.2, 2.3 * n), squeeze=False)
    for row, ((shear, depth), title) in enumerate(zip(fields, titles, strict=True)):
        r, c = depth.shape[1:]
        x = (np.arange(c) + 0.5) / c * width_mm - width_mm / 2
        z = height_mm / 2 - (np.arange(r) + 0.5) / r * height_mm
        for k in range(2):
            ax = axes[row, k]
            ax.imshow(depth[k] * 1e3, extent=(x[0], x[-1], z[-1], z[0]), cmap="Greys", vmin=0, vmax=1.0)
            s = 3
            ax.quiver(
                x[::s],
                z[::s],
                shear[k, ::s, ::s, 0] * 1e3,
                -shear[k, ::s, ::s, 1] * 1e3,
                color="tab:red",
                angles="xy",
                scale_units="xy",
                scale=0.2,
                width=0.006,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"pad {k}" + ("" if k else f"   {title.split(':')[0]}"), fontsize=8, loc="left")
    fig.suptitle("gel displacement during the press (arrows x5), over the indentation", fontsize=9)
    fig.tight_layout()
    return fig


def success_bars(stats: dict[str, dict[str, float]], title: str, path: str | Path) -> Path:
    """Bar chart of success rates: ``stats[group][policy] = success %``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(stats)
    policies = list(next(iter(stats.values())))
    x = np.arange(len(groups))
    w = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(1.4 * len(groups) + 2, 3.2))
    for j, p in enumerate(policies):
        vals = [stats[g][p] for g in groups]
        ax.bar(x + (j - (len(policies) - 1) / 2) * w, vals, w, label=p)
    ax.set_xticks(x, groups)
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = save_png(path, fig)
    plt.close(fig)
    return p
