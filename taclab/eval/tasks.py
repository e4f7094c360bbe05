"""Task lists a ``--tasks`` option may name: those each env declares (``TASK_LISTS``) and those paper packages
register for it (e.g. the TLA paper's ``paper`` list of tables III and IV), and ``key:value`` task strings."""

from __future__ import annotations

import math
from typing import Any

import yaml

from taclab.envs.base import env_class

_REGISTERED: dict[str, dict[str, tuple[dict[str, Any], ...]]] = {}


def register_task_list(env_id: str, name: str, tasks) -> None:
    """Make ``--tasks name`` select ``tasks`` (a sequence of reset options) for ``env_id``."""
    _REGISTERED.setdefault(env_id, {})[name] = tuple(dict(t) for t in tasks)


def task_lists(env_id: str) -> dict[str, tuple[dict[str, Any], ...]]:
    """Every named task list of ``env_id``."""
    return {**env_class(env_id).TASK_LISTS, **_REGISTERED.get(env_id, {})}


def parse_tasks(env_id: str, text: str) -> list[dict[str, Any]]:
    """The tasks of a ``--tasks`` value: a list name, or tasks separated by ``;``, each a ``,``-separated list of
    ``key=value`` (values read as YAML); for an env with exactly two task keys, ``a:b`` is short for
    ``key1=a,key2=b`` (``square:1.6`` for the peg task) and a bare value sets the first task key. Every key must
    be one of the env's ``TASK_KEYS`` and is checked by the env's ``check_task``."""
    cls = env_class(env_id)
    lists = task_lists(env_id)
    text = text.strip()
    if text in lists:
        return [dict(t) for t in lists[text]]
    if not text:
        raise ValueError(f"--tasks is empty; give a task list {sorted(lists)} or tasks such as key=value")
    tasks = []
    for item in text.replace(";", "|").split("|") if ("=" in text or ";" in text) else text.split(","):
        item = item.strip()
        if "=" in item:
            task = {}
            for pair in item.split(","):
                k, sep, v = pair.partition("=")
                if not sep:
                    raise ValueError(f"task {item!r}: expected key=value pairs separated by ','")
                task[k.strip()] = yaml.safe_load(v)
        elif len(cls.TASK_KEYS) == 2 and ":" in item:
            a, _, b = item.partition(":")
            task = {cls.TASK_KEYS[0]: yaml.safe_load(a), cls.TASK_KEYS[1]: yaml.safe_load(b)}
        elif cls.TASK_KEYS and item and "," not in item:
            task = {cls.TASK_KEYS[0]: yaml.safe_load(item)}
        else:
            raise ValueError(
                f"unknown task list or task {item!r} for {env_id}; task lists: {sorted(lists)}; a task is "
                f"key=value pairs over {list(cls.TASK_KEYS)}"
                + (f", or {cls.TASK_KEYS[0]}:{cls.TASK_KEYS[1]}" if len(cls.TASK_KEYS) == 2 else "")
            )
        for k, v in task.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"task {item!r}: {k} must be finite, got {v}")
        tasks.append(cls.check_task(task))
    return tasks
