"""The bimanual assembly scene: two servo hands with taxel-covered gel-pad grippers, two parts, a table.

World frame: the table top is the plane ``z = 0``. Hand 0 works on the -x side of the table and holds the
*socket*, hand 1 on the +x side and holds the *peg*; the hands face each other along x, which is the assembly
axis. Each hand is a floating 6-DoF end effector built by :func:`taclab.sim.builders.add_hand`: position servos
on slides x, y, z and hinges roll, pitch, yaw (intrinsic x-y-z angles, ``R = Rx(roll) Ry(pitch) Rz(yaw)``),
whose joint values read directly as the grasp frame's world pose. At zero angles the gripper points down and its
fingers close along world y. Hands, fingers and pads carry gravity compensation; a held part is held by
friction only.

Gripper (:func:`taclab.sim.builders.add_pad_gripper`): two fingers closing along the hand's y axis, driven by
force actuators and coupled to move symmetrically (a joint equality added here), each with a pad of
``taxel_rows x taxel_cols`` taxels at ``taxel_pitch`` (32 x 12 at 2 mm: 64 x 24 mm), compliant in the normal
direction (soft contact of ``gel_stiffness`` per contact point), and a taxel plate ``gel_layer`` proud of it read
by MuJoCo's native ``tactile`` sensor. A piezoresistive film hardly shears, so by default the builder's shear
joints are removed and the pads are rigid in shear (``pad_shear`` keeps them). Rows run along the finger from
the palm to the tip, columns along the hand's +x. Pads also touch the table.

Parts (:class:`PartGeometry`): each is a free body whose frame is at its handle's centre, with x along the
assembly axis and the handle's square section (``handle_width``) across it. The socket has a hole of depth
``hole_depth`` opening towards +x at the handle's +x end; the peg has a shaft of length ``peg_length`` along
-x from its handle's -x end, with a 45-degree chamfer at the tip. Two assemblies: ``round`` (a round shaft into
a rim made of ``rim_segments`` flat segments: a regular polygon whose flats are ``clearance / 2`` from the
shaft) and ``square`` (a square plug into a square socket ``clearance`` wider across flats). Assembled, the two
part frames have the same orientation and the peg's tip lies ``insertion`` past the socket's mouth.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mujoco
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from taclab.sim import builders as B

ASSEMBLIES = ("round", "square")
HANDS = 2
PADS = 4
"""Pads in the scene; pad ``2 k + j`` is pad j (0 on the hand's -y side) of hand k."""
HAND_DOFS = ("x", "y", "z", "roll", "pitch", "yaw")
"""The six joints of a hand, in order: slides x, y, z (m), then hinges roll, pitch, yaw (rad)."""
PART_NAMES = ("socket", "peg")
"""The part each hand holds, hand 0 first."""

# collision bits: the table, the parts, the pads (builders.PAD_BIT) and what pads grip (builders.GRIP_BIT)
_TABLE_BIT, _PART_BIT = 1, 2
_PAD_BIT, _GRIP_BIT = B.PAD_BIT, B.GRIP_BIT
_HARD = [B.HARD_IMPEDANCE, B.HARD_IMPEDANCE, 0.001, 0.5, 2]
_GEL_IMPEDANCE = 0.9


class BimanualConfig(BaseModel):
    """Every physical parameter of the bimanual assembly scene, SI units (m, kg, N, s, rad)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestep: float = Field(0.002, gt=0, le=0.005, description="physics step (s)")
    noslip_iterations: int = Field(
        3, ge=0, le=20, description="MuJoCo no-slip solver iterations: without them soft pad contacts creep"
    )
    # parts
    peg_size: float = Field(0.016, gt=0.004, le=0.03, description="shaft diameter / plug side (m)")
    peg_length: float = Field(0.03, gt=0.01, le=0.08, description="shaft length past the handle (m)")
    chamfer: float = Field(0.0015, ge=0, le=0.004, description="45-degree chamfer at the shaft's tip (m)")
    hole_depth: float = Field(0.03, gt=0.01, le=0.08, description="depth of the socket's hole (m)")
    handle_width: float = Field(0.024, gt=0.01, le=0.05, description="side of the handles' square section (m)")
    handle_length: float = Field(0.06, gt=0.02, le=0.12, description="handle length along the assembly axis (m)")
    rim_segments: int = Field(16, ge=8, le=64, description="flat segments of the round rim")
    part_mass: float = Field(0.06, gt=0, description="mass of each part (kg)")
    part_friction: float = Field(0.3, ge=0, description="friction between the parts")
    table_friction: float = Field(0.6, ge=0, description="friction between a part and the table")
    # gripper
    pad_friction: float = Field(1.0, gt=0, description="friction between a pad and a part")
    gel_stiffness: float = Field(
        10000.0, gt=0, description="normal stiffness of one contact point between a pad and a part (N/m)"
    )
    gel_damping: float = Field(60.0, ge=0, description="normal damping of a pad contact (N s/m)")
    pad_shear: bool = Field(
        False, description="pads slide and twist on the gel's shear springs (off: a thin film, rigid in shear)"
    )
    gel_shear_modulus: float = Field(
        3.0e4, gt=0, description="shear modulus of the pads' gel (Pa), with pad_shear: sets the shear springs"
    )
    pad_mass: float = Field(0.03, gt=0, description="mass of each pad's moving gel surface (kg)")
    gel_layer: float = Field(0.0003, ge=0, le=0.002, description="the taxel plate sits this far proud of the pad (m)")
    pad_thickness: float = Field(0.003, gt=0.0005, description="pad thickness (m)")
    grip_force: float = Field(15.0, gt=0, le=100, description="force of each finger when the gripper closes (N)")
    max_opening: float = Field(0.07, gt=0.03, le=0.15, description="largest distance between the pads (m)")
    finger_damping: float = Field(
        150.0, ge=0, description="damping of each finger's slide (N s/m): the gripper closes at grip_force / this"
    )
    # hands
    hand_mass: float = Field(0.5, gt=0, description="mass of a hand's palm (kg)")
    hand_kp: float = Field(3000.0, gt=0, description="stiffness of the x, y, z servos (N/m)")
    rot_kp: float = Field(60.0, gt=0, description="stiffness of the roll, pitch, yaw servos (N m/rad)")
    # taxels
    taxel_rows: int = Field(32, ge=2, le=128, description="taxel rows per pad, along the finger")
    taxel_cols: int = Field(12, ge=2, le=128, description="taxel columns per pad, across the finger")
    taxel_pitch: float = Field(0.002, gt=0.0002, le=0.01, description="taxel spacing (m)")

    @model_validator(mode="after")
    def _fits(self) -> BimanualConfig:
        if self.peg_size >= self.handle_width - 0.004:
            raise ValueError(
                f"peg_size {self.peg_size} m leaves no socket wall in a {self.handle_width} m handle; "
                "allowed: peg_size < handle_width - 0.004"
            )
        if self.max_opening <= self.handle_width + 0.01:
            raise ValueError(f"max_opening {self.max_opening} m must exceed handle_width + 0.01 m")
        return self

    @property
    def pad_size(self) -> tuple[float, float]:
        """Pad extent (m): along the finger (rows), across it (columns)."""
        return self.taxel_rows * self.taxel_pitch, self.taxel_cols * self.taxel_pitch

    @property
    def fingertip(self) -> float:
        """How far below the grasp centre the fingertips reach (m)."""
        return self.pad_size[0] / 2 + 0.002


@dataclass(frozen=True)
class PartGeometry:
    """Dimensions of one assembly (m) and where its features are in the part frames."""

    assembly: str
    clearance: float  # hole width minus shaft width across flats
    peg_half: float  # shaft radius / half side
    hole_half: float  # hole apothem / half side
    peg_length: float
    hole_depth: float
    handle_half: tuple[float, float, float]  # handle half sizes (x, y, z)
    tip_x: float  # the peg tip's x in the peg frame (< 0)
    mouth_x: float  # the socket mouth's x in the socket frame (> 0)

    def insertion(self, peg_pos_in_socket: np.ndarray) -> float:
        """How deep (m) the peg tip is past the mouth, given the peg frame's origin in the socket frame."""
        return float(self.mouth_x - (peg_pos_in_socket[0] + self.tip_x))

    @property
    def assembled_offset(self) -> float:
        """x of the peg frame in the socket frame when the tip has just reached the mouth (m)."""
        return self.mouth_x - self.tip_x


def part_geometry(cfg: BimanualConfig, assembly: str, clearance: float) -> PartGeometry:
    """The geometry of ``assembly`` with ``clearance`` (m); raises ``ValueError`` naming what is allowed."""
    if assembly not in ASSEMBLIES:
        raise ValueError(f"unknown assembly {assembly!r}; allowed: {', '.join(ASSEMBLIES)}")
    if not (np.isfinite(clearance) and 0 < clearance < 0.004):
        raise ValueError(f"clearance must be in (0, 4) mm, got {clearance * 1e3:g} mm")
    h = cfg.handle_width / 2
    hl = cfg.handle_length / 2
    hole_half = cfg.peg_size / 2 + clearance / 2
    if hole_half > h - 0.0015:
        raise ValueError(f"clearance {clearance * 1e3:g} mm leaves a socket wall under 1.5 mm")
    return PartGeometry(
        assembly=assembly,
        clearance=clearance,
        peg_half=cfg.peg_size / 2,
        hole_half=hole_half,
        peg_length=cfg.peg_length,
        hole_depth=cfg.hole_depth,
        handle_half=(hl, h, h),
        tip_x=-(hl + cfg.peg_length),
        mouth_x=hl + cfg.hole_depth,
    )


# ---------------------------------------------------------------------------------------------- rotations
def euler_to_mat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation matrix of a hand's intrinsic x-y-z angles: ``R = Rx(roll) Ry(pitch) Rz(yaw)``."""
    ca, sa = math.cos(roll), math.sin(roll)
    cb, sb = math.cos(pitch), math.sin(pitch)
    cc, sc = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cb * cc, -cb * sc, sb],
            [ca * sc + sa * sb * cc, ca * cc - sa * sb * sc, -sa * cb],
            [sa * sc - ca * sb * cc, sa * cc + ca * sb * sc, ca * cb],
        ]
    )


