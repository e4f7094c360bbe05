"""The optical tactile renderer: what tests/sim/test_optical.py does not cover."""

import numpy as np
import pytest

from taclab.sim.tactile.field import TactileField
from taclab.sim.tactile.optical import (
    PROFILES,
    OpticalRenderer,
    get_profile,
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


def test_an_imprint_shows_where_it_is(renderer):
    ref = renderer.reference_image().astype(int)
    img = renderer.render(field(imprint())).astype(int)
    diff = np.abs(img - ref).sum(-1)
    assert diff[:, :32].sum() > 5 * diff[:, 32:].sum()


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
    with pytest.raises(ValueError, match=r"unknown optical profile 'biotac'.*gelstereo"):
        get_profile("biotac")
    r = OpticalRenderer("gelstereo", grid=GRID, pitch=PITCH)
    with pytest.raises(ValueError, match=r"\(16, 16\).*\(32, 32\)"):
        r.render(TactileField.zeros((), (16, 16), PITCH))
    with pytest.raises(ValueError, match="marker_radius_mm"):
        PROFILES["gelstereo"].model_validate({**PROFILES["gelstereo"].model_dump(), "marker_radius_mm": 1.0})


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
