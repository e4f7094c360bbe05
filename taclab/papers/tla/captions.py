"""Captions of a tactile sample written from the simulator's privileged state: the pose error, the side the peg
is blocked on, the sense of rotation. The recipe's alignment stage (:mod:`taclab.papers.tla.recipe`) trains on
them, and with ``reason`` (:class:`taclab.papers.tla.model.TLAConfig`) the action stage's answer states them
before the action ("reason, then act")."""

from __future__ import annotations

import numpy as np

X_WORDS = ("left", "right")
"""The side of a negative / positive x error (ex, mm)."""
Y_WORDS = ("back", "front")
"""The side of a negative / positive y error (ey, mm)."""
RZ_WORDS = ("cw", "ccw")
"""The sense of a negative / positive rotation error (erz, degrees about +z): clockwise, counter-clockwise."""
BLOCKED = "blocked"
"""Added to an axis whose error is larger than half the clearance."""
NONE = "none"
"""The side of an error that rounds to zero, in captions without magnitudes."""


def _axis(name: str, value: float, words: tuple[str, str], magnitude: bool = True) -> str:
    r = round(abs(float(value)), 1)
    if r == 0.0:  # no side word for an error that rounds to zero
        return f"{name} 0.0" if magnitude else f"{name} {NONE}"
    side = words[int(value > 0)]
    return f"{name} {r:.1f} {side}" if magnitude else f"{name} {side}"


def caption(error, clearance_mm: float, magnitudes: bool = True) -> str:
    """The caption of one sample from its privileged state: the pose error ``(ex mm, ey mm, erz deg)`` and the
    clearance. Per axis its name, the magnitude rounded to 0.1 (mm, mm, deg) and the side (x: left / right, y:
    back / front, rz: cw / ccw; none when the magnitude rounds to zero); x and y are *blocked* when ``|e| >
    clearance / 2`` (the peg's edge meets the rim on that side, the case in which the action moves it,
    :func:`taclab.papers.tla.labels.tla_label`). Deterministic and short: the tiny tokenizer spells most of these
    words byte by byte (about 30-45 tokens).

    ``caption((0.8, -1.3, 1.2), 2.0)`` is ``"x 0.8 right; y 1.3 back, blocked; rz 1.2 ccw."``; without
    ``magnitudes`` the sides alone, ``"x right; y back, blocked; rz ccw."`` (``none`` for an error that rounds to
    zero).
    """
    e = np.asarray(error, dtype=float).reshape(-1)
    if e.shape != (3,) or not np.all(np.isfinite(e)) or not float(clearance_mm) > 0:
        raise ValueError(f"caption needs a finite error (3,) and a positive clearance, got {error!r}, {clearance_mm!r}")
    half = float(clearance_mm) / 2
    parts = []
    for name, value, words in (("x", e[0], X_WORDS), ("y", e[1], Y_WORDS)):
        text = _axis(name, value, words, magnitudes)
        parts.append(text + f", {BLOCKED}" if abs(value) > half else text)
    parts.append(_axis("rz", e[2], RZ_WORDS, magnitudes))
    return "; ".join(parts) + "."


def captions(errors, clearances, magnitudes: bool = True) -> list[str]:
    """:func:`caption` of every sample (``errors`` (N, 3), ``clearances`` (N,) or one number)."""
    errors = np.asarray(errors, dtype=float).reshape(-1, 3)
    c = np.broadcast_to(np.asarray(clearances, dtype=float), (len(errors),))
    return [caption(e, float(ci), magnitudes) for e, ci in zip(errors, c, strict=True)]


def caption_fields(text: str) -> dict[str, str | bool | None]:
    """The side word of each axis (``None`` when the axis is missing or unreadable, ``""`` for a zero error) and
    the blocked flags of x and y, read back from a caption."""
    fields: dict[str, str | bool | None] = {}
    parts = {p.strip().split(" ")[0]: p.strip() for p in text.strip().rstrip(".").split(";")}
    for name in ("x", "y", "rz"):
        words = parts.get(name, "").replace(",", " ").split()
        fields[name] = None if len(words) < 2 else (words[2] if len(words) > 2 and words[2] != BLOCKED else "")
        if name != "rz":
            fields[f"{name}_blocked"] = BLOCKED in words
    return fields


__all__ = ["BLOCKED", "NONE", "RZ_WORDS", "X_WORDS", "Y_WORDS", "caption", "caption_fields", "captions"]
