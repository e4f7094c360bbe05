"""The policy contract every taclab policy follows, the registry that maps names to policy classes, and the one
loader that turns a name, a checkpoint folder or a training run folder into a policy.

The contract (see docs/architecture.md):

- ``reset(task, seed=None)`` at the start of every episode, with the task as a user would state it (e.g. the peg
  shape) and the episode's seed;
- ``select_action(obs, info=None) -> (action_dim,)``; only ``privileged`` policies (oracles, scripted
  demonstrators) may read ``info``;
- chunking policies also implement ``predict_action_chunk(obs) -> (horizon, action_dim)`` and keep their queue
  or temporal ensemble themselves (:mod:`taclab.policies.chunking`);
- ``bind(action_space)`` tells a policy the action box of the env (or dataset) it will act in; the reference
  policies (random, zero) draw from it and learned policies check it against the action they were trained on;
- ``save(dir)`` / ``load(dir)``: a checkpoint folder with ``policy.json`` first in any loader's eyes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

POLICIES: dict[str, type[Policy]] = {}


def register(name: str):
    """Class decorator: make a policy available as ``make_policy(name)`` and ``--policy name``."""

    def deco(cls):
        if name in POLICIES and POLICIES[name] is not cls:
            raise ValueError(f"policy name {name!r} is already registered by {POLICIES[name].__name__}")
        cls.name = name
        POLICIES[name] = cls
        return cls

    return deco


class Policy(ABC):
    """A policy maps an observation (a dict of arrays) to an action. See the module docstring."""

    name: ClassVar[str] = ""
    privileged: ClassVar[bool] = False
    INFERENCE_KEYS: ClassVar[tuple[str, ...]] = ()
    """Config keys that only change how a trained policy acts (its sampler, its decoding), never its weights:
    evaluation may override them when it loads a checkpoint (``taclab eval ... --policy-set KEY=VALUE``)."""

    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None

    def reset(self, task: dict[str, Any] | None = None, seed: int | None = None) -> None:  # noqa: B027
        """Forget any per-episode state. Called at the start of every episode with the task specification (what a
        user would tell the robot, never privileged state) and the episode's seed (for policies that sample;
        stateless policies need nothing)."""

    @abstractmethod
    def select_action(self, obs: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray: ...

    def predict_action_chunk(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """(horizon, action_dim) actions for the coming steps; only chunking policies implement it."""
        raise NotImplementedError(f"the {self.name!r} policy does not predict action chunks")

    def bind(self, action_space) -> None:
        """Record the action box (a Gymnasium ``Box``) this policy acts in."""
        low = np.asarray(action_space.low, dtype=np.float64)
        high = np.asarray(action_space.high, dtype=np.float64)
        if low.ndim != 1 or low.shape != high.shape or not np.all(low <= high):
            raise ValueError(f"a policy acts in a 1-d box action space, got low {low} and high {high}")
        self.action_low, self.action_high = low, high

    def _need_box(self) -> tuple[np.ndarray, np.ndarray]:
        if self.action_low is None:
            raise RuntimeError(f"the {self.name!r} policy needs the action space: call bind(env.action_space) first")
        return self.action_low, self.action_high

    def config(self) -> dict[str, Any]:
        return {}

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "policy.json.tmp"
        tmp.write_text(json.dumps({"policy": self.name, **self.checkpoint_record()}, indent=2))
        tmp.replace(d / "policy.json")
        return d

    def checkpoint_record(self) -> dict[str, Any]:
        """What ``policy.json`` holds besides the policy's name."""
        return {"config": self.config()}

    @classmethod
    def load(cls, directory: str | Path, overrides: dict[str, Any] | None = None) -> Policy:
        return cls(**{**read_meta(directory, cls.name)["config"], **check_overrides(cls, overrides)})


