"""How the TLA paper's datasets are learned from and what its closed-loop evaluation runs.

- The learning spec of datasets written by the ``tla`` generator: the tactile sequence is the observation, the
  label of equations (1)-(3) the action, the peg shape the task a policy may read (the TLA model's
  instruction names it), validation scored with the paper's offline metrics (GCR, L1, direction accuracy).
- The tasks of tables III and IV, as the task list ``paper`` of ``taclab/PegInHole-v0``.
"""

from __future__ import annotations

import numpy as np

from taclab.eval.tasks import register_task_list
from taclab.papers.tla.labels import DELTA_MM, MAX_ROT_DEG
from taclab.papers.tla.metrics import action_metrics
from taclab.train.spec import DataSpec, register_data_spec

ENV_ID = "taclab/PegInHole-v0"

PAPER_TASKS: tuple[dict, ...] = (
    {"shape": "square", "clearance_mm": 2.0},
    {"shape": "square", "clearance_mm": 1.6},
    {"shape": "square", "clearance_mm": 1.0},
    {"shape": "triangle", "clearance_mm": 2.0},
    {"shape": "round", "clearance_mm": 2.0},
    {"shape": "hexagon", "clearance_mm": 2.0},
)
"""Table III: the square peg at 2.0, 1.6 and 1.0 mm; table IV: the four shapes at 2.0 mm."""


def validation_metrics(columns: dict[str, np.ndarray], actions: np.ndarray) -> dict:
    """The paper's offline metrics of predicted actions against a split's error, label and clearance."""
    return action_metrics(columns["error"], columns["label"], actions, columns["clearance_mm"])


SPEC = DataSpec(
    observations=("tactile",),
    action="label",
    action_low=(-DELTA_MM, -DELTA_MM, -MAX_ROT_DEG),
    action_high=(DELTA_MM, DELTA_MM, MAX_ROT_DEG),
    task_keys=("shape",),
    metric_columns=("error", "clearance_mm"),
    metrics=validation_metrics,
    curve_metrics=("gcr", "direction_x", "direction_y", "direction_rz"),
    env_id=ENV_ID,
)

register_data_spec("tla", SPEC)
register_task_list(ENV_ID, "paper", PAPER_TASKS)
