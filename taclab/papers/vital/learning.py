"""How the VITAL demonstration datasets are learned from: the learning spec of the ``vital`` generator.

Observations are the wrist image, its segmentation mask (read by the semantic augmentation only) and both skins;
the loss regresses each row's chunk of the next ``CHUNK`` actions of its episode (``action_chunk``, the last
action repeated past the episode's end); validation compares the first action of each predicted chunk with the
row's action (mean absolute error per dimension, mm and degrees).
"""

from __future__ import annotations

import numpy as np

from taclab.envs.vital import ACTION_NAMES, VitalConfig
from taclab.train.spec import DataSpec, register_data_spec

CHUNK = 10
"""actions per training target (the paper's chunk)"""


def action_chunks(actions: np.ndarray, episode_index: np.ndarray, horizon: int = CHUNK) -> np.ndarray:
    """(N, horizon, action_dim): row ``i`` holds the actions of rows ``i .. i + horizon - 1`` of its episode,
    the episode's last action repeated past its end. Rows of one episode must be contiguous and in order."""
    a = np.asarray(actions)
    ep = np.asarray(episode_index)
    if len(a) != len(ep):
        raise ValueError(f"{len(a)} actions but {len(ep)} episode indices")
    starts = np.r_[0, np.flatnonzero(ep[1:] != ep[:-1]) + 1]
    if len(np.unique(ep)) != len(starts):
        raise ValueError("the rows of each episode must be contiguous")
    ends = np.r_[starts[1:], len(a)] - 1
    last = np.repeat(ends, np.diff(np.r_[starts, len(a)]))  # each row's episode's last row
    idx = np.minimum(np.arange(len(a))[:, None] + np.arange(horizon)[None], last[:, None])
    return a[idx]


def derive(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"action_chunk": action_chunks(columns["action"], columns["episode_index"]).astype(np.float32)}


def validation_metrics(columns: dict[str, np.ndarray], actions: np.ndarray) -> dict:
    err = np.abs(np.asarray(actions, np.float64) - np.asarray(columns["action"], np.float64)).mean(0)
    return {f"l1_{n}": float(v) for n, v in zip(ACTION_NAMES, err, strict=True)}


_cfg = VitalConfig()
_lim = [_cfg.max_step_mm] * 3 + [_cfg.max_step_deg] * 3 + [1.0]

SPEC = DataSpec(
    observations=("observation.wrist_rgb", "observation.wrist_mask", "observation.skin"),
    action="action",
    action_low=tuple(-v for v in _lim),
    action_high=tuple(_lim),
    metric_columns=("episode_index",),
    metrics=validation_metrics,
    target="action_chunk",
    derive=derive,
)

register_data_spec("vital", SPEC)
