"""Composable scene builders on ``mujoco.MjSpec``: hands, tactile grippers, fixtures, cameras, defaults.

A scene is assembled by calling these functions on one spec, then compiled once::

    spec = new_spec("my_scene", timestep=0.001, center=(0, 0, 0.02), extent=0.12)
    ensure_materials(spec, {"metal": METAL_RGBA, "gel": GEL_RGBA})
    hand = add_hand(spec, spec.worldbody, prefix="left_", dofs=("x", "y", "z", "yaw"),
                    servos={"x": Servo(4000, 120, (-1, 1)), ...})
    grip = add_pad_gripper(spec, hand.body, PadGripperParams(opening=0.01), prefix="left_")
    add_fixture(spec, spec.worldbody, "block", [Prism(poly, 0.0, 0.02)], geom=dict(contype=1, conaffinity=1))
    add_look_at_camera(spec.worldbody, "overview", eye=(0.1, -0.1, 0.1), target=(0, 0, 0.02), fovy=40)
    model = spec.compile()
    layouts = [taxel_layout(model, s, g, *grip.params.taxels) for s, g in zip(grip.sensors, grip.taxel_geoms)]

Every element a builder adds is named with the ``prefix`` it is given, so several hands and grippers live in one
spec (``left_hand_x``, ``right_pad0_gel``, ...); with an empty prefix the names are those of the peg scene
(``hand_x``, ``finger0``, ``pad0_gel``). Builders return small records of the names they created; after
compiling, :func:`ids` turns names into ids.

Conventions (SI units throughout):

- A hand is one body moved by position servos on a chain of joints: slides along the parent's x, y, z first,
  then hinges ``roll`` (about x), ``pitch`` (about y), ``yaw`` (about z), applied in that order (intrinsic
  x-y-z angles). With gravity compensation on the hand and everything it carries, a held object moves with it
  and is held by friction only (a mocap hand would teleport and leave the object behind).
- The pad gripper closes its two fingers along the hand's y axis; pad 0 is on the -y side, pad 1 on the +y
  side; the grasp centre (midway between the pads' inner faces when the fingers rest at joint zero) is the hand
  frame's origin. Each pad is a compliant gel box (soft normal contact, shear springs on slide x / slide z /
  twist joints) carrying a plate of taxels read by MuJoCo's native ``tactile`` sensor, ``gel_layer`` proud of
  the pad surface.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import mujoco
import numpy as np

from taclab.sim.tactile.field import TactileField

SLIDE_DOFS = ("x", "y", "z")
HINGE_DOFS = ("roll", "pitch", "yaw")
DOFS = SLIDE_DOFS + HINGE_DOFS
_AXES = {"x": [1, 0, 0], "y": [0, 1, 0], "z": [0, 0, 1], "roll": [1, 0, 0], "pitch": [0, 1, 0], "yaw": [0, 0, 1]}

METAL_RGBA = (0.7, 0.7, 0.75, 1.0)
GEL_RGBA = (0.3, 0.3, 0.32, 1.0)
HARD_IMPEDANCE = 0.99
"""solimp of rigid contacts (constant over penetration)."""


# ---------------------------------------------------------------------------------------------- spec defaults
def new_spec(
    name: str,
    *,
    timestep: float = 0.001,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    extent: float = 0.2,
    offscreen: tuple[int, int] = (640, 480),
    sensors_on_demand: bool = True,
) -> mujoco.MjSpec:
    """An empty spec with taclab's defaults: implicit-fast integration, elliptic friction cones, no shadows
    (offscreen rendering on a CPU is ~20x faster without them), an offscreen buffer of ``offscreen`` (width,
    height) pixels, and with ``sensors_on_demand`` sensors disabled during stepping (evaluate them with
    ``mj_sensorPos/Vel`` after clearing ``mjDSBL_SENSOR``, as :class:`taclab.sim.peg_in_hole.PegInHoleSim`
    does). ``center`` and ``extent`` (m) set the default free camera."""
    if not (np.isfinite(timestep) and 0 < timestep <= 0.01):
        raise ValueError(f"timestep must be in (0, 0.01] s, got {timestep!r}")
    spec = mujoco.MjSpec()
    spec.modelname = name
    opt = spec.option
    opt.timestep = timestep
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    if sensors_on_demand:
        opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_SENSOR
    spec.visual.quality.shadowsize = 0
    spec.visual.global_.offwidth = int(offscreen[0])
    spec.visual.global_.offheight = int(offscreen[1])
    spec.stat.center = list(center)
    spec.stat.extent = extent
    return spec


def ensure_materials(spec: mujoco.MjSpec, materials: Mapping[str, Sequence[float]]) -> None:
    """Add each named material (``name -> rgba``) that the spec does not have yet, in the given order."""
    have = {m.name for m in spec.materials}
    for name, rgba in materials.items():
        if name not in have:
            spec.add_material(name=name, rgba=list(rgba))
            have.add(name)


def add_floor(
    spec: mujoco.MjSpec, size: float = 0.2, rgba: Sequence[float] = (0.9, 0.9, 0.88, 1), collide: bool = False, **kw
):
    """A ground plane at z = 0 of half-size ``size`` (m); with ``collide`` it takes part in contacts."""
    bits = {} if collide else {"contype": 0, "conaffinity": 0}
    return spec.worldbody.add_geom(
        name=kw.pop("name", "floor"),
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[size, size, 0.01],
        rgba=list(rgba),
        **bits,
        **kw,
    )


# ---------------------------------------------------------------------------------------------- geometry
def quat_from_axes(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """The quaternion of the frame whose x and y axes are the given (orthonormal) vectors."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    z = np.cross(x, y)
    mat = np.stack([x, y, z], axis=1).reshape(-1)
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, mat)
    return q


