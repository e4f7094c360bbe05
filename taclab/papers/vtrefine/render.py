"""Figures of the bimanual assembly (``taclab render``): the scene at three moments of a demonstration, the
visuo-tactile point cloud with its tactile points coloured by pressure, and the taxel images of the four pads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.utils import save_png

ENV_ID = "taclab/BimanualAssembly-v0"
PAD_TITLES = ("hand 0 (socket), pad 0", "hand 0 (socket), pad 1", "hand 1 (peg), pad 0", "hand 1 (peg), pad 1")


def _demo_frames(env, seed: int, max_steps: int = 150):
    """Run the demonstrator; keep the observation, info and scene image at the start, once both parts are lifted,
    and at the end."""
    from taclab.papers.vtrefine.demonstrator import BimanualDemonstrator

    demo = BimanualDemonstrator()
    obs, info = env.reset(seed=seed)
    demo.reset(env.unwrapped.task_of(info), seed=seed)
    frames = {"start": (obs, info, env.unwrapped.render_scene())}
    for _ in range(max_steps):
        obs, _, term, trunc, info = env.step(demo.select_action(obs, info))
        if "lifted" not in frames and info["lifted"] == 2:
            frames["lifted"] = (obs, info, env.unwrapped.render_scene())
        if term or trunc:
            break
    frames["end"] = (obs, info, env.unwrapped.render_scene())
    return frames


def cloud_figure(cloud: np.ndarray, title: str = ""):
    """A 3-D scatter of a visuo-tactile cloud (N, 6): visual points grey, tactile points coloured by pressure."""
    import matplotlib.pyplot as plt

    vis = cloud[cloud[:, 3] > 0.5]
    tac = cloud[cloud[:, 4] > 0.5]
    fig = plt.figure(figsize=(8, 6))
    ax = fig.add_subplot(projection="3d")
    ax.scatter(*vis[:, :3].T * 1000, s=4, c="0.55", label=f"visual ({len(vis)})", depthshade=False)
    order = np.argsort(tac[:, 5])
    sc = ax.scatter(*tac[order, :3].T * 1000, s=3, c=tac[order, 5], cmap="inferno", vmin=0, vmax=1,
                    label=f"tactile ({len(tac)})", depthshade=False)  # fmt: skip
    fig.colorbar(sc, ax=ax, shrink=0.6, label="taxel reading / full scale")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_zlabel("z (mm)")
    pts = cloud[:, :3] * 1000
    mid, half = (pts.max(0) + pts.min(0)) / 2, (pts.max(0) - pts.min(0)).max() / 2
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(max(0.0, mid[2] - half), mid[2] + half)
    ax.view_init(elev=22, azim=-70)
    ax.legend(loc="upper left")
    ax.set_title(title)
    return fig


def taxel_figure(taxels: np.ndarray, full_scale: float, title: str = ""):
    """The four pads' readings (4, rows, cols) in N as images, rows from the palm (top) to the fingertip."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(9, 5.2))
    for p, ax in enumerate(axes):
        im = ax.imshow(taxels[p], cmap="inferno", vmin=0, vmax=full_scale, interpolation="nearest")
        ax.set_title(PAD_TITLES[p], fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="taxel force (N)")
    fig.suptitle(title)
    return fig


def render_scene(out: str | Path, seed: int = 0, assembly: str = "round") -> list[Path]:
    """Save the scene at the start of a demonstration, once both parts are lifted and at its end; the point
    cloud and the taxel images at the end. Returns the PNG paths."""
    import matplotlib.pyplot as plt

    from taclab.envs.base import make

    out = Path(out)
    env = make(ENV_ID, assembly=assembly, sensor_noise=False)
    try:
        frames = _demo_frames(env, seed)
    finally:
        env.close()
    images = [frames[k][2] for k in ("start", "lifted", "end") if k in frames]
    paths = [save_png(out / "bimanual_scene.png", np.concatenate(images, axis=1))]
    obs, info, _ = frames["end"]
    state = "assembled" if info["is_success"] else f"insertion {info['insertion_mm']:.1f} mm"
    title = f"{assembly} assembly, step {info['step']}: {state}"
    fig = cloud_figure(obs["point_cloud"], title)
    paths.append(save_png(out / "bimanual_point_cloud.png", fig))
    plt.close(fig)
    fig = taxel_figure(obs["taxels"], env.unwrapped.config.taxel.full_scale, title)
    paths.append(save_png(out / "bimanual_taxels.png", fig))
    plt.close(fig)
    return paths
