"""Tests for the optical tactile renderer."""

from __future__ import annotations

import numpy as np
import pytest

from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.optical import (
    PROFILES,
    Light,
    OpticalProfile,
    OpticalRenderer,
    get_profile,
    load_background,
    make_background,
)

GRID = (32, 32)
PITCH = (0.0005, 0.0005)


def _field(batch=()) -> TactileField:
    return TactileField.zeros(batch, GRID, PITCH)


def _pressed(batch=(), rows=slice(10, 22), cols=slice(4, 14), depth=0.0005) -> TactileField:
    f = _field(batch)
    f.depth[..., rows, cols] = depth
    return f


def _mirrored(f: TactileField) -> TactileField:
    """The field mirrored left-right: columns reversed, the column component of shear negated."""
    shear = f.shear[..., ::-1, :].copy()
    shear[..., 0] *= -1
    return TactileField(
        depth=f.depth[..., ::-1].copy(),
        shear=shear,
        slip=f.slip[..., ::-1, :].copy(),
        force=f.force[..., ::-1].copy(),
        pitch=f.pitch,
    )


def _symmetric_profile(**update) -> OpticalProfile:
    """A profile whose lights and background are mirror-symmetric left-right."""
    lights = (
        Light(azimuth_deg=90.0, elevation_deg=30.0, color=(1.0, 0.3, 0.2)),
        Light(azimuth_deg=210.0, elevation_deg=30.0, color=(0.2, 0.6, 1.0)),
        Light(azimuth_deg=330.0, elevation_deg=30.0, color=(0.2, 0.6, 1.0)),
    )
    return OpticalProfile(name="symmetric", lights=lights, background="flat", **update)


def test_zero_field_renders_background():
    r = OpticalRenderer(get_profile("gelsight"), GRID, PITCH)  # no markers
    img = r.render(_field())
    np.testing.assert_array_equal(img, r.background)
    # with markers the untouched gel is the background with dark dots on it, nothing else
    rm = OpticalRenderer("gelstereo", GRID, PITCH)
    ref = rm.render(_field())
    np.testing.assert_array_equal(ref, rm.reference_image())
    same = np.all(ref == rm.background, axis=-1)
    assert 0.5 < same.mean() < 0.99
    assert np.all(ref.astype(int) <= rm.background)


def test_shapes_and_dtype_for_batch_dims():
    r = OpticalRenderer("gelstereo", GRID, PITCH)
    img = r.render(_pressed((4, 2)))
    assert img.shape == (4, 2, 64, 64, 3) and img.dtype == np.uint8
    single = r.render(_pressed((4, 2))[1, 0])
    np.testing.assert_array_equal(img[1, 0], single)
    depth = r.render_depth_image(_pressed((3,)))
    assert depth.shape == (3, 64, 64) and np.issubdtype(depth.dtype, np.floating)
    assert 0.0004 < depth.max() <= 0.0005 + 1e-9 and depth.min() >= -1e-9
    big = OpticalRenderer(get_profile("gelstereo").model_copy(update={"image_size": (128, 96)}), GRID, PITCH)
    assert big.render(_field((2,))).shape == (2, 128, 96, 3)


def test_indentation_on_the_left_changes_the_left_only():
    r = OpticalRenderer("gelstereo", GRID, PITCH)
    diff = np.abs(r.render(_pressed()).astype(int) - r.reference_image()).sum(-1)
    left, right = diff[:, :28], diff[:, 36:]
    assert left.sum() > 1000
    assert right.sum() == 0


@pytest.mark.parametrize("size", [(64, 64), (128, 128), (48, 80)])
@pytest.mark.parametrize("markers", [True, False])
def test_mirrored_field_gives_mirrored_image(size, markers):
    r = OpticalRenderer(_symmetric_profile(image_size=size, markers=markers), GRID, PITCH)
    rng = np.random.default_rng(3)
    f = _field((2,))
    f.depth[:] = rng.uniform(0, 0.0008, f.depth.shape) * (rng.uniform(size=f.depth.shape) < 0.3)
    f.depth[0, 8:20, 3:13] = 0.0006
    f.shear[:] = rng.normal(0, 0.0002, f.shear.shape)
    img, mirrored = r.render(f).astype(int), r.render(_mirrored(f)).astype(int)
    assert np.abs(img - img[..., ::-1, :]).max() > 20  # the test field is not symmetric itself
    # equal up to float rounding in the matrix products flipping an odd cast to uint8
    diff = np.abs(mirrored - img[..., ::-1, :])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    np.testing.assert_allclose(
        r.render_depth_image(_mirrored(f)), r.render_depth_image(f)[..., ::-1], rtol=1e-5, atol=1e-10
    )


