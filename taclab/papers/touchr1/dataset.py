"""The Touch-R1 interaction dataset: the generator ``touchr1`` (per-sample layout, one row per object).

Each row is one object (:mod:`taclab.papers.touchr1.objects`) touched by every sensor of the split's ``sensors``
(:data:`taclab.papers.touchr1.physics.SENSORS`): for each sensor one MuJoCo press-and-slide
(:class:`taclab.papers.touchr1.physics.PressSim`) on a randomly offset region of the object's relief, its raw
field (gel depth, shear, normal force per taxel) and its optical images, plus a MuJoCo image of the object whose
appearance agrees with the properties or, for the conflict subset, contradicts one of them
(:mod:`taclab.papers.touchr1.appearance`). Questions are made from the rows (:mod:`.questions`).

Groups of ``objects_per_group`` objects (shared dome and relief pattern) are never split: group ``k`` of split
``s`` is named ``s-g<k>`` and drawn from its own seed, so the test split shares no object, group or relief
pattern with the training split.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from taclab.data.generate import Generator, Shard, SplitConfig, register_generator
from taclab.data.schema import Feature
from taclab.papers.touchr1.objects import PROPERTIES, draw_group, stable_seed
from taclab.papers.touchr1.physics import N_FRAMES, SENSORS, TAXEL_PITCH, TAXELS

OBJECT_IMAGE = 64


class TouchR1DatasetConfig(SplitConfig):
    """One split of a Touch-R1 dataset. Unknown keys are rejected."""

    groups: int = Field(50, ge=1, description="object groups in the split")
    objects_per_group: int = Field(4, ge=1, le=100, description="objects per group (shared dome and relief)")
    groups_per_shard: int = Field(25, ge=1, description="groups per shard file")
    sensors: tuple[str, ...] = Field(tuple(SENSORS), description="sensors that touch every object, in this order")
    force_n: float = Field(1.0, gt=0, le=5, description="set pressing force (N)")
    slide_mm: float = Field(2.0, gt=0, le=4, description="length of the slide after the press (mm)")
    offset_mm: float = Field(1.0, ge=0, le=3, description="the touched region is offset uniformly within +-this (mm)")
    conflict_fraction: float = Field(0.2, ge=0, le=1, description="share of objects whose look contradicts touch")
    image_size: int = Field(48, ge=16, le=128, description="side (px) the tactile images are stored at")

    @field_validator("sensors")
    @classmethod
    def _sensors(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError(f"sensors must name at least one sensor; allowed: {', '.join(SENSORS)}")
        for s in v:
            if s not in SENSORS:
                raise ValueError(f"unknown sensor {s!r}; allowed: {', '.join(SENSORS)}")
        if len(set(v)) != len(v):
            raise ValueError(f"sensors must not repeat, got {list(v)}")
        return v


def features(cfg: TouchR1DatasetConfig) -> list[Feature]:
    s, t, r, c, n = len(cfg.sensors), N_FRAMES, *TAXELS, cfg.image_size
    return [
        Feature("tactile", "uint8", (s, t, n, n, 3), "image_sequence",
                "optical images: sensor k in tile row k, frame t in tile column t (press 50%, 100%, slide 1/3..3/3)"),
        Feature("depth", "float16", (s, t, r, c), "vector", "gel indentation per taxel (mm)"),
        Feature("shear", "float16", (s, t, r, c, 2), "vector", "gel surface displacement per taxel (mm): x, y"),
        Feature("force", "float16", (s, t, r, c), "vector", "normal force per taxel (mN)"),
        Feature("normal_force", "float32", (s, t), "vector", "MuJoCo's total normal contact force per frame (N)"),
        Feature("slip_onset_mm", "float32", (s,), "vector", "probe travel when the gel skin began to slip (mm)"),
        Feature("offset_mm", "float32", (s, 2), "vector", "offset of the touched region of the relief (mm)"),
        Feature("object_image", "uint8", (OBJECT_IMAGE, OBJECT_IMAGE, 3), "image", "MuJoCo render of the object"),
        Feature("levels", "int32", (len(PROPERTIES),), "vector", "true levels 1..5: " + ", ".join(PROPERTIES)),
        Feature("apparent_levels", "int32", (len(PROPERTIES),), "vector", "levels the object's look suggests"),
        Feature("conflict", "bool", (), "scalar", "the look contradicts one property"),
        Feature("conflict_property", "string", (), "text", "the contradicted property ('' when none)"),
        Feature("object_id", "string", (), "text", "unique object id <split>-g<group>-o<k>"),
        Feature("group", "string", (), "text", "object group (shared dome and relief pattern)"),
        Feature("dome_radius_mm", "float32", (), "scalar", "radius of the object's domed top (mm)"),
        Feature("sensors", "string", (), "text", "comma-separated sensor names, in tile-row order"),
    ]  # fmt: skip


class _Workers:
    """Per-process simulators and renderers (built once per process)."""

    sim = None
    obj = None
    optical: dict = {}


def _resize(images: np.ndarray, n: int) -> np.ndarray:
    from PIL import Image

    flat = images.reshape(-1, *images.shape[-3:])
    out = np.stack([np.asarray(Image.fromarray(im).resize((n, n), Image.Resampling.BILINEAR)) for im in flat])
    return out.reshape(*images.shape[:-3], n, n, 3)


def simulate_object(obj, apparent, cfg: TouchR1DatasetConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Every sensor's interaction with ``obj`` and its image: the row without the id columns."""
    from taclab.papers.touchr1.appearance import ObjectRenderer
    from taclab.papers.touchr1.physics import PressSim
    from taclab.sim.tactile import OpticalRenderer

    if _Workers.sim is None:
        _Workers.sim = PressSim()
    if _Workers.obj is None:
        _Workers.obj = ObjectRenderer()
    tac, depth, shear, force, nf, slip, offs = [], [], [], [], [], [], []
    for name in cfg.sensors:
        spec = SENSORS[name]
        off = rng.uniform(-cfg.offset_mm, cfg.offset_mm, size=2) * 1e-3
        it = _Workers.sim.run(obj, spec, force=cfg.force_n, slide_mm=cfg.slide_mm, offset=(off[0], off[1]))
        if spec.profile not in _Workers.optical:
            _Workers.optical[spec.profile] = OpticalRenderer(spec.profile, TAXELS, TAXEL_PITCH)
        img = _Workers.optical[spec.profile].render(it.field, rng=rng)
        tac.append(_resize(img, cfg.image_size))
        depth.append(it.field.depth * 1e3)
        shear.append(it.field.shear * 1e3)
        force.append(it.field.force * 1e3)
        nf.append(it.normal_force)
        slip.append(it.slip_onset * 1e3)
        offs.append(off * 1e3)
    return {
        "tactile": np.stack(tac),
        "depth": np.stack(depth).astype(np.float16),
        "shear": np.stack(shear).astype(np.float16),
        "force": np.stack(force).astype(np.float16),
        "normal_force": np.stack(nf).astype(np.float32),
        "slip_onset_mm": np.array(slip, np.float32),
        "offset_mm": np.stack(offs).astype(np.float32),
        "object_image": _Workers.obj.render(apparent, rng),
    }


