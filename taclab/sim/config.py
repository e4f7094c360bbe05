"""Physical parameters of the peg-in-hole scene, in one validated config (SI units)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SceneConfig(BaseModel):
    """Every physical parameter of the tactile peg-in-hole scene.

    Units are SI (m, kg, N, s, rad). Unknown keys are rejected. See ``docs/simulator.md`` for the reasoning
    behind each default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestep: float = Field(0.001, gt=0, le=0.01, description="physics step (s)")
    # peg
    peg_size: float = Field(0.018, gt=0.002, le=0.05, description="diameter of the circumscribed circle (m)")
    peg_length: float = Field(0.04, gt=0.01, le=0.2, description="peg length (m)")
    peg_mass: float = Field(0.02, gt=0, description="peg mass (kg)")
    peg_chamfer: float = Field(
        0.0006, ge=0, le=0.003, description="45-degree chamfer on the peg tip (m); 0 for a sharp tip"
    )
    peg_vertices: tuple[tuple[float, float], ...] | None = Field(
        None, description="vertices (m) of a custom convex section, used with shape 'custom'"
    )
    round_segments: int = Field(48, ge=12, le=128, description="sides of the polygon that models a round peg")
    grasp_height: float = Field(0.006, gt=0, description="distance (m) from the peg's top face down to the pad centre")
    # hole block
    block_size: float = Field(0.06, gt=0.01, le=0.3, description="side of the square hole block (m)")
    block_height: float = Field(0.02, gt=0.005, le=0.1, description="height of the hole block (m)")
    hole_chamfer: float = Field(
        0.0,
        ge=0,
        le=0.003,
        description="45-degree chamfer around the hole's top edge (m); 0 for a sharp edge (the TLA paper's hole)",
    )
    # contact
    pad_friction: float = Field(1.0, gt=0, description="friction coefficient gel pad / peg")
    block_friction: float = Field(0.3, ge=0, description="friction coefficient peg / hole block")
    gel_stiffness: float = Field(
        8000.0, gt=0, description="normal stiffness of one contact point between gel pad and peg (N/m)"
    )
    gel_damping: float = Field(30.0, ge=0, description="normal damping of a gel pad contact (N s/m)")
    # gripper
    pad_width: float = Field(0.016, gt=0.002, description="gel pad extent along x (m)")
    pad_height: float = Field(0.016, gt=0.002, description="gel pad extent along z (m)")
    pad_thickness: float = Field(0.003, gt=0.0005, description="gel pad thickness (m)")
    gel_shear_modulus: float = Field(
        1.0e5, gt=0, description="shear modulus of the gel (Pa); with pad_thickness it sets the marker shear"
    )
    gel_layer: float = Field(
        0.0002,
        ge=0,
        description="depth (m) of the virtual gel layer: the taxel plate sits this far proud of the pad",
    )
    grip_force: float = Field(10.0, gt=0, le=200, description="force of each finger actuator (N)")
    hand_kp: float = Field(4000.0, gt=0, description="stiffness of the x, y, z hand servos (N/m)")
    yaw_kp: float = Field(40.0, gt=0, description="stiffness of the yaw servo (N m/rad)")
    hand_mass: float = Field(0.5, gt=0, description="hand mass (kg)")
    # attempt motion
    approach_gap: float = Field(0.001, gt=0, description="peg tip height above the block when an attempt starts (m)")
    descent_speed: float = Field(0.04, gt=0, le=1.0, description="hand speed while descending (m/s)")
    press_depth: float = Field(0.0015, gt=0, description="how far the hand keeps moving after first contact (m)")
    insertion_depth: float = Field(0.003, gt=0, description="tip depth below the block top that counts as inserted (m)")
    # tactile
    taxels: tuple[int, int] = Field((32, 32), description="taxel grid per pad, (rows along z, columns along x)")

    @field_validator("taxels")
    @classmethod
    def _taxels(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] < 4 or v[1] < 4 or v[0] > 256 or v[1] > 256:
            raise ValueError(f"taxels must be between 4 and 256 per side, got {v}")
        return v
