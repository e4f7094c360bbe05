"""Closed-loop episodes of a policy in ``taclab/PegInHole-v0``."""

from __future__ import annotations

import time
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
    failures: int = 0  # actions that raised or were not 3 finite numbers (replaced by the zero action)
    malformed: int = 0  # actions the policy itself flagged as malformed (e.g. unparsable text)
    actions: int = 0  # actions requested from the policy
    act_seconds: float = 0.0  # time spent in policy.act

    def to_dict(self) -> dict:
        return asdict(self)


def safe_act(policy: Policy, obs, info) -> tuple[np.ndarray, bool, bool]:
    """``policy.act`` that never ends an episode: an exception or an action that is not 3 finite numbers gives
    the zero action and ``failed=True``; ``malformed`` is the policy's own flag (``policy.last_malformed``)."""
    try:
        a = np.asarray(policy.act(obs, info), dtype=np.float64).reshape(-1)
        if a.shape != (3,) or not np.isfinite(a).all():
            raise ValueError(f"action {a!r} is not 3 finite numbers")
    except Exception:  # noqa: BLE001 - counted as an inference failure, the episode goes on
        return np.zeros(3, np.float32), True, False
    return a.astype(np.float32), False, bool(getattr(policy, "last_malformed", False))


def run_episode(env: PegInHoleEnv, policy: Policy, seed: int, options: dict | None = None) -> EpisodeResult:
    """One episode: reset, then one policy action per failed attempt until success or the attempt limit.

    The policy gets the task (shape, clearance) on ``reset``; only privileged policies read ``info`` in ``act``.
    """
    obs, info = env.reset(seed=seed, options=options)
    policy.reset({"shape": info["shape"], "clearance_mm": info["clearance_mm"]})
    first = info["error"].tolist()
    failures = malformed = actions = 0
    act_s = 0.0
    while True:
        if info["is_success"]:
            break
        t = time.perf_counter()
        action, failed, bad = safe_act(policy, obs, info if policy.privileged else None)
        act_s += time.perf_counter() - t
        actions += 1
        failures += failed
        malformed += bad
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return EpisodeResult(
        shape=info["shape"],
        clearance_mm=info["clearance_mm"],
        seed=seed,
        success=bool(info["is_success"]),
        attempts=int(info["attempt"]),
        initial_error=[round(float(v), 4) for v in first],
        failures=failures,
        malformed=malformed,
        actions=actions,
        act_seconds=act_s,
    )


def success_stats(results: list[EpisodeResult]) -> dict:
    """Success rate (%) and the mean number of corrective steps of the successful episodes.

    Like the paper, "steps" counts the attempts after the first one, i.e. the corrections the policy made.
    ``mean_steps`` is None when no episode succeeded.
    """
    n = len(results)
    ok = [r for r in results if r.success]
    actions = sum(r.actions for r in results)
    return {
        "episodes": n,
        "success_rate": 100.0 * len(ok) / n if n else None,
        "mean_steps": float(np.mean([r.attempts - 1 for r in ok])) if ok else None,
        "actions": actions,
        "failures": sum(r.failures for r in results),
        "malformed": sum(r.malformed for r in results),
        "ms_per_action": 1000.0 * sum(r.act_seconds for r in results) / actions if actions else None,
    }


def _episodes_worker(job: tuple) -> list[dict]:
    policy_spec, env_overrides, task, seeds = job
    from taclab.policies import load_policy, make_policy

    if isinstance(policy_spec, dict):
        policy = make_policy(policy_spec["name"], **policy_spec.get("kwargs", {}))
    else:
        policy = load_policy(policy_spec)
    env = PegInHoleEnv(**env_overrides)
    try:
        return [run_episode(env, policy, seed=s, options=task).to_dict() for s in seeds]
    finally:
        env.close()


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one worker process per core


def evaluate(
    policy_spec: dict | str,
    tasks: list[dict],
    episodes: int,
    seed: int = 0,
    workers: int = 1,
    env_overrides: dict | None = None,
    progress: bool = True,
) -> dict[int, list[EpisodeResult]]:
    """Closed-loop episodes of one policy on several tasks, in parallel worker processes.

    ``policy_spec`` is ``{"name": ..., "kwargs": {...}}`` for a registered policy or a checkpoint folder.
    ``tasks`` are reset options (e.g. ``{"shape": "round", "clearance_mm": 1.0}``). Episode ``i`` of task ``t``
    uses the seed ``seed * 1_000_000 + t * 10_000 + i``, so results do not depend on ``workers``.
    Returns the results per task index.
    """
    import multiprocessing as mp

    from rich.progress import Progress

    env_overrides = dict(env_overrides or {})
    chunk = max(1, min(25, episodes))
    jobs = []
    for t, task in enumerate(tasks):
        seeds = [seed * 1_000_000 + t * 10_000 + i for i in range(episodes)]
        for j in range(0, episodes, chunk):
            jobs.append((t, (policy_spec, env_overrides, task, seeds[j : j + chunk])))
    out: dict[int, list[EpisodeResult]] = {t: [] for t in range(len(tasks))}
    with Progress(disable=not progress, transient=True) as bar:
        task_id = bar.add_task("episodes", total=len(tasks) * episodes)
        if workers <= 1:
            results = (_episodes_worker(job) for _, job in jobs)
            for (t, _), res in zip(jobs, results, strict=True):
                out[t].extend(EpisodeResult(**r) for r in res)
                bar.advance(task_id, len(res))
        else:
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for (t, _), res in zip(jobs, pool.imap(_episodes_worker, [j for _, j in jobs]), strict=True):
                    out[t].extend(EpisodeResult(**r) for r in res)
                    bar.advance(task_id, len(res))
    return out
