import math

import numpy as np
import pytest

from taclab.sim.shapes import block_pieces, convex_polygon, make_section


def _area(v):
    return 0.5 * float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))


@pytest.mark.parametrize("shape", ["square", "triangle", "round", "hexagon", "polygon:5", "polygon:7"])
def test_regular_sections_are_centred_and_ccw(shape):
    s = make_section(shape, 0.018)
    assert _area(s.vertices) > 0
    np.testing.assert_allclose(s.vertices.max(0) + s.vertices.min(0), 0, atol=1e-12)
    # a flat faces each pad side's -y: the lowest edge is horizontal
    lo = s.vertices[np.isclose(s.vertices[:, 1], s.vertices[:, 1].min())]
    assert len(lo) == 2


@pytest.mark.parametrize("shape", ["square", "hexagon", "round"])
def test_clearance_is_hole_width_minus_peg_width_across_flats(shape):
    s = make_section(shape, 0.018)
    for c in (0.002, 0.0016, 0.001):
        hole = s.offset(c / 2)
        # across the y flats (both pads) and for even polygons across every pair of parallel flats
        np.testing.assert_allclose(np.ptp(hole.vertices[:, 1]) - np.ptp(s.vertices[:, 1]), c, rtol=1e-9)
        n_p, d_p = s.halfplanes()
        n_h, d_h = hole.halfplanes()
        np.testing.assert_allclose(d_h - d_p, c / 2)


def test_protrusion_fits_and_blocks():
    s = make_section("square", 0.018)
    hole = s.offset(0.001)  # c = 2 mm
    assert s.protrusion(hole, 0.0, 0.0, 0.0) == pytest.approx(-0.001)
    assert s.protrusion(hole, 0.0009, 0.0, 0.0) < 0
    assert s.protrusion(hole, 0.0015, 0.0, 0.0) == pytest.approx(0.0005)
    half = np.max(s.extent())
    # rotating the square by t pushes its corners out by half * (cos t + sin t - 1)
    t = math.radians(12)
    assert s.protrusion(hole, 0, 0, t) == pytest.approx(half * (math.cos(t) + math.sin(t) - 1) - 0.001, abs=1e-9)


@pytest.mark.parametrize("shape", ["square", "triangle", "round", "hexagon"])
def test_block_pieces_tile_the_block_minus_the_hole(shape):
    s = make_section(shape, 0.018)
    hole = s.offset(0.001)
    pieces = block_pieces(hole, 0.03)
    assert len(pieces) == hole.n
    total = sum(_area(p) for p in pieces)
    assert total == pytest.approx(0.06**2 - _area(hole.vertices), rel=1e-9)
    for p in pieces:  # every piece is convex and stays outside the hole
        e = np.roll(p, -1, axis=0) - p
        f = np.roll(e, -1, axis=0)
        assert np.all(e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0] > -1e-15)
        n, d = hole.halfplanes()
        centre = p.mean(axis=0)
        assert np.max(n @ centre - d) > 0


def test_custom_polygon_any_winding_and_validation():
    cw = [(0.0, 0.0), (0.0, 0.01), (0.012, 0.01), (0.012, 0.0)]
    s = convex_polygon(cw)
    assert _area(s.vertices) == pytest.approx(1.2e-4)
    with pytest.raises(ValueError, match="convex"):
        convex_polygon([(0, 0), (0.01, 0), (0.002, 0.002), (0, 0.01)])
    with pytest.raises(ValueError, match="degenerate"):
        convex_polygon([(0, 0), (0.01, 0), (0.02, 0)])


def test_unknown_shape_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown peg shape 'star'.*square"):
        make_section("star", 0.018)
    with pytest.raises(ValueError, match="polygon"):
        make_section("polygon:x", 0.018)
    with pytest.raises(ValueError, match="n >= 3"):
        make_section("polygon:2", 0.018)


def test_hole_too_big_for_block():
    s = make_section("square", 0.018)
    with pytest.raises(ValueError, match="does not fit"):
        block_pieces(s.offset(0.025), 0.03)
