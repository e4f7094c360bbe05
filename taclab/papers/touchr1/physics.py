"""One tactile interaction in MuJoCo: a gel pad presses an object to a set force, then slides a short way.

**Scene.** The object's top is a grid of small sphere *surface elements* (1 mm apart) whose tops follow the
object's surface ``s(x, y)`` (:class:`taclab.papers.touchr1.objects.Relief`: dome, bumps, roughness). Each element
carries the object's friction coefficient and a normal contact stiffness of ``k_series * a_e`` (``a_e`` the area
an element stands for, ``k_series = 1 / (1/k_gel + 1/k_object)`` the gel and the object's surface layer in
series), so MuJoCo's contacts form an elastic (Winkler) foundation: at the same force a softer object lets the pad
sink deeper and touches more elements. The probe is a body on an x and a z slide: a force actuator presses it
down, a position servo moves it along x. The gel *skin* (the box that touches) hangs from the probe on an x slide
with the gel's tangential stiffness: under shear it sticks to the object and lags behind the probe until the
friction limit ``mu * N`` is reached, then it slips; a slipperier object slips after a shorter slide.

**Protocol.** Gravity off; the force ramps to half the set force and holds (frame 0), ramps to the set force and
holds (frame 1); the probe then slides ``slide_mm`` at constant speed, with frames at a third, two thirds and the
end of the slide (frames 2-4).

**Field.** From the MuJoCo state at each frame the field under the 24 x 24 taxels (0.5 mm) is: the overlap of the
object's surface (evaluated where each taxel touches it, following the skin) with the pad's face; the gel's share
of it, ``overlap * c_gel / (c_gel + c_object)`` (compliances ``c = 1 / k``), is the gel's indentation ``depth``,
so a softer object leaves a wider but shallower imprint; the normal force per taxel is the foundation pressure,
scaled so that the taxels carry MuJoCo's total normal force; the shear is the skin's displacement relative to the
probe where the gel is in contact; the slip is the skin's sliding speed there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mujoco
import numpy as np

from taclab.papers.touchr1.objects import TouchObject
from taclab.sim.tactile.field import TactileField

TAXELS = (24, 24)
TAXEL_PITCH = (0.0005, 0.0005)
PAD_HALF = 0.006
ELEMENT_PITCH = 0.001
ELEMENT_RADIUS = 0.0006
ELEMENT_X = (-0.007, 0.009)
ELEMENT_Y = (-0.006, 0.006)
N_FRAMES = 5
FRAME_NAMES = ("press 50%", "press 100%", "slide 1/3", "slide 2/3", "slide 3/3")
TIMESTEP = 0.0005
PROBE_MASS, SKIN_MASS = 0.02, 0.005
_SOLIMP = 0.9


@dataclass(frozen=True)
class SensorSpec:
    """A sensor: its optical profile (in :data:`taclab.sim.tactile.PROFILES`) and its gel's mechanics."""

    profile: str
    gel_stiffness: float  # Pa/m, foundation stiffness of the gel layer (Young's modulus / thickness)
    skin_stiffness: float  # N/m, tangential stiffness of the gel skin against the sensor body


SENSORS = {
    "gelsight": SensorSpec("gelsight", 2.0e8, 1600.0),
    "gelstereo": SensorSpec("gelstereo", 1.5e8, 1400.0),
    "digit": SensorSpec("digit", 3.0e8, 2000.0),
    "gelsight_mini": SensorSpec("gelsight_mini", 1.0e8, 1200.0),
}
"""The four sensors: DIGIT-like has the stiffest gel, GelSight-Mini-like the softest."""


def get_sensor(name: str) -> SensorSpec:
    if name not in SENSORS:
        raise ValueError(f"unknown sensor {name!r}; allowed: {', '.join(SENSORS)}")
    return SENSORS[name]


@dataclass
class Interaction:
    """What one press-and-slide produced."""

    field: TactileField  # (N_FRAMES, R, C)
    normal_force: np.ndarray  # (N_FRAMES,) N, MuJoCo's total normal contact force
    approach: np.ndarray  # (N_FRAMES,) m, how far the pad's face is below the object's apex plane
    shear_disp: np.ndarray  # (N_FRAMES,) m, skin displacement relative to the probe
    slip_onset: float  # m of probe travel when the skin started to slide (slide_mm if it never did)
    contacts: int  # MuJoCo contacts at full press


