"""Magnetic skin: baseline, press, shear and mirror behaviour of the dipole model."""

import numpy as np
import pytest

from taclab.sim.tactile import TactileRenderer
from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.magnetic import (
    CHIPS,
    MagneticProfile,
    MagneticRenderer,
    MagneticSkinSensor,
    get_magnetic_profile,
    mirror_columns,
)

GRID, PITCH = (16, 16), (0.001, 0.001)  # a 16 x 16 mm pad
SPACING = 5.0  # mm, the default chip spacing
CHIP_UV = {"centre": (0, 0), "left": (-SPACING, 0), "right": (SPACING, 0), "up": (0, SPACING), "down": (0, -SPACING)}


@pytest.fixture(scope="module")
def renderer():
    return MagneticRenderer(MagneticProfile(), GRID, PITCH)


def contact(u_mm, v_mm, depth_mm=0.3, radius_mm=2.0, shear_mm=(0.0, 0.0)) -> TactileField:
    """A spherical-cap press centred at (u, v) on the skin, dragging the gel surface by shear (u, v) where it
    touches. The field's second shear component runs down the rows, hence the sign."""
    f = TactileField.zeros((), GRID, PITCH)
    x = (np.arange(GRID[1]) + 0.5 - GRID[1] / 2) * PITCH[1] * 1e3
    y = (GRID[0] / 2 - np.arange(GRID[0]) - 0.5) * PITCH[0] * 1e3
    xx, yy = np.meshgrid(x, y)
    d = np.clip(depth_mm * (1 - ((xx - u_mm) ** 2 + (yy - v_mm) ** 2) / radius_mm**2), 0, None) * 1e-3
    f.depth[...] = d
    f.shear[..., 0] = shear_mm[0] * 1e-3 * (d > 0)
    f.shear[..., 1] = -shear_mm[1] * 1e-3 * (d > 0)
    f.force[...] = d * 1e4
    return f


def test_renderer_follows_the_tactile_protocol_and_profiles(renderer):
    assert isinstance(renderer, TactileRenderer)
    assert get_magnetic_profile("anyskin") == MagneticProfile()
    with pytest.raises(ValueError, match="unknown magnetic skin profile 'x'; allowed: anyskin"):
        get_magnetic_profile("x")
    out = renderer.render(TactileField.stack([contact(0, 0), contact(1, 1)]))
    assert out.shape == (2, 15)


def test_untouched_skin_reads_zero_and_the_sensor_reads_its_baseline_within_noise(renderer):
    still = contact(0, 0, depth_mm=0.0)
    np.testing.assert_array_equal(renderer.render(still), np.zeros(15))
    # a grasp already in place at reset is part of the baseline
    grasp = TactileField.stack([contact(0, 0, 0.25, 6.0), contact(1, 0, 0.25, 6.0)])
    sensor = MagneticSkinSensor(renderer)
    rng = np.random.default_rng(0)
    sensor.reset(grasp, rng)
    reads = np.stack([sensor.read(grasp, rng, dt=1 / 6) for _ in range(60)])  # ten seconds
    noise = renderer.profile.noise_uT
    assert np.abs(reads).max() < 6 * noise
    assert abs(reads.mean()) < 0.5 * noise


def test_drift_is_a_slow_random_walk():
    r = MagneticRenderer(MagneticProfile(noise_uT=0.0, drift_uT_per_sqrt_s=0.5, dipoles=(4, 4, 1)), GRID, PITCH)
    still = TactileField.stack([contact(0, 0, 0.0)] * 400)  # 400 independent skins
    sensor = MagneticSkinSensor(r)
    rng = np.random.default_rng(1)
    sensor.reset(still, rng)
    for _ in range(4):
        out = sensor.read(still, rng, dt=25.0)
    assert np.std(out) == pytest.approx(0.5 * np.sqrt(100), rel=0.1)  # after 100 s
    with pytest.raises(RuntimeError, match="reset"):
        MagneticSkinSensor(r).read(still, rng, dt=1.0)


