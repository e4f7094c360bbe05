"""Magnetic skin (AnySkin style) readings rendered from a :class:`TactileField`.

The sensor: a magnetized elastomer skin (``thickness_mm``) lies on a board that carries five three-axis
magnetometers in a plus layout (centre, left, right, up, down; the outer ones ``chip_spacing_mm`` from the
centre), their sensing points ``gap_mm`` below the skin. Touching the skin moves its magnetized particles; the
magnetometers see the change of their summed field. Fifteen values: (bx, by, bz) of each chip in its own frame.

Model:

- The skin is a lattice of point dipoles (``dipoles``: columns x rows x layers through the thickness), every
  one with the same moment ``m = Br V / mu0`` along the skin's outward normal (``remanence_mT`` is the
  elastomer's remanent flux density Br, V the volume each dipole stands for).
- The contact field moves the dipoles. The field's indentation ``depth`` and surface displacement ``shear`` are
  smoothed by a Gaussian of ``spread_mm`` (the elastomer spreads a local load) and resampled to the dipole
  lattice; a dipole at a fraction ``s`` of the thickness above the board (the board side is glued, the surface
  side moves with the contact) moves by ``s`` times the smoothed surface motion: inward by the indentation,
  along the surface by the shear. Tilting of the particles and the elastomer's lateral bulge are neglected.
- Each magnetometer reads the sum of the dipole fields ``B = mu0 / (4 pi) (3 r (m . r) / |r|^5 - m / |r|^3)``
  at its sensing point, rotated into the chip's frame (each chip is turned in the board plane by its entry of
  ``chip_angles_deg``), minus the field of the undeformed skin. Units: microtesla (uT).
- A real reading also carries white noise (``noise_uT`` per axis and reading) and a slow drift (a random walk
  of ``drift_uT_per_sqrt_s`` per axis and square-root second), and is reported relative to a baseline, the
  median of ``baseline_readings`` readings taken at reset: :class:`MagneticSkinSensor` does that.

Frames. The skin frame is the field's: ``u`` along the grid's columns, ``v`` up the pad (against the rows),
``w`` out of the skin towards what touches it. Chip ``k`` reads ``(bx, by) = R(-angle_k) (Bu, Bv)`` and
``bz = Bw``. In taclab's grippers the field's columns run along the hand's +x on both pads; that frame is
right-handed for pad 1 (whose normal points along the hand's -y); pad 0 carries the same board turned 180
degrees about the hand's z axis, whose field is first mirrored with :func:`mirror_columns`.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.sim.tactile.field import TactileField

CHIPS = ("centre", "left", "right", "up", "down")
"""Order of the five magnetometers in a reading; each contributes (bx, by, bz)."""
_CHIP_UV = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
_MU0_4PI = 1e-7  # mu0 / (4 pi), T m / A


class MagneticProfile(BaseModel):
    """Every parameter of a magnetic skin. Lengths in mm, fields in microtesla (uT), time in s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("anyskin", description="profile name")
    thickness_mm: float = Field(2.5, gt=0.2, le=10, description="thickness of the magnetized elastomer (mm)")
    gap_mm: float = Field(1.0, gt=0.1, le=10, description="from the chips' sensing points up to the skin (mm)")
    chip_spacing_mm: float = Field(5.0, gt=0, description="distance of the outer chips from the centre chip (mm)")
    chip_angles_deg: tuple[float, float, float, float, float] = Field(
        (0.0, 180.0, 0.0, 90.0, 270.0),
        description="in-plane rotation of each chip (centre, left, right, up, down), from the skin's u axis to "
        "the chip's x axis; by default every outer chip's x axis points away from the centre",
    )
    remanence_mT: float = Field(60.0, gt=0, description="remanent flux density Br of the magnetized elastomer (mT)")
    dipoles: tuple[int, int, int] = Field(
        (16, 16, 2), description="dipole lattice: along u (columns), along v (rows), through the thickness"
    )
    spread_mm: float = Field(1.0, ge=0, description="Gaussian sigma with which the elastomer spreads a load (mm)")
    noise_uT: float = Field(1.0, ge=0, description="std of the white noise of each axis of each reading (uT)")
    drift_uT_per_sqrt_s: float = Field(
        0.3, ge=0, description="random-walk drift of each axis: std after one second (uT), growing as sqrt(t)"
    )
    baseline_readings: int = Field(5, ge=1, le=100, description="readings whose median is the baseline at reset")

    @field_validator("dipoles")
    @classmethod
    def _dipoles(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if not (2 <= v[0] <= 64 and 2 <= v[1] <= 64 and 1 <= v[2] <= 8):
            raise ValueError(f"dipoles must be 2..64 along u and v and 1..8 layers, got {v}")
        return v


MAGNETIC_PROFILES: dict[str, MagneticProfile] = {"anyskin": MagneticProfile()}


def get_magnetic_profile(name: str) -> MagneticProfile:
    """The named magnetic skin profile (see :data:`MAGNETIC_PROFILES`)."""
    if name not in MAGNETIC_PROFILES:
        raise ValueError(f"unknown magnetic skin profile {name!r}; allowed: {', '.join(MAGNETIC_PROFILES)}")
    return MAGNETIC_PROFILES[name]


def mirror_columns(field: TactileField) -> TactileField:
    """The field seen in a frame mirrored along the columns (u -> -u): columns reversed, shear along u negated."""
    shear = field.shear[..., ::-1, :].copy()
    shear[..., 0] *= -1
    return TactileField(
        depth=field.depth[..., ::-1].copy(),
        shear=shear,
        slip=field.slip[..., ::-1, :].copy(),
        force=field.force[..., ::-1].copy(),
        pitch=field.pitch,
    )


def _smoothing(n_out: int, n_in: int, extent: float, sigma: float) -> np.ndarray:
    """(n_out, n_in): a Gaussian of ``sigma`` (m) from ``n_in`` cell centres to ``n_out`` cell centres spanning
    the same ``extent`` (m), scaled so that a uniform input far from the edges is kept (zero outside the pad)."""
    x_in = ((np.arange(n_in) + 0.5) / n_in - 0.5) * extent
    x_out = ((np.arange(n_out) + 0.5) / n_out - 0.5) * extent
    pitch = extent / n_in
    s = max(sigma, 0.6 * pitch)
    w = np.exp(-0.5 * ((x_out[:, None] - x_in[None, :]) / s) ** 2)
    return w * pitch / (np.sqrt(2 * np.pi) * s)


class MagneticRenderer:
    """Renders fields of one (rows, cols) taxel grid of a given pitch (m) into 15 magnetometer values (uT).

    ``render(field, rng=None)`` accepts fields with any leading batch dimensions and returns
    ``(..., 15)``: the change of each chip's (bx, by, bz) against the undeformed skin, with white noise when an
    ``rng`` is given. No drift and no baseline: see :class:`MagneticSkinSensor`.
    """

    def __init__(self, profile: MagneticProfile, grid: tuple[int, int], pitch: tuple[float, float]):
        self.profile = p = profile
        self.grid = rows, cols = tuple(grid)
        self.pitch = tuple(pitch)
        height, width = rows * pitch[0], cols * pitch[1]  # skin extent along v and u (m)
        s = p.chip_spacing_mm / 1000
        if s >= min(width, height) / 2:
            raise ValueError(
                f"chip_spacing_mm {p.chip_spacing_mm} puts the outer chips outside the "
                f"{width * 1e3:.1f} x {height * 1e3:.1f} mm skin; allowed: < {min(width, height) / 2 * 1e3:.1f}"
            )
        nu, nv, nl = p.dipoles
        sigma = p.spread_mm / 1000
        self._au = _smoothing(nu, cols, width, sigma)  # (nu, C)
        self._av = _smoothing(nv, rows, height, sigma)  # (nv, R), both top row first
        t, gap = p.thickness_mm / 1000, p.gap_mm / 1000
        u = ((np.arange(nu) + 0.5) / nu - 0.5) * width
        v = (0.5 - (np.arange(nv) + 0.5) / nv) * height  # row 0 on top
        self._s = (np.arange(nl) + 0.5) / nl  # height fraction of each layer through the skin
        w = gap + t * self._s
        rest = np.empty((nl, nv, nu, 3))
        rest[..., 0] = u[None, None, :]
        rest[..., 1] = v[None, :, None]
        rest[..., 2] = w[:, None, None]
        self._rest = rest
        moment = p.remanence_mT * 1e-3 / (4e-7 * np.pi) * (width * height * t) / (nu * nv * nl)  # A m^2
        self._k = _MU0_4PI * moment * 1e6  # uT m^3
        self._chips = np.c_[_CHIP_UV * s, np.zeros(5)]  # (5, 3)
        ang = np.radians(np.asarray(p.chip_angles_deg))
        c, sn = np.cos(ang), np.sin(ang)
        # rows: chip x and y axes in the skin frame; the chip reads (B . x_k, B . y_k, B . w)
        self._rot = np.zeros((5, 3, 3))
        self._rot[:, 0, 0], self._rot[:, 0, 1] = c, sn
        self._rot[:, 1, 0], self._rot[:, 1, 1] = -sn, c
        self._rot[:, 2, 2] = 1.0
        self._b0 = self._field_at_chips(*(rest[..., i].reshape(-1) for i in range(3)))

    def _field_at_chips(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
        """Summed dipole field (..., 5, 3) in the skin frame (uT) of dipoles at (px, py, pz), each (..., N)."""
        c = self._chips
        dx = c[:, 0, None] - px[..., None, :]  # (..., 5, N)
        dy = c[:, 1, None] - py[..., None, :]
        dz = c[:, 2, None] - pz[..., None, :]
        inv = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz)
        inv3 = inv * inv * inv
        t = 3.0 * dz * inv3 * inv * inv
        out = np.empty((*dx.shape[:-1], 3))
        out[..., 0] = (dx * t).sum(-1)
        out[..., 1] = (dy * t).sum(-1)
        out[..., 2] = (dz * t - inv3).sum(-1)
        out *= self._k
        return out

    def displaced(self, field: TactileField) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dipole coordinates (u, v, w), each (..., N), in the skin frame (m) under the field."""
        if tuple(field.grid) != self.grid:
            raise ValueError(f"field grid {tuple(field.grid)} does not match the renderer's grid {self.grid}")
        au, av, s = self._au, self._av, self._s[:, None, None]
        su = (av @ field.shear[..., 0] @ au.T)[..., None, :, :]  # (..., 1, nv, nu)
        sv = (av @ field.shear[..., 1] @ au.T)[..., None, :, :]  # down the rows
        d = (av @ field.depth @ au.T)[..., None, :, :]
        lead = field.depth.shape[:-2]
        u = (self._rest[..., 0] + s * su).reshape(*lead, -1)
        v = (self._rest[..., 1] - s * sv).reshape(*lead, -1)
        w = (self._rest[..., 2] - s * d).reshape(*lead, -1)  # the indentation moves the dipoles to the board
        return u, v, w

    def render(self, field: TactileField, rng: np.random.Generator | None = None) -> np.ndarray:
        b = self._field_at_chips(*self.displaced(field)) - self._b0  # (..., 5, 3), skin frame
        out = np.einsum("kij,...kj->...ki", self._rot, b).reshape(*b.shape[:-2], 15)
        if rng is not None and self.profile.noise_uT > 0:
            out = out + rng.normal(0.0, self.profile.noise_uT, out.shape)
        return out

    def to_skin_frame(self, reading: np.ndarray) -> np.ndarray:
        """Readings (..., 15) in the chips' frames -> (..., 5, 3) in the skin frame (Bu, Bv, Bw) per chip."""
        r = np.asarray(reading, float)
        if r.shape[-1] != 15:
            raise ValueError(f"a magnetic skin reading has 15 values, got shape {r.shape}")
        return np.einsum("kji,...kj->...ki", self._rot, r.reshape(*r.shape[:-1], 5, 3))


class MagneticSkinSensor:
    """A magnetic skin as the robot reads it: noise, slow drift, and a baseline taken at reset.

    ``reset(field, rng)`` takes ``baseline_readings`` readings of the current field and keeps their median;
    ``read(field, rng, dt)`` advances the drift by ``dt`` seconds and returns the reading minus the baseline,
    (..., 15) uT, for fields with any leading dimensions (e.g. one per pad).
    """

    def __init__(self, renderer: MagneticRenderer):
        self.renderer = renderer
        self._baseline: np.ndarray | None = None
        self._drift: np.ndarray | None = None

    def _raw(self, field: TactileField, rng: np.random.Generator) -> np.ndarray:
        return self.renderer.render(field, rng) + self._drift

    def reset(self, field: TactileField, rng: np.random.Generator) -> None:
        self._drift = np.zeros((*field.shape[:-2], 15))
        n = self.renderer.profile.baseline_readings
        clean = self.renderer.render(field)
        noise = self.renderer.profile.noise_uT
        samples = clean + self._drift + rng.normal(0.0, noise, (n, *clean.shape)) if noise > 0 else clean[None]
        self._baseline = np.median(samples, axis=0)

    def read(self, field: TactileField, rng: np.random.Generator, dt: float) -> np.ndarray:
        if self._baseline is None:
            raise RuntimeError("call reset() before read()")
        rate = self.renderer.profile.drift_uT_per_sqrt_s
        if rate > 0 and dt > 0:
            self._drift = self._drift + rng.normal(0.0, rate * np.sqrt(dt), self._drift.shape)
        return self._raw(field, rng) - self._baseline