def _element_grid() -> np.ndarray:
    xs = np.arange(ELEMENT_X[0], ELEMENT_X[1] + 1e-9, ELEMENT_PITCH)
    ys = np.arange(ELEMENT_Y[0], ELEMENT_Y[1] + 1e-9, ELEMENT_PITCH)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def _spec(n_elements: int, skin_stiffness: float = 1000.0) -> mujoco.MjSpec:
    spec = mujoco.MjSpec()
    spec.modelname = "touchr1_press"
    o = spec.option
    o.timestep = TIMESTEP
    o.gravity = [0, 0, 0]
    o.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    o.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    obj = spec.worldbody.add_body(name="object")
    for i in range(n_elements):
        obj.add_geom(
            name=f"el{i}",
            type=mujoco.mjtGeom.mjGEOM_SPHERE,
            size=[ELEMENT_RADIUS, 0, 0],
            pos=[0, 0, -ELEMENT_RADIUS],
            solimp=[_SOLIMP, _SOLIMP, 0.001, 0.5, 2],
            friction=[0.5, 0.005, 0.0001],
            solmix=1.0,
            contype=1,
            conaffinity=2,
            condim=3,
        )
    probe = spec.worldbody.add_body(name="probe", pos=[0, 0, 0])
    probe.add_joint(name="px", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0], damping=2.0)
    probe.add_joint(name="pz", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, 0, 1], damping=8.0)
    probe.add_geom(name="probe_body", type=mujoco.mjtGeom.mjGEOM_BOX, size=[PAD_HALF, PAD_HALF, 0.002],
                   pos=[0, 0, 0.006], mass=PROBE_MASS, contype=0, conaffinity=0)  # fmt: skip
    skin = probe.add_body(name="skin")
    skin.add_joint(name="sx", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[1, 0, 0], stiffness=skin_stiffness,
                   damping=2 * np.sqrt(skin_stiffness * SKIN_MASS))  # fmt: skip
    skin.add_geom(
        name="gel",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[PAD_HALF, PAD_HALF, 0.001],
        pos=[0, 0, 0.001],
        mass=SKIN_MASS,
        friction=[0.01, 0.005, 0.0001],
        solimp=[_SOLIMP, _SOLIMP, 0.001, 0.5, 2],
        solmix=1e-6,  # the elements' solref rules the contact
        contype=2,
        conaffinity=1,
        condim=3,
    )
    spec.add_actuator(name="press", target="pz", trntype=mujoco.mjtTrn.mjTRN_JOINT, gear=[-1, 0, 0, 0, 0, 0],
                      ctrlrange=[0, 20])  # fmt: skip
    act = spec.add_actuator(name="slide", target="px", trntype=mujoco.mjtTrn.mjTRN_JOINT, ctrlrange=[-0.02, 0.02])
    act.set_to_position(kp=2000.0, kv=60.0)
    return spec


@functools.lru_cache(maxsize=1)
def _stiffness_per_solref() -> float:
    """Static contact stiffness (N/m) per unit of direct solref stiffness of one element contact in this scene.

    MuJoCo's soft contacts are specified in acceleration units; one press of a single element measures the
    conversion once."""
    spec = _spec(1)
    model = spec.compile()
    k = 1.0e4
    model.geom_solref[0] = [-k, -2 * np.sqrt(k)]
    data = mujoco.MjData(model)
    data.ctrl[0] = 0.2
    for _ in range(3000):
        mujoco.mj_step(model, data)
    pen = -(data.qpos[1])  # the gel's face starts at the element's top (z = 0)
    return 0.2 / pen / k