def hull_mesh(spec: mujoco.MjSpec, name: str, layers: Iterable[tuple[np.ndarray, float]]):
    """A convex mesh through horizontal polygon layers ``(vertices (n, 2), z)``; MuJoCo takes their hull."""
    mesh = spec.add_mesh(name=name)
    verts = np.concatenate([np.c_[poly, np.full(len(poly), z)] for poly, z in layers], axis=0)
    mesh.uservert = verts.reshape(-1).tolist()
    return mesh


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> list[float]:
    """MuJoCo ``xyaxes`` of a camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    look = target - eye
    n = np.linalg.norm(look)
    if n == 0:
        raise ValueError("camera eye and target coincide")
    look /= n
    right = np.cross(look, np.asarray(up, float))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError(f"camera 'up' {tuple(up)} is parallel to the viewing direction")
    right /= np.linalg.norm(right)
    return [*right, *np.cross(right, look)]


# ---------------------------------------------------------------------------------------------- hand
@dataclass(frozen=True)
class Servo:
    """A position servo: force = kp (target - q) - kv dq (N or N m), target limited to ``ctrlrange``."""

    kp: float
    kv: float
    ctrlrange: tuple[float, float] = (-1.0, 1.0)

    @staticmethod
    def critical(kp: float, inertia: float, ctrlrange: tuple[float, float] = (-1.0, 1.0)) -> Servo:
        """A servo critically damped for the given moved mass (kg) or inertia (kg m^2)."""
        return Servo(kp, 2 * np.sqrt(kp * inertia), ctrlrange)


@dataclass
class Hand:
    """What :func:`add_hand` created: the hand body and, per DoF, its joint and servo (same name)."""

    prefix: str
    body: mujoco.MjsBody
    dofs: tuple[str, ...]
    joints: tuple[str, ...]  # f"{prefix}hand_{dof}"
    actuators: tuple[str, ...]  # same names as the joints

    @property
    def name(self) -> str:
        return f"{self.prefix}hand"


def add_hand(
    spec: mujoco.MjSpec,
    parent: mujoco.MjsBody,
    servos: Mapping[str, Servo],
    *,
    prefix: str = "",
    dofs: Sequence[str] = ("x", "y", "z", "yaw"),
    pos: Sequence[float] = (0.0, 0.0, 0.0),
    quat: Sequence[float] | None = None,
    armature: float = 0.01,
    gravcomp: float = 1.0,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Hand:
    """A hand body ``{prefix}hand`` under ``parent`` moved by position servos on the given DoFs.

    ``dofs`` is a subsequence of ``("x", "y", "z", "roll", "pitch", "yaw")`` in that order: slides along the
    parent's axes, then intrinsic x-y-z hinges. At zero joint positions the hand frame is ``pos`` / ``quat`` in
    the parent. ``servos`` gives each DoF's servo; ``ranges`` optional joint limits. The hand carries no geom:
    a gripper adds its own. Its servos are added to the spec's actuators now, in DoF order.
    """
    dofs = tuple(dofs)
    bad = [d for d in dofs if d not in DOFS]
    if bad or list(dofs) != sorted(dofs, key=DOFS.index) or len(set(dofs)) != len(dofs):
        raise ValueError(f"hand dofs must be distinct, in the order {DOFS}; got {dofs}")
    missing = [d for d in dofs if d not in servos]
    if missing:
        raise ValueError(f"no servo given for hand dof(s) {missing}")
    kw = {"pos": list(pos)}
    if quat is not None:
        kw["quat"] = list(quat)
    body = parent.add_body(name=f"{prefix}hand", gravcomp=gravcomp, **kw)
    names = []
    for d in dofs:
        jtype = mujoco.mjtJoint.mjJNT_SLIDE if d in SLIDE_DOFS else mujoco.mjtJoint.mjJNT_HINGE
        jkw = {}
        if ranges and d in ranges:
            jkw = {"range": list(ranges[d]), "limited": mujoco.mjtLimited.mjLIMITED_TRUE}
        body.add_joint(name=f"{prefix}hand_{d}", type=jtype, axis=_AXES[d], armature=armature, **jkw)
        names.append(f"{prefix}hand_{d}")
    for d, jname in zip(dofs, names, strict=True):
        s = servos[d]
        add_position_servo(spec, jname, s)
    return Hand(prefix=prefix, body=body, dofs=dofs, joints=tuple(names), actuators=tuple(names))


def add_position_servo(spec: mujoco.MjSpec, joint: str, servo: Servo, name: str | None = None):
    """A position actuator on ``joint`` (named like it unless ``name`` is given)."""
    return spec.add_actuator(
        name=name or joint,
        target=joint,
        trntype=mujoco.mjtTrn.mjTRN_JOINT,
        gaintype=mujoco.mjtGain.mjGAIN_FIXED,
        biastype=mujoco.mjtBias.mjBIAS_AFFINE,
        gainprm=[servo.kp] + [0] * 9,
        biasprm=[0, -servo.kp, -servo.kv] + [0] * 7,
        ctrlrange=list(servo.ctrlrange),
    )


# ---------------------------------------------------------------------------------------------- gripper
PAD_BIT, GRIP_BIT = 4, 8
"""Default collision bits: a pad (contype PAD_BIT) touches only geoms with conaffinity PAD_BIT, i.e. the
gripped surfaces of held objects (contype GRIP_BIT, conaffinity PAD_BIT)."""


@dataclass(frozen=True)
class PadGripperParams:
    """Geometry and compliance of a two-finger gripper with gel pads (SI units).

    Defaults are those of the peg-in-hole scene (``taclab.sim.config.SceneConfig``), where ``opening`` is the
    peg's half width: the pads' inner faces rest ``opening`` from the grasp centre at finger position zero.
    """

    opening: float = 0.00635  # m, rest distance of each pad's inner face from the grasp centre
    pad_width: float = 0.016  # m, along the hand's x
    pad_height: float = 0.016  # m, along the hand's z
    pad_thickness: float = 0.003  # m
    gel_shear_modulus: float = 1.0e5  # Pa
    gel_layer: float = 0.0002  # m, the taxel plate sits this far proud of the pad
    taxels: tuple[int, int] = (32, 32)  # rows along z, columns along x
    pad_friction: float = 1.0
    gel_solref: tuple[float, float] = (-1.0e3, -1.0)  # MuJoCo direct solref (negative: stiffness, damping)
    gel_impedance: float = 0.9  # solimp d0 = d1 of the gel contact
    palm_mass: float = 0.5  # kg
    finger_mass: float = 0.1  # kg, each finger with its link
    pad_mass: float = 0.01  # kg, the moving gel surface
    finger_range: tuple[float, float] = (-0.004, 0.02)  # m, each finger's travel outward from rest (negative: in)
    finger_damping: float = 5.0  # N s/m
    finger_force_range: float = 200.0  # N, control range of the finger force actuators
    armature: float = 0.01
    pad_contype: int = PAD_BIT
    pad_conaffinity: int = GRIP_BIT
    metal_material: str = "metal"
    gel_material: str = "gel"

    @property
    def palm_z(self) -> float:
        """Height of the palm's centre above the grasp centre (m)."""
        return self.pad_height / 2 + 0.012

    def shear_stiffness(self) -> tuple[float, float]:
        """Stiffness of the gel's shear springs: k = G A / t (N/m) for the slides, G J / t (N m/rad) for the
        twist, J the polar moment of the pad area."""
        area = self.pad_width * self.pad_height
        t = self.pad_thickness
        k_shear = self.gel_shear_modulus * area / t
        k_twist = self.gel_shear_modulus * area * (self.pad_width**2 + self.pad_height**2) / 12 / t
        return k_shear, k_twist


