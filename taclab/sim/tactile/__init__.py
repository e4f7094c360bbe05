"""Tactile sensing: one contact field per pad and frame, and renderers that turn it into a sensor's output.

A renderer is any object with ``render(field, rng=None) -> np.ndarray`` that accepts fields with arbitrary
leading batch dimensions. The optical (GelStereo / GelSight) renderer is in :mod:`.optical`, the magnetic
skin (AnySkin) in :mod:`.magnetic`, the piezoresistive taxel array (FlexiTac) in :mod:`.taxel`: each is a
renderer of the same :class:`TactileField`.
"""

from typing import Protocol, runtime_checkable

import numpy as np

from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.magnetic import MagneticProfile, MagneticRenderer, MagneticSkinSensor
from taclab.sim.tactile.optical import PROFILES, OpticalProfile, OpticalRenderer, get_profile
from taclab.sim.tactile.taxel import TaxelProfile, TaxelRenderer


@runtime_checkable
class TactileRenderer(Protocol):
    def render(self, field: TactileField, rng: np.random.Generator | None = None) -> np.ndarray: ...


__all__ = [
    "PROFILES",
    "MagneticProfile",
    "MagneticRenderer",
    "MagneticSkinSensor",
    "OpticalProfile",
    "OpticalRenderer",
    "TactileField",
    "TactileRenderer",
    "TaxelProfile",
    "TaxelRenderer",
    "get_profile",
]
