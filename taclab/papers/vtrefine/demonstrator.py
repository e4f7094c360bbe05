"""A scripted bimanual demonstrator for ``taclab/BimanualAssembly-v0``, imperfect the way a human teleoperator is.

It reads the true part poses from ``info`` (``privileged = True``) and the hands' poses from the observation's
``state``, and runs one phase machine per hand:

1. both hands: move above the grasp point on the part's handle (a random offset along the handle), turn to the
   part's heading, descend, close the gripper, lift;
2. hand 0 presents the socket in the air, its hole's axis along world +x;
3. hand 1 brings the peg's tip ``standoff`` in front of the mouth, lined up with the socket's axis as it *believes*
   it to be, then pushes along that axis at a steady speed until the peg is in (the env then ends the episode).

Imperfection: the alignment is planned with a belief that is off by a per-episode bias (lateral offset and tilt
of the hole's axis, drawn once, Gaussian), the targets shake with a per-step tremor, the insertion speed varies
between episodes, and the demonstrator sometimes pauses. It never searches or retries: a misaligned peg jams at
the chamfer until the step limit, so its success rate is clearly below 100 % (measured in docs/vt_refine.md).
Targets move towards each phase's goal at a bounded speed, as a teleoperator's hand would.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taclab.policies.base import Policy, register
from taclab.sim.bimanual import (
    HANDS,
    BimanualConfig,
    euler_to_mat,
    mat_to_euler,
    part_geometry,
    quat_to_mat,
    yaw_of,
)


class DemoNoise(BaseModel):
    """How imperfect the demonstrator is. Lengths in m, angles in rad, speeds in m/s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grasp_offset: float = Field(0.01, ge=0, description="grasp point: uniform +- this along the handle (m)")
    align_lateral: float = Field(0.001, ge=0, description="std of the believed axis' lateral offset (m)")
    align_angle: float = Field(0.012, ge=0, description="std of the believed axis' tilt about y and z (rad)")
    tremor: float = Field(0.0002, ge=0, description="std of the per-step shake of position targets (m)")
    insert_speed: tuple[float, float] = Field((0.015, 0.03), description="insertion speed range (m/s)")
    pause_prob: float = Field(0.3, ge=0, le=1, description="chance of one pause of 1-5 steps per episode")


class DemoConfig(BaseModel):
    """Parameters of the demonstrator's motion (SI units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    control_hz: float = Field(10.0, gt=0, description="the env's control rate")
    action_mode: str = Field("absolute", description="the env's action mode: 'absolute' or 'relative'")
    scene: BimanualConfig = Field(default_factory=BimanualConfig, description="the env's scene (part geometry)")
    speed: float = Field(0.15, gt=0, description="hand speed in free space (m/s)")
    slow_speed: float = Field(0.05, gt=0, description="hand speed near the parts (m/s)")
    turn_speed: float = Field(1.0, gt=0, description="hand angular speed (rad/s)")
    hover: float = Field(0.08, gt=0, description="hand height above a part before descending (m)")
    lift: float = Field(0.13, gt=0, description="hand height after lifting (m)")
    close_steps: int = Field(4, ge=1, description="steps the gripper takes to close")
    present_at: tuple[float, float, float] = Field((-0.06, 0.0, 0.12), description="socket position in the air (m)")
    standoff: float = Field(0.012, gt=0, description="gap between the peg tip and the mouth before pushing (m)")
    overshoot: float = Field(0.006, ge=0, description="how far past the success depth the push aims (m)")
    press_lead: float = Field(0.004, gt=0, description="the push target leads the peg by at most this (m)")
    success_depth: float = Field(0.025, gt=0, description="the env's success depth (m)")
    noise: DemoNoise = Field(default_factory=DemoNoise, description="imperfections")


def _hand_for(part_in_hand: tuple[np.ndarray, np.ndarray], pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Hand pose (6,) that puts a held part (its pose in the grasp frame) at ``pos``, ``rot`` in the world."""
    p_in, r_in = part_in_hand
    rh = rot @ r_in.T
    return np.r_[pos - rh @ p_in, mat_to_euler(rh)]