@dataclass
class PadGripper:
    """Names of what :func:`add_pad_gripper` created, pad 0 (-y side) first."""

    prefix: str
    params: PadGripperParams
    fingers: tuple[str, str]  # finger bodies, slide joints and force actuators share these names
    pads: tuple[str, str]  # pad (gel surface) bodies
    pad_joints: tuple[str, ...]  # per pad: slide x, slide z, twist
    gels: tuple[str, str]  # the pads' collision geoms
    taxel_geoms: tuple[str, str]  # taxel plate geoms (and meshes)
    sensors: tuple[str, str]  # native tactile sensors
    palm: str

    @property
    def joints(self) -> tuple[str, ...]:
        """Every joint the gripper adds (fingers, then the pads' shear joints)."""
        return (*self.fingers, *self.pad_joints)


SIDES = (-1.0, 1.0)
"""y side of pad 0 and pad 1 in the hand frame."""


def add_pad_gripper(
    spec: mujoco.MjSpec, hand: mujoco.MjsBody, params: PadGripperParams, *, prefix: str = ""
) -> PadGripper:
    """Palm, two force-driven fingers with gel pads and taxel plates, on ``hand``.

    The palm (``{prefix}palm``, carrying ``palm_mass``) and the finger links do not collide; each pad's gel box
    ``{prefix}pad{k}_gel`` touches what has ``pad_contype`` in its conaffinity. Each finger is a slide joint
    ``{prefix}finger{k}`` pushed inward by a force actuator of the same name (positive control closes, N).
    The pad surface ``{prefix}pad{k}`` slides along x and z and twists about its normal relative to the finger
    against the gel's shear springs (critically damped). A taxel plate ``{prefix}pad{k}_taxels`` (mesh and geom,
    group 3) is read by the tactile sensor ``{prefix}pad{k}_tactile``: depth, then the two sliding speeds per
    taxel. Materials named in ``params`` must exist (see :func:`ensure_materials`).
    """
    p = params
    t = p.pad_thickness
    palm_z = p.palm_z
    palm = f"{prefix}palm"
    hand.add_geom(
        name=palm,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[0.012, p.opening + 0.012, 0.006],
        pos=[0, 0, palm_z],
        material=p.metal_material,
        mass=p.palm_mass,
        contype=0,
        conaffinity=0,
    )
    k_shear, k_twist = p.shear_stiffness()
    pad_inertia = p.pad_mass * (p.pad_width**2 + p.pad_height**2) / 12
    fingers, pads, pad_joints, gels, plates, sensors = [], [], [], [], [], []
    for k, side in enumerate(SIDES):
        fname = f"{prefix}finger{k}"
        finger = hand.add_body(name=fname, pos=[0, side * p.opening, 0], gravcomp=1.0)
        finger.add_joint(
            name=fname,
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, side, 0],
            range=list(p.finger_range),
            damping=p.finger_damping,
            armature=p.armature,
        )
        finger.add_geom(
            name=f"{fname}_link",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[p.pad_width / 2 + 0.001, 0.002, (palm_z + 0.004) / 2],
            pos=[0, side * (t + 0.002), (palm_z + 0.004) / 2 - p.pad_height / 2 - 0.002],
            material=p.metal_material,
            mass=p.finger_mass,
            contype=0,
            conaffinity=0,
        )
        pname = f"{prefix}pad{k}"
        pad = finger.add_body(name=pname, gravcomp=1.0)
        for axis, jtype, stiff, inertia in (
            ("x", mujoco.mjtJoint.mjJNT_SLIDE, k_shear, p.pad_mass),
            ("z", mujoco.mjtJoint.mjJNT_SLIDE, k_shear, p.pad_mass),
            ("twist", mujoco.mjtJoint.mjJNT_HINGE, k_twist, pad_inertia),
        ):
            pad.add_joint(
                name=f"{pname}_{axis}",
                type=jtype,
                axis={"x": [1, 0, 0], "z": [0, 0, 1], "twist": [0, side, 0]}[axis],
                stiffness=stiff,
                damping=2 * np.sqrt(stiff * inertia),
            )
            pad_joints.append(f"{pname}_{axis}")
        # the collision pad: its inner face is the finger body's origin plane
        pad.add_geom(
            name=f"{pname}_gel",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[p.pad_width / 2, t / 2, p.pad_height / 2],
            pos=[0, side * t / 2, 0],
            material=p.gel_material,
            mass=p.pad_mass,
            friction=[p.pad_friction, 0.005, 0.0001],
            solref=list(p.gel_solref),
            solimp=[p.gel_impedance, p.gel_impedance, 0.001, 0.5, 2],
            contype=p.pad_contype,
            conaffinity=p.pad_conaffinity,
            condim=4,
        )
        # taxel plate: mesh x -> hand x, mesh y -> up the pad, mesh z -> towards the grasp centre
        mname = f"{pname}_taxels"
        m = spec.add_mesh(name=mname)
        rows, cols = p.taxels
        m.make_plate([cols, rows])
        m.scale = [p.pad_width / 2, p.pad_height / 2, 1e-6]
        quat = quat_from_axes(np.array([1.0, 0, 0]), np.array([0.0, 0.0, -side]))
        pad.add_geom(
            name=mname,
            type=mujoco.mjtGeom.mjGEOM_MESH,
            meshname=mname,
            pos=[0, -side * p.gel_layer, 0],
            quat=quat,
            contype=0,
            conaffinity=0,
            group=3,
            rgba=[0.2, 0.8, 0.2, 0.3],
            mass=0,
        )
        spec.add_sensor(
            name=f"{pname}_tactile",
            type=mujoco.mjtSensor.mjSENS_TACTILE,
            objtype=mujoco.mjtObj.mjOBJ_MESH,
            objname=mname,
            reftype=mujoco.mjtObj.mjOBJ_GEOM,
            refname=mname,
        )
        fingers.append(fname)
        pads.append(pname)
        gels.append(f"{pname}_gel")
        plates.append(mname)
        sensors.append(f"{pname}_tactile")
    return PadGripper(
        prefix=prefix,
        params=p,
        fingers=tuple(fingers),
        pads=tuple(pads),
        pad_joints=tuple(pad_joints),
        gels=tuple(gels),
        taxel_geoms=tuple(plates),
        sensors=tuple(sensors),
        palm=palm,
    )


