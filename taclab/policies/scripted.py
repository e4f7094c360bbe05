"""Scripted reference policies for the peg-in-hole task: the oracle, a random policy and the zero action."""

from __future__ import annotations

from typing import Any

import numpy as np

from taclab.papers.tla.labels import DELTA_MM, MAX_ROT_DEG, tla_label
from taclab.policies.base import Policy, register

ACTION_LIMITS = np.array([DELTA_MM, DELTA_MM, MAX_ROT_DEG])


@register("oracle")
class OraclePolicy(Policy):
    """The label of equations (1)-(3) applied to the true pose error: the upper bound of every table.

    Privileged: it reads ``info["error"]`` and ``info["clearance_mm"]``, never the observation.
    """

    privileged = True

    def act(self, obs, info: dict[str, Any] | None = None) -> np.ndarray:
        if info is None or "error" not in info or "clearance_mm" not in info:
            raise ValueError("the oracle needs the env's info dict with 'error' and 'clearance_mm'")
        return tla_label(info["error"], info["clearance_mm"]).astype(np.float32)


@register("random")
class RandomPolicy(Policy):
    """Uniform actions over the action box, from a seeded generator (re-seeded by ``reset``)."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._episode = 0
        self.rng = np.random.default_rng(self.seed)

    def reset(self, task=None) -> None:
        self.rng = np.random.default_rng([self.seed, self._episode])
        self._episode += 1

    def act(self, obs, info=None) -> np.ndarray:
        return self.rng.uniform(-ACTION_LIMITS, ACTION_LIMITS).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed}


@register("zero")
class ZeroPolicy(Policy):
    """Always answers the zero action: the lower bound of every table."""

    def act(self, obs, info=None) -> np.ndarray:
        return np.zeros(3, dtype=np.float32)
