"""The contract every taclab environment follows (see docs/architecture.md, "Environments").

A taclab env is a Gymnasium 1.x env built through the registry (``gym.make("taclab/<Name>-v0", **config)``)
whose class declares what belongs to its task, so that generic code (the episode runner, the dataset generators,
the command line) never needs to know which task it runs:

- ``Config``: the pydantic model of its configuration; ``gym.make`` kwargs are its fields.
- ``TASK_KEYS``: the reset options that define a task (what a ``--tasks`` entry sets).
- ``TASK_LISTS``: named lists of tasks (e.g. a paper's evaluation tasks) that ``--tasks NAME`` selects.
- ``RESULT_FIELDS``: the task-specific fields of a per-episode result, read from the last ``info`` by
  :meth:`TaclabEnv.episode_result`.
- :meth:`TaclabEnv.task_of`: the task as a user would state it to the robot (given to ``policy.reset``); never
  privileged state.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
from pydantic import BaseModel


class TaclabEnv(gym.Env):
    """Base class of taclab environments. Subclasses set the class attributes below."""

    Config: ClassVar[type[BaseModel]]
    TASK_KEYS: ClassVar[tuple[str, ...]] = ()
    TASK_LISTS: ClassVar[dict[str, tuple[dict[str, Any], ...]]] = {}
    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ()

    def _configure(self, config: BaseModel | dict | None, render_mode: str | None, overrides: dict) -> BaseModel:
        """Set ``self.config`` from a config model, a dict or keyword overrides (validated by ``Config``: unknown
        keys are rejected) and ``self.render_mode`` (None or one of ``metadata["render_modes"]``); returns the
        config."""
        if config is None:
            config = self.Config(**overrides)
        elif isinstance(config, dict):
            config = self.Config(**{**config, **overrides})
        elif overrides:
            config = self.Config(**{**config.model_dump(), **overrides})
        allowed = (None, *self.metadata.get("render_modes", ()))
        if render_mode not in allowed:
            raise ValueError(f"render_mode must be one of {list(allowed)}, got {render_mode!r}")
        self.config, self.render_mode = config, render_mode
        return config

    def task_of(self, info: dict[str, Any]) -> dict[str, Any]:
        """The task of the current episode (the values of ``TASK_KEYS``), from the env's ``info``."""
        return {k: info[k] for k in self.TASK_KEYS if k in info}

    def episode_result(self, info: dict[str, Any]) -> dict[str, Any]:
        """The task-specific fields of an episode's result, from the ``info`` of its last step."""
        return {k: info.get(k) for k in self.RESULT_FIELDS}

    @classmethod
    def check_task(cls, task: dict[str, Any]) -> dict[str, Any]:
        """``task`` if it sets only ``TASK_KEYS``; raises ``ValueError`` naming a key that is not one."""
        unknown = sorted(set(task) - set(cls.TASK_KEYS))
        if unknown:
            raise ValueError(f"unknown task key(s) {unknown}; allowed: {list(cls.TASK_KEYS)}")
        return dict(task)


def env_class(env_id: str) -> type[TaclabEnv]:
    """The class registered as ``env_id``; raises ``ValueError`` listing the taclab envs for an unknown id."""
    from gymnasium.envs.registration import load_env_creator, registry

    if env_id not in registry or not env_id.startswith("taclab/"):
        known = sorted(k for k in registry if k.startswith("taclab/"))
        raise ValueError(f"unknown environment {env_id!r}; allowed: {known}")
    cls = load_env_creator(registry[env_id].entry_point)
    if not (isinstance(cls, type) and issubclass(cls, TaclabEnv)):
        raise TypeError(f"{env_id} is registered with {cls!r}, which is not a TaclabEnv")
    return cls


def check_overrides(env_id: str, overrides: dict[str, Any], prefix: str = "env") -> dict[str, Any]:
    """``overrides`` if they are a valid config of ``env_id``; else ``ValueError`` naming the bad key (as
    ``<prefix>.<key>``) and the allowed keys."""
    from pydantic import ValidationError

    from taclab.utils import validation_message

    model = env_class(env_id).Config
    try:
        model(**overrides)
    except ValidationError as e:
        raise ValueError(validation_message(e, prefix, {"": sorted(model.model_fields)})) from None
    return overrides


def make(env_id: str, **config) -> gym.Env:
    """``gym.make(env_id, **config)`` with a clear error for an unknown id; the env without wrappers' checks
    is returned as Gymnasium builds it (order enforcing and the passive checker included)."""
    env_class(env_id)
    return gym.make(env_id, **config)
