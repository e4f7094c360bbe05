"""Assembly of the tactile peg-in-hole scene with ``mujoco.MjSpec``, from the builders of :mod:`taclab.sim.builders`.

World frame: the hole's reference point is at the origin, the block's top face at ``z = block_height``.
The hand's four joints (slide x, y, z, hinge yaw) read directly as its world pose: its frame origin is the
grasp centre, midway between the two gel pads. The fingers close along the hand's y axis; pad 0 is on the
-y side and pad 1 on the +y side. Each pad is a compliant box (soft contact) carrying a plate of taxels,
read by MuJoCo's native ``tactile`` sensor, that sits ``gel_layer`` proud of the pad: the part of the
peg inside that layer is the gel's indentation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mujoco
import numpy as np

from taclab.sim import builders as B
from taclab.sim.builders import TaxelLayout
from taclab.sim.config import SceneConfig
from taclab.sim.shapes import Section, block_pieces, make_section

PAD_NAMES = ("pad0", "pad1")
PAD_JOINTS = tuple(f"{p}_{a}" for p in PAD_NAMES for a in ("x", "z", "twist"))
HAND_JOINTS = ("finger0", "finger1", *PAD_JOINTS)
"""Joints that move with the hand: their positions are the grasp state carried between attempts."""
# impedance of soft contacts, constant over penetration (solimp d0 = d1)
_GEL_IMPEDANCE = 0.9
_PAD_MASS = 0.01  # kg, the gel pad that moves against the gel's shear springs
_FINGER_MASS = 0.1  # kg, each finger with its slide
_HARD_IMPEDANCE = B.HARD_IMPEDANCE
_MIN_WALL = 0.003  # m, the least wall a hole (and its chamfer's wider top) leaves in the block


# collision bits: the block meets the peg mesh; the pads meet the peg's gripped sides
_BLOCK_BIT, _PAD_BIT, _GRIP_BIT = 1, B.PAD_BIT, B.GRIP_BIT


def gel_solref(cfg: SceneConfig, inv_mass: float) -> tuple[float, float]:
    """Direct (negative) solref of a gel contact whose constraint has inverse inertia ``inv_mass``.

    With a constant impedance d, a soft contact settles at penetration (1 - d) / d * A * f / k for a force f,
    A its inverse inertia and k the solref stiffness: this k makes it f / gel_stiffness, a true N/m.
    """
    scale = (1 - _GEL_IMPEDANCE) / _GEL_IMPEDANCE * inv_mass
    return cfg.gel_stiffness * scale, cfg.gel_damping * scale


def _grip_primitive(section: Section, cfg: SceneConfig):
    """An exact primitive for the sides of the peg above its chamfer, or None.

    A rectangular section is a box and a round one a cylinder there. MuJoCo's tactile sensor evaluates
    primitives analytically, about five times faster than a mesh's signed-distance octree, with no loss: the
    primitive coincides with the mesh wherever the pads can touch it.
    """
    v = section.vertices
    z0 = cfg.peg_chamfer
    half_len = (cfg.peg_length - z0) / 2
    e = np.roll(v, -1, axis=0) - v
    if section.n == 4 and np.all(np.isclose(np.abs(e).min(axis=1), 0.0, atol=1e-12)):
        hx, hy = section.extent()
        return mujoco.mjtGeom.mjGEOM_BOX, [float(hx), float(hy), half_len], z0 + half_len
    if section.name == "round":
        return mujoco.mjtGeom.mjGEOM_CYLINDER, [float(section.extent()[1]), half_len, 0.0], z0 + half_len
    return None


@dataclass
class PegInHoleScene:
    """A compiled scene and the ids the environment needs."""

    config: SceneConfig
    shape: str
    clearance: float  # m, hole width minus peg width across flats
    section: Section
    hole: Section
    model: mujoco.MjModel
    joint_qpos: dict[str, int]
    joint_dof: dict[str, int]
    actuator: dict[str, int]
    peg_body: int
    peg_qpos: int
    peg_dof: int
    pad_bodies: tuple[int, int]
    pad_geoms: tuple[int, int]
    block_geom_mask: np.ndarray  # (ngeom,) True for hole block pieces
    peg_geom: int
    taxels: tuple[TaxelLayout, TaxelLayout]
    peg_in_hand: np.ndarray  # nominal peg tip position in the hand frame (3,)
    gel_calibrated: bool = False  # set by PegInHoleSim once the pads' contact stiffness is calibrated

    @property
    def block_top(self) -> float:
        return self.config.block_height


def build_scene(config: SceneConfig, shape: str, clearance: float) -> PegInHoleScene:
    """Compile the scene for one peg shape and clearance (m). Raises ``ValueError`` on bad input."""
    if not np.isfinite(clearance) or clearance <= 0:
        raise ValueError(f"clearance must be > 0, got {clearance * 1e3:g} mm")
    cfg = config
    section = make_section(shape, cfg.peg_size, cfg.round_segments, cfg.peg_vertices)
    hole = section.offset(clearance / 2, name=f"{section.name}-hole")
    widest = cfg.block_size / 2 - _MIN_WALL  # the largest half-extent of an outline that leaves the block its wall
    max_clear = widest - float(np.max(section.extent()))
    if float(np.max(hole.extent())) >= widest:
        raise ValueError(
            f"clearance {clearance * 1e3:g} mm is too large for a {cfg.block_size * 1e3:g} mm block with this "
            f"peg; allowed: 0 < clearance < {2 * max_clear * 1e3:.1f} mm"
        )
    if cfg.hole_chamfer > 0 and float(np.max(hole.offset(cfg.hole_chamfer).extent())) >= widest:
        raise ValueError(
            f"hole_chamfer {cfg.hole_chamfer * 1e3:g} mm leaves less than {_MIN_WALL * 1e3:g} mm of wall around the "
            f"{shape} hole of clearance {clearance * 1e3:g} mm in a {cfg.block_size * 1e3:g} mm block; use a smaller "
            "chamfer or a larger block_size"
        )
    spec = B.new_spec(
        f"peg_in_hole_{section.name}", timestep=cfg.timestep, center=(0, 0, cfg.block_height), extent=0.12
    )
    B.ensure_materials(
        spec,
        {"block": (0.55, 0.58, 0.62, 1), "peg": (0.85, 0.55, 0.2, 1), "gel": B.GEL_RGBA, "metal": B.METAL_RGBA},
    )
    spec.worldbody.add_light(pos=[0.1, -0.1, 0.4], dir=[-0.25, 0.25, -1], castshadow=False)
    B.add_floor(spec)

    # hole block: convex pieces (meshes) in one static body
    B.add_fixture(
        spec,
        spec.worldbody,
        "block",
        hole_block(hole, cfg.block_size / 2, cfg.block_height, cfg.hole_chamfer),
        material="block",
        geom=dict(
            friction=[cfg.block_friction, 0.005, 0.0001],
            solimp=[_HARD_IMPEDANCE, _HARD_IMPEDANCE, 0.001, 0.5, 2],
            solref=[2 * cfg.timestep, 1.0],
            contype=_BLOCK_BIT,
            conaffinity=_BLOCK_BIT,
        ),
    )

    # hand: the joints give its world pose directly; servos on x, y, z (critically damped for the hand and
    # what it carries) and yaw
    lin = B.Servo.critical(cfg.hand_kp, cfg.hand_mass + 0.2)
    hand = B.add_hand(
        spec,
        spec.worldbody,
        {"x": lin, "y": lin, "z": lin, "yaw": B.Servo.critical(cfg.yaw_kp, 3e-4, (-np.pi, np.pi))},
    )
    # MuJoCo's direct solref is an acceleration per metre; this first value, referred to the peg's mass, is
    # replaced by PegInHoleSim's calibration once the grasp shows the contacts' real inverse inertia
    k_acc, b_acc = gel_solref(cfg, 1.0 / cfg.peg_mass)
    gripper = B.add_pad_gripper(spec, hand.body, gripper_params(cfg, section, (-k_acc, -b_acc)))
    B.add_finger_actuators(spec, gripper)

    # peg: a free body; its frame is at the tip, on the section's reference point
    peg_in_hand = np.array([0.0, 0.0, -(cfg.peg_length - cfg.grasp_height)])
    peg = spec.worldbody.add_body(name="peg", pos=peg_in_hand + [0, 0, 0.1])
    peg.add_freejoint(name="peg")
    w = cfg.peg_chamfer
    tip = section.offset(-w).vertices if w > 0 else section.vertices
    pm = B.hull_mesh(spec, "peg", [(tip, 0.0), (section.vertices, w), (section.vertices, cfg.peg_length)])
    grip = _grip_primitive(section, cfg)
    common = dict(
        # MuJoCo takes the larger friction of a pair and mixes solver parameters by solmix: with the peg's
        # friction the smaller one and its solmix 0, each pair gets exactly the pad's or the block's values
        friction=[min(cfg.pad_friction, cfg.block_friction), 0.005, 0.0001],
        solmix=0.0,
        solimp=[_HARD_IMPEDANCE, _HARD_IMPEDANCE, 0.001, 0.5, 2],
        solref=[2 * cfg.timestep, 1.0],
        condim=4,
    )
    # the mesh meets the block; it meets the pads too unless an exact primitive stands in for its sides
    pm.needsdf = grip is None
    peg.add_geom(
        name="peg",
        type=mujoco.mjtGeom.mjGEOM_MESH,
        meshname="peg",
        material="peg",
        mass=cfg.peg_mass,
        contype=_BLOCK_BIT | (_GRIP_BIT if grip is None else 0),
        conaffinity=_BLOCK_BIT | (_PAD_BIT if grip is None else 0),
        **common,
    )
    if grip is not None:
        gtype, size, zc = grip
        peg.add_geom(
            name="peg_grip",
            type=gtype,
            size=size,
            pos=[0, 0, zc],
            mass=0,
            rgba=[0, 0, 0, 0],
            group=3,
            contype=_GRIP_BIT,
            conaffinity=_PAD_BIT,
            **common,
        )
    # a camera looking at the hole's rim from the front right, the peg and the fingers in view
    B.add_look_at_camera(
        spec.worldbody, "overview", eye=(0.075, -0.095, 0.075), target=(0.0, 0.0, cfg.block_height + 0.012), fovy=40
    )
    model = spec.compile()
    return _wrap(cfg, shape, clearance, section, hole, model, gripper)


def hole_block(hole: Section, half_size: float, height: float, chamfer: float = 0.0) -> list:
    """The convex pieces of a square block of half-size ``half_size`` and ``height`` with ``hole`` through it.

    With a ``chamfer`` (m) the hole's top edge is cut at 45 degrees: below ``height - chamfer`` the block holds
    the hole's outline; above it, the outline pushed out by ``chamfer``, and along every edge of the hole a wedge
    whose sloped face runs from the hole's edge at ``height - chamfer`` up to the pushed-out edge at ``height``.
    Both outlines have mitred corners, so the wedges of neighbouring edges meet on the corners' bisectors."""
    if chamfer <= 0:
        return [B.Prism(poly, 0.0, height) for poly in block_pieces(hole, half_size)]
    if chamfer >= height:
        raise ValueError(f"hole chamfer {chamfer * 1e3:g} mm must be less than the block's height {height * 1e3:g} mm")
    z = height - chamfer
    wide = hole.offset(chamfer)
    pieces: list = [B.Prism(poly, 0.0, z) for poly in block_pieces(hole, half_size)]
    pieces += [B.Prism(poly, z, height) for poly in block_pieces(wide, half_size)]
    v, w = hole.vertices, wide.vertices
    for i in range(hole.n):
        j = (i + 1) % hole.n
        pieces.append(B.Hull(((np.stack([v[i], v[j], w[j], w[i]]), z), (np.stack([w[i], w[j]]), height))))
    return pieces


