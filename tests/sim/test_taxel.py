"""The piezoresistive taxel renderer: model, saturation, noise, taxel positions, and the taxels in the bimanual
scene (a press lights the taxels under it; the taxel points lie on the pad surfaces)."""

import numpy as np
import pytest

from taclab.sim.tactile import TactileRenderer
from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.taxel import TaxelProfile, TaxelRenderer, taxel_grid, taxel_points

PROFILE = TaxelProfile()
GRID = PROFILE.grid


def _field(depth_mm: np.ndarray) -> TactileField:
    f = TactileField.zeros(depth_mm.shape[:-2], GRID, PROFILE.pitch)
    f.depth[...] = depth_mm / 1000.0
    return f


def test_profile_is_flexitac_sized_and_a_renderer():
    assert GRID == (32, 12) and PROFILE.pitch == (0.002, 0.002)
    assert PROFILE.pad_size == pytest.approx((0.064, 0.024))
    assert isinstance(TaxelRenderer(), TactileRenderer)
    with pytest.raises(ValueError, match="grid"):
        TaxelRenderer().render(TactileField.zeros((), (4, 4), (0.002, 0.002)))


def test_zero_reading_without_contact():
    r = TaxelRenderer()
    f = _field(np.zeros((3, *GRID)))
    np.testing.assert_array_equal(r.render(f), 0.0)
    # the noise stays under the dead band of an untouched pad
    np.testing.assert_array_equal(r.render(f, rng=np.random.default_rng(0)), 0.0)
    # a rate without indentation reads nothing either
    np.testing.assert_array_equal(r.render(f, depth_rate=np.full(f.shape, 0.05)), 0.0)


def test_force_grows_with_indentation_then_saturates():
    r = TaxelRenderer()
    depths = np.linspace(0.0, 1.5, 31)  # mm
    field = _field(np.broadcast_to(depths[:, None, None], (31, *GRID)).copy())
    out = r.render(field)[:, 0, 0]
    # f = k_n d (N/mm * mm) below full scale, clipped at full scale, increasing in between
    lin = depths * PROFILE.stiffness
    under = (lin < PROFILE.full_scale) & (lin >= PROFILE.threshold)
    np.testing.assert_allclose(out[under], lin[under], rtol=1e-6)
    assert np.all(np.diff(out) >= 0) and out[-1] == pytest.approx(PROFILE.full_scale)
    assert np.all(np.diff(out[under]) > 0)


def test_damping_term_and_units():
    r = TaxelRenderer(TaxelProfile(stiffness=1.0, damping=3e-3, full_scale=10.0, threshold=0.0))
    f = _field(np.full((1, *GRID), 0.5))
    rate = np.full(f.shape, 0.02)  # m/s = 20 mm/s
    np.testing.assert_allclose(r.render(f, depth_rate=rate), 0.5 + 3e-3 * 20, rtol=1e-6)
    # releasing fast never reads below zero
    np.testing.assert_array_equal(r.render(f, depth_rate=-10 * rate), 0.0)
    with pytest.raises(ValueError, match="depth_rate"):
        r.render(f, depth_rate=np.zeros(3))


def test_noise_is_seeded_and_bounded():
    r = TaxelRenderer()
    f = _field(np.full((2, *GRID), 0.4))
    a = r.render(f, rng=np.random.default_rng(5))
    b = r.render(f, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, 0.4) and abs(float(a.mean()) - 0.4) < 0.01
    assert a.min() >= 0 and a.max() <= PROFILE.full_scale


def test_a_press_on_part_of_the_field_lights_only_those_taxels():
    depth = np.zeros(GRID)
    depth[20:28, 3:7] = 0.4
    out = TaxelRenderer().render(_field(depth))
    np.testing.assert_array_equal(out > 0, depth > 0)


def test_taxel_grid_and_points():
    g = taxel_grid((3, 2), 0.002)
    np.testing.assert_allclose(g[0, 0], [-0.001, 0.002])  # top-left: first column, top row
    np.testing.assert_allclose(g[2, 1], [0.001, -0.002])
    local = np.concatenate([g, np.zeros((3, 2, 1))], axis=-1)
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90 degrees about z
    pts = taxel_points(local, [1.0, 0.0, 0.0], rot)
    np.testing.assert_allclose(pts[0, 0], [1.0 - 0.002, -0.001, 0.0])
    r = TaxelRenderer()
    force = np.zeros((3, 2), np.float32)
    force[1, 1] = PROFILE.full_scale / 2
    cloud = r.points(force, pts)
    assert cloud.shape == (6, 4)
    np.testing.assert_allclose(cloud[3], [*pts[1, 1], 0.5])
    assert r.points(np.zeros(GRID), np.zeros((*GRID, 3)), stride=2).shape == (16 * 6, 4)


