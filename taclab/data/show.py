"""A picture of one dataset row, for any declared schema (``taclab dataset show``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.data.meta import read_meta, split_schema
from taclab.data.reader import read_row


def _text(value, kind: str) -> str:
    if kind == "point_cloud":
        a = np.asarray(value)
        return f"{a.shape[0]} points of {a.shape[1]} values"
    if isinstance(value, np.ndarray):
        flat = np.round(value.astype(float).reshape(-1), 3).tolist() if value.dtype != object else []
        shown = ", ".join(f"{v:g}" for v in flat[:12]) + (", ..." if len(flat) > 12 else "")
        return f"[{shown}]" if value.ndim == 1 else f"{value.shape}: [{shown}]"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 90 else text[:87] + "..."


def sample_figure(path: str | Path, split: str, index: int):
    """A matplotlib figure of row ``index`` of ``split``: every image (image sequences as their tiles, frames
    down, the last grid dimension across) and the other keys as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.data.schema import tile

    row = read_row(path, split, index)
    schema = split_schema(read_meta(path), split)
    images = [f for f in schema.features if f.kind in ("image", "image_sequence")]
    others = [f for f in schema.features if f not in images]
    n = max(1, len(images))
    fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * n + 4.5, 3.6), squeeze=False)
    for ax, f in zip(axes[0], images, strict=False):
        img = tile(row[f.name]) if f.kind == "image_sequence" else row[f.name]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        ax.set_title(f"{f.name} {list(f.shape)}", fontsize=9)
        ax.axis("off")
    for ax in axes[0][len(images) : n]:
        ax.axis("off")
    text = axes[0][n]
    text.axis("off")
    lines = [f"{f.name}: {_text(row[f.name], f.kind)}" for f in others]
    text.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8, transform=text.transAxes)
    fig.suptitle(f"{Path(path).name} {split}[{index}]", fontsize=10)
    return fig
