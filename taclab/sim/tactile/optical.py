"""Optical tactile images (GelStereo / GelSight style) rendered from a :class:`TactileField`.

Rendering model: the taxel depth grid is upsampled bilinearly to the image and blurred with a Gaussian that
stands for the elastomer's smoothing, both folded into one separable linear operator per image axis, so the gel
surface is ``h = -A_h @ depth @ A_w.T``. Its slopes (in mm per mm, scaled by ``depth_gain``) give a surface
normal that is shaded by a few coloured directional lights with a Lambertian law, relative to the flat gel:
every channel of the reference (background) image is multiplied by the ratio of the irradiance it gets to the
irradiance of the flat surface, so an untouched gel renders exactly as the background. Markers are soft dark
dots on a regular lattice, mirror-symmetric about the image centre, that move with the smoothed shear field:
each pixel looks the dot pattern up at its own position minus the local displacement (a backward warp of an
analytic periodic pattern). Gaussian sensor noise is added last.

All work is vectorised over any leading batch dimensions; everything that depends only on the profile and the
taxel grid is precomputed by :class:`OpticalRenderer`.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taclab.sim.tactile.field import TactileField

ASSETS = Path(__file__).resolve().parent / "assets"
BACKGROUNDS = ("default", "flat")
FLAT_BACKGROUND_RGB = (176, 172, 168)  # the uniform reference colour of background "flat"


class Light(BaseModel):
    """A directional light shining on the gel, seen from the camera.

    Azimuth is measured in the image plane from the +column (right) direction towards the top of the image;
    elevation is the angle above the gel plane.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    azimuth_deg: float = Field(description="direction the light comes from, in the image plane (deg)")
    elevation_deg: float = Field(30.0, gt=0, le=90, description="angle of the light above the gel plane (deg)")
    color: tuple[float, float, float] = Field(description="RGB intensity of the light (0..1 per channel)")

    @field_validator("color")
    @classmethod
    def _color(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(v) < 0:
            raise ValueError(f"light colour must be non-negative, got {v}")
        return v

    def direction(self) -> np.ndarray:
        """Unit vector towards the light in (x right, y down, z towards the camera) coordinates.

        Components are rounded to 1e-9 so that mirror-image lights (azimuths a and 180 - a) get exactly opposite
        x components.
        """
        az, el = math.radians(self.azimuth_deg), math.radians(self.elevation_deg)
        v = np.array([math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), math.sin(el)])
        return np.round(v, 9)


_RGB_LIGHTS = (
    Light(azimuth_deg=90.0, elevation_deg=30.0, color=(1.0, 0.12, 0.08)),
    Light(azimuth_deg=210.0, elevation_deg=30.0, color=(0.1, 1.0, 0.15)),
    Light(azimuth_deg=330.0, elevation_deg=30.0, color=(0.08, 0.15, 1.0)),
)


