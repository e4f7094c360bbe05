"""The common policy interface and the registry that maps names to policy classes."""

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
    """A policy maps an observation to an action.

    ``act`` receives the environment's observation and, optionally, its ``info`` dict. Only privileged
    baselines (the oracle) read ``info``; learned policies must not. Checkpoints are folders: ``save(dir)``
    writes ``policy.json`` (name and config) next to any weights, and ``load_policy(dir)`` rebuilds the policy
    without the training config.
    """

    name: ClassVar[str] = ""
    privileged: ClassVar[bool] = False

    def reset(self, task: dict[str, Any] | None = None) -> None:  # noqa: B027 - stateless policies need nothing
        """Forget any per-episode state. Called at the start of every episode with the task specification
        (``{"shape": ..., "clearance_mm": ...}``): what a user would tell the robot, not privileged state."""

    @abstractmethod
    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray: ...

    def config(self) -> dict[str, Any]:
        return {}

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "policy.json.tmp"
        tmp.write_text(json.dumps({"policy": self.name, "config": self.config()}, indent=2))
        tmp.replace(d / "policy.json")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Policy:
        return cls(**_read_meta(directory, cls.name)["config"])


def _read_meta(directory: str | Path, expected: str | None = None) -> dict[str, Any]:
    """The record of ``policy.json``; with ``expected``, checks it holds that policy."""
    from taclab.utils import read_json_record

    meta = read_json_record(Path(directory) / "policy.json", ("policy", "config"), "not a taclab policy checkpoint")
    if expected is not None and meta["policy"] != expected:
        raise ValueError(f"{directory} holds a {meta['policy']!r} policy, not {expected!r}")
    return meta


def make_policy(name: str, **kwargs) -> Policy:
    from taclab import policies as _  # noqa: F401 - registers the built-in policies

    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; allowed: {sorted(POLICIES)}")
    return POLICIES[name](**kwargs)


def load_policy(directory: str | Path) -> Policy:
    """Load any registered policy from its checkpoint folder (or from a training run folder holding
    ``policy/``)."""
    from taclab import policies as _  # noqa: F401

    directory = Path(directory)
    if not (directory / "policy.json").is_file() and (directory / "policy" / "policy.json").is_file():
        directory = directory / "policy"
    meta = _read_meta(directory)
    if meta["policy"] not in POLICIES:
        raise ValueError(f"{directory}: unknown policy {meta['policy']!r}; allowed: {sorted(POLICIES)}")
    return POLICIES[meta["policy"]].load(directory)
