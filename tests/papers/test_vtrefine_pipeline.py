"""VT-Refine demo config errors, the Wilson interval of the reports, and the chunk targets of the learning spec."""

import numpy as np
import pytest

from taclab.papers.vtrefine.demo import demo
from taclab.papers.vtrefine.learning import next_actions
from taclab.papers.vtrefine.pipeline import wilson


def test_demo_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError, match="unknown key .demoz."):
        demo(tmp_path, config={"demoz": 3})
    with pytest.raises(ValueError, match="hexagon"):
        demo(tmp_path, config={"assembly": "hexagon"})
    with pytest.raises(ValueError, match="vtrefine.env.tactile is not allowed"):
        demo(tmp_path, config={"env": {"tactile": False}})
    assert not any(tmp_path.iterdir())


def test_wilson_interval():
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.404, abs=1e-3) and hi == pytest.approx(0.596, abs=1e-3)
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] == pytest.approx(0.161, abs=1e-3)


def test_next_actions_per_episode():
    a = np.arange(5)[:, None].astype(float)
    c = next_actions(a, np.array([0, 0, 0, 1, 1]), horizon=3)
    np.testing.assert_array_equal(c[..., 0], [[0, 1, 2], [1, 2, 2], [2, 2, 2], [3, 4, 4], [4, 4, 4]])
    with pytest.raises(ValueError, match="contiguous"):
        next_actions(a, np.array([0, 1, 0, 1, 1]), horizon=2)
