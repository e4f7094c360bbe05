"""How a dataset is learned from: which columns are observations, which is the action, which task keys a policy
may read, the action box, and the validation metrics. The training loop and the offline evaluation know no
paper: a paper package registers a :class:`DataSpec` for the datasets its generator writes.

A dataset written by a generator without a registered spec cannot be trained on until one is registered with
:func:`register_data_spec` (a few lines: see docs/architecture.md, "Add a paper package").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Metrics = Callable[[dict[str, np.ndarray], np.ndarray], dict]
"""``metrics(columns, actions) -> {name: value}``: validation metrics of predicted actions (N, action_dim)
against the dataset's columns (the spec's observation, action, task and metric columns)."""


@dataclass(frozen=True)
class DataSpec:
    observations: tuple[str, ...]
    """dataset columns given to policies as observation keys"""
    action: str
    """dataset column holding the target action"""
    action_low: tuple[float, ...]
    """lower bound of each action dimension (the env's action box)"""
    action_high: tuple[float, ...]
    """upper bound of each action dimension"""
    task_keys: tuple[str, ...] = ()
    """dataset columns a policy may read as its task (what ``reset(task)`` tells it in closed loop)"""
    metric_columns: tuple[str, ...] = ()
    """further columns the metrics need (e.g. the true error)"""
    metrics: Metrics | None = None
    """validation metrics; None: the mean absolute error per action dimension"""
    curve_metrics: tuple[str, ...] = ()
    """metrics (percentages) drawn in learning_curve.png"""
    target: str | None = None
    """the column the loss regresses when it is not ``action`` itself (e.g. a chunk of future actions made by
    ``derive``); ``action`` stays what the metrics compare predictions with"""
    derive: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    """columns computed from the loaded ones, added before the train/validation split (e.g. each row's chunk of
    the next actions of its episode); derived columns are not read from the dataset"""
    env_id: str | None = None
    """the environment whose task the dataset records, for closed-loop evaluation"""
    extra: dict = field(default_factory=dict)

    def columns(self) -> list[str]:
        return list(dict.fromkeys([*self.observations, self.action, *self.task_keys, *self.metric_columns]))

    @property
    def target_column(self) -> str:
        """The column the loss regresses."""
        return self.target or self.action

    def score(self, columns: dict[str, np.ndarray], actions: np.ndarray) -> dict:
        if self.metrics is not None:
            return self.metrics(columns, actions)
        err = np.abs(np.asarray(actions, np.float64) - np.asarray(columns[self.action], np.float64))
        return {f"l1_{i}": float(v) for i, v in enumerate(err.mean(0))}


DATA_SPECS: dict[str, DataSpec] = {}


def register_data_spec(generator: str, spec: DataSpec) -> None:
    """Declare how datasets written by ``generator`` are learned from."""
    DATA_SPECS[generator] = spec


def data_spec(generator: str) -> DataSpec:
    if generator not in DATA_SPECS:
        raise ValueError(
            f"no learning spec is registered for datasets of the generator {generator!r}; registered: "
            f"{sorted(DATA_SPECS)} (taclab.train.register_data_spec)"
        )
    return DATA_SPECS[generator]
