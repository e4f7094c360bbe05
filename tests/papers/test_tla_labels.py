import numpy as np
import pytest

from taclab.papers.tla.labels import tla_label


def test_positive_branch_moves_to_the_clearance_edge():
    # ex = 1.5 mm, c = 2 mm: move -0.5 mm so the peg sits at c/2
    np.testing.assert_allclose(tla_label([1.5, 0.0, 0.0], 2.0), [-0.5, 0.0, 0.0])


def test_negative_branch_is_the_mirror_image():
    # the paper prints "ex >= 0" twice; the second branch is for ex < 0 and moves in +x
    np.testing.assert_allclose(tla_label([-1.5, -2.7, 0.0], 2.0), [0.5, 1.0, 0.0])
    for e in np.linspace(-4, 4, 33):
        a = tla_label([e, e, 3 * e], 1.6)
        b = tla_label([-e, -e, -3 * e], 1.6)
        np.testing.assert_allclose(a, -b)


def test_inside_the_clearance_no_translation():
    np.testing.assert_allclose(tla_label([0.9, -0.99, 0.0], 2.0)[:2], [0.0, 0.0])
    np.testing.assert_allclose(tla_label([0.9, -0.99, 0.0], 1.0)[:2], [-0.4, 0.49])


def test_clipping_limits():
    np.testing.assert_allclose(tla_label([5.0, -5.0, 4.0], 2.0), [-1.0, 1.0, -1.5])
    np.testing.assert_allclose(tla_label([0.0, 0.0, -0.7], 2.0), [0.0, 0.0, 0.7])


def test_batched_and_broadcast_clearance():
    e = np.array([[1.5, 0.0, 0.0], [1.5, 0.0, 0.0]])
    out = tla_label(e, np.array([2.0, 1.0]))
    np.testing.assert_allclose(out[:, 0], [-0.5, -1.0])


@pytest.mark.parametrize("bad", [[1.0, 2.0], [np.nan, 0, 0]])
def test_bad_error(bad):
    with pytest.raises(ValueError, match="error"):
        tla_label(bad, 2.0)


def test_bad_clearance():
    with pytest.raises(ValueError, match="clearance_mm"):
        tla_label([0, 0, 0], 0.0)
