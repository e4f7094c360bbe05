"""Assembly of the tactile peg-in-hole scene with ``mujoco.MjSpec``.

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

from taclab.sim.config import SceneConfig
from taclab.sim.shapes import Section, block_pieces, make_section

PAD_NAMES = ("pad0", "pad1")
PAD_JOINTS = tuple(f"{p}_{a}" for p in PAD_NAMES for a in ("x", "z", "twist"))
HAND_JOINTS = ("finger0", "finger1", *PAD_JOINTS)
"""Joints that move with the hand: their positions are the grasp state carried between attempts."""
_SIDES = (-1.0, 1.0)  # y side of pad 0 and pad 1
# impedance of soft contacts, constant over penetration (solimp d0 = d1)
_GEL_IMPEDANCE = 0.9
_PAD_MASS = 0.01  # kg, the gel pad that moves against the gel's shear springs
_FINGER_MASS = 0.1  # kg, each finger with its slide
_HARD_IMPEDANCE = 0.99


# collision bits: the block meets the peg mesh; the pads meet the peg's gripped sides
_BLOCK_BIT, _PAD_BIT, _GRIP_BIT = 1, 4, 8


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
class TaxelLayout:
    """Where each pad's sensor values go on its (rows, cols) grid."""

    sensor_adr: int  # start of this pad's sensordata
    n: int  # taxels
    order: np.ndarray  # (rows*cols,) index into the sensor's vertex list, row-major
    rows: int
    cols: int
    local_xz: np.ndarray  # (rows, cols, 2) taxel positions (m) in the pad frame: x, z


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


def _quat_from_axes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = np.cross(x, y)
    mat = np.stack([x, y, z], axis=1).reshape(-1)
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, mat)
    return q


def _hull_mesh(spec: mujoco.MjSpec, name: str, layers: list[tuple[np.ndarray, float]]):
    """A convex mesh through horizontal polygon layers ``(vertices (n, 2), z)``; MuJoCo takes their hull."""
    mesh = spec.add_mesh(name=name)
    verts = np.concatenate([np.c_[poly, np.full(len(poly), z)] for poly, z in layers], axis=0)
    mesh.uservert = verts.reshape(-1).tolist()
    return mesh


