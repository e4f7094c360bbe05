"""Reference policies for any task: uniform random actions and the zero action, over the bound action box."""

from __future__ import annotations

from typing import Any

import numpy as np

from taclab.policies.base import Policy, register


@register("random")
class RandomPolicy(Policy):
    """Uniform actions over the action box (see :meth:`Policy.bind`), from a generator re-seeded by ``reset`` with
    (seed, the episode's seed) or, when no episode seed is given, (seed, the number of earlier episodes)."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._episode = 0
        self.rng = np.random.default_rng(self.seed)

    def reset(self, task=None, seed: int | None = None) -> None:
        self.rng = np.random.default_rng([self.seed, self._episode if seed is None else int(seed)])
        self._episode += 1

    def select_action(self, obs, info=None) -> np.ndarray:
        low, high = self._need_box()
        return self.rng.uniform(low, high).astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed}


@register("zero")
class ZeroPolicy(Policy):
    """Always answers the zero action (clipped into the action box): the lower bound of every table."""

    def select_action(self, obs, info=None) -> np.ndarray:
        low, high = self._need_box()
        return np.clip(np.zeros(len(low)), low, high).astype(np.float32)
