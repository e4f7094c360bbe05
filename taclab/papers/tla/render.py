"""Example figures of the peg-in-hole task (``taclab render``): the scene after a collision, tactile sequences
for errors of each sign, and the gel's displacement field under both pads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.papers.tla.labels import tla_label
from taclab.papers.tla.learning import ENV_ID
from taclab.utils import save_png
from taclab.viz import shear_figure, tactile_figure


def render_examples(
    out: str | Path,
    seed: int = 0,
    shape: str = "square",
    clearance_mm: float = 2.0,
    magnitude_mm: float = 2.5,
    rotation_deg: float = 4.5,
    image_size: tuple[int, int] = (96, 96),
) -> list[Path]:
    """Save the scene after a collision, tactile sequences for errors of each sign along each axis, and the
    gel's displacement field for the same cases."""
    import matplotlib.pyplot as plt

    from taclab.envs.base import make

    out = Path(out)
    env = make(
        ENV_ID, shape=shape, clearance_mm=clearance_mm, image_size=image_size, sensor_noise=False, raw_fields=True
    )
    m, r = magnitude_mm, rotation_deg
    cases = [
        ("+ex", (m, 0.0, 0.0)),
        ("-ex", (-m, 0.0, 0.0)),
        ("+ey", (0.0, m, 0.0)),
        ("-ey", (0.0, -m, 0.0)),
        ("+erz (with +ex)", (m, 0.0, r)),
        ("-erz (with +ex)", (m, 0.0, -r)),
    ]
    seqs, titles, shears = [], [], []
    paths = []
    for i, (name, err) in enumerate(cases):
        obs, info = env.reset(seed=seed, options={"error": err})
        seqs.append(obs["tactile"])
        shears.append((obs["shear"][-1] - obs["shear"][0], obs["depth"][-1]))
        lab = tla_label(info["error"], info["clearance_mm"])
        titles.append(f"{name}: error {np.round(info['error'], 2).tolist()} -> label {np.round(lab, 2).tolist()}")
        if i == 0:
            paths.append(save_png(out / "scene.png", env.unwrapped.render_scene()))
    fig = tactile_figure(seqs, titles, suptitle=f"{shape} peg, clearance {clearance_mm} mm")
    paths.append(save_png(out / "tactile_sequences.png", fig))
    plt.close(fig)
    fig = shear_figure(
        shears, titles, env.unwrapped.config.scene.pad_width * 1e3, env.unwrapped.config.scene.pad_height * 1e3
    )
    paths.append(save_png(out / "shear_fields.png", fig))
    plt.close(fig)
    env.close()
    return paths