class PressSim:
    """The compiled scene, reused for every object and sensor (elements are moved and re-tuned in place)."""

    def __init__(self):
        self.xy = _element_grid()
        self.model = _spec(len(self.xy)).compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._el = np.arange(len(self.xy))  # geoms 0..n-1 are the elements
        self._gel = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "gel")
        self._sx = m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "sx")]
        self._sx_dof = m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "sx")]
        self._sx_jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "sx")
        self.per_solref = _stiffness_per_solref()
        r, c = TAXELS
        self.tx = (np.arange(c) + 0.5 - c / 2) * TAXEL_PITCH[1]  # columns along +x
        self.ty = -(np.arange(r) + 0.5 - r / 2) * TAXEL_PITCH[0]  # rows from +y (top) down

    def run(
        self,
        obj: TouchObject,
        sensor: SensorSpec,
        force: float = 1.0,
        slide_mm: float = 2.0,
        offset: tuple[float, float] = (0.0, 0.0),
        slip_speed_ratio: float = 0.5,
    ) -> Interaction:
        """Press ``obj`` with ``force`` (N) and slide ``slide_mm``; ``offset`` (m) shifts the touched region of the
        relief (the dome's apex stays under the pad's centre)."""
        m, d = self.model, self.data
        relief = obj.relief()
        ox, oy = offset
        k_obj, k_gel = obj.value("hardness"), sensor.gel_stiffness
        c_gel, c_obj = 1.0 / k_gel, 1.0 / k_obj
        k_series = 1.0 / (c_gel + c_obj)
        k_el = k_series * ELEMENT_PITCH**2  # N/m per element
        solref_k = k_el / self.per_solref

        # the dome's apex at the world origin under the pad's centre; the relief shifted by the offset
        def surface(x, y):
            return -(x**2 + y**2) / (2 * relief.radius) + relief.texture(x + ox, y + oy)

        h = surface(self.xy[:, 0], self.xy[:, 1])
        m.geom_pos[self._el, 0] = self.xy[:, 0]
        m.geom_pos[self._el, 1] = self.xy[:, 1]
        m.geom_pos[self._el, 2] = h - ELEMENT_RADIUS
        m.geom_solref[self._el] = np.array([-solref_k, -2 * np.sqrt(solref_k)])
        m.geom_friction[self._el, 0] = obj.value("friction")
        m.jnt_stiffness[self._sx_jid] = sensor.skin_stiffness
        m.dof_damping[self._sx_dof] = 2 * np.sqrt(sensor.skin_stiffness * SKIN_MASS)
        mujoco.mj_resetData(m, d)
        top = float(h.max())
        d.qpos[1] = top + 2e-5  # the pad's face just above the highest element
        mujoco.mj_forward(m, d)

        frames, normal, approach, shear = [], [], [], []
        steps_ramp, steps_hold = 40, 60
        slide_steps = 300
        slide = slide_mm * 1e-3
        slip_onset = slide

        def capture():
            skin_x = float(d.qpos[self._sx])
            probe_x, probe_z = float(d.qpos[0]), float(d.qpos[1])
            xs = probe_x + skin_x
            z_face = probe_z
            s = surface(xs + self.tx[None, :], self.ty[:, None])
            overlap = np.maximum(s - z_face, 0.0)
            depth = overlap * c_gel / (c_gel + c_obj)
            n_mj = self._normal_force()
            press = overlap * k_series * TAXEL_PITCH[0] * TAXEL_PITCH[1]
            tot = press.sum()
            f = press * (n_mj / tot) if tot > 0 else press
            w = depth > 0
            sh = np.zeros((*TAXELS, 2))
            sh[..., 0] = skin_x * w
            vel = float(d.qvel[0] + d.qvel[self._sx_dof])
            sl = np.zeros((*TAXELS, 2))
            sl[..., 0] = abs(vel) * w
            frames.append(TactileField(depth=depth, shear=sh, slip=sl, force=f, pitch=TAXEL_PITCH))
            normal.append(n_mj)
            approach.append(-z_face)
            shear.append(skin_x)

        for frac in (0.5, 1.0):
            start = d.ctrl[0]
            for i in range(steps_ramp):
                d.ctrl[0] = start + (frac * force - start) * (i + 1) / steps_ramp
                mujoco.mj_step(m, d)
            for _ in range(steps_hold):
                mujoco.mj_step(m, d)
            capture()
        contacts = int(d.ncon)
        speed = slide / (slide_steps * TIMESTEP)
        marks = {slide_steps // 3, 2 * slide_steps // 3, slide_steps}
        slipped = False
        for i in range(1, slide_steps + 1):
            d.ctrl[1] = slide * i / slide_steps
            mujoco.mj_step(m, d)
            if not slipped and i > 5:
                v_skin = d.qvel[0] + d.qvel[self._sx_dof]
                if v_skin > slip_speed_ratio * speed:
                    slipped = True
                    slip_onset = float(d.qpos[0])
            if i in marks:
                capture()
        return Interaction(
            field=TactileField.stack(frames),
            normal_force=np.array(normal),
            approach=np.array(approach),
            shear_disp=np.array(shear),
            slip_onset=slip_onset,
            contacts=contacts,
        )

    def _normal_force(self) -> float:
        d = self.data
        n = d.ncon
        if n == 0:
            return 0.0
        geom = d.contact.geom[:n]
        adr = d.contact.efc_address[:n]
        sel = ((geom[:, 0] == self._gel) | (geom[:, 1] == self._gel)) & (adr >= 0)
        return float(d.efc_force[adr[sel]].sum())
