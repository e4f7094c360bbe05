"""The VITAL tasks in simulation: a six-joint hand with a gel-pad gripper and magnetic skins, on a table with
one target fixture (plug socket, USB port, card reader, lock) or a block to pick.

World frame: the table top is the plane ``z = 0``; the target fixture stands on it at ``target_xy`` (a body
whose position changes per episode). The hand is built by :func:`taclab.sim.builders.add_hand` with all six
DoFs: its joints read as the end-effector pose directly (position in the world, intrinsic x-y-z angles), and
its frame origin is the grasp centre, midway between the pads. At zero angles the hand's z axis points up and
the fingers hang below; the fingers close along the hand's y axis.

Each held object is a free body held by friction only: its frame is at its tip (the lowest point, on its
axis), its axis along the hand's z, and the hand grips it ``grip_z`` above the tip. Inserted parts have a small
chamfer at their tip. Every part's size is in :data:`PARTS` and in ``docs/vital.md``.

Nothing here learns or knows about Gymnasium: :class:`VitalSim` sets up episodes, moves the hand's servo targets
over the physics sub-steps of one control period, reads the pads and renders the cameras.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import mujoco
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.sim import builders as B
from taclab.sim.tactile.field import TactileField

TASKS = ("plug", "usb", "card", "key", "pick")
BACKGROUNDS = ("green", "textured", "cluttered")
LIGHTINGS = ("default", "random")
MASK_LABELS = {"background": 0, "gripper": 1, "object": 2, "target": 3}
"""Values of the wrist segmentation mask."""

_FIX_BIT = 1  # table, fixtures and the parts of objects that touch them
_N_TEXTURES = 8
_N_DISTRACTORS = 6
_GREEN = (0.16, 0.62, 0.24, 1.0)
CARD_HALF_LENGTH = 0.0428  # m, half the length of a payment card (85.6 mm)


class VitalSceneConfig(BaseModel):
    """Physical parameters of the VITAL scenes (SI units). Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestep: float = Field(
        0.001, gt=0, le=0.002, description="physics step (s); the stiff gel contacts need 1 ms with light parts"
    )
    impratio: float = Field(
        30.0, ge=1, description="MuJoCo's frictional-to-normal impedance ratio: above 1 a held part creeps less"
    )
    control_hz: float = Field(6.0, gt=0.5, le=50, description="control rate; sub-steps = round(1 / (hz timestep))")
    hand_kp: float = Field(4000.0, gt=0, description="stiffness of the x, y, z servos (N/m)")
    rot_kp: float = Field(30.0, gt=0, description="stiffness of the roll, pitch, yaw servos (N m/rad)")
    hand_mass: float = Field(0.5, gt=0, description="palm mass (kg)")
    grip_force: float = Field(10.0, gt=0, le=100, description="closing force of each finger at command +1 (N)")
    pad_width: float = Field(0.016, gt=0.005, description="gel pad extent along the hand's x (m)")
    pad_height: float = Field(0.016, gt=0.005, description="gel pad extent along the hand's z (m)")
    pad_thickness: float = Field(0.003, gt=0.0005, description="gel pad thickness (m)")
    taxels: tuple[int, int] = Field((12, 12), description="taxels per pad (rows along z, columns along x)")
    gel_stiffness: float = Field(8000.0, gt=0, description="normal stiffness of one gel contact point (N/m)")
    gel_damping: float = Field(30.0, ge=0, description="normal damping of one gel contact point (N s/m)")
    gel_shear_modulus: float = Field(1.0e5, gt=0, description="shear modulus of the gel (Pa)")
    gel_layer: float = Field(0.0002, ge=0, description="the taxel plate sits this far proud of the pad (m)")
    pad_friction: float = Field(1.0, gt=0, description="friction coefficient gel pad / held object")
    fixture_friction: float = Field(0.3, ge=0, description="friction coefficient object / fixture")
    table_friction: float = Field(0.6, ge=0, description="friction coefficient object / table")
    plug_clearance_mm: float = Field(0.8, gt=0, le=3, description="plug blades: slot minus blade width (mm)")
    usb_clearance_mm: float = Field(0.3, gt=0, le=3, description="USB plug: port minus plug width (mm)")
    key_clearance_mm: float = Field(0.5, gt=0, le=3, description="key blade: keyway minus blade width (mm)")
    card_slot_mm: float = Field(2.0, gt=0.9, le=6, description="width of the card reader's slot (mm)")
    wrist_fovy: float = Field(100.0, gt=20, lt=170, description="vertical field of view of the wrist camera (deg)")
    wrist_pos: tuple[float, float, float] = Field(
        (-0.06, 0.0, 0.025), description="wrist camera position in the hand frame (m)"
    )
    wrist_target: tuple[float, float, float] = Field(
        (0.0, 0.0, -0.07), description="point the wrist camera looks at, in the hand frame (m)"
    )

    @field_validator("taxels")
    @classmethod
    def _taxels(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (4 <= v[0] <= 64 and 4 <= v[1] <= 64):
            raise ValueError(f"taxels must be between 4 and 64 per side, got {v}")
        return v

    @property
    def substeps(self) -> int:
        return max(1, int(round(1.0 / (self.control_hz * self.timestep))))


# ------------------------------------------------------------------------------------------------------ parts
@dataclass(frozen=True)
class Part:
    """A task's held object and target, in their own frames (m).

    The object frame is at the object's tip; ``grip`` is the box the pads close on (centre z ``grip_z``, half
    sizes); ``pieces`` are the other collision pieces. The target's ``entry`` is where the object's tip must be,
    in the target frame, for the insertion to begin; ``depth`` how far below it the tip must go to succeed.
    """

    name: str
    grip_half: tuple[float, float, float]
    grip_z: float
    pieces: tuple  # Prism | Box in the object frame
    mass: float
    target_pieces: tuple  # Prism | Box in the target frame
    entry: tuple[float, float, float]
    depth: float
    start_offset: tuple[float, float, float]  # centre of the start region: hand minus entry (m)
    start_half: tuple[float, float, float]  # half extent of the start region (m)
    object_rgba: tuple[float, float, float, float]
    target_rgba: tuple[float, float, float, float]


def make_part(task: str, cfg: VitalSceneConfig) -> Part:
    """The geometry of a task's parts (see ``docs/vital.md`` for the figures)."""
    grip_to_entry_z = 0.10  # the grasp centre starts 10 cm above the target (appendix A2)
    if task == "plug":
        c = cfg.plug_clearance_mm / 1000
        blade = (0.00075, 0.0032)  # half sizes: 1.5 x 6.4 mm blades, 12.7 mm apart, 16 mm long
        xs = (-0.00635, 0.00635)
        pieces = tuple(B.Prism(B.rectangle(x, 0, *blade), 0.0, 0.016, 0.0003) for x in xs)
        holes = [(x, 0.0, blade[0] + c / 2, blade[1] + c / 2) for x in xs]
        target = (B.Box((0, 0, 0.002), (0.025, 0.02, 0.002)), *B.plate_with_holes((0.025, 0.02), 0.004, 0.02, holes))
        return Part(
            "plug", (0.014, 0.008, 0.011), 0.027, pieces, 0.03, target, (0, 0, 0.02), 0.010,
            (0, 0, grip_to_entry_z), (0.03, 0.03, 0.0), (0.92, 0.92, 0.9, 1), (0.96, 0.96, 0.94, 1),
        )  # fmt: skip
    if task == "usb":
        c = cfg.usb_clearance_mm / 1000
        plug = (0.006, 0.00225)  # 12 x 4.5 mm USB-A plug, 12 mm long
        pieces = (B.Prism(B.rectangle(0, 0, *plug), 0.0, 0.012, 0.0003),)
        target = (
            B.Box((0, 0, 0.005), (0.02, 0.015, 0.005)),
            *B.plate_with_holes((0.02, 0.015), 0.01, 0.025, [(0, 0, plug[0] + c / 2, plug[1] + c / 2)]),
        )
        return Part(
            "usb", (0.009, 0.004, 0.015), 0.027, pieces, 0.012, target, (0, 0, 0.025), 0.008,
            (0, 0, grip_to_entry_z), (0.03, 0.03, 0.0), (0.15, 0.3, 0.75, 1), (0.25, 0.25, 0.28, 1),
        )  # fmt: skip
    if task == "key":
        c = cfg.key_clearance_mm / 1000
        blade = (0.004, 0.001)  # 8 x 2 mm blade, 25 mm long
        pieces = (B.Prism(B.rectangle(0, 0, *blade), 0.0, 0.025, 0.0005),)
        target = (
            B.Box((0, 0, 0.0025), (0.02, 0.02, 0.0025)),
            *B.plate_with_holes((0.02, 0.02), 0.005, 0.035, [(0, 0, blade[0] + c / 2, blade[1] + c / 2)]),
        )
        return Part(
            "key", (0.012, 0.0015, 0.011), 0.036, pieces, 0.01, target, (0, 0, 0.035), 0.020,
            (0, 0, grip_to_entry_z), (0.03, 0.03, 0.0), (0.85, 0.7, 0.25, 1), (0.55, 0.5, 0.45, 1),
        )  # fmt: skip
    if task == "card":
        w = cfg.card_slot_mm / 1000
        half_len, wall = 0.04, 0.015  # an 80 mm reader; the slot runs along x, open at the top and both ends
        target = (
            B.Box((0, w / 2 + wall / 2, 0.02), (half_len, wall / 2, 0.02)),
            B.Box((0, -(w / 2 + wall / 2), 0.02), (half_len, wall / 2, 0.02)),
            B.Box((0, 0, 0.0125), (half_len, w / 2 + 1e-4, 0.0125)),
        )
        # the card (85.6 x 54 x 0.76 mm) is gripped by a 3 mm thick tab on its top edge (soft pads would squeeze
        # through a bare 0.76 mm card); its bottom edge enters the slot at the reader's +x end and the swipe runs
        # towards -x, towards the wrist camera
        card = (B.Box((0, 0, 0.027), (CARD_HALF_LENGTH, 0.00038, 0.027)),)
        return Part(
            "card", (0.012, 0.0015, 0.0095), 0.0475, card, 0.006, target, (half_len, 0, 0.04), 0.003,
            (0.015 + CARD_HALF_LENGTH, 0, 0.015 + 0.0475), (0.02, 0.02, 0.01), (0.2, 0.35, 0.8, 1), (0.3, 0.3, 0.32, 1),
        )  # fmt: skip
    if task == "pick":
        return Part(
            "pick", (0.0125, 0.0125, 0.0125), 0.0125, (), 0.05, (), (0, 0, 0), 0.03,
            (0, 0, 0.0125 + grip_to_entry_z), (0.03, 0.03, 0.0), (0.85, 0.25, 0.2, 1), (0, 0, 0, 0),
        )  # fmt: skip
    raise ValueError(f"unknown VITAL task {task!r}; allowed: {', '.join(TASKS)}")


# ------------------------------------------------------------------------------------------------------ scene
@dataclass
class VitalScene:
    """A compiled VITAL scene and the ids the simulation needs."""

    task: str
    config: VitalSceneConfig
    part: Part
    model: mujoco.MjModel
    hand: B.Hand
    gripper: B.PadGripper
    hand_qpos: np.ndarray  # (6,) qpos addresses of x, y, z, roll, pitch, yaw
    hand_dof: np.ndarray  # (6,)
    hand_act: np.ndarray  # (6,) servo actuators
    finger_act: np.ndarray  # (2,)
    finger_qpos: np.ndarray  # (2,)
    gripper_qpos: np.ndarray  # every gripper joint's qpos address (fingers, then pad shear joints)
    object_body: int
    object_qpos: int
    object_dof: int
    object_geoms: np.ndarray  # geom ids of the held object
    target_body: int
    target_geoms: np.ndarray
    gel_geoms: np.ndarray
    table_geom: int
    backdrop_geoms: np.ndarray
    distractor_bodies: np.ndarray
    texture_materials: np.ndarray  # material ids of the procedural textures
    green_material: int
    mask_lut: np.ndarray  # (ngeom + 1,) mask label of each geom id (+1: background is -1)
    light: int
    gel_calibrated: bool = False


def gel_solref(cfg: VitalSceneConfig, inv_mass: float, impedance: float = 0.9) -> tuple[float, float]:
    """Direct solref of a gel contact with constraint inverse inertia ``inv_mass`` giving ``gel_stiffness`` N/m
    (see :func:`taclab.sim.scene.gel_solref`)."""
    scale = (1 - impedance) / impedance * inv_mass
    return cfg.gel_stiffness * scale, cfg.gel_damping * scale


def build_vital_scene(task: str, cfg: VitalSceneConfig | None = None) -> VitalScene:
    """Compile the scene of one task. Raises ``ValueError`` for an unknown task."""
    cfg = cfg or VitalSceneConfig()
    part = make_part(task, cfg)
    dt = cfg.timestep
    spec = B.new_spec(f"vital_{task}", timestep=dt, center=(0, 0, 0.05), extent=0.4)
    spec.option.impratio = cfg.impratio
    spec.visual.quality.offsamples = 0  # no multisampling: 128 x 128 camera images render about twice as fast
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 640, 480
    B.ensure_materials(
        spec,
        {"metal": B.METAL_RGBA, "gel": B.GEL_RGBA, "green": _GREEN, "object": part.object_rgba},
    )
    _add_textures(spec)
    wb = spec.worldbody
    wb.add_light(
        name="key",
        pos=[0.2, -0.3, 0.8],
        dir=[-0.2, 0.3, -0.8],
        castshadow=False,
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
    )
    hard = dict(solimp=[B.HARD_IMPEDANCE, B.HARD_IMPEDANCE, 0.001, 0.5, 2], solref=[2 * dt, 1.0])
    B.add_floor(
        spec,
        size=0.6,
        rgba=_GREEN,
        collide=True,
        name="table",
        material="green",
        friction=[cfg.table_friction, 0.005, 0.0001],
        **hard,
    )
    # a green backdrop behind and beside the table (the paper's green screen)
    for i, (pos, half) in enumerate(
        [((0, 0.45, 0.3), (0.6, 0.01, 0.3)), ((-0.45, 0, 0.3), (0.01, 0.6, 0.3)), ((0.45, 0, 0.3), (0.01, 0.6, 0.3))]
    ):
        wb.add_geom(
            name=f"backdrop{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            pos=list(pos),
            size=list(half),
            material="green",
            rgba=list(_GREEN),
            contype=0,
            conaffinity=0,
        )
    # target fixture
    if part.target_pieces:
        B.ensure_materials(spec, {"target": part.target_rgba})
        B.add_fixture(
            spec,
            wb,
            "target",
            part.target_pieces,
            pos=(0, 0, 0),
            material="target",
            geom=dict(friction=[cfg.fixture_friction, 0.005, 0.0001], contype=_FIX_BIT, conaffinity=_FIX_BIT, **hard),
        )
    else:
        wb.add_body(name="target", pos=[0, 0, 0])
    # visual-only distractors, parked under the table unless the background is cluttered
    shapes = [mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_SPHERE]
    for i in range(_N_DISTRACTORS):
        d = wb.add_body(name=f"distractor{i}", pos=[0, 0, -1.0])
        d.add_geom(
            name=f"distractor{i}",
            type=shapes[i % 3],
            size=[0.02 + 0.004 * i, 0.015 + 0.003 * i, 0.02 + 0.005 * (i % 3)],
            pos=[0, 0, 0.02 + 0.005 * (i % 3)],
            rgba=[0.5, 0.5, 0.5, 1],
            contype=0,
            conaffinity=0,
        )

    # hand with six servos and the pad gripper
    lin = B.Servo.critical(cfg.hand_kp, cfg.hand_mass + 0.25, (-0.6, 0.6))
    zs = B.Servo.critical(cfg.hand_kp, cfg.hand_mass + 0.25, (-0.05, 0.6))
    rot_inertia = 0.01 + cfg.hand_mass * 0.02**2  # armature + the palm about the grasp centre
    rp = B.Servo.critical(cfg.rot_kp, rot_inertia, (-math.pi / 2, math.pi / 2))
    yaw = B.Servo.critical(cfg.rot_kp, rot_inertia, (-4 * math.pi, 4 * math.pi))
    hand = B.add_hand(
        spec,
        wb,
        {"x": lin, "y": lin, "z": zs, "roll": rp, "pitch": rp, "yaw": yaw},
        dofs=B.DOFS,
        pos=(0, 0, 0),
    )
    k0, b0 = gel_solref(cfg, 1.0 / max(part.mass, 0.005))
    params = B.PadGripperParams(
        opening=part.grip_half[1],
        pad_width=cfg.pad_width,
        pad_height=cfg.pad_height,
        pad_thickness=cfg.pad_thickness,
        gel_shear_modulus=cfg.gel_shear_modulus,
        gel_layer=cfg.gel_layer,
        taxels=tuple(cfg.taxels),
        pad_friction=cfg.pad_friction,
        gel_solref=(-k0, -b0),
        palm_mass=cfg.hand_mass,
    )
    gripper = B.add_pad_gripper(spec, hand.body, params)
    B.add_finger_actuators(spec, gripper)
    B.add_wrist_camera(hand, "wrist", pos=cfg.wrist_pos, target=cfg.wrist_target, fovy=cfg.wrist_fovy)

    # held object
    obj = wb.add_body(name="object", pos=[0, 0, 0.3])
    obj.add_freejoint(name="object")
    mix = dict(
        # the object's friction is the smaller of each pair's, and its solmix 0: every pair takes the pad's, the
        # fixture's or the table's own parameters
        friction=[min(cfg.pad_friction, cfg.fixture_friction, cfg.table_friction), 0.005, 0.0001],
        solmix=0.0,
        condim=4,
        **hard,
    )
    gx, gy, gz = part.grip_half
    obj.add_geom(
        name="object_grip",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[0, 0, part.grip_z],
        size=[gx, gy, gz],
        material="object",
        mass=part.mass * (0.8 if part.pieces else 1.0),
        contype=_FIX_BIT | B.GRIP_BIT,
        conaffinity=_FIX_BIT | B.PAD_BIT,
        **mix,
    )
    for i, piece in enumerate(part.pieces):
        name = f"object{i}"
        if isinstance(piece, B.Prism):
            B.hull_mesh(spec, name, piece.layers())
            shape: dict = dict(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=name)
        else:
            shape = dict(type=mujoco.mjtGeom.mjGEOM_BOX, pos=list(piece.pos), size=list(piece.half))
        obj.add_geom(
            name=name,
            **shape,
            material="metal" if isinstance(piece, B.Prism) else "object",
            mass=part.mass * 0.2 / len(part.pieces),
            contype=_FIX_BIT,
            conaffinity=_FIX_BIT,
            **mix,
        )
    B.add_look_at_camera(wb, "third", eye=(0.32, -0.42, 0.42), target=(0.0, 0.0, 0.03), fovy=50)
    model = spec.compile()
    return _wrap(task, cfg, part, model, hand, gripper)


def _add_textures(spec: mujoco.MjSpec) -> None:
    """Procedural textures for the table and the backdrop (checkers, gradients, noise), one material each."""
    rng = np.random.default_rng(7)
    kinds = [
        (mujoco.mjtBuiltin.mjBUILTIN_CHECKER, mujoco.mjtMark.mjMARK_NONE, 0.0),
        (mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, mujoco.mjtMark.mjMARK_RANDOM, 0.05),
        (mujoco.mjtBuiltin.mjBUILTIN_FLAT, mujoco.mjtMark.mjMARK_RANDOM, 0.2),
        (mujoco.mjtBuiltin.mjBUILTIN_CHECKER, mujoco.mjtMark.mjMARK_EDGE, 0.0),
    ]
    for i in range(_N_TEXTURES):
        builtin, mark, random = kinds[i % len(kinds)]
        c1, c2 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
        spec.add_texture(
            name=f"tex{i}",
            type=mujoco.mjtTexture.mjTEXTURE_2D,
            builtin=builtin,
            rgb1=list(c1),
            rgb2=list(c2),
            mark=mark,
            markrgb=list(rng.uniform(0, 1, 3)),
            random=random,
            width=64,
            height=64,
        )
        spec.add_material(name=f"tex{i}", textures=["", f"tex{i}"], texrepeat=[4 + 2 * i, 4 + 2 * i])


def _wrap(task, cfg, part, model, hand, gripper) -> VitalScene:
    def one(objtype, name):
        return B.ids(model, objtype, [name])[0]

    J, G, BODY = mujoco.mjtObj.mjOBJ_JOINT, mujoco.mjtObj.mjOBJ_GEOM, mujoco.mjtObj.mjOBJ_BODY
    hj = B.ids(model, J, hand.joints)
    obj_body = one(BODY, "object")
    obj_joint = one(J, "object")
    target_body = one(BODY, "target")
    grip_joints = B.ids(model, J, gripper.joints)
    gripper_geoms = B.ids(model, G, [gripper.palm, *(f"{f}_link" for f in gripper.fingers), *gripper.gels])
    lut = np.zeros(model.ngeom + 1, np.uint8)  # index geom id + 1
    lut[np.array(gripper_geoms) + 1] = MASK_LABELS["gripper"]
    object_geoms = np.flatnonzero(model.geom_bodyid == obj_body)
    target_geoms = np.flatnonzero(model.geom_bodyid == target_body)
    lut[object_geoms + 1] = MASK_LABELS["object"]
    lut[target_geoms + 1] = MASK_LABELS["target"]
    return VitalScene(
        task=task,
        config=cfg,
        part=part,
        model=model,
        hand=hand,
        gripper=gripper,
        hand_qpos=model.jnt_qposadr[list(hj)].copy(),
        hand_dof=model.jnt_dofadr[list(hj)].copy(),
        hand_act=np.array(B.ids(model, mujoco.mjtObj.mjOBJ_ACTUATOR, hand.actuators)),
        finger_act=np.array(B.ids(model, mujoco.mjtObj.mjOBJ_ACTUATOR, gripper.fingers)),
        finger_qpos=model.jnt_qposadr[list(B.ids(model, J, gripper.fingers))].copy(),
        gripper_qpos=model.jnt_qposadr[list(grip_joints)].copy(),
        object_body=obj_body,
        object_qpos=int(model.jnt_qposadr[obj_joint]),
        object_dof=int(model.jnt_dofadr[obj_joint]),
        object_geoms=object_geoms,
        target_body=target_body,
        target_geoms=target_geoms,
        gel_geoms=np.array(B.ids(model, G, gripper.gels)),
        table_geom=one(G, "table"),
        backdrop_geoms=np.array(B.ids(model, G, [f"backdrop{i}" for i in range(3)])),
        distractor_bodies=np.array(B.ids(model, BODY, [f"distractor{i}" for i in range(_N_DISTRACTORS)])),
        texture_materials=np.array(B.ids(model, mujoco.mjtObj.mjOBJ_MATERIAL, [f"tex{i}" for i in range(_N_TEXTURES)])),
        green_material=one(mujoco.mjtObj.mjOBJ_MATERIAL, "green"),
        mask_lut=lut,
        light=one(mujoco.mjtObj.mjOBJ_LIGHT, "key"),
    )


# ------------------------------------------------------------------------------------------------------ rotations
def euler_to_mat(rpy: np.ndarray) -> np.ndarray:
    """Rotation matrix of intrinsic x-y-z angles (the hand's roll, pitch, yaw joints)."""
    a, b, c = rpy
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def mat_to_euler(r: np.ndarray, yaw_near: float = 0.0) -> np.ndarray:
    """Intrinsic x-y-z angles of a rotation matrix, the yaw unwrapped to lie within pi of ``yaw_near``."""
    b = math.asin(max(-1.0, min(1.0, r[0, 2])))
    a = math.atan2(-r[1, 2], r[2, 2])
    c = math.atan2(-r[0, 1], r[0, 0])
    c = yaw_near + (c - yaw_near + math.pi) % (2 * math.pi) - math.pi
    return np.array([a, b, c])


def rotvec_to_mat(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (rad)."""
    q = np.zeros(4)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    mujoco.mju_axisAngle2Quat(q, np.asarray(v, float) / angle, angle)
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q)
    return m.reshape(3, 3)


def mat_to_rotvec(r: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r).reshape(-1))
    v = np.zeros(3)
    mujoco.mju_quat2Vel(v, q, 1.0)
    return v


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q)
    return m.reshape(3, 3)


def _mat_to_quat(r: np.ndarray) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r).reshape(-1))
    return q


# ------------------------------------------------------------------------------------------------------ runtime
@dataclass
class Grasp:
    """The settled grasp: gripper joint positions and the object's pose in the hand frame."""

    joints: np.ndarray
    pos: np.ndarray
    rot: np.ndarray  # (3, 3)


@dataclass
class Variation:
    """What changes per episode besides the start pose: where the target stands and how the scene looks."""

    target_xy: tuple[float, float] = (0.0, 0.0)  # m
    target_yaw: float = 0.0  # rad
    background: str = "green"
    lighting: str = "default"
    seed: int = 0  # draws the textures, distractors and lights
    extra: dict = field(default_factory=dict)


class VitalSim:
    """Runs episodes of one VITAL task. Not thread-safe; one instance per environment.

    The compiled model is private to the instance (the target's position and the scene's looks are set in it
    per episode)."""

    def __init__(self, task: str, cfg: VitalSceneConfig | None = None):
        self.scene = build_vital_scene(task, cfg)
        self.cfg = self.scene.config
        self.part = self.scene.part
        self.model = self.scene.model
        self.data = mujoco.MjData(self.model)
        self.reader = B.PadFieldReader(self.model, self.scene.gripper)
        self.target = np.zeros(6)  # commanded hand pose: x, y, z, roll, pitch, yaw
        self.physics_seconds = 0.0
        self.render_seconds = 0.0
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._light0 = (
            self.model.light_dir[self.scene.light].copy(),
            self.model.light_diffuse[self.scene.light].copy(),
            self.model.light_ambient[self.scene.light].copy(),
        )
        self._calibrate_gel()
        self.nominal_grasp = self._settle_grasp()

    # ------------------------------------------------------------------ state
    @property
    def in_hand(self) -> bool:
        """Whether episodes start with the object in the hand (every task but pick)."""
        return self.scene.task != "pick"

    def hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Measured hand position (m) and rotation matrix."""
        q = self.data.qpos[self.scene.hand_qpos]
        return q[:3].copy(), euler_to_mat(q[3:])

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d, b = self.data, self.scene.object_body
        return d.xpos[b].copy(), d.xmat[b].reshape(3, 3).copy()

    def target_pose(self) -> tuple[np.ndarray, float]:
        """World position (m) of the target's entry point and its yaw (rad)."""
        m, b = self.model, self.scene.target_body
        yaw = 2 * math.atan2(m.body_quat[b][3], m.body_quat[b][0])
        c, s = math.cos(yaw), math.sin(yaw)
        e = np.array(self.part.entry)
        return m.body_pos[b] + np.array([c * e[0] - s * e[1], s * e[0] + c * e[1], e[2]]), yaw

    def finger_opening(self) -> float:
        """Distance between the pads' inner faces (m)."""
        q = self.data.qpos[self.scene.finger_qpos]
        return float(2 * self.part.grip_half[1] + q.sum())

    def _set_hand(self, pose6: np.ndarray) -> None:
        d, s = self.data, self.scene
        d.qpos[s.hand_qpos] = pose6
        d.qvel[s.hand_dof] = 0.0
        d.ctrl[s.hand_act] = pose6
        self.target = np.array(pose6, float)

    def _place_object(self, grasp: Grasp) -> None:
        pos, rot = self.hand_pose()
        d, s = self.data, self.scene
        d.qpos[s.object_qpos : s.object_qpos + 3] = pos + rot @ grasp.pos
        d.qpos[s.object_qpos + 3 : s.object_qpos + 7] = _mat_to_quat(rot @ grasp.rot)
        d.qvel[s.object_dof : s.object_dof + 6] = 0.0

    def _grasp_from_data(self) -> Grasp:
        pos, rot = self.hand_pose()
        opos, orot = self.object_pose()
        return Grasp(self.data.qpos[self.scene.gripper_qpos].copy(), rot.T @ (opos - pos), rot.T @ orot)

    def _settle_grasp(self, gravity_first: bool = False) -> Grasp:
        """Close the fingers on the object in free space and let the grasp settle (first without gravity)."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self._set_hand(np.array([0.0, 0.0, 0.3, 0.0, 0.0, 0.0]))
        self._place_object(Grasp(np.zeros(0), np.array([0.0, 0.0, -self.part.grip_z]), np.eye(3)))
        d.ctrl[self.scene.finger_act] = self.cfg.grip_force
        mujoco.mj_forward(m, d)
        m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
        try:
            mujoco.mj_step(m, d, nstep=int(round(0.05 / m.opt.timestep)))
        finally:
            m.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
        mujoco.mj_step(m, d, nstep=int(round(0.15 / m.opt.timestep)))
        return self._grasp_from_data()

    def _calibrate_gel(self) -> None:
        """Set the pads' contact stiffness from the inverse inertia of the settled grasp's contacts, so that
        ``gel_stiffness`` is a true N/m per contact point (as in the peg scene)."""
        m, d = self.model, self.data
        self._settle_grasp()
        n = d.ncon
        geom = d.contact.geom[:n]
        adr = d.contact.efc_address[:n]
        pads = np.isin(geom, self.scene.gel_geoms).any(axis=1) & (adr >= 0)
        if not pads.any():
            raise RuntimeError(f"the fingers did not close on the {self.scene.task} object: check grip_force")
        k, b = gel_solref(self.cfg, float(np.mean(d.efc_diagA[adr[pads]])))
        for g in self.scene.gel_geoms:
            m.geom_solref[g] = (-k, -b)
        self.scene.gel_calibrated = True

    # ------------------------------------------------------------------ episodes
    def apply_variation(self, var: Variation) -> None:
        """Move the target and set the scene's looks (table, backdrop, distractors, light)."""
        m, s = self.model, self.scene
        m.body_pos[s.target_body] = [var.target_xy[0], var.target_xy[1], 0.0]
        m.body_quat[s.target_body] = [math.cos(var.target_yaw / 2), 0, 0, math.sin(var.target_yaw / 2)]
        rng = np.random.default_rng(var.seed)
        looks = [s.table_geom, *s.backdrop_geoms]
        if var.background == "green":
            m.geom_matid[looks] = s.green_material
            m.geom_rgba[looks] = _GREEN
        else:
            mats = rng.choice(s.texture_materials, size=len(looks))
            m.geom_matid[looks] = mats
            m.geom_rgba[looks] = np.c_[rng.uniform(0.6, 1.0, (len(looks), 3)), np.ones(len(looks))]
        for i, b in enumerate(s.distractor_bodies):
            if var.background == "cluttered":
                ang = rng.uniform(0, 2 * np.pi)
                r = rng.uniform(0.07, 0.2)
                m.body_pos[b] = [var.target_xy[0] + r * math.cos(ang), var.target_xy[1] + r * math.sin(ang), 0.0]
                gid = np.flatnonzero(m.geom_bodyid == b)
                m.geom_rgba[gid] = [*rng.uniform(0.05, 0.95, 3), 1.0]
            else:
                m.body_pos[b] = [0.0, 0.0, -1.0 - 0.1 * i]
        d0, c0, a0 = self._light0
        if var.lighting == "random":
            direction = d0 + rng.normal(0, 0.35, 3)
            direction[2] = -abs(direction[2]) - 0.3
            m.light_dir[s.light] = direction / np.linalg.norm(direction)
            m.light_diffuse[s.light] = c0 * rng.uniform(0.5, 1.3) * rng.uniform(0.8, 1.0, 3)
            m.light_ambient[s.light] = a0 + rng.uniform(0.0, 0.25)
        else:
            m.light_dir[s.light], m.light_diffuse[s.light], m.light_ambient[s.light] = d0, c0, a0

    def reset(
        self,
        hand_pose6: np.ndarray,
        var: Variation,
        grasp_offset: np.ndarray | None = None,
        object_yaw: float = 0.0,
    ) -> None:
        """Start an episode: the target and looks as ``var``, the hand at ``hand_pose6`` (x, y, z, roll, pitch,
        yaw; m, rad) holding the object shifted by ``grasp_offset`` (m, hand frame, along the pad plane), or for
        pick the gripper open above the block lying on the target spot with ``object_yaw``."""
        m, d, s = self.model, self.data, self.scene
        self.apply_variation(var)
        mujoco.mj_resetData(m, d)
        self._set_hand(np.asarray(hand_pose6, float))
        if self.in_hand:
            g = self.nominal_grasp
            off = np.zeros(3) if grasp_offset is None else np.asarray(grasp_offset, float)
            d.qpos[s.gripper_qpos] = g.joints
            self._place_object(Grasp(g.joints, g.pos + off, g.rot))
            d.ctrl[s.finger_act] = self.cfg.grip_force
        else:
            d.qpos[s.finger_qpos] = self.scene.gripper.params.finger_range[1]
            d.ctrl[s.finger_act] = -self.cfg.grip_force
            entry, tyaw = self.target_pose()
            yaw = tyaw + object_yaw
            d.qpos[s.object_qpos : s.object_qpos + 3] = entry
            d.qpos[s.object_qpos + 3 : s.object_qpos + 7] = [math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
        mujoco.mj_forward(m, d)
        t0 = time.perf_counter()
        mujoco.mj_step(m, d, nstep=max(1, int(round(0.04 / m.opt.timestep))))
        mujoco.mj_forward(m, d)
        self.physics_seconds += time.perf_counter() - t0

    def step(self, target6: np.ndarray, finger_cmd: float, ramp: float = 0.6) -> None:
        """One control period: the servo targets move linearly from the last command to ``target6`` over the
        first ``ramp`` of the sub-steps and then hold; each finger pushes with ``finger_cmd * grip_force``
        (positive closes)."""
        m, d, s = self.model, self.data, self.scene
        t0 = time.perf_counter()
        n = self.cfg.substeps
        start = self.target.copy()
        goal = np.asarray(target6, float)
        d.ctrl[s.finger_act] = finger_cmd * self.cfg.grip_force
        # the targets advance every `chunk` sub-steps (5 ms at the default timestep): smooth for the servos, and
        # few calls into MuJoCo
        chunk = max(1, int(round(0.005 / self.cfg.timestep)))
        n_ramp = max(chunk, int(round(ramp * n / chunk)) * chunk)
        for i in range(chunk, n_ramp + 1, chunk):
            d.ctrl[s.hand_act] = start + (goal - start) * (i / n_ramp)
            mujoco.mj_step(m, d, nstep=chunk)
        d.ctrl[s.hand_act] = goal
        if n > n_ramp:
            mujoco.mj_step(m, d, nstep=n - n_ramp)
        mujoco.mj_forward(m, d)
        self.target = goal
        self.physics_seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ sensing
    def read_field(self) -> TactileField:
        """The contact field of both pads now, (2, R, C)."""
        return self.reader.read(self.data)

    def object_touches_target(self) -> bool:
        d = self.data
        n = d.ncon
        if n == 0:
            return False
        g = d.contact.geom[:n]
        obj, tgt = self.scene.object_geoms, self.scene.target_geoms
        a, b = np.isin(g[:, 0], obj), np.isin(g[:, 1], obj)
        return bool(((a & np.isin(g[:, 1], tgt)) | (b & np.isin(g[:, 0], tgt))).any())

    def pad_contacts(self) -> np.ndarray:
        """(2,) whether each pad touches the object."""
        d = self.data
        n = d.ncon
        out = np.zeros(2, bool)
        if n == 0:
            return out
        g = d.contact.geom[:n]
        obj = np.isin(g, self.scene.object_geoms).any(axis=1)
        for k, gel in enumerate(self.scene.gel_geoms):
            out[k] = bool(((g == gel).any(axis=1) & obj).any())
        return out

    def renderer(self, height: int, width: int) -> mujoco.Renderer:
        key = (height, width)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return self._renderers[key]

    def render(
        self, camera: str, height: int, width: int, rgb: bool = True, depth: bool = False, mask: bool = False
    ) -> dict[str, np.ndarray]:
        """Images from a camera: ``rgb`` (H, W, 3) uint8, ``depth`` (H, W) float32 metres along the optical
        axis, ``mask`` (H, W) uint8 labels of :data:`MASK_LABELS`."""
        t0 = time.perf_counter()
        r = self.renderer(height, width)
        r.update_scene(self.data, camera=camera)
        out = {}
        if rgb:
            out["rgb"] = r.render()
        if depth:
            r.enable_depth_rendering()
            out["depth"] = r.render().astype(np.float32)
            r.disable_depth_rendering()
        if mask:
            r.enable_segmentation_rendering()
            seg = r.render()
            r.disable_segmentation_rendering()
            ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
            out["mask"] = self.scene.mask_lut[ids + 1]
        self.render_seconds += time.perf_counter() - t0
        return out

    def camera_matrices(self, camera: str, height: int, width: int) -> dict[str, np.ndarray]:
        """Pinhole intrinsics ``K`` (3, 3, pixels) and extrinsics ``world_from_camera`` (4, 4) of a camera, in the
        OpenCV convention (x right, y down, z forward), for images of (height, width)."""
        m, d = self.model, self.data
        cid = B.ids(m, mujoco.mjtObj.mjOBJ_CAMERA, [camera])[0]
        f = 0.5 * height / math.tan(math.radians(m.cam_fovy[cid]) / 2)
        k = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
        rot = d.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo cameras look along -z, y up
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rot, d.cam_xpos[cid]
        return {"K": k, "world_from_camera": pose}

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
