"""How the VT-Refine demonstration datasets are learned from: the learning spec of the ``vtrefine`` generator.

Observations are the visuo-tactile point cloud and the hands' state; the loss regresses each row's chunk of the
next ``CHUNK`` actions of its episode (``action_chunk``, the episode's last action repeated past its end);
validation compares the first action of each predicted chunk with the row's action: the mean absolute error of
the hands' positions (mm), angles (degrees) and grippers.
"""

from __future__ import annotations

import numpy as np

from taclab.envs.bimanual import BimanualAssemblyConfig, action_bounds
from taclab.train.spec import DataSpec, register_data_spec

ENV_ID = "taclab/BimanualAssembly-v0"
CHUNK = 16
"""actions per training target (the policy's horizon)"""


def next_actions(actions: np.ndarray, episode_index: np.ndarray, horizon: int = CHUNK) -> np.ndarray:
    """(N, horizon, action_dim): row ``i`` holds the actions of rows ``i, i + 1, ...`` of its episode, the
    episode's last action standing in for the steps past its end. Each episode's rows must be contiguous."""
    a, ep = np.asarray(actions), np.asarray(episode_index)
    if len(a) != len(ep):
        raise ValueError(f"{len(a)} actions but {len(ep)} episode indices")
    change = np.flatnonzero(np.diff(ep) != 0) + 1
    first = np.concatenate([[0], change])
    if len(np.unique(ep)) != len(first):
        raise ValueError("the rows of each episode must be contiguous")
    end = np.concatenate([change, [len(a)]]) - 1  # each episode's last row
    last_row = np.repeat(end, np.diff(np.concatenate([first, [len(a)]])))
    rows = np.minimum(np.arange(len(a))[:, None] + np.arange(horizon), last_row[:, None])
    return a[rows]


def derive(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"action_chunk": next_actions(columns["action"], columns["episode_index"]).astype(np.float32)}


def validation_metrics(columns: dict[str, np.ndarray], actions: np.ndarray) -> dict:
    """Mean absolute error of the first predicted action: position (mm), angle (deg), grip, per hand."""
    err = np.abs(np.asarray(actions, np.float64) - np.asarray(columns["action"], np.float64)).reshape(-1, 2, 7)
    out = {}
    for h in range(2):
        out[f"hand{h}_pos_mm"] = float(err[:, h, :3].mean() * 1000)
        out[f"hand{h}_angle_deg"] = float(np.degrees(err[:, h, 3:6].mean()))
        out[f"hand{h}_grip"] = float(err[:, h, 6].mean())
    return out


_low, _high = action_bounds(BimanualAssemblyConfig())

SPEC = DataSpec(
    observations=("observation.point_cloud", "observation.state"),
    action="action",
    action_low=tuple(float(v) for v in _low),
    action_high=tuple(float(v) for v in _high),
    metric_columns=("episode_index",),
    metrics=validation_metrics,
    target="action_chunk",
    derive=derive,
    env_id=ENV_ID,
)

register_data_spec("vtrefine", SPEC)
