"""Insertion attempts in the peg-in-hole scene: the physics of the TLA task, with no learning code.

An attempt places the grasped peg above the hole at a commanded hand pose, descends at constant speed and
either reaches the insertion depth (success) or is stopped by the block. When the peg touches the block,
four tactile frames of both pads are recorded, from first contact through a press of ``press_depth``.

Between attempts the lift and the lateral move happen in free space, where nothing touches: they are done
kinematically, by setting the hand's joints to the new pose and carrying the grasp state (finger positions
and the peg's pose in the hand) over unchanged. The peg's pose in the hand is either restored to the nominal
grasp (the default) or kept, with whatever slip the previous press caused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from taclab.sim.scene import PegInHoleScene
from taclab.sim.tactile.field import TactileField

N_FRAMES = 4


@dataclass
class Grasp:
    """State of the grasp, relative to the hand: finger joints and the peg's pose in the hand frame."""

    fingers: np.ndarray  # (2,) finger joint positions
    peg_pos: np.ndarray  # (3,) peg frame origin (tip) in the hand frame
    peg_quat: np.ndarray  # (4,) peg orientation in the hand frame


@dataclass
class AttemptResult:
    success: bool
    contact: bool  # the peg touched the block
    field: TactileField | None  # (4 frames, 2 pads, R, C) when the peg was stopped by the block
    error_before: np.ndarray  # (ex, ey, erz) in m, m, rad when the attempt started
    tip_depth: float  # lowest tip position below the block top (m), >0 means inside the hole
    steps: int  # physics steps simulated


def _quat_mul(a, b):
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, a, b)
    return out


def _quat_conj(a):
    return np.array([a[0], -a[1], -a[2], -a[3]])


def _rot(quat):
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, quat)
    return m.reshape(3, 3)