def add_finger_actuators(spec: mujoco.MjSpec, gripper: PadGripper) -> tuple[str, str]:
    """One force actuator per finger, named like the finger: positive control closes it with that force (N).

    Kept apart from :func:`add_pad_gripper` so that a scene orders its actuators as it likes (the peg scene adds
    its hand servos first)."""
    r = gripper.params.finger_force_range
    for f in gripper.fingers:
        spec.add_actuator(
            name=f,
            target=f,
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            gear=[-1, 0, 0, 0, 0, 0],
            ctrlrange=[-r, r],
        )
    return gripper.fingers


# ---------------------------------------------------------------------------------------------- fixtures
@dataclass(frozen=True)
class Prism:
    """A convex polygon ``(n, 2)`` (m) extruded from ``z0`` to ``z1`` in its body's frame, with an optional
    45-degree ``chamfer`` (m) around its bottom face (a lead-in for parts that are inserted)."""

    polygon: np.ndarray
    z0: float
    z1: float
    chamfer: float = 0.0

    def layers(self) -> list[tuple[np.ndarray, float]]:
        if self.chamfer <= 0:
            return [(self.polygon, self.z0), (self.polygon, self.z1)]
        c = self.chamfer
        return [(inset_polygon(self.polygon, c), self.z0), (self.polygon, self.z0 + c), (self.polygon, self.z1)]


