"""The demonstration datasets of VT-Refine: the generator ``vtrefine``.

Each split holds ``episodes`` demonstrations of one assembly by the scripted bimanual demonstrator
(:mod:`taclab.papers.vtrefine.demonstrator`) in ``taclab/BimanualAssembly-v0``, in the episode layout: one row per
control step with the observation the policy saw, the action it took and what followed. By default only
successful demonstrations are kept (as one keeps a teleoperator's good takes); the failed ones are drawn, run
and dropped, and the card's config records how many were asked for.

Episode seeds are drawn from the shard's generator, so the data depend only on the config (the driver seeds
shard ``k`` with ``(seed, k)``); the demonstrator's imperfection is drawn from the same episode seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from taclab.data.generate import Generator, Shard, SplitConfig, register_generator
from taclab.data.schema import Feature

ENV_ID = "taclab/BimanualAssembly-v0"
TASK_KEYS = ("assembly", "clearance_mm")
"""Env config keys the split sets itself."""


class VTRefineDemoConfig(SplitConfig):
    """One split of a VT-Refine demonstration dataset. Unknown keys are rejected."""

    assembly: str = Field("round", description="the assembly demonstrated: 'round' or 'square'")
    clearance_mm: float = Field(0.8, gt=0, lt=4, allow_inf_nan=False, description="clearance (mm)")
    episodes: int = Field(30, ge=1, le=100_000, description="demonstrations in the split")
    successful_only: bool = Field(True, description="keep only demonstrations that complete the assembly")
    max_tries: int = Field(10, ge=1, description="at most this many tries per kept demonstration")
    shard_size: int = Field(10, ge=1, le=10_000, description="demonstrations per shard file")
    env: dict[str, Any] = Field(default_factory=dict, description="BimanualAssembly-v0 config overrides")
    demo: dict[str, Any] = Field(default_factory=dict, description="demonstrator config overrides (e.g. noise)")

    @field_validator("assembly")
    @classmethod
    def _assembly(cls, v: str) -> str:
        from taclab.envs.bimanual import check_assembly

        return check_assembly(v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Any]) -> dict[str, Any]:
        from taclab.envs.base import check_overrides

        for key in TASK_KEYS:
            if key in v:
                raise ValueError(f"env.{key} is set by the split's {key!r}: set {key} instead")
        return check_overrides(ENV_ID, v)

    @field_validator("demo")
    @classmethod
    def _demo(cls, v: dict[str, Any]) -> dict[str, Any]:
        from taclab.papers.vtrefine.demonstrator import DemoConfig

        bad = sorted({"control_hz", "action_mode", "scene", "success_depth"} & set(v))
        if bad:
            raise ValueError(f"demo.{bad[0]} follows the env config: set it under env instead")
        DemoConfig(**v)
        return v

    def env_config(self):
        from taclab.envs.base import env_class

        return env_class(ENV_ID).Config(**self.env, assembly=self.assembly, clearance_mm=self.clearance_mm)


def demonstrator_for(env_cfg, overrides: dict[str, Any] | None = None, seed: int = 0):
    """The demonstrator matched to an env config (control rate, action mode, scene, success depth)."""
    from taclab.papers.vtrefine.demonstrator import BimanualDemonstrator

    return BimanualDemonstrator(
        seed=seed,
        control_hz=env_cfg.control_hz,
        action_mode=env_cfg.action_mode,
        scene=env_cfg.scene.model_dump(),
        success_depth=env_cfg.success_depth_mm / 1000.0,
        **(overrides or {}),
    )


def features(cfg: VTRefineDemoConfig) -> list[Feature]:
    from taclab.envs.bimanual import BimanualAssemblyEnv

    env_cfg = cfg.env_config()
    space = BimanualAssemblyEnv(env_cfg).observation_space
    n, d = space["point_cloud"].shape
    out = [
        Feature(
            "observation.point_cloud",
            "float32",
            (n, d),
            "point_cloud",
            "visual then tactile points: x, y, z (m, world), visual flag, tactile flag, pressure (fraction of full "
            "scale)",
        ),
        Feature("observation.state", "float32", (14,), "vector", "per hand: grasp pose (m, rad) and pad distance (m)"),
    ]
    if env_cfg.tactile:
        out.append(
            Feature("observation.taxels", "float32", space["taxels"].shape, "vector", "taxel forces (N) of 4 pads")
        )
    return out + [
        Feature("observation.privileged", "float32", (34,), "vector", "part poses and more, for a critic (info)"),
        Feature("action", "float32", (14,), "vector", "per hand: target pose (x, y, z, roll, pitch, yaw), grip"),
        Feature("next.reward", "float32", (), "scalar", "reward after the action"),
        Feature("next.done", "bool", (), "scalar", "the episode ended after the action"),
        Feature("next.success", "bool", (), "scalar", "the assembly was complete after the action"),
        Feature("assembly", "string", (), "text", "assembly"),
        Feature("clearance_mm", "float32", (), "scalar", "clearance (mm)"),
        Feature("episode_seed", "int64", (), "scalar", "seed of env.reset and of the demonstrator"),
    ]


def run_demo(env, demo, seed: int) -> tuple[dict[str, np.ndarray], bool]:
    """One demonstration: the per-frame arrays of an episode and whether it succeeded."""
    obs, info = env.reset(seed=seed)
    demo.reset(env.unwrapped.task_of(info), seed=seed)
    frames: dict[str, list] = {}
    while True:
        action = demo.select_action(obs, info)
        rec = {f"observation.{k}": v for k, v in obs.items()}
        rec["observation.privileged"] = info["privileged"]
        rec["action"] = action
        obs, reward, term, trunc, info = env.step(action)
        rec.update({"next.reward": reward, "next.done": term or trunc, "next.success": info["is_success"]})
        for k, v in rec.items():
            frames.setdefault(k, []).append(v)
        if term or trunc:
            break
    return {k: np.asarray(v) for k, v in frames.items()}, bool(info["is_success"])


@register_generator("vtrefine")
class VTRefineDemoGenerator(Generator):
    """Scripted bimanual demonstrations of one assembly, one row per control step."""

    Config = VTRefineDemoConfig
    layout = "episode"
    version = 1
    description = (
        "Demonstrations of bimanual assembly in `taclab/BimanualAssembly-v0` by the scripted, human-like imperfect "
        "demonstrator of VT-Refine (`taclab.papers.vtrefine.demonstrator`): per control step the visuo-tactile "
        "point cloud, the hands' state, the taxel readings, the privileged state and the action."
    )

    def features(self, cfg: VTRefineDemoConfig) -> list[Feature]:
        return features(cfg)

    def size(self, cfg: VTRefineDemoConfig) -> int:
        return cfg.episodes

    def fps(self, cfg: VTRefineDemoConfig) -> float:
        return float(cfg.env_config().control_hz)

    def max_frames(self, cfg: VTRefineDemoConfig) -> int:
        return int(cfg.env_config().max_steps)

    def episodes(self, cfg: VTRefineDemoConfig, shard: Shard, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        from taclab.envs.base import make

        env_cfg = cfg.env_config()
        env = make(ENV_ID, **env_cfg.model_dump())
        demo = demonstrator_for(env_cfg, cfg.demo)
        try:
            for _ in range(shard.size):
                for _try in range(cfg.max_tries):
                    seed = int(rng.integers(0, 2**31 - 1))
                    frames, success = run_demo(env, demo, seed)
                    if success or not cfg.successful_only:
                        break
                else:
                    raise RuntimeError(
                        f"{shard.file}: no successful demonstration in {cfg.max_tries} tries; raise max_tries or "
                        "lower the demonstrator's noise"
                    )
                frames.update({"assembly": cfg.assembly, "clearance_mm": cfg.clearance_mm, "episode_seed": seed})
                yield frames
        finally:
            env.close()
