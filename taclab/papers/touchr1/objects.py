"""Objects of the Touch-R1 data: four ordinal physical properties on a 5-level scale, and the surface they carry.

Every object has a level 1..5 for each property of :data:`PROPERTIES`, drawn independently and uniformly. A level
stands for a physical value (:data:`SCALES`), and the physics uses that value:

=============  ====================================================  ==============================================
property       physical value per level 1 .. 5                       acts through
=============  ====================================================  ==============================================
``hardness``   foundation stiffness of the object's surface layer,   the contact stiffness of the object's surface
               3e7, 8e7, 2e8, 6e8, 5e9 Pa/m (1 = softest)             elements in MuJoCo (series with the gel)
``roughness``  RMS height of a fine random relief (correlation        the heights of the surface elements and the
               length 0.4 mm): 0, 6, 12, 20, 30 um (1 = smoothest)    imprint pressed into the gel
``bumpiness``  height and spacing of a raised-cosine bump lattice:    same
               none; 40 um / 1.4 mm; 70 / 1.8; 100 / 2.2; 140 / 2.6
``friction``   Coulomb friction coefficient of the surface:           MuJoCo's friction of the surface elements:
               0.15, 0.3, 0.5, 0.75, 1.05 (1 = most slippery)         when the gel skin slips under shear
=============  ====================================================  ==============================================

Objects come in **groups**: the objects of one group share a base shape (the dome radius) and a relief pattern
seed, the way several trials on one physical sample share its contact region. A split is made of whole groups
named after the split (``<split>-g<k>``), so a test split shares no object, group or relief pattern with training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

PROPERTIES = ("hardness", "roughness", "bumpiness", "friction")
LEVELS = 5
WORDS = {
    "hardness": ("very soft", "soft", "medium", "hard", "very hard"),
    "roughness": ("very smooth", "smooth", "medium", "rough", "very rough"),
    "bumpiness": ("flat", "fine bumps", "medium bumps", "coarse bumps", "very coarse bumps"),
    "friction": ("very slippery", "slippery", "medium", "grippy", "very grippy"),
}
"""A word for each level (index level - 1), used in questions and traces."""

SCALES = {
    "hardness": (3e7, 8e7, 2e8, 6e8, 5e9),  # Pa/m, foundation stiffness of the object's surface layer
    "roughness": (0.0, 6e-6, 12e-6, 20e-6, 30e-6),  # m, RMS of the fine relief
    "bumpiness": (0.0, 40e-6, 70e-6, 100e-6, 140e-6),  # m, bump height
    "friction": (0.15, 0.3, 0.5, 0.75, 1.05),  # Coulomb coefficient
}
BUMP_SPACING = (0.0, 1.4e-3, 1.8e-3, 2.2e-3, 2.6e-3)
"""Spacing (m) of the bump lattice per bumpiness level (level 1 has no bumps)."""
ROUGH_CORRELATION = 0.4e-3
"""Correlation length (m) of the fine random relief."""
DOME_RADII = (0.012, 0.015, 0.018)
"""Radius (m) of the object's domed top, one per group (drawn)."""
SURFACE_EXTENT = 0.012
"""Half size (m) of the square on which an object's relief is tabulated (centred on the dome's apex)."""
_RELIEF_STEP = 0.2e-3


def level_name(prop: str, level: int) -> str:
    """The word of a level, e.g. ``level_name("hardness", 1) == "very soft"``."""
    if prop not in WORDS:
        raise ValueError(f"unknown property {prop!r}; allowed: {', '.join(PROPERTIES)}")
    if not 1 <= int(level) <= LEVELS:
        raise ValueError(f"level must be 1..{LEVELS}, got {level!r}")
    return WORDS[prop][int(level) - 1]


def stable_seed(*parts) -> int:
    """A 63-bit seed from any printable parts (the same on every machine and Python)."""
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