def mat_to_euler(r: np.ndarray) -> np.ndarray:
    """(roll, pitch, yaw) of a rotation matrix in the hand's convention, pitch in [-pi/2, pi/2]."""
    pitch = math.asin(max(-1.0, min(1.0, float(r[0, 2]))))
    roll = math.atan2(-r[1, 2], r[2, 2])
    yaw = math.atan2(-r[0, 1], r[0, 0])
    return np.array([roll, pitch, yaw])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=float))
    return m.reshape(3, 3)


def yaw_of(r: np.ndarray) -> float:
    """Heading of a frame's x axis in the world's x-y plane (rad)."""
    return math.atan2(r[1, 0], r[0, 0])


# ---------------------------------------------------------------------------------------------- parts
def _frustum(spec: mujoco.MjSpec, name: str, section: np.ndarray, shrink: float, x0: float):
    """A convex frustum along -x from ``x0`` of length ``shrink``: the section (n, 2 in y, z) at x0, shrunk by
    ``shrink`` at its end (a 45-degree chamfer)."""
    end = section * (1 - shrink / np.max(np.abs(section)))
    verts = np.concatenate(
        [
            np.c_[np.full(len(section), x0), section],
            np.c_[np.full(len(end), x0 - shrink), end],
        ]
    )
    mesh = spec.add_mesh(name=name)
    mesh.uservert = verts.reshape(-1).tolist()
    return mesh


