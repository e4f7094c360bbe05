"""Success means the peg is inside the hole (item 4): a reset that would put the peg beside the hole block is
refused with its allowed range, and a peg resting on the block away from the hole is no success."""

import pytest

import taclab  # noqa: F401 - registers the environments
from taclab.envs.peg_in_hole import PegInHoleEnv

SMALL = {"image_size": (32, 32)}


def test_success_means_inside_the_hole():
    env = PegInHoleEnv(**SMALL)
    with pytest.raises(ValueError, match=r"off the hole block; allowed: \|ex_mm\|, \|ey_mm\| <= "):
        env.reset(seed=0, options={"error": [40, 0, 0]})
    reach = env.max_error_mm()
    obs, info = env.reset(seed=0, options={"error": [reach - 0.5, 0, 0]})
    assert not info["is_success"]  # over the block, far from the hole
    obs, info = env.reset(seed=0, options={"error": [0, 0, 0]})
    assert info["is_success"]
