"""Physical sanity of the peg-in-hole scene and its tactile pads."""

import math

import mujoco
import numpy as np
import pytest

from taclab.sim.config import SceneConfig
from taclab.sim.peg_in_hole import Grasp, PegInHoleSim
from taclab.sim.scene import build_scene, cached_scene, hole_block


@pytest.fixture(scope="module")
def sim():
    return PegInHoleSim(cached_scene(SceneConfig(), "square", 0.002))


def attempt(sim, ex_mm, ey_mm, erz_deg, **kw):
    sim.restore_grasp()
    hand = sim.hand_pose_for_error(ex_mm / 1e3, ey_mm / 1e3, math.radians(erz_deg))
    return sim.attempt(*hand, **kw)


def test_grasp_holds_the_peg_between_the_pads(sim):
    g = sim.nominal_grasp
    # the peg hangs below the hand, centred, upright, and both pads press on it
    assert abs(g.peg_pos[0]) < 1e-6 and abs(g.peg_pos[1]) < 1e-6
    assert g.peg_pos[2] < -0.02
    assert abs(g.peg_quat[0]) > 0.9999
    fingers = g.joints[:2]
    assert np.all(fingers < 0)  # closed past the touching position: the gel is compressed
    # the gel's shear springs carry the peg's weight: both pad surfaces are pulled down a little, equally
    pad_z = g.joints[[3, 6]]
    assert np.all(pad_z < 0) and np.all(pad_z > -1e-4)
    assert abs(pad_z[0] - pad_z[1]) < 1e-8


def test_aligned_peg_inserts_without_touching(sim):
    r = attempt(sim, 0.0, 0.0, 0.0)
    assert r.success and not r.contact and r.field is None
    assert r.tip_depth >= sim.cfg.insertion_depth


@pytest.mark.parametrize("err", [(2.5, 0, 0), (0, -2.5, 0), (-2.0, 2.0, 3.0)])
def test_misaligned_peg_collides_and_stays_out_of_the_block(sim, err):
    r = attempt(sim, *err)
    assert not r.success and r.contact
    assert r.field is not None and r.field.depth.shape == (4, 2, *sim.cfg.taxels)
    # the tip was stopped on the block top: it never went more than a fraction of a millimetre into it
    assert r.tip_depth < 0.3e-3
    # every frame shows both pads in contact
    assert np.all(r.field.depth.reshape(4, 2, -1).max(-1) > 0)
    # the block pushed the peg: the shear field is non-zero
    assert np.abs(r.field.shear[-1]).max() > 1e-5


def test_peg_and_block_penetration_is_small(sim):
    sim.restore_grasp()
    hand = sim.hand_pose_for_error(3e-3, 0.0, 0.0)
    sim.attempt(*hand)
    d, m = sim.data, sim.model
    worst = 0.0
    for i in range(d.ncon):
        c = d.contact[i]
        if sim.scene.peg_geom in (c.geom1, c.geom2) and (
            sim.scene.block_geom_mask[c.geom1] or sim.scene.block_geom_mask[c.geom2]
        ):
            worst = min(worst, c.dist)
    assert worst > -2e-4, f"peg went {-worst * 1e3:.3f} mm into the block"
    del m


def test_open_gripper_pads_read_zero(sim):
    joints = np.zeros_like(sim.nominal_grasp.joints)
    joints[:2] = 0.006  # fingers open
    open_grasp = Grasp(joints, sim.nominal_grasp.peg_pos.copy(), np.array([1.0, 0, 0, 0]))
    sim._set_state(0.0, 0.0, 0.1, 0.0, open_grasp)
    sim.data.ctrl[sim.scene.actuator["finger0"]] = sim.data.ctrl[sim.scene.actuator["finger1"]] = -5.0
    mujoco.mj_step(sim.model, sim.data, nstep=20)
    f = sim.read_field()
    assert np.all(f.depth == 0) and np.all(f.force == 0) and np.all(f.slip == 0)
    # closed on the peg, the same pads read the gel indentation
    sim._set_state(0.0, 0.0, 0.1, 0.0, sim.nominal_grasp)
    f = sim.read_field()
    assert f.depth.max() > sim.cfg.gel_layer
    np.testing.assert_allclose(f.force.sum(axis=(1, 2)), sim.cfg.grip_force, rtol=0.1)


