"""Executing action chunks: a queue (run the first ``n_action_steps`` of each chunk, then predict again) or a
temporal ensemble (predict a chunk every step and blend every past prediction for the current step).

Temporal ensemble (the ACT / VITAL rule): at step ``t`` every chunk predicted at a step ``s`` with
``0 <= t - s < horizon`` proposes ``chunk_s[t - s]``; the action is their weighted mean with weights
``exp(-m * i)``, ``i = 0`` for the oldest proposal, normalized to sum to one. ``m = 0.01`` by default; a larger
``m`` trusts older predictions more.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def _check_chunk(chunk) -> np.ndarray:
    c = np.asarray(chunk, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] < 1:
        raise ValueError(f"an action chunk must have shape (horizon, action_dim), got {c.shape}")
    return c


class ActionQueue:
    """Runs the first ``n_action_steps`` actions of each predicted chunk before asking for a new one."""

    def __init__(self, n_action_steps: int):
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.n_action_steps = int(n_action_steps)
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()

    def empty(self) -> bool:
        return not self._queue

    def push(self, chunk) -> None:
        c = _check_chunk(chunk)
        if len(c) < self.n_action_steps:
            raise ValueError(f"a chunk of {len(c)} steps cannot feed n_action_steps={self.n_action_steps}")
        self._queue.extend(c[: self.n_action_steps])

    def pop(self) -> np.ndarray:
        if not self._queue:
            raise RuntimeError("the action queue is empty: push a chunk first")
        return self._queue.popleft()


class TemporalEnsemble:
    """Blends every past chunk's prediction for the current step (see the module docstring)."""

    def __init__(self, m: float = 0.01):
        if not np.isfinite(m):
            raise ValueError(f"the temporal ensemble coefficient m must be finite, got {m}")
        self.m = float(m)
        self.reset()

    def reset(self) -> None:
        self._chunks: list[tuple[int, np.ndarray]] = []  # (step predicted at, chunk), oldest first
        self.step = 0

    def update(self, chunk) -> np.ndarray:
        """Add the chunk predicted at the current step; return the blended action for it and advance."""
        c = _check_chunk(chunk)
        if self._chunks and self._chunks[0][1].shape[1] != c.shape[1]:
            raise ValueError(
                f"chunk action_dim {c.shape[1]} differs from earlier chunks' {self._chunks[0][1].shape[1]}"
            )
        self._chunks.append((self.step, c))
        self._chunks = [(s, ch) for s, ch in self._chunks if self.step - s < len(ch)]
        proposals = np.stack([ch[self.step - s] for s, ch in self._chunks])  # oldest first
        w = np.exp(-self.m * np.arange(len(proposals)))
        self.step += 1
        return (w[:, None] * proposals).sum(0) / w.sum()
