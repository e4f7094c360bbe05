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
import time
from dataclasses import dataclass

import mujoco
import numpy as np

from taclab.sim.scene import HAND_JOINTS, PAD_JOINTS, PegInHoleScene, gel_solref
from taclab.sim.tactile.field import TactileField

N_FRAMES = 4


@dataclass
class Grasp:
    """State of the grasp, relative to the hand: finger joints and the peg's pose in the hand frame."""

    joints: np.ndarray  # positions of the hand's own joints (fingers and gel pads), in HAND_JOINTS order
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
        self.touch_seconds = 0.0  # time spent evaluating tactile fields, for benchmarks
        # where each pad's taxels sit in sensordata, in (row, column) order, and their positions (pad x, z)
        lays = scene.taxels
        self._idx_raw = np.stack(
            [np.stack([lay.sensor_adr + j * lay.n + lay.order for j in range(3)]) for lay in lays]
        )  # (2 pads, depth / slip 1 / slip 2, R*C)
        self._taxel_xz = np.stack([lay.local_xz.reshape(-1, 2) for lay in lays])
        self._pad_geom_ids = np.array(scene.pad_geoms)
        self._twist_sign = np.array([-1.0, 1.0])
        self._hand_joint_q = np.array([scene.joint_qpos[j] for j in HAND_JOINTS])
        self._pad_joint_q = np.array([scene.joint_qpos[j] for j in PAD_JOINTS]).reshape(2, 3)  # x, z, twist
        if not scene.gel_calibrated:
            self._calibrate_gel()
        self.nominal_grasp = self._settle_grasp()
        self.grasp = self._copy_grasp(self.nominal_grasp)

    # ------------------------------------------------------------------ grasp
    @staticmethod
    def _copy_grasp(g: Grasp) -> Grasp:
        return Grasp(g.joints.copy(), g.peg_pos.copy(), g.peg_quat.copy())

    def _hand_start_z(self, grasp: Grasp) -> float:
        """Hand height that puts the peg tip ``approach_gap`` above the block top."""
        tip_z = grasp.peg_pos[2]
        return self.scene.block_top + self.cfg.approach_gap - tip_z

    def _set_state(self, x: float, y: float, z: float, yaw: float, grasp: Grasp, vz: float = 0.0) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        q = self._q
        d.qpos[q["hand_x"]], d.qpos[q["hand_y"]], d.qpos[q["hand_z"]], d.qpos[q["hand_yaw"]] = x, y, z, yaw
        d.qpos[self._hand_joint_q] = grasp.joints
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
        g0 = Grasp(np.zeros(len(HAND_JOINTS)), self.scene.peg_in_hand.copy(), np.array([1.0, 0, 0, 0]))
        self._set_state(0.0, 0.0, z, 0.0, g0)
        m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
        try:
            mujoco.mj_step(m, d, nstep=int(round(0.05 / m.opt.timestep)))
        finally:
            m.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_GRAVITY)
        mujoco.mj_step(m, d, nstep=int(round(0.15 / m.opt.timestep)))
        return self._grasp_from_data()

    def _calibrate_gel(self) -> None:
        """Set the pads' contact stiffness from the inverse inertia of the settled grasp's contacts.

        MuJoCo's soft contacts are specified per unit of (inverse) inertia; reading it off the grasp once per
        scene makes ``gel_stiffness`` a true stiffness in N/m per contact point.
        """
        m, d = self.model, self.data
        self._settle_grasp()
        n = d.ncon
        geom = d.contact.geom[:n]
        adr = d.contact.efc_address[:n]
        pads = np.isin(geom, self._pad_geom_ids).any(axis=1) & (adr >= 0)
        if not pads.any():
            raise RuntimeError("the fingers did not close on the peg: check grip_force and the peg size")
        inv_mass = float(np.mean(d.efc_diagA[adr[pads]]))
        k, b = gel_solref(self.cfg, inv_mass)
        for g in self._pad_geom_ids:
            m.geom_solref[g] = (-k, -b)
        self.scene.gel_calibrated = True

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
        return Grasp(d.qpos[self._hand_joint_q].copy(), rel_pos, rel_q)

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
        """Evaluate the tactile sensors now: a field of shape (2 pads, R, C)."""
        return self.fields_from([self.capture()])[0]

    def capture(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Evaluate the tactile sensors now and keep what a field needs: the raw taxel readings (2, 3, R*C),
        the normal force on each pad (2,) and the gel's shear state (2, 3): slide x, slide z (m) and twist
        (rad) of each pad surface. Cheap; :meth:`fields_from` does the rest."""
        t0 = time.perf_counter()
        m, d = self.model, self.data
        flag = int(mujoco.mjtDisableBit.mjDSBL_SENSOR)
        m.opt.disableflags &= ~flag
        try:
            mujoco.mj_sensorVel(m, d)
        finally:
            m.opt.disableflags |= flag
        out = d.sensordata[self._idx_raw], self._pad_normal_force(), d.qpos[self._pad_joint_q]
        self.touch_seconds += time.perf_counter() - t0
        return out

    def fields_from(self, captures: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> TactileField:
        """Tactile fields (T, 2 pads, R, C) from captured readings, all frames and pads at once.

        Depth and sliding speeds come from MuJoCo's ``tactile`` sensor. The normal force of a pad's contacts is
        shared among its taxels in proportion to their depth. The shear is the displacement of the gel surface
        where it touches the peg: the pad surface's slide and twist against the gel's shear springs, evaluated
        at each taxel.
        """
        t0 = time.perf_counter()
        rows, cols = self.cfg.taxels
        t = len(captures)
        raw = np.stack([c[0] for c in captures])  # (T, 2, 3, R*C)
        fn = np.stack([c[1] for c in captures])  # (T, 2)
        q = np.stack([c[2] for c in captures])  # (T, 2, 3)
        depth = raw[:, :, 0]
        slip = np.moveaxis(raw[:, :, 1:], 2, -1)
        w = (depth > 0).astype(np.float64)
        # a taxel at (x, z) on the pad surface sits at R(twist) (x, z) + (slide x, slide z) in the finger frame
        # (pad 1's twist axis is +y, pad 0's is -y: each twists about its own outward normal)
        ang = q[..., 2] * self._twist_sign
        cos, sin = np.cos(ang)[..., None], np.sin(ang)[..., None]
        x, z = self._taxel_xz[None, ..., 0], self._taxel_xz[None, ..., 1]
        shear = np.empty((t, 2, rows * cols, 2))
        ux = q[..., 0, None] + (cos - 1) * x + sin * z
        uz = q[..., 1, None] - sin * x + (cos - 1) * z
        np.multiply(ux, w, out=shear[..., 0])
        np.multiply(uz, -w, out=shear[..., 1])  # rows run down the pad
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

    def _pad_normal_force(self) -> np.ndarray:
        """Total normal force (N) of the contacts on each pad, (2,)."""
        d = self.data
        n = d.ncon
        out = np.zeros(2)
        if n == 0:
            return out
        con = d.contact
        geom = con.geom[:n]
        adr = con.efc_address[:n]
        for k in range(2):
            sel = ((geom[:, 0] == self._pad_geom_ids[k]) | (geom[:, 1] == self._pad_geom_ids[k])) & (adr >= 0)
            out[k] = d.efc_force[adr[sel]].sum()  # the first constraint row of a contact is its normal force
        return out

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

    def peg_in_hole_footprint(self, tolerance: float = 0.0005) -> bool:
        """Whether the peg's section, where it is now, lies within the hole's outline (up to ``tolerance`` m)."""
        d, b = self.data, self.scene.peg_body
        r = d.xmat[b].reshape(3, 3)
        pos = d.xpos[b]
        return self.scene.section.protrusion(self.scene.hole, pos[0], pos[1], math.atan2(r[1, 0], r[0, 0])) <= tolerance

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
        frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
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
                # below the block top: inserted only when the peg is in the hole, not beside the block
                success = self.peg_in_hole_footprint()
                if success:
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
                        frames.append(self.capture())
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
                frames.append(self.capture())
            frames = frames[-N_FRAMES:]
        field = None
        if record and not success:
            field = self.fields_from(frames)
        return AttemptResult(
            success=success, contact=touched, field=field, error_before=err, tip_depth=-min_tip, steps=steps
        )
