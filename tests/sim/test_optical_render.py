"""The optical tactile renderer."""

import numpy as np
import pytest

from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.optical import (
    PROFILES,
    Light,
    OpticalRenderer,
    get_profile,
    load_background,
    make_background,
)

GRID, PITCH = (32, 32), (0.0005, 0.0005)


def field(depth, shear=None):
    depth = np.asarray(depth, float)
    if shear is None:
        shear = np.zeros((*depth.shape, 2))
    return TactileField(depth=depth, shear=shear, slip=np.zeros_like(shear), force=np.zeros_like(depth), pitch=PITCH)


def imprint(offset=0):
    d = np.zeros(GRID)
    d[8:24, 4 + offset : 14 + offset] = 5e-4
    return d


@pytest.fixture(scope="module")
def renderer():
    return OpticalRenderer("gelstereo", grid=GRID, pitch=PITCH)


def test_untouched_gel_is_the_reference_image(renderer):
    img = renderer.render(TactileField.zeros((), GRID, PITCH))
    np.testing.assert_array_equal(img, renderer.reference_image())
    nomark = OpticalRenderer(get_profile("gelsight"), grid=GRID, pitch=PITCH)
    np.testing.assert_array_equal(nomark.render(TactileField.zeros((), GRID, PITCH)), nomark.background)


def test_batch_shapes_and_dtype(renderer):
    f = TactileField.zeros((4, 2), GRID, PITCH)
    out = renderer.render(f, rng=np.random.default_rng(0))
    assert out.shape == (4, 2, 64, 64, 3) and out.dtype == np.uint8


def test_an_imprint_shows_where_it_is(renderer):
    ref = renderer.reference_image().astype(int)
    img = renderer.render(field(imprint())).astype(int)
    diff = np.abs(img - ref).sum(-1)
    assert diff[:, :32].sum() > 5 * diff[:, 32:].sum()


def test_mirrored_field_gives_mirrored_image():
    # with a mirror-symmetric sensor (flat reference, one light from the top) the renderer is mirror-equivariant
    prof = get_profile("gelstereo").model_copy(
        update={"background": "flat", "lights": (Light(azimuth_deg=90.0, color=(1.0, 0.9, 0.8)),)}
    )
    r = OpticalRenderer(prof, grid=GRID, pitch=PITCH)
    d = imprint()
    shear = np.zeros((*GRID, 2))
    shear[8:24, 4:14, 0] = 2e-4
    a = r.render(field(d, shear)).astype(int)
    b = r.render(field(d[:, ::-1], shear[:, ::-1] * [-1, 1])).astype(int)
    assert np.abs(a - b[:, ::-1]).max() <= 1  # up to the rounding of the cast
    assert np.abs(a - a[:, ::-1]).max() > 20  # and the image itself is not symmetric


def test_shear_moves_the_markers_only_when_markers_are_on(renderer):
    d = imprint()
    shear = np.zeros((*GRID, 2))
    shear[8:24, 4:14, 1] = 3e-4
    a, b = renderer.render(field(d)), renderer.render(field(d, shear))
    assert np.abs(a.astype(int) - b).max() > 20
    plain = OpticalRenderer("gelsight", grid=GRID, pitch=PITCH)
    np.testing.assert_array_equal(plain.render(field(d)), plain.render(field(d, shear)))


def test_noise_is_seeded(renderer):
    f = field(imprint())
    a = renderer.render(f, rng=np.random.default_rng(3))
    b = renderer.render(f, rng=np.random.default_rng(3))
    c = renderer.render(f, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    clean = renderer.render(f).astype(float)
    assert 1.0 < np.std(a - clean) < 3.0  # noise_std 2 grey levels (clipped at 0 and 255)


def test_bad_profile_and_grid():
    with pytest.raises(ValueError, match=r"unknown optical profile 'digit'.*gelstereo"):
        get_profile("digit")
    r = OpticalRenderer("gelstereo", grid=GRID, pitch=PITCH)
    with pytest.raises(ValueError, match=r"\(16, 16\).*\(32, 32\)"):
        r.render(TactileField.zeros((), (16, 16), PITCH))
    with pytest.raises(ValueError, match="marker_radius_mm"):
        PROFILES["gelstereo"].model_validate({**PROFILES["gelstereo"].model_dump(), "marker_radius_mm": 1.0})


def test_shipped_background_is_the_generator_output():
    np.testing.assert_array_equal(load_background("default"), make_background())


def test_resolution_is_configurable():
    prof = get_profile("gelstereo").model_copy(update={"image_size": (96, 80)})
    out = OpticalRenderer(prof, grid=GRID, pitch=PITCH).render(field(imprint()))
    assert out.shape == (96, 80, 3)


def test_depth_image_upsamples_and_smooths(renderer):
    d = imprint()
    img = renderer.render_depth_image(field(np.stack([d, d[:, ::-1]])))
    assert img.shape == (2, 64, 64) and img.dtype == np.float32
    # the smoothed imprint keeps its depth inside, and is mirrored for a mirrored field
    assert 4.5e-4 < img[0, 32, 18] <= 5.0e-4 + 1e-9
    np.testing.assert_allclose(img[1], img[0][:, ::-1], atol=1e-9)
