"""Figures of one VITAL task (``taclab render --task vital-usb``): wrist frames through a demonstrator episode,
their segmentation masks, semantically augmented frames, the third-person RGB-D view, the scene variations and
the 15-value skin trace of both pads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.sim.vital import MASK_LABELS, TASKS
from taclab.utils import save_png

_MASK_COLOURS = np.array([[20, 20, 20], [80, 140, 255], [255, 170, 40], [120, 230, 120]], np.uint8)


def task_name(task: str) -> str:
    """``usb``, ``vital-usb`` or ``vital_usb`` -> ``usb``; raises ``ValueError`` naming the allowed tasks."""
    t = task.lower() if isinstance(task, str) else task
    if isinstance(t, str) and t.startswith(("vital-", "vital_")):
        t = t[6:]
    if t not in TASKS:
        raise ValueError(
            f"unknown VITAL task {task!r}; allowed: {', '.join(TASKS)} (or with a 'vital-' prefix: "
            f"{', '.join('vital-' + x for x in TASKS)})"
        )
    return t


def _grid(images: list[np.ndarray], cols: int, pad: int = 2) -> np.ndarray:
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    return out


def _upscale(im: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(im, k, axis=0), k, axis=1)


def render_task(task: str, out: Path, seed: int = 0) -> list[Path]:
    """Run one demonstrator episode of ``task`` and save readable PNGs to ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import taclab  # noqa: F401 - registers the environments
    from taclab.data.augment import SemanticAugment
    from taclab.envs.base import make
    from taclab.envs.vital import ENV_IDS
    from taclab.papers.vital.demonstrator import VitalDemonstrator

    task = task_name(task)
    out = Path(out)
    env = make(ENV_IDS[task], third_person=True, third_person_size=(360, 480))
    policy = VitalDemonstrator(task=task)
    obs, info = env.reset(seed=seed)
    policy.reset({}, seed=seed)
    frames, masks, skins, contact = [obs["wrist_rgb"]], [obs["wrist_mask"]], [obs["skin"]], [info["contact"]]
    third = [obs["third_rgb"]]
    depth = obs["third_depth"]
    while True:
        obs, r, term, trunc, info = env.step(policy.select_action(obs, info))
        frames.append(obs["wrist_rgb"])
        masks.append(obs["wrist_mask"])
        skins.append(obs["skin"])
        contact.append(info["contact"])
        if term or trunc:
            third.append(obs["third_rgb"])
            break
    result = "succeeded" if info["is_success"] else f"failed ({info['failure']})"
    paths = []
    pick = np.unique(np.linspace(0, len(frames) - 1, 8).round().astype(int))
    paths.append(save_png(out / f"vital_{task}_wrist.png", _upscale(_grid([frames[i] for i in pick], 4), 2)))
    coloured = [_MASK_COLOURS[np.clip(masks[i], 0, 3)] for i in pick]
    paths.append(save_png(out / f"vital_{task}_masks.png", _upscale(_grid(coloured, 4), 2)))
    aug = SemanticAugment(size=frames[0].shape[:2], seed=seed)
    rng = np.random.default_rng(seed)
    k = pick[len(pick) // 2]
    augmented = aug(np.stack([frames[k]] * 7), np.stack([masks[k]] * 7), rng)
    paths.append(save_png(out / f"vital_{task}_augmented.png", _upscale(_grid([frames[k], *augmented], 4), 2)))
    dvis = np.clip((depth - depth.min()) / max(np.ptp(depth), 1e-6), 0, 1)
    dvis = (plt.get_cmap("viridis")(1 - dvis)[..., :3] * 255).astype(np.uint8)
    paths.append(save_png(out / f"vital_{task}_third_person.png", _grid([third[0], dvis, third[-1]], 3)))
    # the scene variations, as the wrist and the third-person camera see them
    views = []
    for opts in (
        {"background": "green"},
        {"background": "textured", "lighting": "random"},
        {"background": "cluttered", "lighting": "random"},
        {"target": "novel", "background": "cluttered", "lighting": "random"},
    ):
        o, _ = env.reset(seed=seed + 1, options=opts)
        small = o["third_rgb"][::3, ::3]
        h = min(small.shape[0], o["wrist_rgb"].shape[0])
        views.append(np.concatenate([o["wrist_rgb"][:h], small[:h, : small.shape[1]]], axis=1))
    paths.append(save_png(out / f"vital_{task}_variations.png", _upscale(_grid(views, 2), 2)))
    # the skin trace
    s = np.stack(skins)  # (T, 2, 15)
    t = np.arange(len(s)) / 6.0
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    names = ("centre", "left", "right", "up", "down")
    colours = plt.get_cmap("tab10")
    for pad in range(2):
        ax = axes[pad]
        for chip in range(5):
            for comp, style in zip(range(3), ("-", "--", ":"), strict=True):
                label = f"{names[chip]} {'xyz'[comp]}" if pad == 0 else None
                ax.plot(t, s[:, pad, 3 * chip + comp], style, color=colours(chip), lw=1.2, label=label)
        touching = np.flatnonzero(contact)
        if len(touching):
            ax.axvspan(t[touching[0]], t[touching[-1]], color="0.9", zorder=0)
        ax.set_ylabel(f"pad {pad} (uT)")
        ax.grid(alpha=0.3)
    axes[0].legend(ncol=5, fontsize=7, loc="upper left")
    axes[-1].set_xlabel("time (s); grey: the part touches the target")
    fig.suptitle(f"VITAL {task}: skin readings relative to the reset baseline, episode {result}")
    paths.append(save_png(out / f"vital_{task}_skin.png", fig))
    plt.close(fig)
    env.close()
    return paths


def _renderer(task: str):
    def render(out: str | Path, seed: int = 0) -> list[Path]:
        return render_task(task, Path(out), seed=seed)

    render.__doc__ = f"Figures of the VITAL {task} task (see :func:`render_task`)."
    return render


RENDERERS = {f"vital-{t}": _renderer(t) for t in TASKS}
"""``render(out, seed=0) -> [png paths]`` per task name, for ``taclab render --task vital-usb``."""

__all__ = ["MASK_LABELS", "RENDERERS", "render_task", "task_name"]