@dataclass(frozen=True)
class Hull:
    """The convex hull of horizontal point layers ``((vertices (n, 2), z), ...)`` in its body's frame: a piece no
    extruded polygon makes (a wedge, a sloped face)."""

    points: tuple[tuple[np.ndarray, float], ...]

    def layers(self) -> list[tuple[np.ndarray, float]]:
        return [(np.asarray(p, float).reshape(-1, 2), z) for p, z in self.points]


def inset_polygon(polygon: np.ndarray, d: float) -> np.ndarray:
    """A convex polygon (either winding) with every edge moved inward by ``d`` (m), corners mitred."""
    v = np.asarray(polygon, float)
    area2 = np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])
    e = np.roll(v, -1, axis=0) - v
    n = np.stack([e[:, 1], -e[:, 0]], axis=1) * np.sign(area2)  # outward normals
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    out = np.empty_like(v)
    for i in range(len(v)):
        a, b = n[i - 1], n[i]  # the edges meeting at vertex i
        m = (a + b) / (1 + a @ b)  # mitre: m . a = m . b = 1
        out[i] = v[i] - d * m
    return out


def rectangle(cx: float, cy: float, hx: float, hy: float) -> np.ndarray:
    """The counter-clockwise corners (4, 2) of an axis-aligned rectangle of half sizes (hx, hy) at (cx, cy)."""
    return np.array([[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]])


