"""A scripted demonstrator for the VITAL tasks that moves like a teleoperator.

It reads the true poses from ``info`` (``privileged = True``) but believes them with a per-episode error, as a
person judging a scene by eye does, and acts at the env's 6 Hz with relative end-effector actions:

- **approach** a point above the target (the belief is off by ``far_bias_mm``), with a per-episode gain that
  makes it overshoot a little and come back (``gain``), a per-step tremor and the odd pause;
- **align** close above the entry with a better look (the belief is now off by ``near_bias_mm``) and slowly;
- **insert** (plug, USB, key), **descend into the slot and swipe** (card), or **descend, close and lift** (pick).

Touch drives the corrections: a rise of the skin reading by ``contact_uT`` while the part is not yet in means
the part caught the rim: the demonstrator backs off, looks again (its belief error shrinks by ``refine``) and
retries; a reading near the env's abort threshold makes it back off at once; pick checks the grasp on the skins
before lifting. With ``use_touch=False`` it does none of this (the touch-matters measurement in
``docs/results/vital_tasks.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taclab.policies.base import Policy, register
from taclab.sim.vital import CARD_HALF_LENGTH, TASKS, VitalSceneConfig, euler_to_mat, make_part, mat_to_rotvec


class DemoNoise(BaseModel):
    """How imperfect the demonstrator is. Lengths in mm, angles in degrees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    far_bias_mm: float = Field(1.5, ge=0, description="std of the believed target position while approaching")
    near_bias_mm: float = Field(0.7, ge=0, description="std of the believed target position when close")
    far_yaw_deg: float = Field(1.5, ge=0, description="std of the believed target yaw while approaching")
    near_yaw_deg: float = Field(0.4, ge=0, description="std of the believed target yaw when close")
    refine: float = Field(0.35, ge=0, le=1, description="a felt contact multiplies the belief error by this")
    tremor_mm: float = Field(0.15, ge=0, description="std of the per-step shake of the hand")
    tremor_deg: float = Field(0.15, ge=0, description="std of the per-step shake of the hand's yaw")
    gain: tuple[float, float] = Field((0.75, 1.25), description="per-episode gain range; above 1 overshoots")
    pause_prob: float = Field(0.04, ge=0, le=1, description="chance per step of a pause (no motion)")
    push_prob: float = Field(
        0.0, ge=0, le=1, description="chance per step that the executed move is pushed sideways (0: never)"
    )
    push_mm: float = Field(3.0, ge=0, le=10, description="std of a sideways push per hand axis (x, y)")
    push_deg: float = Field(0.0, ge=0, le=5, description="std of a push's turn about the hand's z axis (yaw)")


