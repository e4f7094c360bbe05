"""``taclab/PegInHole-v0``: the tactile peg-in-hole attempt loop of the TLA paper (sections III and V-D).

An episode starts with the peg grasped above the hole at a random misalignment that cannot be inserted as it
is, and with the first insertion attempt already made: the observation is the tactile sequence of that
collision. Each step applies a correction (dx_mm, dy_mm, drz_deg) and makes the next attempt. The episode
terminates on an insertion and is truncated after ``max_attempts`` attempts.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.envs.base import TaclabEnv
from taclab.sim.config import SceneConfig
from taclab.sim.peg_in_hole import N_FRAMES, PegInHoleSim
from taclab.sim.scene import cached_scene
from taclab.sim.shapes import NAMED_SHAPES
from taclab.sim.tactile.optical import OpticalProfile, OpticalRenderer, get_profile

RESET_OPTIONS = ("shape", "clearance_mm", "error", "keep_slip")


class PegInHoleConfig(BaseModel):
    """Task parameters of ``taclab/PegInHole-v0``. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scene: SceneConfig = Field(default_factory=SceneConfig, description="physical parameters")
    shape: str = Field("square", description="default peg shape; a reset option overrides it")
    clearance_mm: float = Field(2.0, gt=0, description="default clearance c (mm): hole width minus peg width")
    max_attempts: int = Field(15, ge=1, le=1000, description="attempts per episode, the first one included")
    ex_range_mm: float = Field(5.0, gt=0, description="initial ex is drawn from [-ex_range_mm, ex_range_mm]")
    ey_range_mm: float = Field(5.0, gt=0, description="initial ey is drawn from [-ey_range_mm, ey_range_mm]")
    erz_range_deg: float = Field(6.0, ge=0, description="initial erz is drawn from [-erz_range_deg, erz_range_deg]")
    min_overlap_mm: float = Field(
        0.3, ge=0, description="the initial peg tip must overlap the block top by at least this much (mm)"
    )
    keep_slip: bool = Field(False, description="keep the peg's slip in the hand between attempts")
    sensor: str = Field("gelstereo", description="optical sensor profile (see taclab.sim.tactile.optical)")
    sensor_overrides: dict = Field(
        default_factory=dict, description="OpticalProfile keys that replace the profile's values"
    )
    image_size: tuple[int, int] = Field((64, 64), description="tactile image (height, width) in pixels")
    raw_fields: bool = Field(False, description="add the raw depth, shear and force arrays to observations")
    sensor_noise: bool = Field(True, description="add the profile's pixel noise to tactile images")

    max_translation_mm: float = Field(1.0, gt=0, description="largest correction along x and y per step (mm)")
    max_rotation_deg: float = Field(1.5, gt=0, description="largest correction about z per step (degrees)")

    @field_validator("image_size")
    @classmethod
    def _size(cls, v):
        if v[0] < 8 or v[1] < 8 or v[0] > 1024 or v[1] > 1024:
            raise ValueError(f"image_size must be between 8 and 1024 pixels per side, got {v}")
        return v


def tactile_renderer(config: PegInHoleConfig | dict | None = None) -> OpticalRenderer:
    """The optical renderer of the pads of a ``taclab/PegInHole-v0`` env with ``config`` (its config model or
    keys): the sensor profile with its overrides, at the config's image size, over the scene's taxel grid."""
    if not isinstance(config, PegInHoleConfig):
        config = PegInHoleConfig(**(config or {}))
    rows, cols = config.scene.taxels
    base = get_profile(config.sensor).model_dump()
    profile = OpticalProfile(**{**base, **config.sensor_overrides, "image_size": tuple(config.image_size)})
    return OpticalRenderer(
        profile, grid=(rows, cols), pitch=(config.scene.pad_height / rows, config.scene.pad_width / cols)
    )


def reference_image(config: PegInHoleConfig | dict | None = None) -> np.ndarray:
    """The no-contact image of a pad of an env with ``config``: the untouched gel with its markers at rest and no
    pixel noise, (H, W, 3) uint8. Both pads share the sensor model, so it is the reference of either pad (what
    GelSight users subtract from every frame)."""
    return tactile_renderer(config).reference_image()


def check_shape(shape: str) -> str:
    if not isinstance(shape, str) or not (shape in NAMED_SHAPES or shape == "custom" or shape.startswith("polygon:")):
        raise ValueError(f"unknown peg shape {shape!r}; allowed: {', '.join(NAMED_SHAPES)}, 'polygon:<n>' or 'custom'")
    return shape


def check_clearance(clearance) -> float:
    try:
        c = float(clearance)
    except (TypeError, ValueError):
        raise ValueError(f"clearance_mm must be a number > 0, got {clearance!r}") from None
    if not math.isfinite(c) or c <= 0:
        raise ValueError(f"clearance_mm must be > 0 (a finite number), got {clearance!r}")
    return c