# ---------------------------------------------------------------------------------------------- in the scene
@pytest.fixture(scope="module")
def grasped():
    """Both hands closed on their parts on the table: hand 0 at the socket handle's centre, hand 1 with its pads
    reaching 7 mm past the peg handle's end, over the (narrower) shaft."""
    from taclab.sim.bimanual import BimanualConfig, BimanualSim, cached_scene

    sim = BimanualSim(cached_scene(BimanualConfig(), "square", 0.0008))
    z = sim.grasp_height()
    hands = np.array([[-0.12, 0.0, z, 0, 0, 0], [0.12 - 0.025, 0.0, z, 0, 0, 0]])
    sim.reset(hands, np.array([[-0.12, 0.0, 0.0], [0.12, 0.0, 0.0]]))
    for _ in range(8):  # the grip command ramps up over the first call, then the fingers close and settle
        sim.step(hands, np.ones(2), 50)
    return sim


def test_a_grasp_lights_the_taxels_over_the_handle_only(grasped):
    sim = grasped
    depth = sim.taxel_depth()
    force = TaxelRenderer().render(TactileField(depth, None, None, None, PROFILE.pitch))
    pos = sim.taxel_positions()
    hx, hy, hz = sim.geometry.handle_half
    parts, _ = sim.part_poses()
    for p in range(4):
        rel = pos[p] - parts[p // 2]
        lit = force[p] > 0
        # the handle is under the lower part of the pad: every taxel below its top face reads, none above it
        # (one pitch of margin at the edge); for the peg, none beyond the handle's end either
        inside = (rel[..., 2] < hz - 0.002) & (np.abs(rel[..., 0]) < hx - 0.002)
        outside = rel[..., 2] > hz + 0.002
        if p >= 2:
            outside |= rel[..., 0] < -hx - 0.002
        assert lit[inside].all() and not lit[outside].any()
        assert inside.sum() > 50 and outside.sum() > 200
        assert not lit[:10].any()
    # the peg's pads: the columns past the handle's end read nothing
    assert (force[2:, :, :3] == 0).all() and (force[2:, -5:, 5:] > 0).all()


def test_harder_squeeze_reads_more(grasped):
    from taclab.sim.bimanual import BimanualConfig, BimanualSim, cached_scene

    readings = []
    for force in (5.0, 15.0):
        sim = BimanualSim(cached_scene(BimanualConfig(grip_force=force), "square", 0.0008))
        z = sim.grasp_height()
        hands = np.array([[-0.12, 0.0, z, 0, 0, 0], [0.12, 0.0, z, 0, 0, 0]])
        sim.reset(hands, np.array([[-0.12, 0.0, 0.0], [0.12, 0.0, 0.0]]))
        for _ in range(16):  # 5 N closes the fingers slowly
            sim.step(hands, np.ones(2), 50)
        readings.append(sim.taxel_depth().max(axis=(1, 2)))
    assert np.all(readings[1] > readings[0] + 1e-4)


def test_taxel_points_lie_on_the_pad_surfaces(grasped):
    sim = grasped
    pos = sim.taxel_positions()
    frames, rots = sim.pad_frames()
    cfg = sim.cfg
    pad_len, pad_w = cfg.pad_size
    for p in range(4):
        side = -1.0 if p % 2 == 0 else 1.0  # pad 0 on the hand's -y side
        local = np.einsum("ji,rcj->rci", rots[p], pos[p] - frames[p])
        # the pad's inner face is its body's y = 0 plane; the taxels sit gel_layer proud of it, towards the part
        np.testing.assert_allclose(local[..., 1], -side * cfg.gel_layer, atol=2e-6)
        assert np.all(np.abs(local[..., 0]) < pad_w / 2) and np.all(np.abs(local[..., 2]) < pad_len / 2)
        # a 2 mm grid, rows from the palm to the tip, columns along the hand's +x
        np.testing.assert_allclose(np.diff(local[..., 0], axis=1), 0.002, atol=1e-8)
        np.testing.assert_allclose(np.diff(local[..., 2], axis=0), -0.002, atol=1e-8)
    # in the world: the two pads of a hand face each other across the handle, its width apart
    parts, _ = sim.part_poses()
    for k in range(2):
        y0 = pos[2 * k, ..., 1].mean() - parts[k, 1]
        y1 = pos[2 * k + 1, ..., 1].mean() - parts[k, 1]
        w = sim.geometry.handle_half[1]
        assert y0 == pytest.approx(-w, abs=1e-3) and y1 == pytest.approx(w, abs=1e-3)