@dataclass(frozen=True)
class Box:
    """A box of half sizes ``half`` centred at ``pos`` in its body's frame, optionally rotated by ``quat``."""

    pos: tuple[float, float, float]
    half: tuple[float, float, float]
    quat: tuple[float, float, float, float] | None = None


def add_fixture(
    spec: mujoco.MjSpec,
    parent: mujoco.MjsBody,
    name: str,
    pieces: Sequence[Prism | Hull | Box],
    *,
    pos: Sequence[float] | None = None,
    quat: Sequence[float] | None = None,
    material: str | None = None,
    geom: Mapping | None = None,
) -> mujoco.MjsBody:
    """A static body ``name`` made of convex pieces: geoms ``{name}{i}`` (prisms as meshes of the same name,
    boxes as primitives). ``geom`` holds extra geom attributes for every piece (friction, solref, solimp,
    contype, conaffinity, rgba, ...)."""
    kw = {}
    if pos is not None:
        kw["pos"] = list(pos)
    if quat is not None:
        kw["quat"] = list(quat)
    body = parent.add_body(name=name, **kw)
    extra = dict(geom or {})
    if material is not None:
        extra["material"] = material
    for i, piece in enumerate(pieces):
        gname = f"{name}{i}"
        if isinstance(piece, (Prism, Hull)):
            hull_mesh(spec, gname, piece.layers())
            body.add_geom(name=gname, type=mujoco.mjtGeom.mjGEOM_MESH, meshname=gname, **extra)
        elif isinstance(piece, Box):
            bkw = {} if piece.quat is None else {"quat": list(piece.quat)}
            body.add_geom(
                name=gname, type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(piece.pos), size=list(piece.half), **bkw, **extra
            )
        else:
            raise TypeError(f"fixture piece {i} of {name!r} is a {type(piece).__name__}; allowed: Prism, Box")
    return body


# ---------------------------------------------------------------------------------------------- cameras
def add_look_at_camera(
    parent: mujoco.MjsBody,
    name: str,
    eye: Sequence[float],
    target: Sequence[float],
    fovy: float = 45.0,
    up: Sequence[float] = (0.0, 0.0, 1.0),
):
    """A camera at ``eye`` looking at ``target`` (both in ``parent``'s frame), ``fovy`` degrees vertically."""
    return parent.add_camera(name=name, pos=list(np.asarray(eye, float)), xyaxes=look_at(eye, target, up), fovy=fovy)


def add_wrist_camera(
    hand: Hand | mujoco.MjsBody,
    name: str | None = None,
    *,
    pos: Sequence[float] = (-0.05, 0.0, 0.03),
    target: Sequence[float] = (0.0, 0.0, -0.03),
    fovy: float = 100.0,
    up: Sequence[float] = (1.0, 0.0, 0.0),
):
    """A wide camera fixed to the hand (pose in the hand frame), by default behind and above the grasp centre
    looking down past the fingertips. Named ``{prefix}wrist`` for a :class:`Hand` unless ``name`` is given."""
    body = hand.body if isinstance(hand, Hand) else hand
    if name is None:
        name = f"{hand.prefix}wrist" if isinstance(hand, Hand) else "wrist"
    return add_look_at_camera(body, name, pos, target, fovy, up)


