import numpy as np
import pytest

from taclab.papers.tla.labels import tla_label
from taclab.papers.tla.metrics import action_metrics, converging, pair_correct


def test_converging_by_hand():
    c = 2.0  # goal band |e| <= 1 mm along x and y
    e = np.array(
        [
            [3.0, 0.5, 2.0],  # x outside: a=-1 converges; y inside: a=+0.4 stays inside (1.0 <= 1); rz: -1 converges
            [3.0, 0.5, 2.0],  # x: a=-7 overshoots past -3 -> wrong; y: +0.6 leaves the band -> wrong; rz: +1 -> wrong
            [
                -2.0,
                -1.0,
                -1.0,
            ],  # x: +1 converges; y on the band's edge: 0 stays; rz: +2 overshoots to +1: |1| = |-1| wrong
        ]
    )
    a = np.array([[-1.0, 0.4, -1.0], [-7.0, 0.6, 1.0], [1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(converging(e, a, c), [[True, True, True], [False, False, False], [True, True, False]])


def test_metrics_by_hand():
    e = np.array([[3.0, 3.0, 2.0], [3.0, 0.5, 2.0], [-3.0, -3.0, -1.0], [0.2, 0.1, 1.0]])
    y = tla_label(e, 2.0)  # [-1,-1,-1.5], [-1,0,-1.5], [1,1,1], [0,0,-1]
    a = np.array([[-0.5, -0.8, -1.0], [-1.0, 0.2, -1.0], [1.0, -1.0, 1.0], [0.0, 0.3, -0.5]])
    m = action_metrics(e, y, a, 2.0)
    # correct in all dims: rows 0, 1, 3 (row 2: y moves away)
    assert m["correct_samples"] == 3 and m["gcr"] == pytest.approx(75.0)
    assert m["l1_x"] == pytest.approx((0.5 + 0.0 + 0.0) / 3)
    assert m["l1_y"] == pytest.approx((0.2 + 0.2 + 0.3) / 3)
    assert m["l1_rz"] == pytest.approx((0.5 + 0.5 + 0.5) / 3)
    assert m["l1_all_y"] == pytest.approx((0.2 + 0.2 + 2.0 + 0.3) / 4)
    # direction: x labels non-zero in rows 0-2 (all right sign); y non-zero in rows 0 and 2 (row 2 wrong)
    assert m["direction_x"] == pytest.approx(100.0) and m["zero_labels_x"] == 1
    assert m["direction_y"] == pytest.approx(50.0) and m["zero_labels_y"] == 2
    assert m["converging_y"] == pytest.approx(75.0)


def test_oracle_and_zero_bounds():
    rng = np.random.default_rng(0)
    e = rng.uniform([-5, -5, -6], [5, 5, 6], (500, 3))
    y = tla_label(e, 1.6)
    m = action_metrics(e, y, y, 1.6)
    assert m["gcr"] == 100.0 and m["l1_x"] == 0.0
    z = action_metrics(e, y, np.zeros_like(e), 1.6)
    assert z["gcr"] == 0.0 and z["l1_x"] is None and z["direction_rz"] == 0.0


def test_pair_correct_by_hand():
    e = np.array([[2.0, 2.0, 1.0], [2.0, 2.0, 1.0]])
    a = np.array([[-1.0, 0.5, 0.5], [1.0, -0.5, -3.0]])
    np.testing.assert_array_equal(pair_correct(e, a, (0, 1)), [True, False])  # |(1, 2.5)| < |(2, 2)| < |(3, 1.5)|
    np.testing.assert_array_equal(pair_correct(e, a, (0, 2)), [True, False])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="action"):
        action_metrics(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 3)), 2.0)
    with pytest.raises(ValueError, match="non-finite"):
        action_metrics(np.zeros((1, 3)), np.zeros((1, 3)), np.full((1, 3), np.nan), 2.0)