@dataclass(frozen=True)
class TouchObject:
    """One object: its id, group, property levels (1..5), dome radius and relief seed."""

    object_id: str
    group: str
    levels: tuple[int, int, int, int]  # in the order of PROPERTIES
    dome_radius: float
    relief_seed: int
    bump_phase: tuple[float, float]  # offset of the bump lattice (fraction of a spacing)

    def level(self, prop: str) -> int:
        return self.levels[PROPERTIES.index(prop)]

    def value(self, prop: str) -> float:
        return SCALES[prop][self.level(prop) - 1]

    def relief(self) -> Relief:
        return Relief(self)


def draw_group(split: str, group: int, size: int, rng: np.random.Generator) -> list[TouchObject]:
    """The ``size`` objects of group ``group`` of a split: shared dome radius and relief seed, levels drawn
    independently and uniformly."""
    gname = f"{split}-g{group:04d}"
    radius = float(DOME_RADII[int(rng.integers(len(DOME_RADII)))])
    relief_seed = stable_seed("relief", gname, int(rng.integers(2**31)))
    out = []
    for k in range(size):
        levels = tuple(int(v) for v in rng.integers(1, LEVELS + 1, size=len(PROPERTIES)))
        phase = (float(rng.uniform()), float(rng.uniform()))
        out.append(TouchObject(f"{gname}-o{k}", gname, levels, radius, relief_seed, phase))  # type: ignore[arg-type]
    return out


class Relief:
    """The height (m) of an object's surface above its dome's apex plane, ``s(x, y)``: the dome, the bump
    lattice and the fine random relief. Vectorised over arrays of x and y (m, centred on the apex)."""

    def __init__(self, obj: TouchObject):
        self.obj = obj
        self.radius = obj.dome_radius
        b = obj.level("bumpiness") - 1
        self.bump_h, self.bump_s = SCALES["bumpiness"][b], BUMP_SPACING[b]
        rms = obj.value("roughness")
        n = int(round(2 * SURFACE_EXTENT / _RELIEF_STEP)) + 1
        self._n = n
        if rms > 0:
            rng = np.random.default_rng(obj.relief_seed)
            white = rng.standard_normal((n, n))
            sigma = ROUGH_CORRELATION / _RELIEF_STEP / 2
            k = np.arange(-int(3 * sigma) - 1, int(3 * sigma) + 2)
            g = np.exp(-0.5 * (k / sigma) ** 2)
            g /= g.sum()
            sm = np.apply_along_axis(lambda r: np.convolve(r, g, mode="same"), 0, white)
            sm = np.apply_along_axis(lambda r: np.convolve(r, g, mode="same"), 1, sm)
            self._rough = sm / sm.std() * rms
        else:
            self._rough = None

    def _rough_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self._rough is None:
            return np.zeros(np.broadcast(x, y).shape)
        n = self._n
        u = np.clip((np.asarray(x) + SURFACE_EXTENT) / _RELIEF_STEP, 0, n - 1.001)
        v = np.clip((np.asarray(y) + SURFACE_EXTENT) / _RELIEF_STEP, 0, n - 1.001)
        i0, j0 = np.floor(v).astype(int), np.floor(u).astype(int)
        fv, fu = v - i0, u - j0
        r = self._rough
        return (
            r[i0, j0] * (1 - fv) * (1 - fu)
            + r[i0, j0 + 1] * (1 - fv) * fu
            + r[i0 + 1, j0] * fv * (1 - fu)
            + r[i0 + 1, j0 + 1] * fv * fu
        )

    def texture(self, x, y) -> np.ndarray:
        """The relief alone (bumps and roughness), without the dome (m)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        out = self._rough_at(x, y)
        if self.bump_h > 0:
            px, py = self.obj.bump_phase
            cx = np.cos(2 * np.pi * (x / self.bump_s + px))
            cy = np.cos(2 * np.pi * (y / self.bump_s + py))
            out = out + self.bump_h * (0.25 * (1 + cx) * (1 + cy))
        return out

    def height(self, x, y) -> np.ndarray:
        """Surface height s(x, y) (m): dome plus relief."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        return -(x**2 + y**2) / (2 * self.radius) + self.texture(x, y)
