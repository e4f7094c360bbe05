"""The demonstration datasets of VITAL: the generator ``vital``.

Each split holds ``episodes`` demonstrations (32 by default, as the paper) of one task by the scripted,
human-like demonstrator (:mod:`taclab.papers.vital.demonstrator`) in ``taclab/Vital<Task>-v0``, in the episode
layout: one row per 6 Hz control step with what the policy saw (wrist RGB, its segmentation mask, both skins,
proprioception), the action taken and what followed. By default only successful demonstrations are kept (a
teleoperator's good takes); failed ones are run and dropped. Episode seeds are drawn from the shard's generator,
so the data depend only on the config; the demonstrator's imperfection is drawn from the same episode seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from taclab.data.generate import Generator, Shard, SplitConfig, register_generator
from taclab.data.schema import Feature


class VitalDemoConfig(SplitConfig):
    """One split of a VITAL demonstration dataset. Unknown keys are rejected."""

    task: str = Field("usb", description="plug, usb, card, key or pick")
    episodes: int = Field(32, ge=1, le=100_000, description="demonstrations in the split")
    successful_only: bool = Field(True, description="keep only demonstrations that succeed")
    max_tries: int = Field(10, ge=1, description="at most this many tries per kept demonstration")
    shard_size: int = Field(8, ge=1, le=10_000, description="demonstrations per shard file")
    env: dict[str, Any] = Field(default_factory=dict, description="Vital env config overrides")
    demo: dict[str, Any] = Field(default_factory=dict, description="demonstrator config overrides (e.g. noise)")

    @field_validator("task")
    @classmethod
    def _task(cls, v: str) -> str:
        from taclab.envs.vital import check_task

        return check_task(v)

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Any]) -> dict[str, Any]:
        from taclab.envs.base import check_overrides
        from taclab.envs.vital import ENV_IDS

        return check_overrides(ENV_IDS["usb"], v)  # every VITAL env takes the same VitalConfig

    @field_validator("demo")
    @classmethod
    def _demo(cls, v: dict[str, Any]) -> dict[str, Any]:
        from taclab.papers.vital.demonstrator import DemoConfig

        bad = sorted({"task", "scene", "max_step_mm", "max_step_deg", "max_skin_norm"} & set(v))
        if bad:
            raise ValueError(f"demo.{bad[0]} follows the split's task and env config: set it there instead")
        DemoConfig(**v)
        return v

    def env_config(self):
        from taclab.envs.vital import VitalConfig

        return VitalConfig(**self.env)


def demonstrator_for(task: str, env_cfg, overrides: dict[str, Any] | None = None, seed: int = 0):
    """The demonstrator matched to an env config (scene, step limits, skin abort threshold)."""
    from taclab.papers.vital.demonstrator import VitalDemonstrator

    return VitalDemonstrator(
        seed=seed,
        task=task,
        scene=env_cfg.scene.model_dump(),
        max_step_mm=env_cfg.max_step_mm,
        max_step_deg=env_cfg.max_step_deg,
        max_skin_norm=env_cfg.max_skin_norm,
        **(overrides or {}),
    )


def features(cfg: VitalDemoConfig) -> list[Feature]:
    env_cfg = cfg.env_config()
    h, w = env_cfg.image_size
    out = [
        Feature("observation.wrist_rgb", "uint8", (h, w, 3), "image", "wrist camera, wide field of view"),
    ]
    if env_cfg.masks:
        out.append(
            Feature(
                "observation.wrist_mask",
                "uint8",
                (h, w, 1),
                "image",
                "segmentation of the wrist image: 0 background, 1 gripper, 2 held object, 3 target",
            )
        )
    return out + [
        Feature("observation.skin", "float32", (2, 15), "vector", "magnetic skins of pad 0 and 1 (uT, vs baseline)"),
        Feature(
            "observation.proprio", "float32", (7,), "vector", "hand position (m), rotation vector (rad), opening (m)"
        ),
        Feature(
            "action",
            "float32",
            (7,),
            "vector",
            "dx, dy, dz (mm) and rotation vector (deg) in the end-effector frame; gripper (+1 closes)",
        ),
        Feature("next.reward", "float32", (), "scalar", "reward after the action"),
        Feature("next.done", "bool", (), "scalar", "the episode ended after the action"),
        Feature("next.success", "bool", (), "scalar", "the task was done after the action"),
        Feature("next.goal_error_mm", "float32", (3,), "vector", "privileged: the part's error from its goal (mm)"),
        Feature("task", "string", (), "text", "VITAL task"),
        Feature("episode_seed", "int64", (), "scalar", "seed of env.reset and of the demonstrator"),
    ]


def run_demo(env, demo, seed: int, masks: bool) -> tuple[dict[str, np.ndarray], bool]:
    """One demonstration: the per-frame arrays of an episode and whether it succeeded."""
    obs, info = env.reset(seed=seed)
    demo.reset(env.unwrapped.task_of(info), seed=seed)
    frames: dict[str, list] = {}
    while True:
        action = demo.select_action(obs, info)
        rec = {
            "observation.wrist_rgb": obs["wrist_rgb"],
            "observation.skin": obs["skin"],
            "observation.proprio": obs["proprio"],
            "action": action,
        }
        if masks:
            rec["observation.wrist_mask"] = obs["wrist_mask"][..., None]
        obs, reward, term, trunc, info = env.step(demo.executed(action))
        rec.update(
            {
                "next.reward": np.float32(reward),
                "next.done": term or trunc,
                "next.success": info["is_success"],
                "next.goal_error_mm": info["goal_error_mm"],
            }
        )
        for k, v in rec.items():
            frames.setdefault(k, []).append(v)
        if term or trunc:
            break
    return {k: np.asarray(v) for k, v in frames.items()}, bool(info["is_success"])


@register_generator("vital")
class VitalDemoGenerator(Generator):
    """Scripted demonstrations of one VITAL task, one row per 6 Hz control step."""

    Config = VitalDemoConfig
    layout = "episode"
    version = 1
    description = (
        "Demonstrations of a VITAL task in `taclab/Vital<Task>-v0` by the scripted, human-like demonstrator "
        "(`taclab.papers.vital.demonstrator`): per 6 Hz control step the wrist RGB image and its segmentation "
        "mask, both magnetic skins (15 values each), proprioception, the relative end-effector action and what "
        "followed."
    )

    def features(self, cfg: VitalDemoConfig) -> list[Feature]:
        return features(cfg)

    def size(self, cfg: VitalDemoConfig) -> int:
        return cfg.episodes

    def fps(self, cfg: VitalDemoConfig) -> float:
        s = cfg.env_config().scene
        return 1.0 / (s.substeps * s.timestep)

    def max_frames(self, cfg: VitalDemoConfig) -> int:
        return int(cfg.env_config().max_steps)

    def episodes(self, cfg: VitalDemoConfig, shard: Shard, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        from taclab.envs.base import make
        from taclab.envs.vital import ENV_IDS

        env_cfg = cfg.env_config()
        env = make(ENV_IDS[cfg.task], **env_cfg.model_dump())
        demo = demonstrator_for(cfg.task, env_cfg, cfg.demo)
        try:
            for _ in range(shard.size):
                for _try in range(cfg.max_tries):
                    seed = int(rng.integers(0, 2**31 - 1))
                    frames, success = run_demo(env, demo, seed, env_cfg.masks)
                    if success or not cfg.successful_only:
                        break
                else:
                    raise RuntimeError(
                        f"{shard.file}: no successful demonstration in {cfg.max_tries} tries; raise max_tries or "
                        "lower the demonstrator's noise"
                    )
                frames.update({"task": cfg.task, "episode_seed": seed})
                yield frames
        finally:
            env.close()
