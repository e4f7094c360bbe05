"""Piezoresistive taxel arrays (FlexiTac style) rendered from a :class:`TactileField`.

A piezoresistive array reports one normal-force value per taxel and nothing tangential. Each taxel is modelled
as a penalty spring-damper on the gel indentation under it:

    f = k_n d + k_d d'        (N, with d in mm and d' in mm/s)

read only where the gel is indented (``d > 0``) and never negative, then saturated at the sensor's full scale
``f_max`` (an ADC clips), disturbed by Gaussian noise (an absolute part and a part proportional to the reading)
and cut below ``threshold`` (the dead band that keeps an untouched pad at exactly zero).

The field's own ``force`` (the contact solver's pad force shared among the taxels) is not used: the taxel model
reads the indentation ``depth`` and its rate, which the caller supplies (``depth_rate``, for example a finite
difference between two physics steps); without it the damping term is zero.

Taxel positions: :func:`taxel_grid` lays out the (rows, cols) taxel centres on the pad plane and
:func:`taxel_points` carries taxel positions given in a pad frame into the world frame; with the readings they
make the tactile points of a visuo-tactile point cloud (:meth:`TaxelRenderer.points`).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.sim.tactile.field import TactileField


class TaxelProfile(BaseModel):
    """Every parameter of a piezoresistive taxel array. Forces in N, indentation in mm, its rate in mm/s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("flexitac", description="profile name")
    grid: tuple[int, int] = Field(
        (32, 12), description="taxels per pad (rows along the finger, columns across it); FlexiTac is 12 x 32"
    )
    pitch_mm: float = Field(2.0, gt=0, le=20, description="distance between neighbouring taxel centres (mm)")
    stiffness: float = Field(1.0, ge=0, description="k_n: force per mm of indentation of one taxel (N/mm)")
    damping: float = Field(3.0e-3, ge=0, description="k_d: force per mm/s of indentation rate of one taxel (N s/mm)")
    full_scale: float = Field(1.5, gt=0, description="f_max: reading at which a taxel saturates (N)")
    noise_std: float = Field(0.005, ge=0, description="std of the additive Gaussian noise on each reading (N)")
    noise_rel: float = Field(0.02, ge=0, description="std of the multiplicative noise, relative to the reading")
    threshold: float = Field(0.02, ge=0, description="readings below this are reported as 0 (N)")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (1 <= v[0] <= 256 and 1 <= v[1] <= 256):
            raise ValueError(f"grid must have 1 to 256 taxels per side, got {v}")
        return v

    @property
    def pitch(self) -> tuple[float, float]:
        """Taxel spacing in metres (between rows, between columns), as :class:`TactileField` carries it."""
        p = self.pitch_mm / 1000.0
        return (p, p)

    @property
    def pad_size(self) -> tuple[float, float]:
        """Extent (m) of the sensing area: (along the rows' direction, along the columns' direction)."""
        r, c = self.grid
        return (r * self.pitch_mm / 1000.0, c * self.pitch_mm / 1000.0)


TAXEL_PROFILES: dict[str, TaxelProfile] = {"flexitac": TaxelProfile()}


def get_taxel_profile(name: str) -> TaxelProfile:
    if name not in TAXEL_PROFILES:
        raise ValueError(f"unknown taxel profile {name!r}; allowed: {', '.join(TAXEL_PROFILES)}")
    return TAXEL_PROFILES[name]


def taxel_grid(grid: tuple[int, int], pitch: float) -> np.ndarray:
    """Taxel centres (rows, cols, 2) on a pad plane, centred on the pad: ``[..., 0]`` along the columns' axis
    (increasing with the column), ``[..., 1]`` along the rows' axis (decreasing with the row: row 0 on top)."""
    r, c = grid
    u = (np.arange(c) - (c - 1) / 2) * pitch
    v = ((r - 1) / 2 - np.arange(r)) * pitch
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv], axis=-1)


def taxel_points(local: np.ndarray, origin: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """World positions (..., R, C, 3) of taxels at ``local`` (R, C, 3) in pad frames given by ``origin``
    (..., 3) and rotation matrices ``rot`` (..., 3, 3) (pad frame to world)."""
    origin = np.asarray(origin, dtype=float)
    rot = np.asarray(rot, dtype=float)
    return np.einsum("...ij,rcj->...rci", rot, local) + origin[..., None, None, :]


class TaxelRenderer:
    """Renders taxel forces (N) from tactile fields; see the module docstring for the model."""

    def __init__(self, profile: TaxelProfile | None = None):
        self.profile = profile or TaxelProfile()

    def render(
        self,
        field: TactileField,
        rng: np.random.Generator | None = None,
        depth_rate: np.ndarray | None = None,
    ) -> np.ndarray:
        """Taxel readings (..., R, C) in N, float32, for a field of any leading batch shape.

        ``depth_rate`` (m/s, the field's shape) feeds the damping term; ``rng`` adds the profile's noise (none
        without it, so that a reading is then a pure function of the field).
        """
        p = self.profile
        if tuple(field.grid) != tuple(p.grid):
            raise ValueError(f"field grid {tuple(field.grid)} does not match the profile's grid {tuple(p.grid)}")
        d_mm = np.maximum(np.asarray(field.depth, dtype=np.float64), 0.0) * 1000.0
        f = p.stiffness * d_mm
        if depth_rate is not None:
            rate = np.asarray(depth_rate, dtype=np.float64)
            if rate.shape != d_mm.shape:
                raise ValueError(f"depth_rate has shape {rate.shape}, the field's depth {d_mm.shape}")
            f = f + p.damping * rate * 1000.0
        f = np.where(d_mm > 0, np.maximum(f, 0.0), 0.0)
        f = np.minimum(f, p.full_scale)
        if rng is not None and (p.noise_std > 0 or p.noise_rel > 0):
            f = f * (1.0 + p.noise_rel * rng.standard_normal(f.shape)) + p.noise_std * rng.standard_normal(f.shape)
            f = np.clip(f, 0.0, p.full_scale)
        f = np.where(f < p.threshold, 0.0, f)
        return f.astype(np.float32)

    def normalized(self, force: np.ndarray) -> np.ndarray:
        """Readings as a fraction of full scale (0..1): the pressure value a tactile point carries."""
        return (np.asarray(force, dtype=np.float32) / np.float32(self.profile.full_scale)).astype(np.float32)

    def points(self, force: np.ndarray, positions: np.ndarray, stride: int = 1) -> np.ndarray:
        """Tactile points (N, 4): world ``x, y, z`` (m) of every taxel and its normalized reading.

        ``force`` (..., R, C) are readings from :meth:`render`, ``positions`` (..., R, C, 3) the taxels' world
        positions (see :func:`taxel_points`); ``stride`` keeps every stride-th taxel along both grid axes.
        """
        force = np.asarray(force)
        positions = np.asarray(positions)
        if positions.shape != (*force.shape, 3):
            raise ValueError(f"positions {positions.shape} do not match readings {force.shape} + (3,)")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        force = force[..., ::stride, ::stride]
        positions = positions[..., ::stride, ::stride, :]
        out = np.empty((force.size, 4), dtype=np.float32)
        out[:, :3] = positions.reshape(-1, 3)
        out[:, 3] = self.normalized(force).reshape(-1)
        return out
