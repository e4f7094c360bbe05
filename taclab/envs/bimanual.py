"""``taclab/BimanualAssembly-v0``: two hands grasp two parts from the table and assemble them in the air.

Hand 0 grasps the socket, hand 1 the peg, each from a random pose on the table (see
:mod:`taclab.sim.bimanual`); both lift their part and the peg's shaft is pushed into the socket's hole,
clearance under a millimetre. The episode terminates with success once the shaft is ``success_depth_mm`` deep,
terminates with failure when a part drops (it was lifted and fell back, or left the table), and is truncated
after ``max_steps`` control steps. The reward is sparse: 1 on the successful step, 0 otherwise.

Action (14,), per hand ``[x, y, z, roll, pitch, yaw, grip]``: with ``action_mode="absolute"`` (the default) the
grasp frame's target pose in the world frame (m, rad, the hand's joint values; see
:data:`taclab.sim.bimanual.HAND_DOFS`), with ``"relative"`` its change from the current target; ``grip`` is
always absolute in [0, 1] (1 squeezes with the full grip force, 0 opens). The targets move linearly to the new
values over the control period (``control_hz``), limited to ``max_step_m`` and ``max_step_rad`` per step.

Observation (a ``Dict``):

- ``point_cloud`` (N, 6) float32, columns ``x, y, z, visual, tactile, pressure``
  (:data:`taclab.sim.pointcloud.POINT_FEATURES`): ``visual_points`` points from the depth camera, cropped to the
  workspace and down-sampled, then with ``tactile`` the 4 x 32 x 12 taxels (every ``tactile_stride``-th) at
  their world positions carrying their reading as a fraction of full scale;
- ``state`` (14,) float32: per hand the grasp frame's pose (x, y, z, roll, pitch, yaw) and the pad distance (m);
- ``taxels`` (4, 32, 12) float32, with ``tactile`` only: the taxel readings (N) of the four pads, pad ``2 k + j``
  = pad j of hand k.

``info`` carries, besides the task (``assembly``, ``clearance_mm``) and ``is_success``, the privileged state for
an asymmetric critic: ``part_poses`` (2, 7: position and quaternion of the socket and the peg), ``privileged``
(a flat float32 vector: both part poses, the peg's pose in the socket frame, the insertion depth in m, the
hands' poses), ``insertion_mm``, ``lateral_mm``, ``dropped``, ``lifted``.
"""

from __future__ import annotations

import math
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taclab.envs.base import TaclabEnv
from taclab.sim.bimanual import (
    ASSEMBLIES,
    DEPTH_GROUPS,
    HANDS,
    PADS,
    BimanualConfig,
    BimanualSim,
    cached_scene,
)
from taclab.sim.pointcloud import (
    DOWNSAMPLE_METHODS,
    POINT_FEATURES,
    CameraIntrinsics,
    crop,
    depth_to_points,
    fixed_size,
    raycast_depth,
    visuo_tactile_cloud,
)
from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.taxel import TaxelProfile, TaxelRenderer

ACTION_MODES = ("absolute", "relative")
RESET_OPTIONS = ("assembly", "clearance_mm", "part_poses")
STATE_DIM = 14
ACTION_DIM = 14
HOME = np.array([[-0.12, 0.0, 0.12, 0.0, 0.0, 0.0], [0.12, 0.0, 0.12, 0.0, 0.0, 0.0]])
"""Where the hands start: above their side of the table, grippers pointing down."""