def _mirror_x(field):
    return field.depth[..., ::-1], field.shear[..., ::-1, :] * np.array([-1.0, 1.0])


def test_opposite_ex_gives_mirror_images(sim):
    a = attempt(sim, 2.5, 0.3, 0.0).field
    b = attempt(sim, -2.5, 0.3, 0.0).field
    depth_b, shear_b = _mirror_x(b)
    np.testing.assert_allclose(a.depth, depth_b, atol=2e-6)
    np.testing.assert_allclose(a.shear, shear_b, atol=2e-6)
    # and the two are different: the sign is visible
    assert np.abs(a.shear - b.shear).max() > 2e-5


def test_opposite_ey_swaps_the_pads(sim):
    a = attempt(sim, 0.3, 2.5, 0.0).field
    b = attempt(sim, 0.3, -2.5, 0.0).field
    np.testing.assert_allclose(a.depth, b.depth[:, ::-1], atol=2e-6)
    np.testing.assert_allclose(a.shear, b.shear[:, ::-1], atol=2e-6)
    assert np.abs(a.depth - b.depth).max() > 1e-5


def test_bad_clearance_is_rejected():
    with pytest.raises(ValueError, match="clearance"):
        build_scene(SceneConfig(), "square", 0.0)
    with pytest.raises(ValueError, match="too large"):
        build_scene(SceneConfig(), "square", 0.05)


def test_unknown_config_key_is_rejected():
    with pytest.raises(ValueError, match="gel_stifness"):
        SceneConfig(gel_stifness=1.0)


@pytest.mark.parametrize("shape", ["square", "triangle", "hexagon"])
def test_hole_chamfer_cuts_the_top_edge_at_45_degrees(shape):
    """Vertical rays on the block: the block's top outside the widened outline, the chamfer's slope between the
    two outlines (height falls by the distance into the chamfer), nothing inside the hole; no chamfer by default."""
    c = 0.001
    cfg = SceneConfig(hole_chamfer=c)
    scene = build_scene(cfg, shape, 0.002)
    m, d = scene.model, mujoco.MjData(scene.model)
    mujoco.mj_forward(m, d)
    block = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "block")
    top = cfg.block_height

    def height(p):
        gid = np.zeros(1, np.int32)
        start = np.array([p[0], p[1], top + 0.0005])  # below the hand and the peg
        dist = mujoco.mj_ray(m, d, start, np.array([0, 0, -1.0]), None, 1, -1, gid)
        if dist < 0 or m.geom_bodyid[gid[0]] != block:
            return None
        return start[2] - dist

    normals, dd = scene.hole.halfplanes()
    v = scene.hole.vertices
    mid = (v[0] + v[1]) / 2  # the middle of edge 0, where the chamfer is a plain 45-degree slope
    n = normals[0]
    for frac in (0.25, 0.5, 0.75):
        assert height(mid + frac * c * n) == pytest.approx(top - c + frac * c, abs=2e-5)
    assert height(mid + 1.5 * c * n) == pytest.approx(top, abs=2e-5)
    assert height(mid - 0.5 * c * n) is None  # inside the hole
    sharp = build_scene(SceneConfig(), shape, 0.002)
    m, d = sharp.model, mujoco.MjData(sharp.model)
    mujoco.mj_forward(m, d)
    assert height(mid + 0.5 * c * n) == pytest.approx(top, abs=2e-5)
    with pytest.raises(ValueError, match="chamfer 3 mm must be less than the block's height 2 mm"):
        hole_block(scene.hole, 0.03, 0.002, 0.003)
    with pytest.raises(ValueError, match="hole_chamfer 3 mm leaves less than 3 mm of wall"):
        # a block with 3.5 mm of wall around the hole: enough for the hole, not for the chamfer's wider top
        tight = 2 * (float(np.max(scene.hole.extent())) + 0.0035)
        build_scene(SceneConfig(hole_chamfer=0.003, block_size=tight), shape, 0.002)