@register_generator("touchr1")
class TouchR1Generator(Generator):
    """Objects with ordinal properties, each pressed and slid by several optical tactile sensors in MuJoCo."""

    Config = TouchR1DatasetConfig
    layout = "sample"
    version = 1
    description = (
        "Touch-R1 interactions: objects with four ordinal properties (hardness, roughness, bumpiness, friction; "
        "levels 1-5) each pressed to a set force and slid by several simulated optical tactile sensors in MuJoCo; "
        "per sensor the tactile image sequence and the raw field (depth, shear, force), and a rendered image of "
        "the object whose look contradicts one property for the conflict subset. One row per object."
    )

    def features(self, cfg: TouchR1DatasetConfig) -> list[Feature]:
        return features(cfg)

    def size(self, cfg: TouchR1DatasetConfig) -> int:
        return cfg.groups * cfg.objects_per_group

    def shards(self, cfg: TouchR1DatasetConfig) -> list[Shard]:
        """``groups_per_shard`` whole groups per shard: ``<split>-<k>.parquet``, key ``(k,)``."""
        plan = []
        for k in range(math.ceil(cfg.groups / cfg.groups_per_shard)):
            g0 = k * cfg.groups_per_shard
            g1 = min(cfg.groups, g0 + cfg.groups_per_shard)
            plan.append(
                Shard(f"{cfg.split}-{k:05d}.parquet", (g1 - g0) * cfg.objects_per_group, (k,), {"groups": [g0, g1]})
            )
        return plan

    def rows(self, cfg: TouchR1DatasetConfig, shard: Shard, rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        from taclab.papers.touchr1.appearance import conflicting_levels

        g0, g1 = shard.params["groups"]
        for g in range(g0, g1):
            grng = np.random.default_rng(stable_seed(cfg.seed, cfg.split, "group", g))
            for obj in draw_group(cfg.split, g, cfg.objects_per_group, grng):
                conflict = bool(grng.uniform() < cfg.conflict_fraction)
                prop = PROPERTIES[int(grng.integers(len(PROPERTIES)))] if conflict else ""
                apparent = conflicting_levels(obj.levels, prop) if conflict else obj.levels
                row = simulate_object(obj, apparent, cfg, grng)
                row.update(
                    levels=np.array(obj.levels, np.int32),
                    apparent_levels=np.array(apparent, np.int32),
                    conflict=conflict,
                    conflict_property=prop,
                    object_id=obj.object_id,
                    group=obj.group,
                    dome_radius_mm=obj.dome_radius * 1e3,
                    sensors=",".join(cfg.sensors),
                )
                yield row