class BimanualAssemblyConfig(BaseModel):
    """Task parameters of ``taclab/BimanualAssembly-v0``. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scene: BimanualConfig = Field(default_factory=BimanualConfig, description="physical parameters")
    assembly: str = Field("round", description=f"default assembly, one of {ASSEMBLIES}; a reset option overrides it")
    clearance_mm: float = Field(0.8, gt=0, lt=4, description="hole width minus shaft width across flats (mm)")
    control_hz: float = Field(10.0, gt=0, le=100, description="control rate: actions per simulated second")
    max_steps: int = Field(150, ge=1, le=10000, description="control steps before the episode is truncated")
    action_mode: str = Field("absolute", description=f"hand targets as {ACTION_MODES}")
    max_step_m: float = Field(0.03, gt=0, description="largest change of a hand's position target per step (m)")
    max_step_rad: float = Field(0.25, gt=0, description="largest change of a hand's angle target per step (rad)")
    success_depth_mm: float = Field(25.0, gt=0, description="insertion depth that completes the assembly (mm)")
    lift_height: float = Field(0.05, gt=0, description="a part whose centre rises above this is lifted (m)")
    drop_height: float = Field(0.025, gt=0, description="a lifted part whose centre falls below this dropped (m)")
    # initial state
    part_x_range: float = Field(0.02, ge=0, description="parts start at x = -+0.12 m +- this (m)")
    part_y_range: float = Field(0.04, ge=0, description="parts start at y = +- this (m)")
    part_yaw_range_deg: float = Field(20.0, ge=0, le=60, description="parts start turned by up to +- this (deg)")
    hand_pos_range: float = Field(0.01, ge=0, description="hands start this far (m) from their home, at most")
    # sensing
    tactile: bool = Field(True, description="taxel arrays on the pads: tactile points and the taxels key")
    taxel: TaxelProfile = Field(default_factory=TaxelProfile, description="taxel model (its grid must match)")
    sensor_noise: bool = Field(True, description="add the taxel profile's noise to readings")
    tactile_stride: int = Field(1, ge=1, le=8, description="keep every n-th taxel (both axes) as a tactile point")
    visual_points: int = Field(256, ge=8, le=8192, description="visual points in the cloud")
    downsample: str = Field("voxel", description=f"down-sampling of the visual points, one of {DOWNSAMPLE_METHODS}")
    voxel_size: float = Field(0.005, gt=0, description="voxel side (m) of voxel down-sampling")
    camera_size: tuple[int, int] = Field((60, 80), description="depth image (height, width) in pixels")
    workspace_low: tuple[float, float, float] = Field((-0.25, -0.15, 0.003), description="crop box low corner (m)")
    workspace_high: tuple[float, float, float] = Field((0.25, 0.15, 0.25), description="crop box high corner (m)")

    @field_validator("assembly")
    @classmethod
    def _assembly(cls, v: str) -> str:
        return check_assembly(v)

    @field_validator("action_mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {v!r}; allowed: {', '.join(ACTION_MODES)}")
        return v

    @field_validator("downsample")
    @classmethod
    def _down(cls, v: str) -> str:
        if v not in DOWNSAMPLE_METHODS:
            raise ValueError(f"unknown downsample {v!r}; allowed: {', '.join(DOWNSAMPLE_METHODS)}")
        return v

    @field_validator("camera_size")
    @classmethod
    def _cam(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (8 <= v[0] <= 1024 and 8 <= v[1] <= 1024):
            raise ValueError(f"camera_size must be between 8 and 1024 pixels per side, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> BimanualAssemblyConfig:
        grid = (self.scene.taxel_rows, self.scene.taxel_cols)
        if tuple(self.taxel.grid) != grid:
            raise ValueError(f"taxel grid {tuple(self.taxel.grid)} does not match the scene's pads {grid}")
        if abs(self.taxel.pitch_mm / 1000 - self.scene.taxel_pitch) > 1e-9:
            raise ValueError(
                f"taxel pitch {self.taxel.pitch_mm} mm does not match the scene's {self.scene.taxel_pitch} m"
            )
        if self.drop_height >= self.lift_height:
            raise ValueError("drop_height must be below lift_height")
        if self.success_depth_mm > self.scene.hole_depth * 1000:
            raise ValueError(f"success_depth_mm must be at most the hole depth {self.scene.hole_depth * 1000:g} mm")
        return self

    @property
    def substeps(self) -> int:
        return max(1, int(round(1.0 / self.control_hz / self.scene.timestep)))

    def tactile_points(self) -> int:
        r, c = self.taxel.grid
        s = self.tactile_stride
        return PADS * len(range(0, r, s)) * len(range(0, c, s)) if self.tactile else 0


def check_assembly(assembly: str) -> str:
    if assembly not in ASSEMBLIES:
        raise ValueError(f"unknown assembly {assembly!r}; allowed: {', '.join(ASSEMBLIES)}")
    return assembly


def check_clearance(clearance: Any) -> float:
    try:
        c = float(clearance)
    except (TypeError, ValueError):
        raise ValueError(f"clearance_mm must be a number in (0, 4), got {clearance!r}") from None
    if not (math.isfinite(c) and 0 < c < 4):
        raise ValueError(f"clearance_mm must be in (0, 4) mm, got {clearance!r}")
    return c


def action_bounds(config: BimanualAssemblyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Low and high (14,) of the action box for the config's action mode."""
    if config.action_mode == "absolute":
        lo_w, hi_w = np.array(config.workspace_low, float), np.array(config.workspace_high, float)
        lo_w[2] = config.scene.fingertip + 0.001
        lo = np.r_[lo_w, -0.6, -0.6, -1.3, 0.0]
        hi = np.r_[hi_w, 0.6, 0.6, 1.3, 1.0]
    else:
        m, r = config.max_step_m, config.max_step_rad
        lo = np.array([-m, -m, -m, -r, -r, -r, 0.0])
        hi = np.array([m, m, m, r, r, r, 1.0])
    return np.tile(lo, HANDS).astype(np.float32), np.tile(hi, HANDS).astype(np.float32)