# ---------------------------------------------------------------------------------------------- after compiling
def ids(model: mujoco.MjModel, objtype: mujoco.mjtObj, names: Iterable[str]) -> tuple[int, ...]:
    """Ids of named objects; raises ``KeyError`` naming one that the model does not have."""
    out = []
    for n in names:
        i = mujoco.mj_name2id(model, objtype, n)
        if i < 0:
            raise KeyError(f"the model has no {objtype.name[6:].lower()} named {n!r}")
        out.append(i)
    return tuple(out)


@dataclass
class TaxelLayout:
    """Where each pad's sensor values go on its (rows, cols) grid."""

    sensor_adr: int  # start of this pad's sensordata
    n: int  # taxels
    order: np.ndarray  # (rows*cols,) index into the sensor's vertex list, row-major
    rows: int
    cols: int
    local_xz: np.ndarray  # (rows, cols, 2) taxel positions (m) in the pad frame: x, z


def taxel_layout(model: mujoco.MjModel, sensor: str, geom: str, rows: int, cols: int) -> TaxelLayout:
    """The grid layout of a tactile sensor's taxel plate: rows from the top of the pad down, columns along +x."""
    (sid,) = ids(model, mujoco.mjtObj.mjOBJ_SENSOR, [sensor])
    (gid,) = ids(model, mujoco.mjtObj.mjOBJ_GEOM, [geom])
    mid = model.geom_dataid[gid]
    adr, num = model.mesh_vertadr[mid], model.mesh_vertnum[mid]
    verts = model.mesh_vert[adr : adr + num]
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, model.geom_quat[gid])
    local = verts @ mat.reshape(3, 3).T + model.geom_pos[gid]
    x, z = local[:, 0], local[:, 2]
    order = np.lexsort((x, -z))
    if num != rows * cols:
        raise RuntimeError(f"taxel plate {geom!r} has {num} vertices, expected {rows * cols}")
    return TaxelLayout(
        sensor_adr=int(model.sensor_adr[sid]),
        n=int(num),
        order=order,
        rows=rows,
        cols=cols,
        local_xz=np.stack([x[order], z[order]], axis=1).reshape(rows, cols, 2),
    )


def plate_with_holes(
    half: tuple[float, float], z0: float, z1: float, holes: Sequence[tuple[float, float, float, float]]
) -> list[Box]:
    """Boxes that tile the plate ``|x| <= half[0], |y| <= half[1], z0 <= z <= z1`` minus rectangular holes
    ``(cx, cy, hx, hy)`` (centre and half sizes, m) cut through it: convex pieces for :func:`add_fixture`.

    The plate is cut into columns at every hole edge along x; each column is split along y around the holes
    that cross it. Holes must lie inside the plate and not overlap."""
    hx_, hy_ = half
    for cx, cy, hx, hy in holes:
        if not (abs(cx) + hx < hx_ and abs(cy) + hy < hy_ and hx > 0 and hy > 0):
            raise ValueError(f"hole {(cx, cy, hx, hy)} is not inside the {2 * hx_} x {2 * hy_} m plate")
    xs = sorted({-hx_, hx_, *(c - h for c, _, h, _ in holes), *(c + h for c, _, h, _ in holes)})
    zc, zh = (z0 + z1) / 2, (z1 - z0) / 2
    pieces = []
    for xa, xb in zip(xs[:-1], xs[1:], strict=True):
        xm = (xa + xb) / 2
        cuts = sorted((cy - hy, cy + hy) for cx, cy, hx, hy in holes if cx - hx < xm < cx + hx)
        edges = [-hy_]
        for lo, hi in cuts:
            if lo < edges[-1]:
                raise ValueError("holes overlap")
            edges += [lo, hi]
        edges.append(hy_)
        for ya, yb in zip(edges[0::2], edges[1::2], strict=True):
            if yb - ya > 1e-9:
                pieces.append(Box(((xa + xb) / 2, (ya + yb) / 2, zc), ((xb - xa) / 2, (yb - ya) / 2, zh)))
    return pieces