def part_pieces(cfg: BimanualConfig, geo: PartGeometry, which: str) -> list[tuple[dict, float]]:
    """The geoms of a part in its frame, each ``(geom attributes, volume m^3)``; a ``mesh`` entry names a mesh
    (vertices ``(n, 3)``) to add under the geom's name."""
    hx, hy, hz = geo.handle_half
    out: list[tuple[dict, float]] = [
        (dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, hz], pos=[0, 0, 0]), 8 * hx * hy * hz)
    ]
    r = geo.peg_half
    if which == "peg":
        c = cfg.chamfer
        shaft = geo.peg_length - c
        xc = -hx - shaft / 2
        if geo.assembly == "round":
            quat = B.quat_from_axes([0, 1, 0], [0, 0, 1])  # cylinder axis (z) along the part's x
            out.append(
                (
                    dict(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[r, shaft / 2, 0], pos=[xc, 0, 0], quat=quat),
                    math.pi * r * r * shaft,
                )
            )
            ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            section = r * np.c_[np.cos(ang), np.sin(ang)]
        else:
            out.append(
                (dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=[shaft / 2, r, r], pos=[xc, 0, 0]), 4 * r * r * shaft)
            )
            section = r * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], float)
        if c > 0:
            out.append((dict(type=mujoco.mjtGeom.mjGEOM_MESH, mesh=(section, c, -hx - shaft)), 4 * r * r * c))
        return out
    a_in, a_out = geo.hole_half, hy
    d = geo.hole_depth
    xc = hx + d / 2
    w = (a_out - a_in) / 2
    if geo.assembly == "square":
        for sy, sz, size in (
            (0, 1, [d / 2, a_out, w]),
            (0, -1, [d / 2, a_out, w]),
            (1, 0, [d / 2, w, a_in]),
            (-1, 0, [d / 2, w, a_in]),
        ):
            pos = [xc, sy * (a_in + w), sz * (a_in + w)]
            out.append((dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=size, pos=pos), 8 * size[0] * size[1] * size[2]))
        return out
    n = cfg.rim_segments
    half_t = a_out * math.tan(math.pi / n)
    for k in range(n):
        th = -math.pi / 2 + 2 * math.pi * k / n
        radial = np.array([0.0, math.cos(th), math.sin(th)])
        pos = radial * (a_in + w) + [xc, 0, 0]
        quat = B.quat_from_axes(radial, [1, 0, 0])
        size = [w, d / 2, half_t]
        out.append((dict(type=mujoco.mjtGeom.mjGEOM_BOX, size=size, pos=pos.tolist(), quat=quat), 4 * w * d * half_t))
    return out


