"""``taclab/Vital{Plug,USB,Card,Key,Pick}-v0``: the precise manipulation tasks of VITAL (sections 3-4, appendix A2).

A six-joint hand carries a parallel gripper whose gel pads hold the object by friction (it can slip and turn)
and carry a magnetic skin each. At 6 Hz the policy sends a relative end-effector motion in the end-effector
frame plus a gripper command; the hand's position servos move there over the physics sub-steps of one control
period. Observations: a 128 x 128 wide-angle wrist camera, its segmentation mask (gripper, held object,
target), both skins (15 values each, relative to the baseline taken at reset) and proprioception; a
third-person RGB-D camera on request. Privileged state (poses, the goal error) is only in ``info``.

Episodes start as appendix A2: the grasp centre uniformly in a 6 x 6 cm square 10 cm above the target (card: a
4 x 4 x 2 cm box in front of the reader), the object already in the hand except for pick. An episode succeeds
physically (inserted to depth, the swipe completed, the block lifted), fails when a skin reading's norm passes
``max_skin_norm`` (the released code's safety abort) or the object leaves the hand, and is truncated after
``max_steps``. See ``docs/vital.md`` for units, parameters and options.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.envs.base import TaclabEnv
from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.magnetic import (
    MagneticProfile,
    MagneticRenderer,
    MagneticSkinSensor,
    get_magnetic_profile,
    mirror_columns,
)
from taclab.sim.vital import (
    BACKGROUNDS,
    CARD_HALF_LENGTH,
    LIGHTINGS,
    MASK_LABELS,
    TASKS,
    Variation,
    VitalSceneConfig,
    VitalSim,
    euler_to_mat,
    mat_to_euler,
    mat_to_rotvec,
    rotvec_to_mat,
)

TARGETS = ("train", "novel")
RESET_OPTIONS = ("target", "background", "lighting", "start", "grasp_offset_mm")
FAILURES = ("skin_limit", "dropped", "timeout")
ACTION_NAMES = ("dx_mm", "dy_mm", "dz_mm", "drx_deg", "dry_deg", "drz_deg", "gripper")


class VitalConfig(BaseModel):
    """Parameters of the VITAL environments. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scene: VitalSceneConfig = Field(default_factory=VitalSceneConfig, description="physical parameters")
    max_steps: int = Field(90, ge=1, le=10000, description="control steps (6 Hz) before the episode is truncated")
    max_step_mm: float = Field(10.0, gt=0, le=50, description="largest translation per step along each axis (mm)")
    max_step_deg: float = Field(5.0, gt=0, le=45, description="largest rotation-vector component per step (deg)")
    image_size: tuple[int, int] = Field((128, 128), description="wrist image (height, width) in pixels")
    masks: bool = Field(True, description="add the wrist segmentation mask to observations")
    cameras: bool = Field(
        True, description="render the cameras; off, their observations are zeros (for privileged policies)"
    )
    third_person: bool = Field(False, description="add the third-person RGB-D images to observations")
    third_person_size: tuple[int, int] = Field((240, 320), description="third-person image (height, width)")
    skin: str = Field("anyskin", description="magnetic skin profile (taclab.sim.tactile.magnetic)")
    skin_overrides: dict = Field(default_factory=dict, description="MagneticProfile keys that replace the profile's")
    sensor_noise: bool = Field(True, description="skin noise and drift; off gives the noiseless dipole model")
    max_skin_norm: float = Field(
        2500.0, gt=0, description="an episode fails when either skin's reading has a larger norm (uT)"
    )
    start_yaw_deg: float = Field(5.0, ge=0, le=45, description="start yaw drawn from +- this about the target's (deg)")
    grasp_noise_mm: float = Field(
        1.0, ge=0, le=3, description="the object's place in the hand varies by +- this along the pad (mm)"
    )
    block_yaw_deg: float = Field(10.0, ge=0, le=45, description="pick: the block's yaw varies by +- this (deg)")
    novel_radius_mm: tuple[float, float] = Field(
        (80.0, 200.0), description="target 'novel': distance range from the training position (mm)"
    )
    target: str | tuple[float, float] = Field("train", description="default target position (a reset option)")
    background: str = Field("green", description=f"default background, one of {BACKGROUNDS}")
    lighting: str = Field("default", description=f"default lighting, one of {LIGHTINGS}")
    reward: str = Field("sparse", description="'sparse': 1 on success; 'dense': also -0.001 per mm of goal error")

    @field_validator("image_size", "third_person_size")
    @classmethod
    def _size(cls, v):
        if not (16 <= v[0] <= 1024 and 16 <= v[1] <= 1024):
            raise ValueError(f"image sizes must be between 16 and 1024 pixels per side, got {v}")
        return v

    @field_validator("reward")
    @classmethod
    def _reward(cls, v):
        if v not in ("sparse", "dense"):
            raise ValueError(f"unknown reward {v!r}; allowed: sparse, dense")
        return v

    @field_validator("background")
    @classmethod
    def _bg(cls, v):
        return check_choice("background", v, BACKGROUNDS)

    @field_validator("lighting")
    @classmethod
    def _light(cls, v):
        return check_choice("lighting", v, LIGHTINGS)


