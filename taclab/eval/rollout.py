"""Closed-loop episodes of a policy in ``taclab/PegInHole-v0``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from taclab.envs.peg_in_hole import PegInHoleEnv
from taclab.policies.base import Policy


@dataclass
class EpisodeResult:
    shape: str
    clearance_mm: float
    seed: int
    success: bool
    attempts: int  # attempts made, the first one included
    initial_error: list[float]  # (ex_mm, ey_mm, erz_deg)

    def to_dict(self) -> dict:
        return asdict(self)


def run_episode(env: PegInHoleEnv, policy: Policy, seed: int, options: dict | None = None) -> EpisodeResult:
    obs, info = env.reset(seed=seed, options=options)
    policy.reset()
    first = info["error"].tolist()
    while True:
        if info["is_success"]:
            break
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        if terminated or truncated:
            break
    return EpisodeResult(
        shape=info["shape"], clearance_mm=info["clearance_mm"], seed=seed, success=bool(info["is_success"]),
        attempts=int(info["attempt"]), initial_error=[round(float(v), 4) for v in first],
    )


def success_stats(results: list[EpisodeResult]) -> dict:
    """Success rate (%) and the mean number of corrective steps of the successful episodes.

    Like the paper, "steps" counts the attempts after the first one, i.e. the corrections the policy made.
    """
    n = len(results)
    ok = [r for r in results if r.success]
    return {
        "episodes": n,
        "success_rate": 100.0 * len(ok) / n if n else float("nan"),
        "mean_steps": float(np.mean([r.attempts - 1 for r in ok])) if ok else float("nan"),
    }
