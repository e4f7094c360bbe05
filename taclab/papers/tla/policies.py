"""The TLA paper's privileged reference policy: the oracle of every table."""

from __future__ import annotations

from typing import Any

import numpy as np

from taclab.papers.tla.labels import tla_label
from taclab.policies.base import Policy, register


@register("oracle")
class OraclePolicy(Policy):
    """The label of equations (1)-(3) applied to the true pose error: the upper bound of every table.

    Privileged: it reads ``info["error"]`` and ``info["clearance_mm"]``, never the observation.
    """

    privileged = True

    def select_action(self, obs, info: dict[str, Any] | None = None) -> np.ndarray:
        if info is None or "error" not in info or "clearance_mm" not in info:
            raise ValueError("the oracle needs the env's info dict with 'error' and 'clearance_mm'")
        return tla_label(info["error"], info["clearance_mm"]).astype(np.float32)