def check_choice(name: str, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
    return value


def check_task(task: str) -> str:
    return check_choice("VITAL task", task, TASKS)


class VitalEnv(TaclabEnv):
    """One VITAL task; subclasses fix ``TASK``. See the module docstring and ``docs/vital.md``."""

    Config: ClassVar[type[BaseModel]] = VitalConfig
    TASK: ClassVar[str] = ""
    TASK_KEYS: ClassVar[tuple[str, ...]] = ("target", "background", "lighting")
    TASK_LISTS: ClassVar[dict[str, tuple[dict[str, Any], ...]]] = {
        "paper": ({"target": "train", "background": "green", "lighting": "default"},),
        "spatial": ({"target": "novel", "background": "green", "lighting": "default"},),
        "scene": ({"target": "train", "background": "cluttered", "lighting": "random"},),
        "spatial_scene": ({"target": "novel", "background": "cluttered", "lighting": "random"},),
        "all": (
            {"target": "train", "background": "green", "lighting": "default"},
            {"target": "novel", "background": "green", "lighting": "default"},
            {"target": "train", "background": "textured", "lighting": "random"},
            {"target": "train", "background": "cluttered", "lighting": "random"},
        ),
    }
    RESULT_FIELDS: ClassVar[tuple[str, ...]] = ("failure", "goal_error_mm", "max_skin_norm_seen")
    metadata = {"render_modes": ["rgb_array"], "render_fps": 6}

    def __init__(self, config: VitalConfig | dict | None = None, render_mode: str | None = None, **overrides):
        check_task(self.TASK)
        cfg = config = self._configure(config, render_mode, overrides)
        self._check_target(cfg.target)
        h, w = cfg.image_size
        obs = {
            "wrist_rgb": spaces.Box(0, 255, (h, w, 3), np.uint8),
            "skin": spaces.Box(-np.inf, np.inf, (2, 15), np.float32),
            "proprio": spaces.Box(-np.inf, np.inf, (7,), np.float32),
        }
        if cfg.masks:
            obs["wrist_mask"] = spaces.Box(0, max(MASK_LABELS.values()), (h, w), np.uint8)
        if cfg.third_person:
            th, tw = cfg.third_person_size
            obs["third_rgb"] = spaces.Box(0, 255, (th, tw, 3), np.uint8)
            obs["third_depth"] = spaces.Box(0, np.inf, (th, tw), np.float32)
        self.observation_space = spaces.Dict(obs)
        lim = np.array([cfg.max_step_mm] * 3 + [cfg.max_step_deg] * 3 + [1.0], np.float32)
        self.action_space = spaces.Box(-lim, lim, dtype=np.float32)
        profile = MagneticProfile(**{**get_magnetic_profile(cfg.skin).model_dump(), **cfg.skin_overrides})
        if not cfg.sensor_noise:
            profile = profile.model_copy(update={"noise_uT": 0.0, "drift_uT_per_sqrt_s": 0.0})
        rows, cols = cfg.scene.taxels
        pitch = (cfg.scene.pad_height / rows, cfg.scene.pad_width / cols)
        self.skin_renderer = MagneticRenderer(profile, (rows, cols), pitch)
        self._skin = MagneticSkinSensor(self.skin_renderer)
        self._sim: VitalSim | None = None
        self._done = True
        self._steps = 0
        self._episode: dict[str, Any] = {}
        self.skin_seconds = 0.0

    # ------------------------------------------------------------------ helpers
    @property
    def sim(self) -> VitalSim:
        if self._sim is None:
            self._sim = VitalSim(self.TASK, self.config.scene)
        return self._sim

    @property
    def dt(self) -> float:
        """Seconds of simulated time per step."""
        return self.config.scene.substeps * self.config.scene.timestep

    def touch_seconds(self) -> float:
        """Seconds this env has spent on touch: sensor evaluation, contact fields and the skin model."""
        return self.skin_seconds + (self._sim.reader.touch_seconds if self._sim else 0.0)

    def _check_target(self, target) -> None:
        if isinstance(target, str):
            check_choice("target", target, TARGETS)
            return
        t = np.asarray(target, dtype=float) if not isinstance(target, dict) else np.zeros(0)
        if t.shape != (2,) or not np.all(np.isfinite(t)) or np.abs(t).max() > 250:
            raise ValueError(
                f"target must be one of {', '.join(TARGETS)} or finite (x_mm, y_mm) within 250 mm, got {target!r}"
            )

    def _variation(self, options: dict[str, Any]) -> Variation:
        cfg, rng = self.config, self.np_random
        target = options.get("target", cfg.target)
        self._check_target(target)
        if isinstance(target, str) and target == "train":
            xy = (0.0, 0.0)
        elif isinstance(target, str):
            r = rng.uniform(*cfg.novel_radius_mm) / 1000
            a = rng.uniform(0, 2 * math.pi)
            xy = (r * math.cos(a), r * math.sin(a))
        else:
            xy = (float(target[0]) / 1000, float(target[1]) / 1000)
        return Variation(
            target_xy=xy,
            background=check_choice("background", options.get("background", cfg.background), BACKGROUNDS),
            lighting=check_choice("lighting", options.get("lighting", cfg.lighting), LIGHTINGS),
            seed=int(rng.integers(2**31)),
        )

    def _board_fields(self, field: TactileField) -> TactileField:
        """Each pad's field as its skin's board sees it (pad 0's board is pad 1's turned 180 deg about z)."""
        return TactileField.stack([mirror_columns(field[0]), field[1]])

    def _skin_reading(self, reset: bool = False) -> np.ndarray:
        sim = self.sim
        field = sim.read_field()
        t0 = time.perf_counter()
        board = self._board_fields(field)
        if reset:
            self._skin.reset(board, self.np_random)
        out = self._skin.read(board, self.np_random, 0.0 if reset else self.dt)
        self.skin_seconds += time.perf_counter() - t0
        return out

    def _observe(self, skin: np.ndarray) -> dict[str, np.ndarray]:
        cfg, sim = self.config, self.sim
        h, w = cfg.image_size
        if cfg.cameras:
            wrist = sim.render("wrist", h, w, mask=cfg.masks)
        else:
            wrist = {"rgb": np.zeros((h, w, 3), np.uint8), "mask": np.zeros((h, w), np.uint8)}
        pos, rot = sim.hand_pose()
        obs = {
            "wrist_rgb": wrist["rgb"],
            "skin": skin.astype(np.float32),
            "proprio": np.r_[pos, mat_to_rotvec(rot), sim.finger_opening()].astype(np.float32),
        }
        if cfg.masks:
            obs["wrist_mask"] = wrist["mask"]
        if cfg.third_person:
            th, tw = cfg.third_person_size
            third = (
                sim.render("third", th, tw, depth=True)
                if cfg.cameras
                else {"rgb": np.zeros((th, tw, 3), np.uint8), "depth": np.zeros((th, tw), np.float32)}
            )
            obs["third_rgb"], obs["third_depth"] = third["rgb"], third["depth"]
        return obs

    # ------------------------------------------------------------------ task state
    def _goal(self) -> tuple[np.ndarray, bool]:
        """(goal error in mm, world frame; success) of the current state."""
        sim, part = self.sim, self.sim.part
        p, r = sim.object_pose()
        entry, tyaw = sim.target_pose()
        c, s = math.cos(tyaw), math.sin(tyaw)
        to_target = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])  # world -> target frame
        if self.TASK in ("plug", "usb", "key"):
            rel = p - entry
            err = rel + np.array([0, 0, part.depth])
            ok = rel[2] <= -part.depth and math.hypot(rel[0], rel[1]) < 0.002
            return err * 1000, ok
        if self.TASK == "pick":
            err = p - (entry + np.array([0, 0, part.depth + 0.01]))
            ok = p[2] >= part.depth and bool(sim.pad_contacts().all())
            return err * 1000, ok
        # card: the bottom edge runs along the slot from its +x end to its -x end
        rel = to_target @ (p - entry)  # entry: the slot's +x end, top
        half_len = abs(part.entry[0])
        lead = rel[0] - CARD_HALF_LENGTH  # the card's -x edge, relative to the slot's +x end
        slot_w = self.config.scene.card_slot_mm / 2000
        inside = (
            rel[2] < -part.depth
            and abs(rel[1]) < slot_w + 0.001
            and lead < 0.0
            and lead + 2 * CARD_HALF_LENGTH > -2 * half_len
        )
        ep = self._episode
        if inside and not ep.get("card_inside", False):
            ep["card_entered"] = lead > -0.025  # it went in at the start end
        ep["card_inside"] = inside
        if not inside:
            ep["card_entered"] = False
        ok = bool(inside and ep.get("card_entered", False) and lead <= -2 * half_len)
        err = np.array([lead + 2 * half_len, rel[1], rel[2] + 0.008])
        return to_target.T @ err * 1000, ok

    def _info(self, skin: np.ndarray, success: bool, failure: str | None) -> dict[str, Any]:
        sim = self.sim
        pos, rot = sim.hand_pose()
        op, orot = sim.object_pose()
        entry, tyaw = sim.target_pose()
        norm = float(np.linalg.norm(skin, axis=-1).max())
        self._episode["max_skin_norm_seen"] = max(self._episode.get("max_skin_norm_seen", 0.0), norm)
        err, _ = self._goal_cache
        ep = self._episode
        return {
            "is_success": bool(success),
            "failure": failure,
            "task": self.TASK,
            "target": ep["target"] if isinstance(ep["target"], str) else list(ep["target"]),
            "background": ep["background"],
            "lighting": ep["lighting"],
            "step": self._steps,
            "skin_norm": norm,
            "max_skin_norm_seen": ep["max_skin_norm_seen"],
            "contact": sim.object_touches_target(),
            "pad_contact": sim.pad_contacts(),
            "goal_error_mm": err.astype(np.float32),
            "ee_pos": pos,
            "ee_rot": rot,
            "ee_target": sim.target.copy(),
            "object_pos": op,
            "object_rot": orot,
            "target_pos": entry,
            "target_yaw": tyaw,
            "grasp_offset_mm": ep["grasp_offset_mm"].copy(),
        }

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(RESET_OPTIONS)}")
        cfg, rng, sim = self.config, self.np_random, self.sim
        var = self._variation(options)
        sim.apply_variation(var)
        entry, tyaw = sim.target_pose()
        part = sim.part
        c, s = math.cos(tyaw), math.sin(tyaw)
        rot_t = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        if "start" in options:
            start = np.asarray(options["start"], float)
            if start.shape != (3,) or not np.all(np.isfinite(start)):
                raise ValueError(f"option 'start' must be finite (dx_mm, dy_mm, dz_mm), got {options['start']!r}")
            u = start / 1000
        else:
            u = rng.uniform(-1, 1, 3) * np.array(part.start_half)
        hand_pos = entry + rot_t @ (np.array(part.start_offset) + u)
        yaw = tyaw + math.radians(rng.uniform(-cfg.start_yaw_deg, cfg.start_yaw_deg))
        if "grasp_offset_mm" in options:
            g = np.asarray(options["grasp_offset_mm"], float)
            if g.shape != (2,) or not np.all(np.isfinite(g)) or np.abs(g).max() > 5:
                raise ValueError(
                    "option 'grasp_offset_mm' must be finite (along x, along z) within 5 mm, "
                    f"got {options['grasp_offset_mm']!r}"
                )
        else:
            g = rng.uniform(-cfg.grasp_noise_mm, cfg.grasp_noise_mm, 2)
        block_yaw = math.radians(rng.uniform(-cfg.block_yaw_deg, cfg.block_yaw_deg))
        sim.reset(np.r_[hand_pos, 0.0, 0.0, yaw], var, np.array([g[0], 0.0, g[1]]) / 1000, block_yaw)
        self._steps = 0
        target = options.get("target", cfg.target)
        self._episode = {
            "target": target if isinstance(target, str) else [float(t) for t in target],
            "background": var.background,
            "lighting": var.lighting,
            "grasp_offset_mm": g.astype(np.float32),
        }
        skin = self._skin_reading(reset=True)
        self._goal_cache = self._goal()
        self._done = False
        return self._observe(skin), self._info(skin, False, None)

    def check_action(self, action) -> np.ndarray:
        """The action as float64 (7,); raises ``ValueError`` naming what is wrong."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (7,):
            raise ValueError(f"action must have shape (7,) = {ACTION_NAMES}, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()}")
        return a

    def step(self, action):
        if self._sim is None or not self._episode:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended: call reset()")
        a = self.check_action(action)
        lo, hi = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        clipped = np.clip(a, lo, hi)
        sim = self.sim
        t6 = sim.target
        rot = euler_to_mat(t6[3:])
        pos = t6[:3] + rot @ (clipped[:3] / 1000)
        new_rot = rot @ rotvec_to_mat(np.radians(clipped[3:6]))
        rpy = mat_to_euler(new_rot, yaw_near=t6[5])
        rpy[:2] = np.clip(rpy[:2], -math.radians(30), math.radians(30))
        entry, _ = sim.target_pose()
        pos = np.clip(pos, entry + [-0.25, -0.25, -entry[2]], entry + [0.25, 0.25, 0.3])
        sim.step(np.r_[pos, rpy], float(clipped[6]))
        self._steps += 1
        skin = self._skin_reading()
        self._goal_cache = self._goal()
        success = self._goal_cache[1]
        failure = None
        norm = float(np.linalg.norm(skin, axis=-1).max())
        if not success:
            if norm > self.config.max_skin_norm:
                failure = "skin_limit"
            elif sim.in_hand and not sim.pad_contacts().any():
                failure = "dropped"
            elif self._steps >= self.config.max_steps:
                failure = "timeout"
        terminated = success or failure in ("skin_limit", "dropped")
        truncated = failure == "timeout"
        self._done = terminated or truncated
        reward = float(success)
        if self.config.reward == "dense":
            reward -= 0.001 * float(np.abs(self._goal_cache[0]).sum())
        info = self._info(skin, success, failure)
        info["action_clipped"] = bool(np.any(clipped != a))
        return self._observe(skin), reward, terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        th, tw = self.config.third_person_size
        return self.sim.render("third", th, tw)["rgb"]

    def third_person(self) -> dict[str, np.ndarray]:
        """The third-person RGB-D view now: ``rgb`` (H, W, 3), ``depth`` (H, W) in metres along the optical axis,
        ``K`` (3, 3) pinhole intrinsics in pixels and ``world_from_camera`` (4, 4) in the OpenCV convention."""
        th, tw = self.config.third_person_size
        return {**self.sim.render("third", th, tw, depth=True), **self.sim.camera_matrices("third", th, tw)}

    def wrist_camera(self) -> dict[str, np.ndarray]:
        """Intrinsics and current extrinsics of the wrist camera (see :meth:`third_person`)."""
        h, w = self.config.image_size
        return self.sim.camera_matrices("wrist", h, w)

    def close(self):
        if self._sim is not None:
            self._sim.close()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sim"] = None  # rebuilt on demand; an episode in progress is not carried over
        state["_done"] = True
        state["_episode"] = {}
        return state


class VitalPlugEnv(VitalEnv):
    """Plug a two-prong plug into a socket."""

    TASK = "plug"


class VitalUSBEnv(VitalEnv):
    """Insert a USB-A plug into its port (a few tenths of a millimetre of clearance)."""

    TASK = "usb"


class VitalCardEnv(VitalEnv):
    """Swipe a card through a reader's slot from end to end without leaving it."""

    TASK = "card"


class VitalKeyEnv(VitalEnv):
    """Insert a key blade into a keyway."""

    TASK = "key"


class VitalPickEnv(VitalEnv):
    """Pick a block up from the table."""

    TASK = "pick"


ENV_CLASSES = {"plug": VitalPlugEnv, "usb": VitalUSBEnv, "card": VitalCardEnv, "key": VitalKeyEnv, "pick": VitalPickEnv}
ENV_IDS = {t: f"taclab/Vital{n}-v0" for t, n in zip(TASKS, ("Plug", "USB", "Card", "Key", "Pick"), strict=True)}