def gripper_params(cfg: SceneConfig, section: Section, gel_solref: tuple[float, float]) -> B.PadGripperParams:
    """The pad gripper of the peg scene, closed on a peg of this section."""
    return B.PadGripperParams(
        opening=float(section.extent()[1]),
        pad_width=cfg.pad_width,
        pad_height=cfg.pad_height,
        pad_thickness=cfg.pad_thickness,
        gel_shear_modulus=cfg.gel_shear_modulus,
        gel_layer=cfg.gel_layer,
        taxels=tuple(cfg.taxels),
        pad_friction=cfg.pad_friction,
        gel_solref=gel_solref,
        gel_impedance=_GEL_IMPEDANCE,
        palm_mass=cfg.hand_mass,
        finger_mass=_FINGER_MASS,
        pad_mass=_PAD_MASS,
        pad_contype=_PAD_BIT,
        pad_conaffinity=_GRIP_BIT,
    )


def _wrap(cfg, shape, clearance, section, hole, model, gripper: B.PadGripper) -> PegInHoleScene:
    def jid(name):
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

    joints = ["hand_x", "hand_y", "hand_z", "hand_yaw", *HAND_JOINTS]
    peg_joint = jid("peg")
    block_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "block")
    rows, cols = cfg.taxels
    return PegInHoleScene(
        config=cfg,
        shape=shape,
        clearance=clearance,
        section=section,
        hole=hole,
        model=model,
        joint_qpos={j: int(model.jnt_qposadr[jid(j)]) for j in joints},
        joint_dof={j: int(model.jnt_dofadr[jid(j)]) for j in joints},
        actuator={
            a: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
            for a in ["hand_x", "hand_y", "hand_z", "hand_yaw", "finger0", "finger1"]
        },
        peg_body=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "peg"),
        peg_qpos=int(model.jnt_qposadr[peg_joint]),
        peg_dof=int(model.jnt_dofadr[peg_joint]),
        pad_bodies=B.ids(model, mujoco.mjtObj.mjOBJ_BODY, gripper.pads),
        pad_geoms=B.ids(model, mujoco.mjtObj.mjOBJ_GEOM, gripper.gels),
        block_geom_mask=model.geom_bodyid == block_body,
        peg_geom=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "peg"),
        taxels=tuple(
            B.taxel_layout(model, s, g, rows, cols) for s, g in zip(gripper.sensors, gripper.taxel_geoms, strict=True)
        ),
        peg_in_hand=np.array([0.0, 0.0, -(cfg.peg_length - cfg.grasp_height)]),
    )


@functools.lru_cache(maxsize=32)
def cached_scene(config: SceneConfig, shape: str, clearance: float) -> PegInHoleScene:
    """``build_scene`` memoized per process (compiling a peg's SDF takes tens of milliseconds)."""
    return build_scene(config, shape, clearance)