class PadFieldReader:
    """Reads the two taxel plates of a :func:`add_pad_gripper` gripper into a tactile field (2 pads, R, C).

    Depth and sliding speeds come from MuJoCo's ``tactile`` sensors (evaluated on demand, so the spec should
    disable sensors during stepping, as :func:`new_spec` does). The normal force of a pad's contacts is shared
    among its taxels in proportion to their depth. The shear is the displacement of the gel surface where it
    touches: the pad surface's slide and twist against the gel's shear springs, evaluated at each taxel.
    Field conventions are those of :class:`taclab.sim.tactile.field.TactileField`.
    """

    def __init__(self, model: mujoco.MjModel, gripper: PadGripper):
        self.model = model
        p = gripper.params
        rows, cols = p.taxels
        self.grid = (rows, cols)
        self.pitch = (p.pad_height / rows, p.pad_width / cols)
        pairs = zip(gripper.sensors, gripper.taxel_geoms, strict=True)
        lays = [taxel_layout(model, s, g, rows, cols) for s, g in pairs]
        self._idx = np.stack([np.stack([lay.sensor_adr + j * lay.n + lay.order for j in range(3)]) for lay in lays])
        self._xz = np.stack([lay.local_xz.reshape(-1, 2) for lay in lays])  # (2, R*C, 2)
        jids = ids(model, mujoco.mjtObj.mjOBJ_JOINT, gripper.pad_joints)
        self._pad_q = np.array([model.jnt_qposadr[j] for j in jids]).reshape(2, 3)  # slide x, slide z, twist
        self._gels = np.array(ids(model, mujoco.mjtObj.mjOBJ_GEOM, gripper.gels))
        self._twist_sign = np.array(SIDES)  # each pad twists about its own outward normal
        self.touch_seconds = 0.0  # time spent reading, for benchmarks

    def capture(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Evaluate the sensors now: raw taxel values (2, 3, R*C), normal force per pad (2,), pad shear joints
        (2, 3). Cheap; :meth:`fields_from` turns captures into fields."""
        t0 = time.perf_counter()
        m = self.model
        flag = int(mujoco.mjtDisableBit.mjDSBL_SENSOR)
        m.opt.disableflags &= ~flag
        try:
            mujoco.mj_sensorVel(m, data)
        finally:
            m.opt.disableflags |= flag
        out = data.sensordata[self._idx], self.normal_force(data), data.qpos[self._pad_q]
        self.touch_seconds += time.perf_counter() - t0
        return out

    def normal_force(self, data: mujoco.MjData) -> np.ndarray:
        """Total normal force (N) of the contacts on each pad, (2,)."""
        n = data.ncon
        out = np.zeros(2)
        if n == 0:
            return out
        geom = data.contact.geom[:n]
        adr = data.contact.efc_address[:n]
        for k in range(2):
            sel = ((geom[:, 0] == self._gels[k]) | (geom[:, 1] == self._gels[k])) & (adr >= 0)
            out[k] = data.efc_force[adr[sel]].sum()  # a contact's first constraint row is its normal force
        return out

    def read(self, data: mujoco.MjData) -> TactileField:
        """The field now, (2 pads, R, C)."""
        return self.fields_from([self.capture(data)])[0]

    def fields_from(self, captures) -> TactileField:
        """Fields (T, 2 pads, R, C) from a list of captures."""
        t0 = time.perf_counter()
        rows, cols = self.grid
        t = len(captures)
        raw = np.stack([c[0] for c in captures])
        fn = np.stack([c[1] for c in captures])
        q = np.stack([c[2] for c in captures])
        depth = raw[:, :, 0]
        slip = np.moveaxis(raw[:, :, 1:], 2, -1)
        w = (depth > 0).astype(np.float64)
        ang = q[..., 2] * self._twist_sign
        cos, sin = np.cos(ang)[..., None], np.sin(ang)[..., None]
        x, z = self._xz[None, ..., 0], self._xz[None, ..., 1]
        shear = np.empty((t, 2, rows * cols, 2))
        np.multiply(q[..., 0, None] + (cos - 1) * x + sin * z, w, out=shear[..., 0])
        np.multiply(q[..., 1, None] - sin * x + (cos - 1) * z, -w, out=shear[..., 1])  # rows run down the pad
        total = depth.sum(axis=-1)
        force = depth * np.where(total > 0, fn / np.where(total > 0, total, 1.0), 0.0)[..., None]
        field = TactileField(
            depth=depth.reshape(t, 2, rows, cols),
            shear=shear.reshape(t, 2, rows, cols, 2),
            slip=slip.reshape(t, 2, rows, cols, 2),
            force=force.reshape(t, 2, rows, cols),
            pitch=self.pitch,
        )
        self.touch_seconds += time.perf_counter() - t0
        return field