def check_overrides(cls: type[Policy], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``overrides`` checked against the policy class's ``INFERENCE_KEYS`` (a key that would change what the
    weights mean, or that the policy does not have, is refused, naming what is allowed)."""
    overrides = dict(overrides or {})
    bad = [k for k in overrides if k not in cls.INFERENCE_KEYS]
    if bad:
        allowed = ", ".join(cls.INFERENCE_KEYS) if cls.INFERENCE_KEYS else "none"
        raise ValueError(
            f"policy setting {bad[0]!r} cannot be changed at evaluation for a {cls.name!r} policy; allowed: {allowed}"
        )
    return overrides


def read_meta(directory: str | Path, expected: str | None = None) -> dict[str, Any]:
    """The record of ``policy.json``; with ``expected``, checks it holds that policy."""
    from taclab.utils import read_json_record

    meta = read_json_record(Path(directory) / "policy.json", ("policy", "config"), "not a taclab policy checkpoint")
    if expected is not None and meta["policy"] != expected:
        raise ValueError(f"{directory} holds a {meta['policy']!r} policy, not {expected!r}")
    return meta


def make_policy(name: str, **kwargs) -> Policy:
    """A new policy of a registered name (policies of paper packages register when ``taclab.papers`` is
    imported, as the command line does)."""
    from taclab import policies as _  # noqa: F401 - registers the built-in policies

    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; allowed: {sorted(POLICIES)}")
    return POLICIES[name](**kwargs)


def checkpoint_dir(directory: str | Path) -> Path:
    """The checkpoint folder of ``directory``: itself, or the ``policy/`` folder of a training run."""
    directory = Path(directory)
    if not (directory / "policy.json").is_file() and (directory / "policy" / "policy.json").is_file():
        return directory / "policy"
    return directory


def load_policy(directory: str | Path, device: str = "cpu", overrides: dict[str, Any] | None = None) -> Policy:
    """Load any registered policy from its checkpoint folder (or from a training run folder holding
    ``policy/``), on ``device``; ``overrides`` replace inference settings of its config (``INFERENCE_KEYS``)."""
    from taclab import policies as _  # noqa: F401

    directory = checkpoint_dir(directory)
    meta = read_meta(directory)
    if meta["policy"] not in POLICIES:
        import importlib

        importlib.import_module("taclab.papers")  # policies of paper packages register on import
    if meta["policy"] not in POLICIES:
        raise ValueError(f"{directory}: unknown policy {meta['policy']!r}; allowed: {sorted(POLICIES)}")
    cls = POLICIES[meta["policy"]]
    policy = cls.load(directory, overrides=check_overrides(cls, overrides)) if overrides else cls.load(directory)
    if device != "cpu" and hasattr(policy, "to"):
        policy.to(device)
    return policy


_RESOLVED: dict[tuple[str, tuple[int, int], str, str], Policy] = {}


def resolve(
    spec: str | Path | Policy, device: str = "cpu", cache: bool = True, overrides: dict[str, Any] | None = None
) -> Policy:
    """A policy from a registered name, a checkpoint folder or a training run folder (or a Policy, returned as
    it is). Checkpoints are loaded once per process, device and ``overrides`` (inference settings, see
    :func:`load_policy`) until they are saved again: later calls return the same object, so callers that need
    per-episode state of their own take ``copy.copy`` of it and call ``reset``."""
    import json

    from taclab import policies as _  # noqa: F401

    if isinstance(spec, Policy):
        if overrides:
            raise ValueError("policy settings can be overridden only when a checkpoint is loaded, not on a Policy")
        return spec
    p = Path(spec)
    if p.exists():
        if not cache:
            return load_policy(p, device, overrides)
        # the checkpoint's identity includes its policy.json file (written last by every save, by replacing the old
        # one: a new file): a folder saved again (an RL run's evaluation copy, say) is loaded again, never served
        # from the cache
        folder = checkpoint_dir(p)
        meta = folder / "policy.json"
        st = meta.stat() if meta.is_file() else None
        stamp = (st.st_ino, st.st_mtime_ns) if st else (0, 0)
        key = (str(folder.resolve()), stamp, str(device), json.dumps(overrides or {}, sort_keys=True))
        if key not in _RESOLVED:
            for old in [k for k in _RESOLVED if k[0] == key[0] and k[1] != stamp]:
                del _RESOLVED[old]  # an earlier save of the same folder
            _RESOLVED[key] = load_policy(p, device, overrides)
        return _RESOLVED[key]
    if str(spec) in POLICIES:
        if overrides:
            raise ValueError(f"policy settings can be overridden only for checkpoints, not for {str(spec)!r}")
        return make_policy(str(spec))
    raise ValueError(
        f"policy {str(spec)!r} is neither a checkpoint folder, a training run folder nor a registered policy "
        f"{sorted(POLICIES)}"
    )