def _add_part(spec: mujoco.MjSpec, cfg: BimanualConfig, geo: PartGeometry, which: str, pos, rgba) -> None:
    """The peg or the socket as a free body of mass ``part_mass`` (spread by volume over its pieces)."""
    body = spec.worldbody.add_body(name=which, pos=list(pos))
    body.add_freejoint(name=which)
    common = dict(
        # the parts' friction is the smallest of every pair and their solmix 0: MuJoCo then takes the pad's,
        # the table's or this value exactly for each pair
        friction=[cfg.part_friction, 0.005, 0.0001],
        solimp=_HARD,
        solref=[2 * cfg.timestep, 1.0],
        solmix=0.0,
        condim=4,
        contype=_PART_BIT | _GRIP_BIT,
        conaffinity=_TABLE_BIT | _PART_BIT | _PAD_BIT,
        rgba=list(rgba),
    )
    pieces = part_pieces(cfg, geo, which)
    total = sum(v for _, v in pieces)
    for i, (g, v) in enumerate(pieces):
        g = dict(g)
        name = f"{which}{i}"
        if "mesh" in g:
            section, c, x0 = g.pop("mesh")
            _frustum(spec, name, section, c, x0)
            g["meshname"] = name
        body.add_geom(name=name, mass=cfg.part_mass * v / total, **g, **common)


# ---------------------------------------------------------------------------------------------- hands
def gel_solref(cfg: BimanualConfig, inv_mass: float) -> tuple[float, float]:
    """Direct solref values (stiffness, damping, both positive here) for a pad contact of ``gel_stiffness``
    (N/m) on a constraint of inverse inertia ``inv_mass``: with a constant impedance d, MuJoCo settles a soft
    contact at penetration ``(1 - d) / d * A * f / k`` for a force f, so this k makes it ``f / gel_stiffness``."""
    scale = (1 - _GEL_IMPEDANCE) / _GEL_IMPEDANCE * inv_mass
    return cfg.gel_stiffness * scale, cfg.gel_damping * scale


def gripper_params(cfg: BimanualConfig) -> B.PadGripperParams:
    """The gel-pad gripper of the scene: FlexiTac-sized pads, fingers that open to ``max_opening``."""
    h = cfg.handle_width / 2
    k, b = gel_solref(cfg, 1.0 / cfg.part_mass)  # replaced by BimanualSim's calibration
    pad_len, pad_w = cfg.pad_size
    return B.PadGripperParams(
        opening=h,
        pad_width=pad_w,
        pad_height=pad_len,
        pad_thickness=cfg.pad_thickness,
        gel_shear_modulus=cfg.gel_shear_modulus,
        gel_layer=cfg.gel_layer,
        taxels=(cfg.taxel_rows, cfg.taxel_cols),
        pad_friction=cfg.pad_friction,
        gel_solref=(-k, -b),
        gel_impedance=_GEL_IMPEDANCE,
        palm_mass=cfg.hand_mass,
        finger_mass=0.05,
        pad_mass=cfg.pad_mass,
        finger_range=(-(h - 0.004), cfg.max_opening / 2 - h),
        finger_damping=cfg.finger_damping,
        finger_force_range=cfg.grip_force,
        pad_contype=_PAD_BIT,
        pad_conaffinity=_GRIP_BIT | _TABLE_BIT,
    )


