"""Closed-loop episodes of any policy in any registered taclab environment.

:func:`run_episode` runs one episode; :func:`evaluate` runs many, per task, on one of three backends:

- ``process`` (default): a pool of worker processes, each with its own env; a worker loads a checkpoint once;
- ``sync`` / ``async``: one Gymnasium vector env (``gym.make_vec``) of ``workers`` sub-envs, stepped in lockstep
  from this process (``async`` steps the sub-envs in subprocesses), the policy in this process; each sub-env
  gets its own shallow copy of the policy (shared weights, own episode state).

Episode ``i`` of task ``t`` always uses the env seed ``seed * 1_000_000 + t * 10_000 + i`` and the policy is
reset with that seed, so results do not depend on the backend or on the number of workers. A policy that raises,
or returns an action that is not a finite vector of the action space's shape, never ends an episode: the step
gets the zero action (clipped into the box), the failure is counted, and the first exception text of the episode
is recorded.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from taclab.policies.base import Policy

BACKENDS = ("process", "sync", "async")


@dataclass
class EpisodeResult:
    seed: int
    task: dict[str, Any]
    success: bool
    steps: int  # actions applied to the env
    fields: dict[str, Any] = field(default_factory=dict)  # the env's RESULT_FIELDS at the episode's end
    failures: int = 0  # actions that raised or were not finite vectors of the action shape (zero action used)
    malformed: int = 0  # actions the policy itself flagged as malformed (e.g. unparsable text)
    act_seconds: float = 0.0  # time spent in policy.select_action
    error: str | None = None  # the first inference exception of the episode, as text

    def to_dict(self) -> dict:
        d = asdict(self)
        fields = d.pop("fields")
        return {**fields, **d}

    @classmethod
    def from_dict(cls, d: dict, result_fields: tuple[str, ...]) -> EpisodeResult:
        own = {k: d[k] for k in cls.__dataclass_fields__ if k != "fields" and k in d}
        return cls(**own, fields={k: d.get(k) for k in result_fields})


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return [round(float(x), 4) for x in v.reshape(-1)] if v.dtype.kind == "f" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


def zero_action(action_space) -> np.ndarray:
    return np.clip(np.zeros(action_space.shape), action_space.low, action_space.high).astype(action_space.dtype)


def safe_act(policy: Policy, obs, info, action_space) -> tuple[np.ndarray, str | None, bool]:
    """``policy.select_action`` that never ends an episode: (action, error text or None, malformed flag)."""
    try:
        a = np.asarray(policy.select_action(obs, info if policy.privileged else None), dtype=np.float64)
        if a.shape != action_space.shape or not np.isfinite(a).all():
            raise ValueError(f"action {a.tolist()!r} is not a finite vector of shape {action_space.shape}")
    except Exception as e:  # noqa: BLE001 - counted as an inference failure, the episode goes on
        return zero_action(action_space), f"{type(e).__name__}: {e}", False
    return a.astype(action_space.dtype), None, bool(getattr(policy, "last_malformed", False))


class _Episode:
    """The bookkeeping of one running episode."""

    def __init__(self, seed: int, task: dict):
        self.seed, self.task = seed, task
        self.failures = self.malformed = self.steps = 0
        self.act_s = 0.0
        self.error: str | None = None

    def act(self, policy, obs, info, action_space) -> np.ndarray:
        t = time.perf_counter()
        a, err, bad = safe_act(policy, obs, info, action_space)
        self.act_s += time.perf_counter() - t
        self.steps += 1
        self.failures += err is not None
        self.malformed += bad
        if err is not None and self.error is None:
            self.error = err
        return a

    def result(self, fields: dict, info: dict) -> EpisodeResult:
        fields = {k: _jsonable(v) for k, v in fields.items()}
        return EpisodeResult(
            seed=self.seed, task=self.task, success=bool(info.get("is_success", False)), steps=self.steps,
            fields=fields, failures=self.failures, malformed=self.malformed, act_seconds=self.act_s, error=self.error,
        )  # fmt: skip


def run_episode(env, policy: Policy, seed: int, options: dict | None = None) -> EpisodeResult:
    """One episode: reset (env and policy), then one action per step until the episode ends.

    The policy gets the task on ``reset``; only privileged policies read ``info``."""
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(env.unwrapped.task_of(info), seed=seed)
    ep = _Episode(seed, dict(options or {}))
    while not info.get("is_success", False):
        obs, _, terminated, truncated, info = env.step(ep.act(policy, obs, info, env.action_space))
        if terminated or truncated:
            break
    return ep.result(env.unwrapped.episode_result(info), info)


def episode_seed(seed: int, task_index: int, episode: int) -> int:
    return seed * 1_000_000 + task_index * 10_000 + episode


def success_stats(results: list[EpisodeResult]) -> dict:
    """Success rate (%), mean steps of the successful episodes (None when none succeeded), action counts,
    failures, malformed actions, episodes with an inference error and ms per action."""
    n = len(results)
    ok = [r for r in results if r.success]
    actions = sum(r.steps for r in results)
    return {
        "episodes": n,
        "success_rate": 100.0 * len(ok) / n if n else None,
        "mean_steps": float(np.mean([r.steps for r in ok])) if ok else None,
        "actions": actions,
        "failures": sum(r.failures for r in results),
        "malformed": sum(r.malformed for r in results),
        "episodes_with_errors": sum(r.error is not None for r in results),
        "ms_per_action": 1000.0 * sum(r.act_seconds for r in results) / actions if actions else None,
    }


# ---------------------------------------------------------------------------------------------- process backend
def _die_with_parent(parent: int) -> None:
    """Ask the kernel to end this worker when its parent dies (Linux), and watch the parent elsewhere.

    ``parent`` is the parent's pid as the parent saw it: a parent that died before this call (while the worker
    was starting) has already handed the worker to another process, and the worker exits at once."""
    import signal
    import threading

    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent:
        os._exit(1)

    def watch():  # pragma: no cover - runs in the worker until it exits
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _init_worker(parent: int) -> None:
    _die_with_parent(parent)  # first: the imports below take seconds
    import torch

    torch.set_num_threads(1)  # one worker process per core


def _episodes_worker(job: tuple) -> list[dict]:
    import taclab.envs  # noqa: F401 - registers the envs in a spawned worker
    from taclab.envs.base import make
    from taclab.policies.base import resolve

    policy_spec, env_id, env_config, task, seeds, packages, overrides = job
    for p in packages:
        __import__(p)  # registers what paper packages add (policies, specs)
    base = resolve(policy_spec, overrides=overrides)
    env = make(env_id, **env_config)
    try:
        policy = copy.copy(base)
        policy.bind(env.action_space)
        return [run_episode(env, policy, seed=s, options=task).to_dict() for s in seeds]
    finally:
        env.close()


# ----------------------------------------------------------------------------------------------- vector backend
def _vector_task(envs, cls, base: Policy, task: dict, seeds: list[int], progress) -> list[EpisodeResult]:
    """The episodes ``seeds`` of one task on a vector env with autoreset disabled. Result fields and the task are
    read from ``info`` by the env class's ``RESULT_FIELDS`` and ``TASK_KEYS``."""

    def fields(info):
        return {k: info.get(k) for k in cls.RESULT_FIELDS}

    def task_of(info):
        return {key: _jsonable(info[key]) for key in cls.TASK_KEYS if key in info}

    n = envs.num_envs
    pending = list(seeds)
    out: dict[int, EpisodeResult] = {}
    slots: list[_Episode | None] = [None] * n
    policies = [copy.copy(base) for _ in range(n)]
    space = envs.single_action_space
    for p in policies:
        p.bind(space)
    dummy = max(seeds) + 1  # seeds of idle sub-envs, whose episodes are not counted

    def start(mask):
        nonlocal dummy
        sub_seeds = []
        for k in range(n):
            if not mask[k]:
                sub_seeds.append(None)
            elif pending:
                s = pending.pop(0)
                slots[k] = _Episode(s, dict(task))
                sub_seeds.append(s)
            else:
                slots[k] = None
                sub_seeds.append(dummy)
                dummy += 1
        return sub_seeds

    mask = np.ones(n, bool)
    obs, infos = envs.reset(seed=start(mask), options={**task, "reset_mask": mask})
    for k in range(n):
        if slots[k] is not None:
            policies[k].reset(task_of(_info_at(infos, k)), seed=slots[k].seed)
    while any(s is not None for s in slots):
        actions = np.stack([zero_action(space)] * n)
        done = np.zeros(n, bool)
        for k, ep in enumerate(slots):
            info = _info_at(infos, k)
            if ep is None or info.get("is_success", False):
                done[k] = ep is not None
                continue
            actions[k] = ep.act(policies[k], {key: v[k] for key, v in obs.items()}, info, space)
        live = ~done
        if live.any():
            obs_s, _, term, trunc, infos_s = envs.step(actions)
        for k, ep in enumerate(slots):
            if ep is None:
                continue
            if done[k]:
                out[ep.seed] = ep.result(fields(_info_at(infos, k)), _info_at(infos, k))
            elif term[k] or trunc[k]:
                out[ep.seed] = ep.result(fields(_info_at(infos_s, k)), _info_at(infos_s, k))
                done[k] = True
        if live.any():
            obs, infos = obs_s, infos_s
        if done.any():
            progress(int(sum(1 for k in range(n) if done[k] and slots[k] is not None)))
            obs_r, infos_r = envs.reset(seed=start(done), options={**task, "reset_mask": done})
            obs = {key: np.where(_bcast(done, v), obs_r[key], v) for key, v in obs.items()}
            infos = _merge_infos(infos, infos_r, done)
            for k in np.flatnonzero(done):
                if slots[k] is not None:
                    policies[k].reset(task_of(_info_at(infos, k)), seed=slots[k].seed)
    return [out[s] for s in seeds]