def _yaw_quat(yaw):
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class PegInHoleSim:
    """Runs attempts in one compiled scene. Not thread-safe; one instance per environment."""

    def __init__(self, scene: PegInHoleScene):
        self.scene = scene
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        cfg = scene.config
        self.cfg = cfg
        self._q = scene.joint_qpos
        self._v = scene.joint_dof
        self._a = scene.actuator
        rows, cols = cfg.taxels
        self.pitch = (cfg.pad_height / rows, cfg.pad_width / cols)
        self._block_mask = scene.block_geom_mask
        self._pad_geoms = np.array(scene.pad_geoms)
        self.nominal_grasp = self._settle_grasp()
        self.grasp = self._copy_grasp(self.nominal_grasp)

    # ------------------------------------------------------------------ grasp
    @staticmethod
    def _copy_grasp(g: Grasp) -> Grasp:
        return Grasp(g.fingers.copy(), g.peg_pos.copy(), g.peg_quat.copy())

    def _hand_start_z(self, grasp: Grasp) -> float:
        """Hand height that puts the peg tip ``approach_gap`` above the block top."""
        tip_z = grasp.peg_pos[2]
        return self.scene.block_top + self.cfg.approach_gap - tip_z

    def _set_state(self, x: float, y: float, z: float, yaw: float, grasp: Grasp, vz: float = 0.0) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        q = self._q
        d.qpos[q["hand_x"]], d.qpos[q["hand_y"]], d.qpos[q["hand_z"]], d.qpos[q["hand_yaw"]] = x, y, z, yaw
        d.qpos[q["finger0"]], d.qpos[q["finger1"]] = grasp.fingers
        hq = _yaw_quat(yaw)
        pos = np.array([x, y, z]) + _rot(hq) @ grasp.peg_pos
        pq = grasp.peg_quat
        d.qpos[self.scene.peg_qpos : self.scene.peg_qpos + 3] = pos
        d.qpos[self.scene.peg_qpos + 3 : self.scene.peg_qpos + 7] = _quat_mul(hq, pq)
        d.qvel[self._v["hand_z"]] = vz
        d.qvel[self.scene.peg_dof + 2] = vz
        a = self._a
        d.ctrl[a["hand_x"]], d.ctrl[a["hand_y"]], d.ctrl[a["hand_z"]], d.ctrl[a["hand_yaw"]] = x, y, z, yaw
        d.ctrl[a["finger0"]] = d.ctrl[a["finger1"]] = self.cfg.grip_force
        mujoco.mj_forward(m, d)

    def _settle_grasp(self) -> Grasp:
        """Close the fingers on the peg in free space and let the grasp settle (first without gravity)."""
        m, d = self.model, self.data
        z = self.scene.block_top + 0.05
        g0 = Grasp(np.zeros(2), self.scene.peg_in_hand.copy(), np.array([1.0, 0, 0, 0]))
        self._set_state(0.0, 0.0, z, 0.0, g0)
        m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
        try:
            mujoco.mj_step(m, d, nstep=int(round(0.05 / m.opt.timestep)))
        finally:
            m.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
        mujoco.mj_step(m, d, nstep=int(round(0.15 / m.opt.timestep)))
        return self._grasp_from_data()

    def _hand_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d, q = self.data, self._q
        pos = np.array([d.qpos[q["hand_x"]], d.qpos[q["hand_y"]], d.qpos[q["hand_z"]]])
        return pos, _yaw_quat(d.qpos[q["hand_yaw"]])

    def _grasp_from_data(self) -> Grasp:
        d = self.data
        hpos, hq = self._hand_pose()
        p = d.qpos[self.scene.peg_qpos : self.scene.peg_qpos + 3]
        pq = d.qpos[self.scene.peg_qpos + 3 : self.scene.peg_qpos + 7]
        rel_pos = _rot(hq).T @ (p - hpos)
        rel_q = _quat_mul(_quat_conj(hq), pq)
        rel_q /= np.linalg.norm(rel_q)
        return Grasp(
            np.array([d.qpos[self._q["finger0"]], d.qpos[self._q["finger1"]]]), rel_pos, rel_q
        )

    def restore_grasp(self) -> None:
        self.grasp = self._copy_grasp(self.nominal_grasp)

    # ------------------------------------------------------------------ pose error
    def peg_error(self, x: float, y: float, yaw: float, grasp: Grasp | None = None) -> np.ndarray:
        """(ex, ey, erz) of the peg tip relative to the hole (m, m, rad) for a hand pose."""
        g = grasp or self.grasp
        hq = _yaw_quat(yaw)
        tip = np.array([x, y, 0.0]) + _rot(hq) @ g.peg_pos
        r = _rot(_quat_mul(hq, g.peg_quat))
        return np.array([tip[0], tip[1], math.atan2(r[1, 0], r[0, 0])])

    def hand_pose_for_error(self, ex: float, ey: float, erz: float, grasp: Grasp | None = None) -> np.ndarray:
        """Hand (x, y, yaw) that puts the peg at the given error (m, m, rad)."""
        g = grasp or self.grasp
        r = _rot(g.peg_quat)
        yaw = erz - math.atan2(r[1, 0], r[0, 0])
        off = _rot(_yaw_quat(yaw)) @ g.peg_pos
        return np.array([ex - off[0], ey - off[1], yaw])

    # ------------------------------------------------------------------ sensing
    def read_field(self) -> TactileField:
        """Evaluate the tactile sensors now: a field of shape (2 pads, R, C).

        Depth and sliding speeds come from MuJoCo's ``tactile`` sensor. The contact forces between pad and
        peg give the rest: the normal force is shared among the taxels in proportion to their depth, and the
        gel's surface displacement (shear) is the elastic response of a gel layer of shear modulus
        ``gel_shear_modulus`` and thickness ``pad_thickness`` to the traction of a rigid contact: a uniform
        part from the tangential force and a rotation about the contact centroid from the in-plane torque.
        """
        m, d = self.model, self.data
        flag = int(mujoco.mjtDisableBit.mjDSBL_SENSOR)
        m.opt.disableflags &= ~flag
        try:
            mujoco.mj_sensorVel(m, d)
        finally:
            m.opt.disableflags |= flag
        rows, cols = self.cfg.taxels
        depth = np.empty((2, rows, cols))
        slip = np.empty((2, rows, cols, 2))
        shear = np.zeros((2, rows, cols, 2))
        force = np.zeros((2, rows, cols))
        loads = self._pad_loads()
        cell = self.pitch[0] * self.pitch[1]
        compliance = self.cfg.pad_thickness / self.cfg.gel_shear_modulus  # m per Pa of traction
        for k, lay in enumerate(self.scene.taxels):
            raw = d.sensordata[lay.sensor_adr : lay.sensor_adr + 3 * lay.n]
            depth[k] = raw[: lay.n][lay.order].reshape(rows, cols)
            slip[k, ..., 0] = raw[lay.n : 2 * lay.n][lay.order].reshape(rows, cols)
            slip[k, ..., 1] = raw[2 * lay.n :][lay.order].reshape(rows, cols)
            total = depth[k].sum()
            if total <= 0:
                continue
            fn, ft, pos = loads[k]  # normal force (N), tangential forces on the gel (N, pad x/z), points
            force[k] = fn * depth[k] / total
            contact = depth[k] > 0
            xz = lay.local_xz
            area = contact.sum() * cell
            c = xz[contact].mean(axis=0)
            rel = xz - c
            polar = float((rel[contact] ** 2).sum()) * cell
            # in-plane torque of the contact forces about the contact centroid (about the pad normal)
            torque = float(np.sum((pos[:, 0] - c[0]) * ft[:, 1] - (pos[:, 1] - c[1]) * ft[:, 0]))
            ftot = ft.sum(axis=0)
            ux = ftot[0] / area - torque * rel[..., 1] / polar
            uz = ftot[1] / area + torque * rel[..., 0] / polar
            shear[k, ..., 0] = compliance * ux * contact
            shear[k, ..., 1] = -compliance * uz * contact  # rows run down the pad
        return TactileField(depth=depth, shear=shear, slip=slip, force=force, pitch=self.pitch)

    def _pad_loads(self) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """Per pad: total normal force (N), and per contact the tangential force the peg exerts on the gel
        (N, in the pad's x and z axes) and the contact point (m, pad x and z)."""
        m, d = self.model, self.data
        out_fn = [0.0, 0.0]
        ft = [[], []]
        pts = [[], []]
        f = np.zeros(6)
        for i in range(d.ncon):
            c = d.contact[i]
            for k in range(2):
                g = self.scene.pad_geoms[k]
                if g not in (c.geom1, c.geom2):
                    continue
                mujoco.mj_contactForce(m, d, i, f)
                frame = c.frame.reshape(3, 3)
                fw = frame.T @ f[:3]  # force of geom1 on geom2, world frame
                on_gel = fw if c.geom2 == g else -fw
                b = self.scene.pad_bodies[k]
                r = d.xmat[b].reshape(3, 3)
                local_f = r.T @ on_gel
                local_p = r.T @ (c.pos - d.xpos[b])
                out_fn[k] += f[0]
                ft[k].append(local_f[[0, 2]])
                pts[k].append(local_p[[0, 2]])
        return [
            (out_fn[k], np.array(ft[k]).reshape(-1, 2), np.array(pts[k]).reshape(-1, 2)) for k in range(2)
        ]

    def peg_touches_block(self) -> bool:
        d = self.data
        n = d.ncon
        if n == 0:
            return False
        g = d.contact.geom[:n]
        peg = self.scene.peg_geom
        mask = self._block_mask
        hit = ((g[:, 0] == peg) & mask[g[:, 1]]) | ((g[:, 1] == peg) & mask[g[:, 0]])
        return bool(hit.any())

    def tip_height(self) -> float:
        """Lowest point of the peg's tip face above the block top (m); negative inside the hole."""
        d = self.data
        b = self.scene.peg_body
        return float(d.xpos[b][2] - self.scene.block_top)

    def _lift(self, target: float) -> None:
        """Raise the hand off the block so the press releases (the slip stays)."""
        m, d = self.model, self.data
        a_z = self._a["hand_z"]
        rise = self.cfg.press_depth + self.cfg.approach_gap + 0.002
        n = max(1, int(round(rise / self.cfg.descent_speed / m.opt.timestep)))
        for i in range(n):
            d.ctrl[a_z] = target + rise * (i + 1) / n
            mujoco.mj_step(m, d)
        mujoco.mj_step(m, d, nstep=10)

    # ------------------------------------------------------------------ attempt
    def attempt(self, x: float, y: float, yaw: float, record: bool = True, keep_slip: bool = False) -> AttemptResult:
        """One insertion attempt with the hand at (x, y, yaw) (m, m, rad) in the hole frame.

        With ``keep_slip`` the hand lifts off the block after a failed attempt and the peg's pose in the hand
        is carried over to the next attempt; otherwise the nominal grasp is restored.
        """
        m, d, cfg = self.model, self.data, self.cfg
        grasp = self.grasp
        err = self.peg_error(x, y, yaw, grasp)
        z0 = self._hand_start_z(grasp)
        v = cfg.descent_speed
        self._set_state(x, y, z0, yaw, grasp, vz=-v)
        dt = m.opt.timestep
        a_z = self._a["hand_z"]
        target = z0
        lowest_target = z0 - cfg.approach_gap - cfg.insertion_depth - cfg.press_depth - 0.002
        contact_target = None
        contact_tip = 0.0
        frames: list[TactileField] = []
        next_frame = 0
        steps = 0
        success = False
        touched = False
        blocked = False
        min_tip = 1.0
        while target > lowest_target:
            target -= v * dt
            d.ctrl[a_z] = target
            mujoco.mj_step(m, d)
            steps += 1
            tip = self.tip_height()
            min_tip = min(min_tip, tip)
            if tip <= -cfg.insertion_depth:
                success = True
                break
            if contact_target is None:
                if self.peg_touches_block():
                    touched = True
                    contact_target = target
                    contact_tip = tip
            if contact_target is not None:
                pressed = contact_target - target
                while next_frame < N_FRAMES and pressed >= cfg.press_depth * next_frame / (N_FRAMES - 1) - 1e-12:
                    if record:
                        frames.append(self.read_field())
                    next_frame += 1
                if next_frame == N_FRAMES and not blocked:
                    if contact_tip - tip < cfg.press_depth / 2:
                        blocked = True
                        break
                    # the peg is sliding in (guided by the chamfer): keep descending
                    contact_target = None
                    frames = []
                    next_frame = 0
        if keep_slip and not success:
            self._lift(target)
            self.grasp = self._grasp_from_data()
        elif not keep_slip:
            self.restore_grasp()
        if record and not success and not blocked:
            # the descent ran out while the peg was still sliding: the last frames describe the jam
            while len(frames) < N_FRAMES:
                frames.append(self.read_field())
            frames = frames[-N_FRAMES:]
        field = TactileField.stack(frames) if (record and not success) else None
        return AttemptResult(
            success=success, contact=touched, field=field, error_before=err, tip_depth=-min_tip, steps=steps
        )