class BimanualAssemblyEnv(TaclabEnv):
    """Bimanual visuo-tactile assembly; see the module docstring and docs/vt_refine.md."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    Config = BimanualAssemblyConfig
    TASK_KEYS = ("assembly", "clearance_mm")
    TASK_LISTS = {
        "assemblies": tuple({"assembly": a, "clearance_mm": 0.8} for a in ASSEMBLIES),
    }
    RESULT_FIELDS = ("assembly", "clearance_mm", "insertion_mm", "dropped", "lifted")

    def __init__(self, config: BimanualAssemblyConfig | dict | None = None, render_mode: str | None = None, **kw):
        config = self._configure(config, render_mode, kw)
        n = config.visual_points + config.tactile_points()
        obs = {
            "point_cloud": spaces.Box(-np.inf, np.inf, (n, len(POINT_FEATURES)), np.float32),
            "state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        }
        if config.tactile:
            obs["taxels"] = spaces.Box(0.0, config.taxel.full_scale, (PADS, *config.taxel.grid), np.float32)
        self.observation_space = spaces.Dict(obs)
        lo, hi = action_bounds(config)
        self.action_space = spaces.Box(lo, hi, dtype=np.float32)
        alo, ahi = action_bounds(config.model_copy(update={"action_mode": "absolute"}))
        self._target_bounds = (alo.reshape(HANDS, 7)[:, :6].astype(float), ahi.reshape(HANDS, 7)[:, :6].astype(float))
        self._renderer = TaxelRenderer(config.taxel)
        h, w = config.camera_size
        self._sims: dict[tuple[str, float], BimanualSim] = {}
        self._sim: BimanualSim | None = None
        self._intr: CameraIntrinsics | None = None
        self._cam_size = (h, w)
        self._assembly = config.assembly
        self._clearance_mm = config.clearance_mm
        self._steps = 0
        self._lifted = np.zeros(HANDS, dtype=bool)
        self._done = True
        self._mj_renderer = None

    # ------------------------------------------------------------------ helpers
    def _get_sim(self, assembly: str, clearance_mm: float) -> BimanualSim:
        key = (assembly, float(clearance_mm))
        if key not in self._sims:
            self._sims[key] = BimanualSim(cached_scene(self.config.scene, assembly, float(clearance_mm) / 1000.0))
        return self._sims[key]

    def _visual(self) -> np.ndarray:
        sim, cfg = self._sim, self.config
        m, d = sim.model, sim.data
        cam = sim.scene.depth_camera
        if self._intr is None:
            h, w = self._cam_size
            self._intr = CameraIntrinsics.from_fovy(w, h, float(m.cam_fovy[cam]))
        pos, rot = d.cam_xpos[cam], d.cam_xmat[cam]
        depth = raycast_depth(m, d, self._intr, pos, rot, geomgroup=DEPTH_GROUPS, far=2.0)
        pts = crop(depth_to_points(depth, self._intr, pos, rot), cfg.workspace_low, cfg.workspace_high)
        return fixed_size(pts, cfg.visual_points, cfg.downsample, self.np_random, cfg.voxel_size)

    def _observe(self, depth_before: np.ndarray | None) -> dict[str, np.ndarray]:
        sim, cfg = self._sim, self.config
        vis = self._visual()
        state = np.concatenate([sim.hand_poses(), sim.openings()[:, None]], axis=1).reshape(-1)
        obs = {"state": state.astype(np.float32)}
        if cfg.tactile:
            depth = sim.taxel_depth()
            rate = None if depth_before is None else (depth - depth_before) / sim.model.opt.timestep
            field = TactileField(depth=depth, shear=None, slip=None, force=None, pitch=cfg.taxel.pitch)
            rng = self.np_random if cfg.sensor_noise else None
            force = self._renderer.render(field, rng=rng, depth_rate=rate)
            tac = self._renderer.points(force, sim.taxel_positions(), stride=cfg.tactile_stride)
            obs["point_cloud"] = visuo_tactile_cloud(vis, tac)
            obs["taxels"] = force
        else:
            obs["point_cloud"] = visuo_tactile_cloud(vis, None)
        return obs

    def _info(self) -> dict[str, Any]:
        sim = self._sim
        pos, quat = sim.part_poses()
        rel_pos, rel_rot = sim.peg_in_socket()
        rel_quat = np.zeros(4)
        mujoco.mju_mat2Quat(rel_quat, rel_rot.reshape(-1))
        ins = sim.insertion()
        part_poses = np.concatenate([pos, quat], axis=1)
        privileged = np.concatenate([part_poses.reshape(-1), rel_pos, rel_quat, [ins], sim.hand_poses().reshape(-1)])
        success = ins * 1000 >= self.config.success_depth_mm and sim.lateral_error() < sim.geometry.hole_half
        return {
            "is_success": bool(success),
            "assembly": self._assembly,
            "clearance_mm": float(self._clearance_mm),
            "insertion_mm": float(ins * 1000),
            "lateral_mm": float(sim.lateral_error() * 1000),
            "dropped": bool(self._dropped(pos)),
            "lifted": int(self._lifted.sum()),
            "part_poses": part_poses.astype(np.float32),
            "privileged": privileged.astype(np.float32),
            "step": self._steps,
        }

    def _dropped(self, pos: np.ndarray) -> bool:
        cfg = self.config
        fell = self._lifted & (pos[:, 2] < cfg.drop_height)
        off_table = (np.abs(pos[:, 0]) > 0.4) | (np.abs(pos[:, 1]) > 0.3) | (pos[:, 2] < -0.01)
        return bool(fell.any() or off_table.any())

    def _initial_poses(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, rng = self.config, self.np_random
        parts = np.zeros((HANDS, 3))
        for k, x0 in enumerate((-0.12, 0.12)):
            parts[k] = [
                x0 + rng.uniform(-cfg.part_x_range, cfg.part_x_range),
                rng.uniform(-cfg.part_y_range, cfg.part_y_range),
                math.radians(rng.uniform(-cfg.part_yaw_range_deg, cfg.part_yaw_range_deg)),
            ]
        hands = HOME.copy()
        hands[:, :3] += rng.uniform(-cfg.hand_pos_range, cfg.hand_pos_range, (HANDS, 3))
        return hands, parts

    # ------------------------------------------------------------------ gym API
    @classmethod
    def check_task(cls, task: dict[str, Any]) -> dict[str, Any]:
        task = super().check_task(task)
        if "assembly" in task:
            check_assembly(task["assembly"])
        if "clearance_mm" in task:
            check_clearance(task["clearance_mm"])
        return task

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(RESET_OPTIONS)}")
        self._assembly = check_assembly(options.get("assembly", self.config.assembly))
        self._clearance_mm = check_clearance(options.get("clearance_mm", self.config.clearance_mm))
        self._sim = self._get_sim(self._assembly, self._clearance_mm)
        hands, parts = self._initial_poses()
        if "part_poses" in options:
            p = np.asarray(options["part_poses"], dtype=float)
            if p.shape != (HANDS, 3) or not np.all(np.isfinite(p)):
                raise ValueError(
                    "option 'part_poses' must be finite (2, 3): x, y (m), yaw (rad) of the socket and the peg; "
                    f"got {options['part_poses']!r}"
                )
            parts = p
        self._sim.reset(hands, parts, grip=0.0)
        self._steps = 0
        self._lifted[:] = False
        self._done = False
        return self._observe(None), self._info()

    def step(self, action):
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended (assembled, dropped or out of steps): call reset()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (ACTION_DIM,):
            raise ValueError(
                f"action must have shape ({ACTION_DIM},) = 2 x (x, y, z, roll, pitch, yaw, grip), got {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()}")
        lo, hi = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        clipped = np.clip(a, lo, hi).reshape(HANDS, 7)
        cfg, sim = self.config, self._sim
        current = sim.hand_targets
        wanted = clipped[:, :6] if cfg.action_mode == "absolute" else current + clipped[:, :6]
        if cfg.action_mode == "relative":
            wanted = np.clip(wanted, *self._target_bounds)
        limit = np.array([cfg.max_step_m] * 3 + [cfg.max_step_rad] * 3)
        target = current + np.clip(wanted - current, -limit, limit)
        before = sim.step(target, clipped[:, 6], cfg.substeps, probe=cfg.tactile)
        self._steps += 1
        pos, _ = sim.part_poses()
        self._lifted |= pos[:, 2] > cfg.lift_height
        obs = self._observe(before)
        info = self._info()
        info["action_clipped"] = bool(np.any(np.clip(a, lo, hi) != a))
        terminated = info["is_success"] or info["dropped"]
        truncated = (not terminated) and self._steps >= cfg.max_steps
        self._done = terminated or truncated
        return obs, float(info["is_success"]), terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_scene()

    def render_scene(self, width: int = 640, height: int = 480, camera: str = "overview") -> np.ndarray:
        """An RGB image of the scene now, from a named camera (``overview`` or ``depth``)."""
        if self._sim is None:
            raise RuntimeError("call reset() before rendering")
        if self._mj_renderer is None or self._mj_key != (id(self._sim.model), width, height):
            if self._mj_renderer is not None:
                self._mj_renderer.close()
            self._mj_renderer = mujoco.Renderer(self._sim.model, height=height, width=width)
            self._mj_key = (id(self._sim.model), width, height)
        self._mj_renderer.update_scene(self._sim.data, camera=camera)
        return self._mj_renderer.render()

    def close(self):
        if self._mj_renderer is not None:
            self._mj_renderer.close()
            self._mj_renderer = None

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sims"] = {}
        state["_sim"] = None
        state["_mj_renderer"] = None
        state["_done"] = True  # a copy must be reset before it steps
        return state