def _bcast(mask, v):
    return mask.reshape(-1, *([1] * (v.ndim - 1)))


def _info_at(infos: dict, k: int) -> dict:
    return {
        key: v[k] for key, v in infos.items() if not key.startswith("_") and infos.get(f"_{key}", [True] * (k + 1))[k]
    }


def _merge_infos(old: dict, new: dict, mask) -> dict:
    out = {}
    for key in set(old) | set(new):
        if key.startswith("_"):
            continue
        if key in new and key in old:
            o, nv = np.asarray(old[key]), np.asarray(new[key])
            out[key] = np.where(_bcast(mask, nv), nv, o) if o.shape == nv.shape else nv
        else:
            out[key] = old.get(key, new.get(key))
        out[f"_{key}"] = np.ones(len(mask), bool)
    return out


# ----------------------------------------------------------------------------------------------------- evaluate
def evaluate(
    policy_spec: str | Policy,
    env_id: str,
    tasks: list[dict],
    episodes: int,
    seed: int = 0,
    workers: int = 1,
    env_config: dict | None = None,
    backend: str = "process",
    progress: bool = True,
    packages: tuple[str, ...] = ("taclab.papers",),
    policy_overrides: dict | None = None,
) -> dict[int, list[EpisodeResult]]:
    """Closed-loop episodes of one policy on several tasks of ``env_id``; returns the results per task index.

    ``policy_spec`` is a registered name, a checkpoint or run folder (or, for the vector backends, a Policy);
    ``policy_overrides`` change a checkpoint's inference settings (``Policy.INFERENCE_KEYS``).
    ``tasks`` are reset options of the env's ``TASK_KEYS``. ``packages`` are imported in worker processes so
    that what they register (policies of paper packages) is known there."""
    import multiprocessing as mp

    from rich.progress import Progress

    from taclab.envs.base import env_class
    from taclab.policies.base import resolve

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {list(BACKENDS)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cls = env_class(env_id)
    tasks = [cls.check_task(t) for t in tasks]
    env_config = dict(env_config or {})
    out: dict[int, list[EpisodeResult]] = {t: [] for t in range(len(tasks))}
    with Progress(disable=not progress, transient=True) as bar:
        task_id = bar.add_task("episodes", total=len(tasks) * episodes)
        if backend == "process":
            if isinstance(policy_spec, Policy):
                raise ValueError("the process backend takes a policy name or checkpoint folder, not a Policy object")
            chunk = max(1, min(25, episodes))
            jobs = []
            for t, task in enumerate(tasks):
                seeds = [episode_seed(seed, t, i) for i in range(episodes)]
                for j in range(0, episodes, chunk):
                    job = (str(policy_spec), env_id, env_config, task, seeds[j : j + chunk], packages, policy_overrides)
                    jobs.append((t, job))
            if workers <= 1:
                results = (_episodes_worker(job) for _, job in jobs)
                for (t, _), res in zip(jobs, results, strict=True):
                    out[t].extend(EpisodeResult.from_dict(r, cls.RESULT_FIELDS) for r in res)
                    bar.advance(task_id, len(res))
            else:
                with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
                    for (t, _), res in zip(jobs, pool.imap(_episodes_worker, [j for _, j in jobs]), strict=True):
                        out[t].extend(EpisodeResult.from_dict(r, cls.RESULT_FIELDS) for r in res)
                        bar.advance(task_id, len(res))
        else:
            import gymnasium as gym
            from gymnasium.vector import AutoresetMode

            base = resolve(policy_spec, overrides=policy_overrides)
            envs = gym.make_vec(
                env_id, num_envs=workers, vectorization_mode=backend,
                vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED}, **env_config,
            )  # fmt: skip
            try:
                for t, task in enumerate(tasks):
                    seeds = [episode_seed(seed, t, i) for i in range(episodes)]
                    out[t] = _vector_task(envs, cls, base, task, seeds, lambda k: bar.advance(task_id, k))
            finally:
                envs.close()
    return out
