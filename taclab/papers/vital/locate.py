"""Localize-then-execute (VITAL section 3.4): find the target in the third-person RGB-D image, move the hand above
it, and let the local policy run.

- :class:`Locator`: ``locate(rgb, depth, query, truth_uv=None) -> (u, v)``, a pixel (column, row; pixel ``i``
  spans ``[i, i + 1)``) of the target named by a text query ("the USB port"). Only oracles read ``truth_uv``.
- :func:`project` / :func:`back_project`: world point <-> pixel with the pinhole intrinsics ``K`` and the
  ``world_from_camera`` pose (OpenCV convention) of :meth:`taclab.envs.vital.VitalEnv.third_person`; the depth
  image (metres along the optical axis) lifts a pixel to 3-D.
- :class:`NoisyOracleLocator`: the true pixel plus Gaussian noise (``noise_px``), for ablations.
- :func:`parse_point`: the point in a pointing VLM's answer (Molmo's ``<point x="..." y="...">`` in percent of the
  image, or a Qwen2-VL style ``(x, y)`` in pixels), for a VLM locator.
- :func:`localize_then_execute`: one episode: reset with the target at a new place, locate it, place the hand at
  the start region above the located point (the demonstrations' start region, 10 cm above the target), run the
  policy; returns success and the localization error.

Not yet here: the keypoint network trained on rendered scenes and the VLM locator that loads a model through
``transformers`` (docs/vital.md, "Not done yet").
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

QUERIES = {
    "plug": "the power socket",
    "usb": "the USB port",
    "card": "the card reader's slot",
    "key": "the keyhole of the lock",
    "pick": "the block on the table",
}
"""the text query of each task"""


def project(point_world, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """(u, v) pixel of a world point (metres)."""
    p = np.linalg.inv(world_from_camera) @ np.r_[np.asarray(point_world, float), 1.0]
    if p[2] <= 0:
        raise ValueError(f"the point {list(point_world)} is behind the camera")
    return np.array([K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]])


def back_project(uv, depth: np.ndarray, K: np.ndarray, world_from_camera: np.ndarray) -> np.ndarray:
    """The world point (metres) seen at pixel ``uv``, at the depth the depth image holds there."""
    u, v = float(uv[0]), float(uv[1])
    h, w = depth.shape
    if not (0 <= u < w and 0 <= v < h):
        raise ValueError(f"pixel ({u:.1f}, {v:.1f}) is outside the {w} x {h} image")
    z = float(depth[int(v), int(u)])
    if not np.isfinite(z) or z <= 0:
        raise ValueError(f"no depth at pixel ({u:.1f}, {v:.1f})")
    cam = np.array([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z, 1.0])
    return (world_from_camera @ cam)[:3]


class Locator:
    """From a third-person RGB-D view and a text query to the target's pixel."""

    privileged = False

    def locate(self, rgb: np.ndarray, depth: np.ndarray, query: str, truth_uv=None) -> np.ndarray:
        raise NotImplementedError


class NoisyOracleLocator(Locator):
    """The true pixel plus isotropic Gaussian noise of ``noise_px`` pixels (0: the exact pixel)."""

    privileged = True

    def __init__(self, noise_px: float = 0.0, seed: int = 0):
        if not (np.isfinite(noise_px) and noise_px >= 0):
            raise ValueError(f"noise_px must be finite and >= 0, got {noise_px}")
        self.noise_px = float(noise_px)
        self.rng = np.random.default_rng(seed)

    def locate(self, rgb, depth, query, truth_uv=None) -> np.ndarray:
        if truth_uv is None:
            raise ValueError("the oracle locator needs the true pixel (truth_uv)")
        h, w = depth.shape
        uv = np.asarray(truth_uv, float) + self.rng.normal(0, self.noise_px, 2)
        return np.clip(uv, 0, [w - 1e-6, h - 1e-6])


_MOLMO = re.compile(r'x\d*\s*=\s*"([-\d.]+)"\s+y\d*\s*=\s*"([-\d.]+)"')
_PAIR = re.compile(r"\(\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\)")


def parse_point(text: str, width: int, height: int) -> np.ndarray:
    """The first point of a pointing VLM's answer as (u, v) pixels: Molmo's ``<point x="61.5" y="40.2" ...>``
    (percent of the image) or ``(x, y)`` in pixels. Raises ``ValueError`` naming the text when there is none."""
    m = _MOLMO.search(text)
    if m:
        return np.array([float(m.group(1)) / 100 * width, float(m.group(2)) / 100 * height])
    m = _PAIR.search(text)
    if m:
        return np.array([float(m.group(1)), float(m.group(2))])
    raise ValueError(f'no point in the answer {text[:80]!r}; expected <point x=".." y=".."> or (x, y)')


def localize_then_execute(env, policy, locator: Locator, seed: int, options: dict[str, Any] | None = None) -> dict:
    """One episode: reset (target at a new place by default), locate the target in the third-person view, reset
    again with the same seed and the hand at the start region above the located point, then run ``policy``.
    Returns success, steps and the localization error (mm, world)."""
    from taclab.eval.rollout import run_episode

    options = {"target": "novel", **(options or {})}
    env.reset(seed=seed, options=options)
    sim = env.unwrapped
    view = sim.third_person()
    entry, tyaw = sim.sim.target_pose()
    truth = project(entry, view["K"], view["world_from_camera"]) if locator.privileged else None
    uv = locator.locate(view["rgb"], view["depth"], QUERIES[sim.TASK], truth)
    located = back_project(uv, view["depth"], view["K"], view["world_from_camera"])
    located[2] = entry[2] if not np.isfinite(located[2]) else located[2]
    c, s = math.cos(tyaw), math.sin(tyaw)
    to_target = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])
    # the env's start option is the hand's place relative to the start region's centre above the target: moving
    # the hand to the region above the located point is this offset (a change of coordinates, nothing privileged
    # reaches the policy)
    start_mm = 1000 * (to_target @ (located - entry))
    result = run_episode(env, policy, seed, {**options, "start": start_mm.tolist()})
    return {
        "success": bool(result.success),
        "steps": result.steps,
        "error_mm": float(np.linalg.norm(located - entry) * 1000),
        "pixel": [float(x) for x in uv],
    }