def build_scene(config: SceneConfig, shape: str, clearance: float) -> PegInHoleScene:
    """Compile the scene for one peg shape and clearance (m). Raises ``ValueError`` on bad input."""
    if not np.isfinite(clearance) or clearance <= 0:
        raise ValueError(f"clearance must be > 0, got {clearance * 1e3:g} mm")
    cfg = config
    section = make_section(shape, cfg.peg_size, cfg.round_segments, cfg.peg_vertices)
    hole = section.offset(clearance / 2, name=f"{section.name}-hole")
    max_clear = cfg.block_size / 2 - float(np.max(section.extent())) - 0.003
    if float(np.max(hole.extent())) >= cfg.block_size / 2 - 0.003:
        raise ValueError(
            f"clearance {clearance * 1e3:g} mm is too large for a {cfg.block_size * 1e3:g} mm block with this "
            f"peg; allowed: 0 < clearance < {2 * max_clear * 1e3:.1f} mm"
        )
    pieces = block_pieces(hole, cfg.block_size / 2)

    spec = mujoco.MjSpec()
    spec.modelname = f"peg_in_hole_{section.name}"
    opt = spec.option
    opt.timestep = cfg.timestep
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_SENSOR  # sensors are computed on demand
    spec.visual.quality.shadowsize = 0
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    spec.stat.center = [0, 0, cfg.block_height]
    spec.stat.extent = 0.12

    spec.add_material(name="block", rgba=[0.55, 0.58, 0.62, 1])
    spec.add_material(name="peg", rgba=[0.85, 0.55, 0.2, 1])
    spec.add_material(name="gel", rgba=[0.3, 0.3, 0.32, 1])
    spec.add_material(name="metal", rgba=[0.7, 0.7, 0.75, 1])

    wb = spec.worldbody
    wb.add_light(pos=[0.1, -0.1, 0.4], dir=[-0.25, 0.25, -1], castshadow=False)
    wb.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[0.2, 0.2, 0.01],
        rgba=[0.9, 0.9, 0.88, 1],
        contype=0,
        conaffinity=0,
    )

    # hole block: convex pieces (meshes) in one static body
    block = wb.add_body(name="block")
    for i, poly in enumerate(pieces):
        _hull_mesh(spec, f"block{i}", [(poly, 0.0), (poly, cfg.block_height)])
        block.add_geom(
            name=f"block{i}",
            type=mujoco.mjtGeom.mjGEOM_MESH,
            meshname=f"block{i}",
            material="block",
            friction=[cfg.block_friction, 0.005, 0.0001],
            solimp=[_HARD_IMPEDANCE, _HARD_IMPEDANCE, 0.001, 0.5, 2],
            solref=[2 * cfg.timestep, 1.0],
            contype=_BLOCK_BIT,
            conaffinity=_BLOCK_BIT,
        )

    # hand: the joints give its world pose directly
    hand = wb.add_body(name="hand", gravcomp=1.0)
    for jname, jtype, axis in (
        ("hand_x", mujoco.mjtJoint.mjJNT_SLIDE, [1, 0, 0]),
        ("hand_y", mujoco.mjtJoint.mjJNT_SLIDE, [0, 1, 0]),
        ("hand_z", mujoco.mjtJoint.mjJNT_SLIDE, [0, 0, 1]),
        ("hand_yaw", mujoco.mjtJoint.mjJNT_HINGE, [0, 0, 1]),
    ):
        hand.add_joint(name=jname, type=jtype, axis=axis, armature=0.01)
    half_y = float(section.extent()[1])
    palm_z = cfg.pad_height / 2 + 0.012
    hand.add_geom(
        name="palm",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[0.012, half_y + 0.012, 0.006],
        pos=[0, 0, palm_z],
        material="metal",
        mass=cfg.hand_mass,
        contype=0,
        conaffinity=0,
    )
    pad_bodies, pad_geoms = [], []
    for k, side in enumerate(_SIDES):
        finger = hand.add_body(name=f"finger{k}", pos=[0, side * half_y, 0], gravcomp=1.0)
        finger.add_joint(
            name=f"finger{k}",
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, side, 0],
            range=[-0.004, 0.02],
            damping=5.0,
            armature=0.01,
        )
        t = cfg.pad_thickness
        finger.add_geom(
            name=f"finger{k}_link",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[cfg.pad_width / 2 + 0.001, 0.002, (palm_z + 0.004) / 2],
            pos=[0, side * (t + 0.002), (palm_z + 0.004) / 2 - cfg.pad_height / 2 - 0.002],
            material="metal",
            mass=_FINGER_MASS,
            contype=0,
            conaffinity=0,
        )
        # the gel's shear compliance: the pad surface can slide along x and z and twist about its normal
        # relative to the finger, against springs of a gel layer of shear modulus G and thickness t:
        # k = G A / t for translation and G J / t for the twist (J: polar moment of the pad area)
        area = cfg.pad_width * cfg.pad_height
        k_shear = cfg.gel_shear_modulus * area / t
        k_twist = cfg.gel_shear_modulus * area * (cfg.pad_width**2 + cfg.pad_height**2) / 12 / t
        pad_inertia = _PAD_MASS * (cfg.pad_width**2 + cfg.pad_height**2) / 12
        pad = finger.add_body(name=PAD_NAMES[k], gravcomp=1.0)
        for axis, jtype, stiff, inertia in (
            ("x", mujoco.mjtJoint.mjJNT_SLIDE, k_shear, _PAD_MASS),
            ("z", mujoco.mjtJoint.mjJNT_SLIDE, k_shear, _PAD_MASS),
            ("twist", mujoco.mjtJoint.mjJNT_HINGE, k_twist, pad_inertia),
        ):
            pad.add_joint(
                name=f"{PAD_NAMES[k]}_{axis}",
                type=jtype,
                axis={"x": [1, 0, 0], "z": [0, 0, 1], "twist": [0, side, 0]}[axis],
                stiffness=stiff,
                damping=2 * np.sqrt(stiff * inertia),
            )
        # the collision pad: its inner face is the finger body's origin plane
        # MuJoCo's direct solref is an acceleration per metre; this first value, referred to the peg's mass, is
        # replaced by calibrate_gel() once the grasp shows the contacts' real inverse inertia
        k_acc, b_acc = gel_solref(cfg, 1.0 / cfg.peg_mass)
        g = pad.add_geom(
            name=f"{PAD_NAMES[k]}_gel",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[cfg.pad_width / 2, t / 2, cfg.pad_height / 2],
            pos=[0, side * t / 2, 0],
            material="gel",
            mass=0.01,
            friction=[cfg.pad_friction, 0.005, 0.0001],
            solref=[-k_acc, -b_acc],
            solimp=[_GEL_IMPEDANCE, _GEL_IMPEDANCE, 0.001, 0.5, 2],
            contype=_PAD_BIT,
            conaffinity=_GRIP_BIT,
            condim=4,
        )
        pad_geoms.append(g)
        # taxel plate: mesh x -> world x, mesh y -> up the pad, mesh z -> towards the peg
        mname = f"{PAD_NAMES[k]}_taxels"
        m = spec.add_mesh(name=mname)
        rows, cols = cfg.taxels
        m.make_plate([cols, rows])
        m.scale = [cfg.pad_width / 2, cfg.pad_height / 2, 1e-6]
        yaxis = np.array([0.0, 0.0, -side])
        quat = _quat_from_axes(np.array([1.0, 0, 0]), yaxis)
        pad.add_geom(
            name=mname,
            type=mujoco.mjtGeom.mjGEOM_MESH,
            meshname=mname,
            pos=[0, -side * cfg.gel_layer, 0],
            quat=quat,
            contype=0,
            conaffinity=0,
            group=3,
            rgba=[0.2, 0.8, 0.2, 0.3],
            mass=0,
        )
        spec.add_sensor(
            name=f"{PAD_NAMES[k]}_tactile",
            type=mujoco.mjtSensor.mjSENS_TACTILE,
            objtype=mujoco.mjtObj.mjOBJ_MESH,
            objname=mname,
            reftype=mujoco.mjtObj.mjOBJ_GEOM,
            refname=mname,
        )
        pad_bodies.append(pad)

    # actuators
    for jname in ("hand_x", "hand_y", "hand_z"):
        spec.add_actuator(
            name=jname,
            target=jname,
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            gaintype=mujoco.mjtGain.mjGAIN_FIXED,
            biastype=mujoco.mjtBias.mjBIAS_AFFINE,
            gainprm=[cfg.hand_kp] + [0] * 9,
            biasprm=[0, -cfg.hand_kp, -2 * np.sqrt(cfg.hand_kp * (cfg.hand_mass + 0.2))] + [0] * 7,
            ctrlrange=[-1, 1],
        )
    spec.add_actuator(
        name="hand_yaw",
        target="hand_yaw",
        trntype=mujoco.mjtTrn.mjTRN_JOINT,
        gaintype=mujoco.mjtGain.mjGAIN_FIXED,
        biastype=mujoco.mjtBias.mjBIAS_AFFINE,
        gainprm=[cfg.yaw_kp] + [0] * 9,
        biasprm=[0, -cfg.yaw_kp, -2 * np.sqrt(cfg.yaw_kp * 3e-4)] + [0] * 7,
        ctrlrange=[-np.pi, np.pi],
    )
    for k in range(2):
        # positive control closes the finger with that force (N)
        spec.add_actuator(
            name=f"finger{k}",
            target=f"finger{k}",
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            gear=[-1, 0, 0, 0, 0, 0],
            ctrlrange=[-200, 200],
        )

    # peg: a free body; its frame is at the tip, on the section's reference point
    peg_in_hand = np.array([0.0, 0.0, -(cfg.peg_length - cfg.grasp_height)])
    peg = wb.add_body(name="peg", pos=peg_in_hand + [0, 0, 0.1])
    peg.add_freejoint(name="peg")
    w = cfg.peg_chamfer
    tip = section.offset(-w).vertices if w > 0 else section.vertices
    pm = _hull_mesh(spec, "peg", [(tip, 0.0), (section.vertices, w), (section.vertices, cfg.peg_length)])
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
    eye = np.array([0.075, -0.095, 0.075])
    look = np.array([0.0, 0.0, cfg.block_height + 0.012]) - eye
    look /= np.linalg.norm(look)
    right = np.cross(look, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    wb.add_camera(name="overview", pos=eye.tolist(), xyaxes=[*right, *np.cross(right, look)], fovy=40)
    model = spec.compile()
    return _wrap(cfg, shape, clearance, section, hole, model)


def _wrap(cfg, shape, clearance, section, hole, model) -> PegInHoleScene:
    def jid(name):
        return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

    joints = ["hand_x", "hand_y", "hand_z", "hand_yaw", *HAND_JOINTS]
    peg_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "peg")
    peg_joint = jid("peg")
    block_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "block")
    mask = model.geom_bodyid == block_body
    pad_bodies = tuple(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in PAD_NAMES)
    pad_geoms = tuple(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{n}_gel") for n in PAD_NAMES)
    layouts = []
    rows, cols = cfg.taxels
    for n in PAD_NAMES:
        sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SENSOR, f"{n}_tactile")
        gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"{n}_taxels")
        mid = model.geom_dataid[gid]
        adr, num = model.mesh_vertadr[mid], model.mesh_vertnum[mid]
        verts = model.mesh_vert[adr : adr + num]
        # taxel positions in the pad body frame
        mat = np.zeros(9)
        mujoco.mju_quat2Mat(mat, model.geom_quat[gid])
        local = verts @ mat.reshape(3, 3).T + model.geom_pos[gid]
        x, z = local[:, 0], local[:, 2]
        # rows from the top of the pad down, columns along +x
        order = np.lexsort((x, -z))
        if num != rows * cols:
            raise RuntimeError(f"taxel plate has {num} vertices, expected {rows * cols}")
        layouts.append(
            TaxelLayout(
                sensor_adr=int(model.sensor_adr[sid]),
                n=int(num),
                order=order,
                rows=rows,
                cols=cols,
                local_xz=np.stack([x[order], z[order]], axis=1).reshape(rows, cols, 2),
            )
        )
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
        peg_body=peg_body,
        peg_qpos=int(model.jnt_qposadr[peg_joint]),
        peg_dof=int(model.jnt_dofadr[peg_joint]),
        pad_bodies=pad_bodies,
        pad_geoms=pad_geoms,
        block_geom_mask=mask,
        peg_geom=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "peg"),
        taxels=tuple(layouts),
        peg_in_hand=np.array([0.0, 0.0, -(cfg.peg_length - cfg.grasp_height)]),
    )


@functools.lru_cache(maxsize=32)
def cached_scene(config: SceneConfig, shape: str, clearance: float) -> PegInHoleScene:
    """``build_scene`` memoized per process (compiling a peg's SDF takes tens of milliseconds)."""
    return build_scene(config, shape, clearance)
