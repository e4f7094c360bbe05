"""The one ``--set key=value`` grammar of every command: dotted keys into the command's config tree, values
parsed as YAML (``--set train.lr=3e-4``, ``--set env.image_size=[48,48]``, ``--set scene.grip_force=5``).

:func:`apply_sets` merges the overrides into a config tree and rejects a key the command sets itself (it names
the key and where to give the value instead); the command's pydantic model then rejects unknown keys, naming
them with their dotted path.
"""

from __future__ import annotations

import copy
from typing import Any

from taclab.utils import parse_sets


def nest(sets: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}``; a key given both as a value and as a section is
    rejected."""
    out: dict[str, Any] = {}
    for key, value in sets.items():
        parts = key.split(".")
        if not all(parts):
            raise ValueError(f"--set key {key!r} has an empty part; keys are dotted names such as train.lr")
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ValueError(f"--set {'.'.join(parts[: i + 1])} is given a value and also sub-keys ({key})")
            node = nxt
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"--set {key} is given a value and also sub-keys")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``overrides`` merged in (sections merge, values replace)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_sets(
    base: dict[str, Any], items: list[str] | dict[str, Any] | None, reserved: dict[str, str] | None = None
) -> dict[str, Any]:
    """``base`` with the ``--set`` items applied. ``reserved`` maps keys the command sets itself to a hint of
    where the value belongs; such a key (or a key under it) raises ``ValueError`` naming it."""
    sets = parse_sets(items) if isinstance(items, list | None) else dict(items)
    for key in sets:
        for r, hint in (reserved or {}).items():
            if key == r or key.startswith(r + "."):
                raise ValueError(f"--set {key} is not allowed here: {hint}")
    return merge(base, nest(sets))