@pytest.mark.parametrize("chip", CHIPS)
def test_a_press_raises_the_normal_component_most_under_the_press(renderer, chip):
    u, v = CHIP_UV[chip]
    b = renderer.to_skin_frame(renderer.render(contact(u, v)))  # (5 chips, (Bu, Bv, Bw))
    k = CHIPS.index(chip)
    assert b[k, 2] > 100  # uT
    assert np.argmax(b[:, 2]) == k
    assert b[k, 2] > 5 * np.delete(b[:, 2], k).max()
    # in the chip's own frame the normal component is the third value
    assert renderer.render(contact(u, v))[3 * k + 2] == pytest.approx(b[k, 2])


@pytest.mark.parametrize("chip", CHIPS)
@pytest.mark.parametrize("direction", [(1, 0), (-1, 0), (0, 1), (0, -1)])
def test_shear_gives_in_plane_components_of_its_sign(renderer, chip, direction):
    u, v = CHIP_UV[chip]
    k = CHIPS.index(chip)
    pressed = renderer.render(contact(u, v, 0.2, 3.0))
    sheared = renderer.render(contact(u, v, 0.2, 3.0, shear_mm=(0.3 * direction[0], 0.3 * direction[1])))
    delta = renderer.to_skin_frame(sheared - pressed)[k]  # (Bu, Bv, Bw) change of the chip under the contact
    along = np.dot(delta[:2], direction)
    across = abs(delta[0] * direction[1] - delta[1] * direction[0])
    assert along > 50 and across < 0.05 * along
    # the same change in the chip's frame, rotated by the chip's angle
    a = np.radians(renderer.profile.chip_angles_deg[k])
    chip_xy = (sheared - pressed)[3 * k : 3 * k + 2]
    np.testing.assert_allclose(
        chip_xy, [np.cos(a) * delta[0] + np.sin(a) * delta[1], -np.sin(a) * delta[0] + np.cos(a) * delta[1]]
    )


def mirror_reading(b):
    """Skin-frame readings (5, 3) mirrored in u: left and right chips swap, Bu changes sign."""
    out = b[[0, 2, 1, 3, 4]].copy()
    out[:, 0] *= -1
    return out


@pytest.mark.parametrize("u,v,su,sv", [(2.5, 1.0, 0.2, -0.1), (4.0, -3.0, -0.3, 0.2), (1.0, 5.0, 0.0, 0.0)])
def test_mirror_symmetric_contacts_give_mirror_readings(renderer, u, v, su, sv):
    right = renderer.to_skin_frame(renderer.render(contact(u, v, shear_mm=(su, sv))))
    left = renderer.to_skin_frame(renderer.render(contact(-u, v, shear_mm=(-su, sv))))
    np.testing.assert_allclose(left, mirror_reading(right), atol=1e-9 * np.abs(right).max())
    # mirror_columns is that reflection of a field
    f = contact(u, v, shear_mm=(su, sv))
    np.testing.assert_allclose(
        renderer.to_skin_frame(renderer.render(mirror_columns(f))), mirror_reading(right), atol=1e-9
    )
    # up/down mirror: up and down chips swap, Bv changes sign
    down = renderer.to_skin_frame(renderer.render(contact(u, -v, shear_mm=(su, -sv))))
    up = right[[0, 1, 2, 4, 3]].copy()
    up[:, 1] *= -1
    np.testing.assert_allclose(down, up, atol=1e-9 * np.abs(right).max())


def test_deeper_press_reads_more(renderer):
    bz = [renderer.render(contact(0, 0, d))[2] for d in (0.1, 0.2, 0.4, 0.8)]
    assert np.all(np.diff(bz) > 0)


def test_bad_input_is_named(renderer):
    with pytest.raises(ValueError, match="chip_spacing_mm 9.0 puts the outer chips outside"):
        MagneticRenderer(MagneticProfile(chip_spacing_mm=9.0), GRID, PITCH)
    with pytest.raises(ValueError, match=r"field grid \(8, 8\) does not match the renderer's grid \(16, 16\)"):
        renderer.render(TactileField.zeros((), (8, 8), PITCH))
    with pytest.raises(ValueError, match="15 values"):
        renderer.to_skin_frame(np.zeros(14))
    with pytest.raises(ValueError, match="dipoles"):
        MagneticProfile(dipoles=(1, 16, 2))