def _move(current: np.ndarray, goal: np.ndarray, step_m: float, step_rad: float) -> np.ndarray:
    """One bounded step of a pose target (6,) towards a goal."""
    d = goal - current
    d[3:] = (d[3:] + math.pi) % (2 * math.pi) - math.pi
    n = float(np.linalg.norm(d[:3]))
    if n > step_m:
        d[:3] *= step_m / n
    d[3:] = np.clip(d[3:], -step_rad, step_rad)
    return current + d


@register("vtrefine_demo")
class BimanualDemonstrator(Policy):
    """Scripted, imperfect bimanual assembly (see the module docstring). Privileged: reads ``info``."""

    privileged = True

    def __init__(self, seed: int = 0, **config):
        self.seed = int(seed)
        self.cfg = DemoConfig(**config)
        if self.cfg.action_mode not in ("absolute", "relative"):
            raise ValueError(f"unknown action_mode {self.cfg.action_mode!r}; allowed: 'absolute', 'relative'")
        self._episode = 0
        self.reset()

    def config(self) -> dict[str, Any]:
        return {"seed": self.seed, **self.cfg.model_dump(mode="json")}

    # ------------------------------------------------------------------ episode state
    def reset(self, task: dict[str, Any] | None = None, seed: int | None = None) -> None:
        task = dict(task or {})
        self.rng = np.random.default_rng([self.seed, self._episode] if seed is None else [self.seed, int(seed)])
        self._episode += 1
        self.geometry = part_geometry(
            self.cfg.scene, task.get("assembly", "round"), float(task.get("clearance_mm", 0.8)) / 1000.0
        )
        n = self.cfg.noise
        self.phase = ["approach", "approach"]
        self.timer = [0, 0]
        self.target: np.ndarray | None = None  # (2, 6) the pose targets, without the tremor
        self.sent: np.ndarray | None = None  # (2, 6) the absolute targets sent last
        self.grip = np.zeros(HANDS)
        self.grasp_offset = self.rng.uniform(-n.grasp_offset, n.grasp_offset, HANDS)
        self.grasp_heading: list[float | None] = [None, None]
        # the believed socket axis: a lateral offset (y, z) and a tilt (about y, about z), in the socket frame
        self.bias_pos = np.r_[0.0, self.rng.normal(0, n.align_lateral, 2)]
        a = self.rng.normal(0, n.align_angle, 2)
        self.bias_rot = euler_to_mat(0.0, a[0], a[1])
        self.insert_speed = self.rng.uniform(*n.insert_speed)
        self.pause_at = int(self.rng.integers(5, 60)) if self.rng.random() < n.pause_prob else -1
        self.pause_len = int(self.rng.integers(1, 6))
        self.gap = self.cfg.standoff
        self.steps = 0

    # ------------------------------------------------------------------ acting
    def select_action(self, obs: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray:
        if info is None or "part_poses" not in info:
            raise ValueError("the demonstrator is privileged: it needs the env's info with 'part_poses'")
        state = np.asarray(obs["state"], dtype=np.float64).reshape(HANDS, 7)
        hands = state[:, :6]
        parts = np.asarray(info["part_poses"], dtype=np.float64).reshape(HANDS, 7)
        if self.target is None:
            self.target = hands.copy()
            self.sent = hands.copy()
        dt = 1.0 / self.cfg.control_hz
        self.steps += 1
        paused = self.pause_at <= self.steps < self.pause_at + self.pause_len
        if not paused:
            for k in range(HANDS):
                self._advance(k, hands, parts, dt)
        tremor = self.rng.normal(0, self.cfg.noise.tremor, (HANDS, 3))
        out = self.target.copy()
        out[:, :3] += tremor
        previous, self.sent = self.sent, out
        if self.cfg.action_mode == "relative":
            out = out - previous
        return np.c_[out, self.grip].reshape(-1).astype(np.float32)

    def _in_hand(self, k: int, hands: np.ndarray, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rh = euler_to_mat(*hands[k, 3:])
        return rh.T @ (parts[k, :3] - hands[k, :3]), rh.T @ quat_to_mat(parts[k, 3:])

    def _advance(self, k: int, hands: np.ndarray, parts: np.ndarray, dt: float) -> None:
        cfg = self.cfg
        fast = cfg.speed * dt
        slow = cfg.slow_speed * dt
        turn = cfg.turn_speed * dt
        phase = self.phase[k]
        tgt = self.target[k]
        here = hands[k]
        self.timer[k] += 1
        if phase in ("approach", "descend"):
            r = quat_to_mat(parts[k, 3:])
            if self.grasp_heading[k] is None:
                self.grasp_heading[k] = yaw_of(r)
            point = parts[k, :3] + r @ np.array([self.grasp_offset[k], 0.0, 0.0])
            if phase == "approach":
                goal = np.r_[point[0], point[1], cfg.hover, 0.0, 0.0, self.grasp_heading[k]]
                self.target[k] = _move(tgt, goal, fast, turn)
                if np.linalg.norm(here[:2] - goal[:2]) < 0.004 and abs(here[2] - goal[2]) < 0.01:
                    self._next(k, "descend")
            else:
                goal = np.r_[point[0], point[1], cfg.scene.fingertip + 0.003, 0.0, 0.0, self.grasp_heading[k]]
                self.target[k] = _move(tgt, goal, slow, turn)
                if abs(here[2] - goal[2]) < 0.002:
                    self._next(k, "close")
        elif phase == "close":
            self.grip[k] = 1.0
            if self.timer[k] >= cfg.close_steps:
                self._next(k, "lift")
        elif phase == "lift":
            goal = tgt.copy()
            goal[2] = cfg.lift
            self.target[k] = _move(tgt, goal, slow if here[2] < 0.05 else fast, turn)
            if here[2] > cfg.lift - 0.01:
                self._next(k, "present" if k == 0 else "wait")
        elif phase == "present":
            goal = _hand_for(self._in_hand(0, hands, parts), np.array(cfg.present_at), np.eye(3))
            self.target[k] = _move(tgt, goal, fast, turn)
        elif phase == "wait":
            if self.phase[0] == "present" and self._socket_settled(hands, parts):
                self._next(k, "align")
        elif phase in ("align", "insert"):
            geo = self.geometry
            rs = quat_to_mat(parts[0, 3:])
            axis_rot = rs @ self.bias_rot
            axis_pos = parts[0, :3] + rs @ self.bias_pos
            if phase == "insert":
                # push at a steady speed, but never more than press_lead ahead of where the peg is: a stuck peg
                # is pressed with a bounded force, not shoved out of the hand
                actual = -self._insertion(parts)
                self.gap = max(self.gap - self.insert_speed * dt, actual - cfg.press_lead)
            gap = max(self.gap, -(cfg.success_depth + cfg.overshoot))
            peg_pos = axis_pos + axis_rot @ np.array([geo.assembled_offset + gap, 0.0, 0.0])
            goal = _hand_for(self._in_hand(1, hands, parts), peg_pos, axis_rot)
            self.target[k] = _move(tgt, goal, fast if phase == "align" else slow, turn)
            if phase == "align" and np.linalg.norm(here[:3] - goal[:3]) < 0.0015 and self.timer[k] > 3:
                self._next(k, "insert")

    def _insertion(self, parts: np.ndarray) -> float:
        """Depth (m) of the peg's tip past the socket's mouth (negative before it)."""
        rs = quat_to_mat(parts[0, 3:])
        return self.geometry.insertion(rs.T @ (parts[1, :3] - parts[0, :3]))

    def _socket_settled(self, hands: np.ndarray, parts: np.ndarray) -> bool:
        return bool(np.linalg.norm(parts[0, :3] - np.array(self.cfg.present_at)) < 0.004)

    def _next(self, k: int, phase: str) -> None:
        self.phase[k] = phase
        self.timer[k] = 0