class OpticalProfile(BaseModel):
    """Every parameter of an optical tactile sensor model. Lengths on the gel are in mm, pixel values in 0..255."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("gelstereo", description="profile name")
    image_size: tuple[int, int] = Field((64, 64), description="rendered image size (H, W) in pixels")
    smoothing_mm: float = Field(0.4, ge=0, le=5.0, description="elastomer smoothing: Gaussian sigma on the gel (mm)")
    depth_gain: float = Field(
        2.0, ge=0, description="multiplies the surface slopes before shading: how strongly an imprint shows"
    )
    lights: tuple[Light, ...] = Field(_RGB_LIGHTS, description="coloured directional lights (1 to 6)")
    ambient: float = Field(0.35, ge=0, description="light that does not depend on the surface normal")
    markers: bool = Field(True, description="draw the marker lattice")
    marker_pitch_mm: float = Field(1.6, gt=0.1, description="spacing of the marker lattice (mm)")
    marker_radius_mm: float = Field(0.3, gt=0, description="marker dot radius (mm)")
    marker_darkness: float = Field(0.8, ge=0, le=1, description="fraction of light a marker blocks at its centre")
    marker_gain: float = Field(1.0, ge=0, description="multiplies the shear displacement that moves the markers")
    noise_std: float = Field(2.0, ge=0, description="std of the additive Gaussian pixel noise (0..255 units)")
    background: str = Field("default", description=f"reference image of the untouched gel, one of {BACKGROUNDS}")

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (8 <= v[0] <= 2048 and 8 <= v[1] <= 2048):
            raise ValueError(f"image_size must be between 8 and 2048 pixels per side, got {v}")
        return v

    @field_validator("lights")
    @classmethod
    def _lights(cls, v: tuple[Light, ...]) -> tuple[Light, ...]:
        if not 1 <= len(v) <= 6:
            raise ValueError(f"need 1 to 6 lights, got {len(v)}")
        return v

    @field_validator("background")
    @classmethod
    def _background(cls, v: str) -> str:
        if v not in BACKGROUNDS:
            raise ValueError(f"unknown background {v!r}; allowed: {', '.join(BACKGROUNDS)}")
        return v

    @model_validator(mode="after")
    def _marker_radius(self) -> OpticalProfile:
        if self.marker_radius_mm >= self.marker_pitch_mm / 2:
            raise ValueError(
                f"marker_radius_mm ({self.marker_radius_mm}) must be below half the marker pitch "
                f"({self.marker_pitch_mm / 2})"
            )
        return self


PROFILES: dict[str, OpticalProfile] = {
    "gelstereo": OpticalProfile(),
    "gelsight": OpticalProfile(
        name="gelsight",
        smoothing_mm=0.5,
        depth_gain=3.0,
        lights=(
            Light(azimuth_deg=60.0, elevation_deg=35.0, color=(1.0, 0.55, 0.2)),
            Light(azimuth_deg=180.0, elevation_deg=35.0, color=(0.1, 0.85, 0.7)),
            Light(azimuth_deg=300.0, elevation_deg=35.0, color=(0.55, 0.25, 1.0)),
        ),
        ambient=0.25,
        markers=False,
        noise_std=1.5,
    ),
    # DIGIT-like: a small, stiffer gel seen at lower resolution, three LEDs on one side (light from the bottom and
    # the two lower corners), a warm uneven background, no markers, more sensor noise.
    "digit": OpticalProfile(
        name="digit",
        image_size=(40, 32),
        smoothing_mm=0.7,
        depth_gain=5.0,
        lights=(
            Light(azimuth_deg=250.0, elevation_deg=25.0, color=(1.0, 0.2, 0.1)),
            Light(azimuth_deg=270.0, elevation_deg=25.0, color=(0.15, 0.9, 0.2)),
            Light(azimuth_deg=290.0, elevation_deg=25.0, color=(0.1, 0.2, 1.0)),
        ),
        ambient=0.45,
        markers=False,
        noise_std=3.0,
    ),
    # GelSight-Mini-like: a soft gel with a dense marker grid, white-balanced lights from four sides at a low
    # angle, a flat grey background, fine resolution and little noise.
    "gelsight_mini": OpticalProfile(
        name="gelsight_mini",
        image_size=(72, 72),
        smoothing_mm=0.3,
        depth_gain=5.0,
        lights=(
            Light(azimuth_deg=0.0, elevation_deg=20.0, color=(0.9, 0.5, 0.5)),
            Light(azimuth_deg=90.0, elevation_deg=20.0, color=(0.5, 0.9, 0.5)),
            Light(azimuth_deg=180.0, elevation_deg=20.0, color=(0.5, 0.5, 0.9)),
            Light(azimuth_deg=270.0, elevation_deg=20.0, color=(0.7, 0.7, 0.7)),
        ),
        ambient=0.3,
        markers=True,
        marker_pitch_mm=1.2,
        marker_radius_mm=0.25,
        marker_darkness=0.85,
        noise_std=1.0,
        background="flat",
    ),
}


def get_profile(name: str) -> OpticalProfile:
    """The named sensor profile (see :data:`PROFILES`)."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optical profile {name!r}; allowed: {', '.join(sorted(PROFILES))}") from None