def _add_hand(spec: mujoco.MjSpec, cfg: BimanualConfig, k: int) -> tuple[B.Hand, B.PadGripper]:
    prefix = f"h{k}_"
    servos = {}
    for d in HAND_DOFS:
        if d in B.SLIDE_DOFS:
            servos[d] = B.Servo.critical(cfg.hand_kp, cfg.hand_mass + 0.3, (-1.0, 1.0))
        else:
            servos[d] = B.Servo.critical(cfg.rot_kp, 0.004, (-math.pi, math.pi))
    hand = B.add_hand(spec, spec.worldbody, servos, prefix=prefix, dofs=HAND_DOFS, armature=0.02)
    grip = B.add_pad_gripper(spec, hand.body, gripper_params(cfg), prefix=prefix)
    if not cfg.pad_shear:
        # a piezoresistive film on a rigid finger hardly shears: the pads are welded to their fingers
        for j in grip.pad_joints:
            spec.delete(spec.joint(j))
    B.add_finger_actuators(spec, grip)
    # the fingers move together (a parallel gripper): finger 1's joint follows finger 0's
    eq = spec.add_equality(name=f"{prefix}fingers", type=mujoco.mjtEq.mjEQ_JOINT)
    eq.name1, eq.name2 = grip.fingers[1], grip.fingers[0]
    eq.data[:5] = [0, 1, 0, 0, 0]
    eq.solref = [2 * cfg.timestep, 1.0]  # stiff: a soft coupling lets a squeezed part creep out of the grasp
    eq.solimp = _HARD
    # a forearm towards the hand's own end of the table (visual only)
    side = -1.0 if k == 0 else 1.0
    z0 = gripper_params(cfg).palm_z + 0.006
    hand.body.add_geom(
        name=f"{prefix}arm",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=[0.014, 0, 0],
        fromto=[0, 0, z0, side * 0.09, 0, z0 + 0.07],
        rgba=[0.35, 0.37, 0.42, 1],
        mass=0.0,
        contype=0,
        conaffinity=0,
        group=DECOR_GROUP,
    )
    return hand, grip


# ---------------------------------------------------------------------------------------------- scene
DEPTH_CAMERA = "depth"
DECOR_GROUP = 2
"""Geom group of decoration (the forearms): drawn in images, unseen by the depth camera (see DEPTH_GROUPS)."""
DEPTH_GROUPS = (1, 1, 0, 0, 0, 0)
"""Geom groups the depth camera sees: the table, hands, fingers and parts, not the decoration or taxel plates."""
OVERVIEW_CAMERA = "overview"


def build_scene(cfg: BimanualConfig, assembly: str, clearance: float) -> BimanualScene:
    """Compile the scene for one assembly and clearance (m). Raises ``ValueError`` on bad input."""
    geo = part_geometry(cfg, assembly, clearance)
    spec = B.new_spec(f"bimanual_{assembly}", timestep=cfg.timestep, center=(0, 0, 0.06), extent=0.4)
    spec.option.noslip_iterations = cfg.noslip_iterations
    B.ensure_materials(spec, {"metal": (0.62, 0.64, 0.68, 1.0), "gel": (0.18, 0.18, 0.2, 1.0)})
    wb = spec.worldbody
    wb.add_light(pos=[0.2, -0.3, 0.8], dir=[-0.25, 0.35, -1], castshadow=False, diffuse=[0.7, 0.7, 0.7])
    wb.add_light(pos=[-0.3, 0.3, 0.9], dir=[0.3, -0.3, -1], castshadow=False, diffuse=[0.35, 0.35, 0.35])
    wb.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[0.4, 0.3, 0.02],
        pos=[0, 0, -0.02],
        rgba=[0.82, 0.78, 0.7, 1],
        friction=[cfg.table_friction, 0.005, 0.0001],
        contype=_TABLE_BIT,
        conaffinity=_PART_BIT | _PAD_BIT,
    )
    # the point cloud's depth camera, in front of the table looking at the workspace; a three-quarter view
    B.add_look_at_camera(wb, DEPTH_CAMERA, eye=(0.0, -0.42, 0.34), target=(0.0, 0.0, 0.06), fovy=40)
    B.add_look_at_camera(wb, OVERVIEW_CAMERA, eye=(0.3, -0.36, 0.28), target=(0.0, 0.0, 0.07), fovy=45)
    hands = [_add_hand(spec, cfg, k) for k in range(HANDS)]
    h = geo.handle_half[2]
    _add_part(spec, cfg, geo, "socket", [-0.12, 0, h], [0.25, 0.45, 0.75, 1])
    _add_part(spec, cfg, geo, "peg", [0.12, 0, h], [0.85, 0.55, 0.2, 1])
    model = spec.compile()
    return _wrap(cfg, geo, model, hands)


