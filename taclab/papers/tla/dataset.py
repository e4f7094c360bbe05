"""The tactile-action datasets of the TLA paper: the generator ``tla``.

Generation runs episodes of ``taclab/PegInHole-v0`` with the **random insertion policy**: after the env's random
blocking misalignment, every correction is drawn uniformly from the action box (+-1 mm, +-1 mm, +-1.5 deg), so
the peg random-walks over a wide spread of errors of both signs. Every failed attempt is one sample, labelled
with the action of equations (1)-(3) for its true error (:func:`taclab.papers.tla.labels.tla_label`).

The samples of each shape are cut into shards of ``shard_size``; shard ``k`` of shape ``s`` is seeded by
``(seed, s, k)`` (its key ``(s, k)``), so the data depend only on the config. Sharding, workers, checksums,
resume and locking are the driver's (:mod:`taclab.data.generate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from taclab.data.generate import Generator, Shard, SplitConfig, register_generator
from taclab.data.schema import Feature
from taclab.papers.tla.labels import DELTA_MM, MAX_ROT_DEG, tla_label

ENV_ID = "taclab/PegInHole-v0"
ACTION_LIMITS = np.array([DELTA_MM, DELTA_MM, MAX_ROT_DEG])
TASK_SET_BY_SPLIT = {"shape": "shapes", "clearance_mm": "clearance_mm"}
"""Env config keys the generator sets itself, and the split key that gives them."""


class TLADatasetConfig(SplitConfig):
    """One split of a TLA dataset. Unknown keys are rejected."""

    shapes: tuple[str, ...] = Field(("square",), description="peg shapes, in equal parts")
    clearance_mm: float = Field(2.0, gt=0, allow_inf_nan=False, description="clearance c (mm)")
    samples: int = Field(1000, ge=1, description="number of samples (failed attempts) in the split")
    shard_size: int = Field(500, ge=1, le=1_000_000, description="samples per shard file")
    env: dict[str, Any] = Field(default_factory=dict, description="PegInHole-v0 config overrides")

    @field_validator("shapes")
    @classmethod
    def _shapes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from taclab.envs.peg_in_hole import check_shape

        if not v:
            raise ValueError("shapes must name at least one peg shape")
        for s in v:
            check_shape(s)
        if len(set(v)) != len(v):
            raise ValueError(f"shapes must not repeat, got {list(v)}")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Any]) -> dict[str, Any]:
        from taclab.envs.base import check_overrides

        for key, instead in TASK_SET_BY_SPLIT.items():
            if key in v:
                raise ValueError(f"env.{key} is set per shard by the split's {instead!r}: set {instead} instead")
        return check_overrides(ENV_ID, v)


def features(cfg: TLADatasetConfig) -> list[Feature]:
    from taclab.envs.base import env_class
    from taclab.sim.peg_in_hole import N_FRAMES

    h, w = env_class(ENV_ID).Config(**cfg.env).image_size
    return [
        Feature(
            "tactile",
            "uint8",
            (N_FRAMES, 2, h, w, 3),
            "image_sequence",
            "the 4 frames x 2 pads tiled, frame t in row t, pad k in column k",
        ),
        Feature("error", "float32", (3,), "vector", "true pose error (ex_mm, ey_mm, erz_deg) of the attempt"),
        Feature("label", "float32", (3,), "vector", "action of equations (1)-(3) for that error (dx, dy mm, drz deg)"),
        Feature("shape", "string", (), "text", "peg shape"),
        Feature("clearance_mm", "float32", (), "scalar", "clearance c (mm)"),
        Feature("episode", "int32", (), "scalar", "episode index within the shard"),
        Feature("attempt", "int32", (), "scalar", "attempt index within the episode (1 = the first attempt)"),
        Feature("episode_seed", "int64", (), "scalar", "seed of env.reset that reproduces the episode"),
        Feature("shard", "string", (), "text", "shard file the sample comes from"),
    ]


@register_generator("tla")
class TLAGenerator(Generator):
    """Failed insertion attempts of the random insertion policy, labelled with equations (1)-(3)."""

    Config = TLADatasetConfig
    layout = "sample"
    version = 1
    description = (
        "Tactile-action samples of the TLA paper: episodes of `taclab/PegInHole-v0` with the random insertion "
        "policy (each correction drawn uniformly from the action box); every failed insertion attempt is one "
        "sample, labelled with the action of equations (1)-(3) for its true error."
    )

    def features(self, cfg: TLADatasetConfig) -> list[Feature]:
        return features(cfg)

    def size(self, cfg: TLADatasetConfig) -> int:
        return cfg.samples

    def shards(self, cfg: TLADatasetConfig) -> list[Shard]:
        """Shapes in equal parts (the first ones get one more when the samples do not divide), each cut into
        shards of ``shard_size``: ``<split>-<shape>-<k>.parquet``, key ``(shape index, k)``."""
        n_shapes = len(cfg.shapes)
        plan = []
        for s, shape in enumerate(cfg.shapes):
            n = cfg.samples // n_shapes + (1 if s < cfg.samples % n_shapes else 0)
            for k in range(math.ceil(n / cfg.shard_size)):
                count = min(cfg.shard_size, n - k * cfg.shard_size)
                name = f"{cfg.split}-{shape.replace(':', '')}-{k:05d}.parquet"
                plan.append(Shard(name, count, (s, k), {"shape": shape}))
        return plan

    def rows(self, cfg: TLADatasetConfig, shard: Shard, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        from taclab.envs.base import make

        shape = shard.params["shape"]
        env = make(ENV_ID, **{**cfg.env, "shape": shape, "clearance_mm": cfg.clearance_mm})
        made = 0

        def row(obs, info, episode, seed):
            return {
                "tactile": obs["tactile"],
                "error": info["error"],
                "label": tla_label(np.asarray(info["error"], dtype=np.float64), info["clearance_mm"]),
                "shape": shape,
                "clearance_mm": cfg.clearance_mm,
                "episode": episode,
                "attempt": int(info["attempt"]),
                "episode_seed": seed,
                "shard": shard.file,
            }

        try:
            episode = 0
            while made < shard.size:
                seed = int(rng.integers(0, 2**31 - 1))
                obs, info = env.reset(seed=seed)
                yield row(obs, info, episode, seed)
                made += 1
                while made < shard.size:
                    obs, _, term, trunc, info = env.step(rng.uniform(-ACTION_LIMITS, ACTION_LIMITS))
                    if term:
                        break
                    yield row(obs, info, episode, seed)
                    made += 1
                    if trunc:
                        break
                episode += 1
        finally:
            env.close()