# ---------------------------------------------------------------------------------------------------------------
# background


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-std smooth random field: a cells x cells random grid blurred and upsampled."""
    coarse = rng.standard_normal((cells, cells))
    up = _gauss_matrix(size, size / cells * 0.6) @ _interp_matrix(size, cells)
    out = up @ coarse @ up.T
    return (out - out.mean()) / out.std()


def make_background(size: int = 256, seed: int = 0) -> np.ndarray:
    """A procedural reference image of an untouched gel: (size, size, 3) uint8, deterministic for a seed.

    Three coloured lights (those of the default profile) shine in from the edges, so each colour is brighter on
    its own side; on top come vignetting, faint low-frequency blotches of the coating and fine grain.
    """
    rng = np.random.default_rng(seed)
    c = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = c[None, :], c[:, None]  # x right, y down, both in [-1, 1]
    albedo = np.array([0.62, 0.60, 0.58])
    img = np.full((size, size, 3), 0.38)
    for light in _RGB_LIGHTS:
        d = light.direction()
        lx, ly = d[0] / math.hypot(d[0], d[1]), d[1] / math.hypot(d[0], d[1])
        dist2 = (x - 1.25 * lx) ** 2 + (y - 1.25 * ly) ** 2  # distance to an LED just outside the pad edge
        fall = 1.0 / (1.0 + dist2 / 1.6)
        img += 0.55 * fall[..., None] * np.asarray(light.color)
    img *= albedo
    img *= (1 - 0.22 * (x**2 + y**2))[..., None]  # vignetting
    img *= (1 + 0.035 * _smooth_noise(rng, size, 6))[..., None]  # coating blotches
    img *= 1 + 0.015 * _smooth_noise(rng, size, 24)[..., None] * rng.uniform(0.5, 1.0, 3)  # tinted mottling
    img = img * 255 + 1.2 * rng.standard_normal((size, size, 1))  # grain
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_background(path: str | Path | None = None, size: int = 256, seed: int = 0) -> Path:
    """Write :func:`make_background` to the shipped asset (or ``path``); returns the path written."""
    path = Path(path) if path is not None else ASSETS / "background.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_background(size, seed), mode="RGB").save(path, optimize=True)
    return path


@functools.lru_cache(maxsize=8)
def _load_background(name: str) -> np.ndarray:
    if name == "default":
        with Image.open(ASSETS / "background.png") as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    elif name == "flat":
        arr = np.empty((256, 256, 3), np.uint8)
        arr[...] = FLAT_BACKGROUND_RGB
    else:
        raise ValueError(f"unknown background {name!r}; allowed: {', '.join(BACKGROUNDS)}")
    arr.setflags(write=False)
    return arr


def load_background(name: str = "default") -> np.ndarray:
    """The named reference image, (256, 256, 3) uint8: ``"default"`` (the shipped PNG) or ``"flat"``."""
    return _load_background(name).copy()


@functools.lru_cache(maxsize=4)
def _noise_bank(std: float) -> np.ndarray:
    """2**21 fixed samples of N(0, std**2), float32, read-only."""
    bank = np.random.default_rng(20261121).standard_normal(1 << 21, dtype=np.float32)
    bank *= np.float32(std)
    bank.setflags(write=False)
    return bank


# ---------------------------------------------------------------------------------------------------------------
# linear operators


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation between cell centres, both grids spanning the same extent."""
    m = np.zeros((n_out, n_in))
    if n_in == 1:
        m[:] = 1.0
        return m
    t = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.minimum(np.floor(t).astype(int), n_in - 2)
    f = t - i0
    rows = np.arange(n_out)
    m[rows, i0] += 1 - f
    m[rows, i0 + 1] += f
    return m


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) Gaussian blur with sigma in samples; rows renormalised at the borders so constants are kept."""
    if sigma < 1e-3:
        return np.eye(n)
    x = np.arange(n, dtype=float)
    k = np.exp(-0.5 * ((x[:, None] - x[None, :]) / sigma) ** 2)
    k[k < 1e-7] = 0.0
    return k / k.sum(axis=1, keepdims=True)


def _diff_matrix(n: int, step: float) -> np.ndarray:
    """(n, n) derivative: central differences inside, one-sided at both ends."""
    d = np.zeros((n, n))
    i = np.arange(1, n - 1)
    d[i, i + 1], d[i, i - 1] = 0.5 / step, -0.5 / step
    d[0, 0], d[0, 1] = -1 / step, 1 / step
    d[-1, -2], d[-1, -1] = -1 / step, 1 / step
    return d


def _mirror_sym(m: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """Make an operator exactly (anti)symmetric under reversing both its axes."""
    return 0.5 * (m + sign * m[::-1, ::-1])


class OpticalRenderer:
    """Renders :class:`TactileField` batches to optical tactile images for one profile and taxel grid.

    Args:
        profile: an :class:`OpticalProfile` or the name of one in :data:`PROFILES`.
        grid: taxel grid (rows, columns) of the fields to render.
        pitch: taxel spacing (m), (between rows, between columns); the image covers ``grid * pitch``.
    """

    def __init__(
        self,
        profile: OpticalProfile | str = "gelstereo",
        grid: tuple[int, int] = (32, 32),
        pitch: tuple[float, float] = (0.0005, 0.0005),
    ):
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self._work_cache: dict[int, dict[str, np.ndarray]] = {}
        p = self.profile
        self.grid = (int(grid[0]), int(grid[1]))
        self.pitch = (float(pitch[0]), float(pitch[1]))
        if min(self.grid) < 2:
            raise ValueError(f"grid needs at least 2 taxels per side, got {self.grid}")
        if min(self.pitch) <= 0:
            raise ValueError(f"pitch must be positive, got {self.pitch}")
        r, c = self.grid
        h, w = self.image_size = (int(p.image_size[0]), int(p.image_size[1]))
        # pixel size on the gel (mm)
        self.pixel_mm = (r * self.pitch[0] * 1e3 / h, c * self.pitch[1] * 1e3 / w)
        dy, dx = self.pixel_mm

        # upsample + smooth (float64 while building, exact mirror symmetry, then float32)
        a_h = _mirror_sym(_gauss_matrix(h, p.smoothing_mm / dy) @ _interp_matrix(h, r))
        a_w = _mirror_sym(_gauss_matrix(w, p.smoothing_mm / dx) @ _interp_matrix(w, c))
        # slopes of the height map h = -depth (mm per mm) times depth_gain: fold the sign, m -> mm and gain in
        slope = -1e3 * p.depth_gain
        a_hd = _mirror_sym(_diff_matrix(h, dy) @ a_h, -1.0) * slope
        a_wd = _mirror_sym(_diff_matrix(w, dx) @ a_w, -1.0) * slope
        self.A_h, self.A_w = a_h.astype(np.float32), a_w.astype(np.float32)
        self._awT = np.ascontiguousarray(a_w.T, dtype=np.float32)
        self._right = np.ascontiguousarray(np.concatenate([a_w.T, a_wd.T], axis=1), dtype=np.float32)
        # left operators per plane: gx (uses a_wd on the right), gy, shear x, shear y (shear in lattice units)
        shear_scale = 1e3 * p.marker_gain / p.marker_pitch_mm
        self._left = np.stack([a_h, a_hd, a_h * shear_scale, a_h * shear_scale]).astype(np.float32)

        # lights: unit directions and the per-channel weights of the change in irradiance
        dirs = np.stack([lt.direction() for lt in p.lights])  # (K, 3)
        colors = np.array([lt.color for lt in p.lights], dtype=float)  # (K, 3 channels)
        flat = p.ambient + colors.T @ dirs[:, 2]  # (3,) irradiance of the flat gel per channel
        weights = np.where(flat[:, None] > 0, colors.T / np.where(flat > 0, flat, 1.0)[:, None], 0.0)  # (3, K)
        self._light_xy = np.ascontiguousarray(-dirs[:, :2], dtype=np.float32)  # (K, 2)
        self._light_z = np.ascontiguousarray(dirs[:, 2:3], dtype=np.float32)  # (K, 1)
        self._channel_w = np.ascontiguousarray(weights, dtype=np.float32)  # (3, K)

        # background, resized to the image, planar (3, H, W) float32
        bg = Image.fromarray(_load_background(p.background)).resize((w, h), Image.Resampling.BILINEAR)
        self.background = np.asarray(bg, dtype=np.uint8).copy()
        self.background.setflags(write=False)
        self._bg = np.ascontiguousarray(self.background.transpose(2, 0, 1), dtype=np.float32)
        self._bg_planes = self._bg.reshape(3, h * w)
        self._bg_half = self._bg_planes + np.float32(0.5)

        # markers: pixel centres in lattice units, measured from the image centre (exactly antisymmetric)
        self._mx = ((np.arange(w) + 0.5 - w / 2) * (dx / p.marker_pitch_mm)).astype(np.float32)
        self._my = ((np.arange(h) + 0.5 - h / 2) * (dy / p.marker_pitch_mm)).astype(np.float32)
        # soft dot: coverage a = clip((R^2 - r^2) / (2 R e) + 1/2, 0, 1) with edge width e of one pixel,
        # folded into the transmitted fraction 1 - darkness * a = clip(m0 + m1 r^2, 1 - darkness, 1)
        rad = p.marker_radius_mm / p.marker_pitch_mm
        edge = max(dx, dy) / p.marker_pitch_mm
        self._m1 = np.float32(p.marker_darkness / (2 * rad * edge))
        self._m0 = np.float32(1 - p.marker_darkness * (rad**2 / (2 * rad * edge) + 0.5))
        self._mmin = np.float32(1 - p.marker_darkness)
        # rest positions of the marker centres (row, col) in pixels: half-integer lattice points in the image
        pitch_px = (p.marker_pitch_mm / dy, p.marker_pitch_mm / dx)
        axes = []
        for n, pp in zip((h, w), pitch_px, strict=True):
            k = np.arange(int(n / 2 / pp + 0.5) + 1)
            off = (k + 0.5) * pp
            off = off[off <= n / 2]
            axes.append(np.sort(np.concatenate([n / 2 - off, n / 2 + off])) - 0.5)
        rr, cc = np.meshgrid(*axes, indexing="ij")
        self.marker_centers = np.stack([rr.ravel(), cc.ravel()], axis=-1)  # (M, 2) rest positions (row, col)

    # -----------------------------------------------------------------------------------------------------------

    def _inputs(self, field: TactileField) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        depth = np.asarray(field.depth)
        if depth.ndim < 2 or tuple(depth.shape[-2:]) != self.grid:
            raise ValueError(f"field grid {tuple(depth.shape[-2:])} does not match the renderer's grid {self.grid}")
        if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(field.pitch, self.pitch, strict=True)):
            raise ValueError(f"field pitch {tuple(field.pitch)} does not match the renderer's pitch {self.pitch}")
        batch = depth.shape[:-2]
        shear = np.asarray(field.shear)
        if shear.shape != (*depth.shape, 2):
            raise ValueError(f"field shear has shape {shear.shape}, expected {(*depth.shape, 2)}")
        return depth, shear, batch

    def render_depth_image(self, field: TactileField) -> np.ndarray:
        """The upsampled, smoothed indentation depth (m): float32 (*batch, H, W)."""
        depth, _, batch = self._inputs(field)
        d = np.ascontiguousarray(depth.reshape(-1, *self.grid), dtype=np.float32)
        out = self.A_h @ (d @ self._awT)
        return out.reshape(*batch, *self.image_size)

    def _work(self, n: int) -> dict[str, np.ndarray]:
        """Work arrays for a batch of ``n`` images, kept between calls.

        Fresh arrays of this size are mapped from the OS on every call and page-faulted on first touch, which
        costs more than the arithmetic; reusing them makes rendering several times faster.
        """
        work = self._work_cache.get(n)
        if work is None:
            r, c = self.grid
            h, w = self.image_size
            k = len(self.profile.lights)
            work = {
                "x": np.empty((n, 3, r, c), np.float32),
                "t": np.empty((n, 3, r, 2 * w), np.float32),
                "planes": np.empty((n, 4, h, w), np.float32),
                "inv": np.empty((n, h * w), np.float32),
                "delta": np.empty((n, k, h * w), np.float32),
                "marks": np.empty((n, h, w), np.float32),
                "img": np.empty((n, 3, h * w), np.float32),
                "tmp": np.empty((n, h * w), np.float32),
            }
            if len(self._work_cache) > 4:
                self._work_cache.clear()
            self._work_cache[n] = work
        return work

    def _planes(self, depth: np.ndarray, shear: np.ndarray | None, work: dict | None = None) -> np.ndarray:
        """(N, P, H, W) float32 planes: slopes gx, gy, then (when shear is given) marker displacement ux, uy."""
        r, c = self.grid
        w = self.image_size[1]
        n = math.prod(depth.shape[:-2])
        work = work or self._work(n)
        k = 1 if shear is None else 3
        x = work["x"][:, :k]
        x[:, 0] = depth.reshape(n, r, c)
        if shear is not None:
            s = shear.reshape(n, r, c, 2)
            x[:, 1] = s[..., 0]
            x[:, 2] = s[..., 1]
        # depth: right-multiply by [A_w^T | dA_w^T] at once; shear: by A_w^T; then the left operators
        t = work["t"]
        np.matmul(x[:, 0], self._right, out=t[:, 0])  # (n, r, 2w)
        out = work["planes"][:, : (2 if shear is None else 4)]
        np.matmul(self._left[0], t[:, 0, :, w:], out=out[:, 0])  # gx: smooth rows, differentiate columns
        np.matmul(self._left[1], t[:, 0, :, :w], out=out[:, 1])  # gy: differentiate rows, smooth columns
        if shear is not None:
            ts = t[:, 1:, :, :w]
            np.matmul(x[:, 1:], self._awT, out=ts)
            np.matmul(self._left[2], ts, out=out[:, 2:])
        return out

    def render(self, field: TactileField, rng: np.random.Generator | None = None) -> np.ndarray:
        """Render uint8 images (*batch, H, W, 3); adds the profile's pixel noise only when ``rng`` is given."""
        p = self.profile
        h, w = self.image_size
        depth, shear, batch = self._inputs(field)
        n = math.prod(batch)
        if n == 0:
            return np.zeros((*batch, h, w, 3), np.uint8)
        work = self._work(n)
        planes = self._planes(depth, shear if p.markers else None, work)

        # Lambertian shading relative to the flat gel: for light k, delta_k = max(n . l_k, 0) - l_kz with the
        # normal n = (-gx, -gy, 1) / |(-gx, -gy, 1)|; each channel is the background times 1 + sum_k w_ck delta_k.
        # Everything works on contiguous (n, H*W) planes (numpy broadcasts over a middle axis slowly).
        hw = h * w
        g = planes[:, :2].reshape(n, 2, hw)
        inv, delta, tmp = work["inv"], work["delta"], work["tmp"]
        np.multiply(g[:, 0], g[:, 0], out=inv)
        np.multiply(g[:, 1], g[:, 1], out=tmp)
        inv += tmp
        inv += np.float32(1.0)
        np.sqrt(inv, out=inv)
        np.reciprocal(inv, out=inv)
        np.matmul(self._light_xy, g, out=delta)  # (n, K, hw): -l_x gx - l_y gy
        for k in range(delta.shape[1]):
            dk = delta[:, k]
            dk += self._light_z[k, 0]
            np.maximum(dk, np.float32(0.0), out=dk)
            dk *= inv
            dk -= self._light_z[k, 0]

        marks = None
        if p.markers:
            # backward warp of the periodic dot lattice: evaluate it at (pixel - displacement)
            marks = work["marks"]
            self._lattice_offset2(self._mx[None, None, :], planes[:, 2], out=marks)
            r2 = tmp.reshape(n, h, w)
            self._lattice_offset2(self._my[None, :, None], planes[:, 3], out=r2)
            marks += r2
            marks *= self._m1
            marks += self._m0
            np.clip(marks, self._mmin, np.float32(1.0), out=marks)
            marks = marks.reshape(n, hw)
        noise_at = None
        if rng is not None and p.noise_std > 0:
            bank = _noise_bank(float(p.noise_std))
            noise_at = int(rng.integers(0, len(bank) - 3 * n * hw))

        img = work["img"]
        np.matmul(self._channel_w, delta, out=img)  # (n, 3, hw): sum_k w_ck delta_k
        out = np.empty((n, hw, 3), np.uint8)
        for c in range(3):
            ch = img[:, c]
            # background * (1 + shading), and 0.5 so that the truncating cast rounds to nearest
            ch *= self._bg_planes[c]
            ch += self._bg_half[c]
            if marks is not None:
                ch *= marks
            if noise_at is not None:
                # a window of a fixed bank of Gaussian samples at an offset drawn from rng: deterministic for a
                # seed and independent of the image, at a fraction of the cost of drawing fresh normals
                a = noise_at + c * n * hw
                ch += bank[a : a + n * hw].reshape(n, hw)
            np.clip(ch, np.float32(0.0), np.float32(255.0), out=ch)
            out[..., c] = ch
        return out.reshape(*batch, h, w, 3)

    @staticmethod
    def _lattice_offset2(pos: np.ndarray, disp: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Squared offset (lattice units) from the nearest marker column/row; markers sit at +-(k + 1/2)."""
        v = np.subtract(pos, disp, out=out)
        np.abs(v, out=v)  # keeps the pattern exactly mirror-symmetric
        v -= np.floor(v)
        v -= np.float32(0.5)
        v *= v
        return v

    def reference_image(self) -> np.ndarray:
        """The noiseless image of the untouched gel (background with the markers at rest): (H, W, 3) uint8."""
        return self.render(TactileField.zeros((), self.grid, self.pitch))


if __name__ == "__main__":
    print(f"wrote {write_background()}")