class DemoConfig(BaseModel):
    """Parameters of the demonstrator (the env's defaults). Lengths in mm, angles in degrees, readings in uT."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str | None = Field(None, description=f"one of {TASKS}; None: the task the env's info names")
    scene: VitalSceneConfig = Field(default_factory=VitalSceneConfig, description="the env's scene (part geometry)")
    max_step_mm: float = Field(10.0, gt=0, description="the env's largest translation per step")
    max_step_deg: float = Field(5.0, gt=0, description="the env's largest rotation per step")
    max_skin_norm: float = Field(2500.0, gt=0, description="the env's abort threshold (uT)")
    speed_mm: float = Field(8.0, gt=0, description="largest move per step in free space")
    slow_mm: float = Field(2.5, gt=0, description="largest move per step when close")
    insert_mm: float = Field(2.5, gt=0, description="descent per step while inserting")
    swipe_mm: float = Field(7.0, gt=0, description="card: swipe per step")
    hover_mm: float = Field(15.0, gt=0, description="height of the approach point above the entry")
    align_mm: float = Field(3.0, gt=0, description="height above the entry where the insertion starts")
    card_depth_mm: float = Field(8.0, gt=0, description="card: how deep its edge runs in the slot")
    contact_uT: float = Field(150.0, gt=0, description="a skin rise that counts as a felt contact")
    grasp_uT: float = Field(300.0, gt=0, description="pick: skin reading of a good grasp on each pad")
    safety: float = Field(0.6, gt=0, le=1, description="back off above this fraction of max_skin_norm")
    back_off_mm: float = Field(2.0, gt=0, description="lift after a felt contact")
    use_touch: bool = Field(True, description="contact-driven corrections from the skin")
    noise: DemoNoise = Field(default_factory=DemoNoise, description="imperfections")


def _yaw(r: np.ndarray) -> float:
    return math.atan2(r[1, 0], r[0, 0])


def _wrap(a: float, period: float = 2 * math.pi) -> float:
    return (a + period / 2) % period - period / 2


@register("vital_demo")
class VitalDemonstrator(Policy):
    """Scripted, human-like, privileged demonstrator of one VITAL task (see the module docstring)."""

    privileged = True

    def __init__(self, seed: int = 0, **config):
        self.cfg = DemoConfig(**config)
        self.task = self.cfg.task
        self.part = make_part(self.task, self.cfg.scene) if self.task is not None else None
        self._seed = seed
        self.rng = np.random.default_rng(seed)
        self.reset()

    def config(self) -> dict[str, Any]:
        return {"seed": self._seed, **self.cfg.model_dump(mode="json")}

    def reset(self, task: dict[str, Any] | None = None, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        n, rng = self.cfg.noise, self.rng
        self.phase = "approach"
        self.bias = rng.normal(0, n.far_bias_mm / 1000, 2)
        self.yaw_bias = math.radians(rng.normal(0, n.far_yaw_deg))
        self.gain = rng.uniform(*n.gain)
        self.ref_norm = 0.0
        self.corrections = 0
        self.phase_steps = 0
        self.steps = 0
        self.swipe_x = None
        if seed is not None or not hasattr(self, "push_rng"):  # its own stream: the pushes leave the rest as is
            self.push_rng = np.random.default_rng([self._seed if seed is None else seed, 1])

    def executed(self, action: np.ndarray) -> np.ndarray:
        """The move the hand makes for ``action``: with ``noise.push_prob`` the intended action plus a sideways
        push (Gaussian, ``noise.push_mm`` per hand axis x, y, and ``noise.push_deg`` about its z axis), clipped
        to the env's step; otherwise the action.
        A dataset records the intended action, so the pushed states come with the demonstrator's correction
        (noise injected into the expert's execution, DART)."""
        n = self.cfg.noise
        if n.push_prob <= 0 or self.push_rng.random() >= n.push_prob:
            return action
        out = np.array(action, dtype=np.float32, copy=True)
        out[:2] = np.clip(out[:2] + self.push_rng.normal(0, n.push_mm, 2), -self.cfg.max_step_mm, self.cfg.max_step_mm)
        if n.push_deg > 0:
            out[5] = np.clip(
                out[5] + self.push_rng.normal(0, n.push_deg), -self.cfg.max_step_deg, self.cfg.max_step_deg
            )
        return out

    # ------------------------------------------------------------------ helpers
    def _refine_near(self) -> None:
        n = self.cfg.noise
        self.bias = self.rng.normal(0, n.near_bias_mm / 1000, 2)
        self.yaw_bias = math.radians(self.rng.normal(0, n.near_yaw_deg))

    def _set(self, phase: str) -> None:
        self.phase, self.phase_steps = phase, 0

    def _action(
        self, info: dict, hand_goal: np.ndarray, yaw_goal: float, gripper: float, cap_mm: float, z_from_cmd=None
    ):
        """The env action that moves the commanded hand towards ``hand_goal`` (m, world) and yaw ``yaw_goal``."""
        cfg, n = self.cfg, self.cfg.noise
        cmd = np.asarray(info["ee_target"], float)
        rc = euler_to_mat(cmd[3:])
        delta = (hand_goal - cmd[:3]) * 1000 * self.gain
        if z_from_cmd is not None:
            delta[2] = z_from_cmd * 1000
        delta = np.clip(delta, -cap_mm, cap_mm) + self.rng.normal(0, n.tremor_mm, 3)
        dyaw = _wrap(yaw_goal - cmd[5]) * self.gain + math.radians(self.rng.normal(0, n.tremor_deg))
        c, s = math.cos(cmd[5] + dyaw), math.sin(cmd[5] + dyaw)
        r_goal = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])  # level, at the new yaw
        rot = np.degrees(mat_to_rotvec(rc.T @ r_goal))
        a = np.zeros(7)
        a[:3] = np.clip(rc.T @ delta, -cfg.max_step_mm, cfg.max_step_mm)
        a[3:6] = np.clip(rot, -cfg.max_step_deg, cfg.max_step_deg)
        a[6] = gripper
        if self.rng.random() < n.pause_prob and self.phase in ("approach", "align"):
            a[:6] = 0.0
        return a.astype(np.float32)

    # ------------------------------------------------------------------ policy
    def select_action(self, obs: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> np.ndarray:
        if info is None or "object_pos" not in info:
            raise ValueError("the VITAL demonstrator is privileged: it needs the env's info dict")
        if self.task is None or info.get("task", self.task) != self.task:
            if self.cfg.task is not None:
                raise ValueError(f"this demonstrator is set up for {self.cfg.task!r}, the env runs {info['task']!r}")
            self.task = info["task"]
            self.part = make_part(self.task, self.cfg.scene)
        self.steps += 1
        self.phase_steps += 1
        norm = float(np.linalg.norm(np.asarray(obs["skin"], float), axis=-1).max())
        if self.task == "pick":
            return self._pick(info, obs, norm)
        if self.task == "card":
            return self._card(info, norm)
        return self._insert(info, norm)

    def _hand_goal_for_tip(self, info, tip_goal: np.ndarray) -> np.ndarray:
        return np.asarray(info["ee_pos"]) + (tip_goal - np.asarray(info["object_pos"]))

    def _yaw_goal(self, info, period: float = 2 * math.pi) -> float:
        in_hand = _wrap(_yaw(info["object_rot"]) - _yaw(info["ee_rot"]))
        goal = info["target_yaw"] + self.yaw_bias - in_hand
        cmd = float(info["ee_target"][5])
        return cmd + _wrap(goal - cmd, period)

    def _yaw_error(self, info, period: float = 2 * math.pi) -> float:
        return abs(_wrap(_yaw(info["object_rot"]) - info["target_yaw"] - self.yaw_bias, period))

    def _felt_contact(self, norm: float) -> bool:
        return self.cfg.use_touch and norm - self.ref_norm > self.cfg.contact_uT

    def _too_hard(self, norm: float) -> bool:
        return self.cfg.use_touch and norm > self.cfg.safety * self.cfg.max_skin_norm

    def _back_off(self, info) -> None:
        """A felt contact: lift and look again (the belief error shrinks)."""
        self.corrections += 1
        r = self.cfg.noise.refine
        self.bias = self.bias * r + self.rng.normal(0, 0.02e-3, 2)
        self.yaw_bias *= r
        self._set("back_off")

    def _insert(self, info: dict, norm: float) -> np.ndarray:
        cfg = self.cfg
        tip = np.asarray(info["object_pos"])
        entry = np.asarray(info["target_pos"])
        est = entry + np.r_[self.bias, 0.0]
        depth = entry[2] - tip[2]  # how far the tip is below the entry (m)
        yaw_goal = self._yaw_goal(info)
        if self.phase == "approach":
            goal = est + [0, 0, cfg.hover_mm / 1000]
            if np.linalg.norm(goal - tip) < 0.002 and self._yaw_error(info) < math.radians(2):
                self._refine_near()
                self._set("align")
            else:
                return self._action(info, self._hand_goal_for_tip(info, goal), yaw_goal, 1.0, cfg.speed_mm)
        if self.phase == "back_off":
            hand = np.asarray(info["ee_pos"])
            if self.phase_steps > 1:
                self._set("align")
            else:
                goal = self._hand_goal_for_tip(info, np.r_[tip[:2], entry[2] + cfg.align_mm / 1000])
                goal[2] = max(goal[2], hand[2] + cfg.back_off_mm / 1000)
                return self._action(info, goal, yaw_goal, 1.0, cfg.slow_mm)
        if self.phase == "align":
            goal = est + [0, 0, cfg.align_mm / 1000]
            close = np.abs(goal - tip)[:2].max() < 0.0003 and abs(goal[2] - tip[2]) < 0.0015
            if close and self._yaw_error(info) < math.radians(0.6):
                self.ref_norm = norm
                self._set("insert")
            else:
                return self._action(info, self._hand_goal_for_tip(info, goal), yaw_goal, 1.0, cfg.slow_mm)
        # insert: hold the believed line and go down; touch tells when the part caught the rim
        if depth < 0.001 and (self._felt_contact(norm) or self._too_hard(norm)):
            self._back_off(info)
            return self._insert(info, norm)
        if depth >= 0.001 and self._too_hard(norm):
            self._back_off(info)
            return self._insert(info, norm)
        goal = self._hand_goal_for_tip(info, np.r_[est[:2], tip[2]])
        return self._action(info, goal, yaw_goal, 1.0, cfg.slow_mm, z_from_cmd=-cfg.insert_mm / 1000)

    def _card(self, info: dict, norm: float) -> np.ndarray:
        cfg = self.cfg
        p = np.asarray(info["object_pos"])  # the card's bottom edge, at its middle
        entry = np.asarray(info["target_pos"])  # the slot's +x end, at its top
        ty = info["target_yaw"]
        ax, ay = np.array([math.cos(ty), math.sin(ty), 0]), np.array([-math.sin(ty), math.cos(ty), 0])
        rel = np.array([ax @ (p - entry), ay @ (p - entry), p[2] - entry[2]])
        yaw_goal = self._yaw_goal(info, period=math.pi)  # a card is the same turned round

        def world(x, y, z):
            return entry + x * ax + y * ay + np.array([0, 0, z])

        start_x = CARD_HALF_LENGTH - 0.006  # the card's -x edge 6 mm inside the slot's +x end
        y = self.bias[1]
        deep = -cfg.card_depth_mm / 1000
        if self.phase == "approach":
            goal = world(start_x + self.bias[0], y, cfg.hover_mm / 1000)
            if np.linalg.norm(goal - p) < 0.002 and self._yaw_error(info, math.pi) < math.radians(2):
                self._refine_near()
                self._set("align")
            else:
                return self._action(info, self._hand_goal_for_tip(info, goal), yaw_goal, 1.0, cfg.speed_mm)
        if self.phase == "back_off":
            if self.phase_steps > 1:
                self._set("align")
            else:
                goal = self._hand_goal_for_tip(info, world(rel[0], rel[1], cfg.align_mm / 1000))
                goal[2] = max(goal[2], info["ee_pos"][2] + cfg.back_off_mm / 1000)
                return self._action(info, goal, yaw_goal, 1.0, cfg.slow_mm)
        if self.phase == "align":
            goal = world(start_x, y, cfg.align_mm / 1000)
            close = abs(rel[1] - y) < 0.0002 and abs(rel[2] - cfg.align_mm / 1000) < 0.0015
            if close and abs(rel[0] - start_x) < 0.002 and self._yaw_error(info, math.pi) < math.radians(0.6):
                self.ref_norm = norm
                self._set("insert")
            else:
                return self._action(info, self._hand_goal_for_tip(info, goal), yaw_goal, 1.0, cfg.slow_mm)
        if self.phase == "insert":
            if rel[2] > -0.002 and (self._felt_contact(norm) or self._too_hard(norm)):
                self._back_off(info)
                return self._card(info, norm)
            if rel[2] <= deep + 0.001:
                self.ref_norm = norm
                self.swipe_x = rel[0]
                self._set("swipe")
            else:
                goal = self._hand_goal_for_tip(info, world(start_x, y, rel[2]))
                return self._action(info, goal, yaw_goal, 1.0, cfg.slow_mm, z_from_cmd=-cfg.insert_mm / 1000)
        # swipe along the slot; a dragging card (skin rise) is lifted a little and re-centred
        z = deep
        if self._too_hard(norm) or (self._felt_contact(norm) and self.phase_steps > 1):
            self.bias[1] *= self.cfg.noise.refine
            z = deep + 0.002
            self.ref_norm = norm
        self.swipe_x = min(self.swipe_x, rel[0] + 0.004) - cfg.swipe_mm / 1000
        goal = self._hand_goal_for_tip(info, world(self.swipe_x, self.bias[1], z))
        return self._action(info, goal, yaw_goal, 1.0, cfg.max_step_mm)

    def _pick(self, info: dict, obs: dict, norm: float) -> np.ndarray:
        cfg = self.cfg
        block = np.asarray(info["object_pos"])  # bottom centre
        grasp_at = block + np.array([0, 0, self.part.grip_z])
        est = grasp_at + np.r_[self.bias, 0.0]
        hand = np.asarray(info["ee_pos"])
        in_hand = 0.0
        yaw_goal = float(info["ee_target"][5]) + _wrap(
            _yaw(info["object_rot"]) + self.yaw_bias - float(info["ee_target"][5]) - in_hand, math.pi / 2
        )
        yaw_err = abs(_wrap(_yaw(info["object_rot"]) + self.yaw_bias - _yaw(info["ee_rot"]), math.pi / 2))
        if self.phase == "approach":
            goal = est + [0, 0, 0.03]
            if np.linalg.norm(goal - hand) < 0.002 and yaw_err < math.radians(2):
                self._refine_near()
                self._set("align")
            else:
                return self._action(info, goal, yaw_goal, -1.0, cfg.speed_mm)
        if self.phase == "align":
            goal = est
            if np.abs(goal - hand).max() < 0.0008 and yaw_err < math.radians(1.5):
                self._set("close")
            else:
                return self._action(info, goal, yaw_goal, -1.0, cfg.slow_mm * 1.5)
        if self.phase == "close":
            if self.phase_steps <= 2:
                return self._action(info, np.asarray(info["ee_target"][:3]), float(info["ee_target"][5]), 1.0, 0.5)
            skins = np.linalg.norm(np.asarray(obs["skin"], float), axis=-1)
            if not self.cfg.use_touch or (skins > cfg.grasp_uT).all():
                self._set("lift")
            else:  # the skins say the grasp missed: open and try again
                self.corrections += 1
                self._refine_near()
                self._set("reopen")
        if self.phase == "reopen":
            if self.phase_steps > 2:
                self._set("align")
            return self._action(info, hand + [0, 0, 0.004], yaw_goal, -1.0, cfg.slow_mm)
        goal = hand + np.array([0, 0, 0.02])
        return self._action(info, goal, float(info["ee_target"][5]), 1.0, cfg.speed_mm)