def _marker_centroid_col(img: np.ndarray, bg: np.ndarray, rows: slice, cols: slice) -> float:
    """Column centroid of the darkening (against the background) in a window around one marker."""
    dark = np.clip(bg.astype(float).sum(-1) - img.astype(float).sum(-1), 0, None)[rows, cols]
    c = np.arange(cols.start, cols.stop)
    return float((dark * c).sum() / dark.sum())


def test_shear_moves_markers_only_when_markers_are_drawn():
    r = OpticalRenderer("gelstereo", GRID, PITCH)
    ref = r.reference_image()
    win = (slice(25, 32), slice(25, 33))  # around the marker at rest near (28.3, 28.3) only
    f = _field()
    f.shear[..., 0] = 0.0003  # 0.3 mm = 1.2 pixels to the right, everywhere
    moved = r.render(f)
    shift = _marker_centroid_col(moved, r.background, *win) - _marker_centroid_col(ref, r.background, *win)
    assert 0.9 < shift < 1.5
    # a local patch of shear changes the image only near the patch
    g = _field()
    g.shear[12:20, 12:20, 1] = 0.0003
    changed = np.any(r.render(g) != ref, axis=-1)
    assert changed[22:42, 22:42].sum() > 20
    assert not changed[:, :8].any() and not changed[:, 56:].any() and not changed[:8].any()
    off = OpticalRenderer(get_profile("gelstereo").model_copy(update={"markers": False}), GRID, PITCH)
    np.testing.assert_array_equal(off.render(g), off.reference_image())
    np.testing.assert_array_equal(off.reference_image(), off.background)


def test_marker_gain_scales_displacement():
    f = _field()
    f.shear[..., 0] = 0.0008  # exactly half the marker pitch: dots land between their rest positions
    base = get_profile("gelstereo")
    moved = OpticalRenderer(base, GRID, PITCH).render(f)
    still = OpticalRenderer(base.model_copy(update={"marker_gain": 0.0}), GRID, PITCH)
    np.testing.assert_array_equal(still.render(f), still.reference_image())
    assert np.any(moved != still.reference_image())


def test_noise_is_reproducible_by_seed():
    r = OpticalRenderer("gelstereo", GRID, PITCH)
    f = _pressed((2,))
    a = r.render(f, rng=np.random.default_rng(7))
    b = r.render(f, rng=np.random.default_rng(7))
    c = r.render(f, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
    clean = r.render(f).astype(float)
    assert 1.0 < np.std(a - clean) < 3.0  # noise_std 2 (minus a little clipping and rounding)
    np.testing.assert_array_equal(r.render(f), r.render(f))  # no rng: deterministic


def test_unknown_profile_raises():
    with pytest.raises(ValueError, match="nope") as e:
        get_profile("nope")
    for name in PROFILES:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="nope"):
        OpticalRenderer("nope", GRID, PITCH)
    with pytest.raises(ValueError, match="marble"):
        OpticalProfile(background="marble")
    with pytest.raises(ValueError):
        OpticalProfile(marker_pitch_mm=0.5, marker_radius_mm=0.3)


def test_mismatched_grid_raises():
    r = OpticalRenderer("gelstereo", GRID, PITCH)
    with pytest.raises(ValueError, match=r"\(16, 24\).*\(32, 32\)"):
        r.render(TactileField.zeros((2,), (16, 24), PITCH))
    with pytest.raises(ValueError, match=r"\(16, 24\)"):
        r.render_depth_image(TactileField.zeros((), (16, 24), PITCH))
    with pytest.raises(ValueError, match="pitch"):
        r.render(TactileField.zeros((), GRID, (0.001, 0.001)))


def test_shipped_background_matches_generator():
    shipped = load_background("default")
    made = make_background()
    assert shipped.shape == made.shape == (256, 256, 3) and shipped.dtype == np.uint8
    diff = np.abs(shipped.astype(int) - made)
    # bit-exact where written; allow an odd last-bit flip of rounding from a different libm
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert not np.array_equal(make_background(seed=1), made)
    flat = load_background("flat")
    assert np.all(flat == flat[0, 0])