@dataclass
class BimanualScene:
    """A compiled bimanual scene and the indices the simulation needs."""

    config: BimanualConfig
    geometry: PartGeometry
    model: mujoco.MjModel
    hand_qpos: np.ndarray  # (2, 6) qpos addresses of each hand's joints, HAND_DOFS order
    hand_dof: np.ndarray  # (2, 6)
    finger_qpos: np.ndarray  # (2, 2)
    hand_act: np.ndarray  # (2, 6) servo ids
    finger_act: np.ndarray  # (2, 2) finger force actuator ids
    part_body: np.ndarray  # (2,) socket, peg
    part_qpos: np.ndarray  # (2,) free joint qpos addresses
    pad_geom: np.ndarray  # (4,) gel collision geoms
    pad_body: np.ndarray  # (4,) pad (gel surface) bodies
    taxel_index: np.ndarray  # (4, rows*cols) sensordata index of each taxel's depth, row-major
    taxel_local: np.ndarray  # (4, rows, cols, 3) taxel positions in their pad body's frame
    depth_camera: int
    finger_rest: float  # distance of a pad's inner face from the grasp centre at finger position 0 (m)
    gel_calibrated: bool = False  # set by BimanualSim once the pads' contact stiffness is calibrated


def _wrap(cfg: BimanualConfig, geo: PartGeometry, model: mujoco.MjModel, hands) -> BimanualScene:
    obj = mujoco.mjtObj
    rows, cols = cfg.taxel_rows, cfg.taxel_cols
    taxel_index, taxel_local, pad_geom, pad_body = [], [], [], []
    for _, grip in hands:
        for sensor, plate, gel, pad in zip(grip.sensors, grip.taxel_geoms, grip.gels, grip.pads, strict=True):
            lay = B.taxel_layout(model, sensor, plate, rows, cols)
            (gid,) = B.ids(model, obj.mjOBJ_GEOM, [plate])
            mid = model.geom_dataid[gid]
            verts = model.mesh_vert[model.mesh_vertadr[mid] : model.mesh_vertadr[mid] + lay.n]
            local = verts @ quat_to_mat(model.geom_quat[gid]).T + model.geom_pos[gid]
            taxel_index.append(lay.sensor_adr + lay.order)
            taxel_local.append(local[lay.order].reshape(rows, cols, 3))
            pad_geom += B.ids(model, obj.mjOBJ_GEOM, [gel])
            pad_body += B.ids(model, obj.mjOBJ_BODY, [pad])
    hj = np.array([B.ids(model, obj.mjOBJ_JOINT, hand.joints) for hand, _ in hands])
    fj = np.array([B.ids(model, obj.mjOBJ_JOINT, grip.fingers) for _, grip in hands])
    pj = np.array(B.ids(model, obj.mjOBJ_JOINT, PART_NAMES))
    return BimanualScene(
        config=cfg,
        geometry=geo,
        model=model,
        hand_qpos=model.jnt_qposadr[hj],
        hand_dof=model.jnt_dofadr[hj],
        finger_qpos=model.jnt_qposadr[fj],
        hand_act=np.array([B.ids(model, obj.mjOBJ_ACTUATOR, hand.actuators) for hand, _ in hands]),
        finger_act=np.array([B.ids(model, obj.mjOBJ_ACTUATOR, grip.fingers) for _, grip in hands]),
        part_body=np.array(B.ids(model, obj.mjOBJ_BODY, PART_NAMES)),
        part_qpos=model.jnt_qposadr[pj],
        pad_geom=np.array(pad_geom),
        pad_body=np.array(pad_body),
        taxel_index=np.stack(taxel_index),
        taxel_local=np.stack(taxel_local),
        depth_camera=B.ids(model, obj.mjOBJ_CAMERA, [DEPTH_CAMERA])[0],
        finger_rest=geo.handle_half[1],
    )


@functools.lru_cache(maxsize=16)
def cached_scene(cfg: BimanualConfig, assembly: str, clearance: float) -> BimanualScene:
    """``build_scene`` memoized per process."""
    return build_scene(cfg, assembly, clearance)