class PegInHoleEnv(TaclabEnv):
    """Tactile peg-in-hole, one insertion attempt per step. See the module docstring and docs/environment.md."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    Config = PegInHoleConfig
    TASK_KEYS = ("shape", "clearance_mm")
    TASK_LISTS = {
        "shapes": tuple({"shape": s, "clearance_mm": 2.0} for s in ("square", "triangle", "round", "hexagon")),
        "clearances": tuple({"shape": "square", "clearance_mm": c} for c in (2.0, 1.6, 1.0)),
    }
    RESULT_FIELDS = ("shape", "clearance_mm", "attempt", "initial_error")

    @classmethod
    def check_task(cls, task: dict[str, Any]) -> dict[str, Any]:
        task = super().check_task(task)
        if "shape" in task:
            check_shape(task["shape"])
        if "clearance_mm" in task:
            check_clearance(task["clearance_mm"])
        return task

    def __init__(self, config: PegInHoleConfig | dict | None = None, render_mode: str | None = None, **overrides):
        config = self._configure(config, render_mode, overrides)
        check_shape(config.shape)
        h, w = config.image_size
        rows, cols = config.scene.taxels
        obs = {"tactile": spaces.Box(0, 255, (N_FRAMES, 2, h, w, 3), np.uint8)}
        if config.raw_fields:
            obs["depth"] = spaces.Box(0, np.inf, (N_FRAMES, 2, rows, cols), np.float32)
            obs["shear"] = spaces.Box(-np.inf, np.inf, (N_FRAMES, 2, rows, cols, 2), np.float32)
            obs["force"] = spaces.Box(0, np.inf, (N_FRAMES, 2, rows, cols), np.float32)
        self.observation_space = spaces.Dict(obs)
        lim = np.array([config.max_translation_mm, config.max_translation_mm, config.max_rotation_deg], np.float32)
        self.action_space = spaces.Box(-lim, lim, dtype=np.float32)
        self._renderer = tactile_renderer(config)
        self._sims: dict[tuple[str, float], PegInHoleSim] = {}
        self._sim: PegInHoleSim | None = None
        self._hand = np.zeros(3)  # x (m), y (m), yaw (rad) of the hand for the last attempt
        self._attempt = 0
        self._initial_error = np.zeros(3, np.float32)
        self._shape = config.shape
        self._clearance_mm = config.clearance_mm
        self._keep_slip = config.keep_slip
        self._last_obs: dict[str, np.ndarray] | None = None
        self._done = True
        self._mj_renderer = None
        self.render_seconds = 0.0  # time spent rendering tactile images, for benchmarks

    def reference_image(self) -> np.ndarray:
        """The no-contact image of this env's pads, (H, W, 3) uint8 (see :func:`reference_image`)."""
        return self._renderer.reference_image()

    def touch_seconds(self) -> float:
        """Seconds this env has spent on touch: sensor evaluation, fields and tactile images."""
        return self.render_seconds + sum(s.touch_seconds for s in self._sims.values())

    # ------------------------------------------------------------------ helpers
    def _get_sim(self, shape: str, clearance_mm: float) -> PegInHoleSim:
        key = (shape, float(clearance_mm))
        if key not in self._sims:
            scene = cached_scene(self.config.scene, shape, float(clearance_mm) / 1000.0)
            self._sims[key] = PegInHoleSim(scene)
        return self._sims[key]

    def _error(self) -> np.ndarray:
        e = self._sim.peg_error(*self._hand)
        return np.array([e[0] * 1e3, e[1] * 1e3, math.degrees(e[2])])

    def _info(self, success: bool, contact: bool) -> dict[str, Any]:
        err = self._error()
        return {
            "error": err,  # float64: the paper's label is computed from it at full precision
            "initial_error": self._initial_error.copy(),
            "attempt": self._attempt,
            "is_success": bool(success),
            "contact": bool(contact),
            "shape": self._shape,
            "clearance_mm": float(self._clearance_mm),
        }

    def _observe(self, field) -> dict[str, np.ndarray]:
        rng = self.np_random if self.config.sensor_noise else None
        t0 = time.perf_counter()
        obs = {"tactile": self._renderer.render(field, rng=rng)}
        self.render_seconds += time.perf_counter() - t0
        if self.config.raw_fields:
            obs.update(field.as_arrays())
        return obs

    def _empty_obs(self) -> dict[str, np.ndarray]:
        return {k: np.zeros(s.shape, s.dtype) for k, s in self.observation_space.spaces.items()}

    def _sample_error(self, sim: PegInHoleSim) -> np.ndarray:
        cfg = self.config
        section = sim.scene.section
        tip = section.offset(-cfg.scene.peg_chamfer) if cfg.scene.peg_chamfer > 0 else section
        hole = sim.scene.hole
        for _ in range(10000):
            e = self.np_random.uniform(
                [-cfg.ex_range_mm, -cfg.ey_range_mm, -cfg.erz_range_deg],
                [cfg.ex_range_mm, cfg.ey_range_mm, cfg.erz_range_deg],
            )
            overlap = tip.protrusion(hole, e[0] / 1e3, e[1] / 1e3, math.radians(e[2]))
            if overlap * 1e3 >= cfg.min_overlap_mm:
                return e
        raise ValueError(
            "could not draw an initial misalignment that blocks the insertion: the error ranges "
            f"(+-{cfg.ex_range_mm} mm, +-{cfg.ey_range_mm} mm, +-{cfg.erz_range_deg} deg) are too small for "
            f"clearance {self._clearance_mm} mm"
        )

    def max_error_mm(self) -> float:
        """The largest |ex| and |ey| (mm) that keep the whole peg over the hole block."""
        sc = self.config.scene
        return (sc.block_size / 2 - float(np.max(self._sim.scene.section.extent()))) * 1e3

    def _set_hand_for_error(self, e_mm_deg) -> None:
        self._hand = self._sim.hand_pose_for_error(e_mm_deg[0] / 1e3, e_mm_deg[1] / 1e3, math.radians(e_mm_deg[2]))

    def _do_attempt(self):
        res = self._sim.attempt(*self._hand, keep_slip=self._keep_slip)
        self._attempt += 1
        return res

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; allowed: {list(RESET_OPTIONS)}")
        shape = check_shape(options.get("shape", self.config.shape))
        clearance = check_clearance(options.get("clearance_mm", self.config.clearance_mm))
        self._keep_slip = bool(options.get("keep_slip", self.config.keep_slip))
        self._shape, self._clearance_mm = shape, clearance
        self._sim = self._get_sim(shape, clearance)
        self._sim.restore_grasp()
        self._attempt = 0
        if "error" in options:
            e = np.asarray(options["error"], dtype=float)
            if e.shape != (3,) or not np.all(np.isfinite(e)):
                raise ValueError(f"option 'error' must be finite (ex_mm, ey_mm, erz_deg), got {options['error']!r}")
            reach = self.max_error_mm()
            if np.max(np.abs(e[:2])) > reach:
                raise ValueError(
                    f"option 'error' {e.tolist()} puts the peg off the hole block; allowed: |ex_mm|, |ey_mm| <= "
                    f"{reach:.1f} (the peg over the block)"
                )
            self._set_hand_for_error(e)
            res = self._do_attempt()
        else:
            for _ in range(100):
                self._set_hand_for_error(self._sample_error(self._sim))
                res = self._do_attempt()
                if not res.success:
                    break
                self._attempt = 0
            else:  # pragma: no cover - guarded by the geometric check
                raise RuntimeError("every sampled misalignment inserted; check the error ranges")
        self._done = bool(res.success)
        obs = self._observe(res.field) if res.field is not None else self._empty_obs()
        self._last_obs = obs
        self._initial_error = self._error().astype(np.float32)
        return obs, self._info(res.success, res.contact)

    def step(self, action):
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended (inserted or out of attempts): call reset()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (3,):
            raise ValueError(f"action must have shape (3,) = (dx_mm, dy_mm, drz_deg), got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a.tolist()}")
        lo, hi = self.action_space.low.astype(np.float64), self.action_space.high.astype(np.float64)
        clipped = np.clip(a, lo, hi)
        self._hand = self._hand + np.array([clipped[0] / 1e3, clipped[1] / 1e3, math.radians(clipped[2])])
        res = self._do_attempt()
        terminated = bool(res.success)
        truncated = (not terminated) and self._attempt >= self.config.max_attempts
        self._done = terminated or truncated
        obs = self._observe(res.field) if res.field is not None else self._empty_obs()
        self._last_obs = obs
        info = self._info(res.success, res.contact)
        info["action_clipped"] = bool(np.any(clipped != a))
        return obs, float(terminated), terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return self.render_scene()

    def render_scene(self, width: int = 480, height: int = 360) -> np.ndarray:
        """An RGB image of the scene as the last attempt left it."""
        import mujoco

        if self._sim is None:
            raise RuntimeError("call reset() before rendering")
        if self._mj_renderer is None or self._mj_renderer_model is not self._sim.model:
            if self._mj_renderer is not None:
                self._mj_renderer.close()
            self._mj_renderer = mujoco.Renderer(self._sim.model, height=height, width=width)
            self._mj_renderer_model = self._sim.model
        self._mj_renderer.update_scene(self._sim.data, camera="overview")
        return self._mj_renderer.render()

    def close(self):
        if self._mj_renderer is not None:
            self._mj_renderer.close()
            self._mj_renderer = None

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_sims"] = {}
        state["_mj_renderer"] = None
        sim = state.pop("_sim")
        state["_grasp_state"] = None if sim is None else sim.grasp
        return state

    def __setstate__(self, state):
        grasp = state.pop("_grasp_state")
        self.__dict__.update(state)
        self._sim = None
        if grasp is not None:
            self._sim = self._get_sim(self._shape, self._clearance_mm)
            self._sim.grasp = grasp
