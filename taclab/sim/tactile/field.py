"""The contact field under a pad: what every tactile renderer starts from.

A :class:`TactileField` holds, per taxel, the gel's indentation depth, the accumulated tangential (shear)
displacement of the gel surface, the sliding speeds reported by MuJoCo's ``tactile`` sensor and the normal
force carried by the taxel. Arrays may carry any leading batch dimensions (for example time and pad); the last
two (three for vector fields) are the taxel grid: rows run from the top of the pad downwards (-z), columns
along the world +x axis, the same for both pads, so that mirroring the scene in x flips every image left-right
and mirroring it in y swaps the two pads.

Renderers turn a field into a sensor's output; :mod:`taclab.sim.tactile.optical` is the first of them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass
class TactileField:
    depth: np.ndarray  # (..., R, C) indentation (m), >= 0
    shear: np.ndarray  # (..., R, C, 2) gel surface displacement (m): [0] along columns (+x), [1] along rows (-z)
    slip: np.ndarray  # (..., R, C, 2) sliding speed magnitudes |v_t1|, |v_t2| (m/s) from the sensor
    force: np.ndarray  # (..., R, C) normal force per taxel (N)
    pitch: tuple[float, float]  # taxel spacing (m): (between rows, between columns)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.depth.shape

    @property
    def grid(self) -> tuple[int, int]:
        return self.depth.shape[-2:]

    def __getitem__(self, idx) -> TactileField:
        """Index the leading (batch) dimensions of every array."""
        return TactileField(
            depth=self.depth[idx],
            shear=self.shear[idx],
            slip=self.slip[idx],
            force=self.force[idx],
            pitch=self.pitch,
        )

    @staticmethod
    def stack(items: list[TactileField], axis: int = 0) -> TactileField:
        if not items:
            raise ValueError("cannot stack an empty list of tactile fields")
        return TactileField(
            **{
                f.name: np.stack([getattr(it, f.name) for it in items], axis=axis)
                for f in fields(TactileField)
                if f.name != "pitch"
            },
            pitch=items[0].pitch,
        )

    @staticmethod
    def zeros(batch: tuple[int, ...], grid: tuple[int, int], pitch: tuple[float, float]) -> TactileField:
        r, c = grid
        return TactileField(
            depth=np.zeros((*batch, r, c)),
            shear=np.zeros((*batch, r, c, 2)),
            slip=np.zeros((*batch, r, c, 2)),
            force=np.zeros((*batch, r, c)),
            pitch=pitch,
        )

    def as_arrays(self, dtype=np.float32) -> dict[str, np.ndarray]:
        """The raw arrays, for observations and datasets."""
        return {
            "depth": self.depth.astype(dtype),
            "shear": self.shear.astype(dtype),
            "force": self.force.astype(dtype),
        }