# ---------------------------------------------------------------------------------------------- simulation
class BimanualSim:
    """Physics of one bimanual scene: resets, servo targets, stepping, taxel depths, poses. One per env."""

    def __init__(self, scene: BimanualScene):
        self.scene = scene
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        self.cfg = scene.config
        self.geometry = scene.geometry
        self._target = np.zeros((HANDS, 6))
        self._grip = np.zeros(HANDS)  # commanded gripper closure in [0, 1]
        self._sensor_flag = int(mujoco.mjtDisableBit.mjDSBL_SENSOR)
        if not scene.gel_calibrated:
            self._calibrate_gel()

    # ------------------------------------------------------------------ state
    def grasp_height(self, clearance: float = 0.003) -> float:
        """Hand height (m) that puts the fingertips ``clearance`` above the table with the hand upright."""
        return self.cfg.fingertip + clearance

    def reset(self, hand_poses: np.ndarray, part_poses: np.ndarray, grip: float = 0.0) -> None:
        """Hands at ``hand_poses`` (2, 6) with the grippers open, parts resting on the table at ``part_poses``
        (2, 3): x, y (m) and yaw (rad) of the socket and the peg; the gripper command set to ``grip``."""
        m, d, s = self.model, self.data, self.scene
        mujoco.mj_resetData(m, d)
        hand_poses = np.asarray(hand_poses, dtype=float).reshape(HANDS, 6)
        part_poses = np.asarray(part_poses, dtype=float).reshape(HANDS, 3)
        open_q = self.cfg.max_opening / 2 - s.finger_rest
        for k in range(HANDS):
            d.qpos[s.hand_qpos[k]] = hand_poses[k]
            d.qpos[s.finger_qpos[k]] = open_q
            x, y, yaw = part_poses[k]
            adr = s.part_qpos[k]
            d.qpos[adr : adr + 3] = [x, y, self.geometry.handle_half[2]]
            d.qpos[adr + 3 : adr + 7] = [math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
        self._target[:] = hand_poses
        self._grip[:] = grip
        self._apply(self._target, self._grip)
        mujoco.mj_forward(m, d)

    def _apply(self, target: np.ndarray, grip: np.ndarray) -> None:
        d, s = self.data, self.scene
        d.ctrl[s.hand_act.reshape(-1)] = target.reshape(-1)
        d.ctrl[s.finger_act.reshape(-1)] = np.repeat((2 * grip - 1) * self.cfg.grip_force, 2)

    def step(self, hand_targets: np.ndarray, grip: np.ndarray, nstep: int, probe: bool = False) -> np.ndarray | None:
        """Move the servo targets linearly from the current ones to ``hand_targets`` (2, 6) and the gripper
        commands to ``grip`` (2,) over ``nstep`` physics steps.

        A gripper command ``g`` in [0, 1] pushes each finger inward with ``(2 g - 1) grip_force``: 1 squeezes
        with ``grip_force``, 0 opens with it, 0.5 lets the fingers rest. With ``probe`` the taxel depths after
        the next-to-last step are returned (for the indentation rate)."""
        m, d = self.model, self.data
        t1 = np.asarray(hand_targets, dtype=float).reshape(HANDS, 6)
        g1 = np.clip(np.asarray(grip, dtype=float).reshape(HANDS), 0.0, 1.0)
        self._apply(self._target, self._grip)
        c0 = d.ctrl.copy()
        self._apply(t1, g1)
        dc = d.ctrl - c0
        before = None
        for i in range(1, nstep + 1):
            d.ctrl[:] = c0 + (i / nstep) * dc
            mujoco.mj_step(m, d)
            if probe and i == nstep - 1:
                before = self.taxel_depth()
        self._target[:], self._grip[:] = t1, g1
        return before

    @property
    def hand_targets(self) -> np.ndarray:
        return self._target.copy()

    @property
    def grip_commands(self) -> np.ndarray:
        return self._grip.copy()

    def hand_poses(self) -> np.ndarray:
        """(2, 6) the hands' joint positions: grasp frame position (m) and roll, pitch, yaw (rad)."""
        return self.data.qpos[self.scene.hand_qpos].copy()

    def hand_velocities(self) -> np.ndarray:
        """(2, 6) the hands' joint velocities (m/s, rad/s)."""
        return self.data.qvel[self.scene.hand_dof].copy()

    def openings(self) -> np.ndarray:
        """(2,) distance between each gripper's pads (m)."""
        q = self.data.qpos[self.scene.finger_qpos]
        return 2 * self.scene.finger_rest + q.sum(axis=1)

    def part_poses(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (2, 3) and quaternions (2, 4) of the socket and the peg frames."""
        b = self.scene.part_body
        return self.data.xpos[b].copy(), self.data.xquat[b].copy()

    def part_in_hand(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Hand k's part frame in its grasp frame: position (3,) and rotation matrix (3, 3)."""
        pose = self.hand_poses()[k]
        rh = euler_to_mat(*pose[3:])
        b = self.scene.part_body[k]
        return rh.T @ (self.data.xpos[b] - pose[:3]), rh.T @ self.data.xmat[b].reshape(3, 3)

    def peg_in_socket(self) -> tuple[np.ndarray, np.ndarray]:
        """The peg frame's position (3,) and rotation matrix (3, 3) in the socket frame."""
        b = self.scene.part_body
        rs = self.data.xmat[b[0]].reshape(3, 3)
        rp = self.data.xmat[b[1]].reshape(3, 3)
        return rs.T @ (self.data.xpos[b[1]] - self.data.xpos[b[0]]), rs.T @ rp

    def insertion(self) -> float:
        """Depth (m) of the peg's tip past the socket's mouth, along the socket's axis."""
        return self.geometry.insertion(self.peg_in_socket()[0])

    def lateral_error(self) -> float:
        """Distance (m) of the peg's tip from the socket's axis."""
        pos, rot = self.peg_in_socket()
        tip = pos + rot @ np.array([self.geometry.tip_x, 0.0, 0.0])
        return float(math.hypot(tip[1], tip[2]))

    # ------------------------------------------------------------------ touch
    def taxel_depth(self) -> np.ndarray:
        """Evaluate the taxel plates now: indentation (4, rows, cols) in m."""
        m, d = self.model, self.data
        m.opt.disableflags &= ~self._sensor_flag
        try:
            mujoco.mj_sensorVel(m, d)
        finally:
            m.opt.disableflags |= self._sensor_flag
        s = self.scene
        return d.sensordata[s.taxel_index].reshape(s.taxel_local.shape[:3])

    def taxel_positions(self) -> np.ndarray:
        """World positions (4, rows, cols, 3) of every taxel."""
        b = self.scene.pad_body
        d = self.data
        rot = d.xmat[b].reshape(-1, 3, 3)
        return np.einsum("pij,prcj->prci", rot, self.scene.taxel_local) + d.xpos[b][:, None, None, :]

    def pad_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions (4, 3) and rotation matrices (4, 3, 3) of the pad bodies."""
        b = self.scene.pad_body
        return self.data.xpos[b].copy(), self.data.xmat[b].reshape(-1, 3, 3).copy()

    def pad_contacts(self) -> np.ndarray:
        """(4,) bool: each pad touches the part its hand should hold (hand 0 the socket, hand 1 the peg)."""
        d, s = self.data, self.scene
        n = d.ncon
        out = np.zeros(PADS, dtype=bool)
        if n == 0:
            return out
        g = d.contact.geom[:n]
        body = self.model.geom_bodyid[g]
        for p in range(PADS):
            part = s.part_body[p // 2]
            hit = ((g[:, 0] == s.pad_geom[p]) & (body[:, 1] == part)) | (
                (g[:, 1] == s.pad_geom[p]) & (body[:, 0] == part)
            )
            out[p] = bool(hit.any())
        return out

    def _calibrate_gel(self) -> None:
        """Set the pads' contact stiffness from the inverse inertia of a squeezed part's contacts, so that
        ``gel_stiffness`` is a true N/m per contact point (MuJoCo's soft contacts are per unit inverse inertia)."""
        m, d = self.model, self.data
        z = self.grasp_height()
        poses = np.array([[-0.12, 0.0, z, 0, 0, 0], [0.12, 0.0, z, 0, 0, 0]])
        self.reset(poses, np.array([[-0.12, 0.0, 0.0], [0.12, 0.0, 0.0]]))
        for _ in range(20):  # close until both grippers hold their part, then let the grasp settle
            self.step(poses, np.ones(2), 50)
            if self.pad_contacts().all():
                break
        else:
            raise RuntimeError("the grippers did not close on the parts: check grip_force and the part size")
        self.step(poses, np.ones(2), 100)
        n = d.ncon
        geom = d.contact.geom[:n]
        adr = d.contact.efc_address[:n]
        other = np.where(np.isin(geom[:, 0], self.scene.pad_geom), geom[:, 1], geom[:, 0])
        pads = np.isin(geom, self.scene.pad_geom).any(axis=1) & (adr >= 0)
        pads &= np.isin(m.geom_bodyid[other], self.scene.part_body)
        inv_mass = float(np.mean(d.efc_diagA[adr[pads]]))
        k, b = gel_solref(self.cfg, inv_mass)
        for g in self.scene.pad_geom:
            m.geom_solref[g] = (-k, -b)
        self.scene.gel_calibrated = True
