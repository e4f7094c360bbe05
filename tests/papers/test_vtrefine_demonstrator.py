"""The scripted bimanual demonstrator: registered and privileged, seeded, imperfect (a misjudged axis jams the
peg at the mouth), and consistent in both action modes."""

import numpy as np
import pytest

from taclab.envs.bimanual import BimanualAssemblyEnv
from taclab.papers.vtrefine.demonstrator import BimanualDemonstrator
from taclab.policies.base import make_policy


def _episode(env, demo, seed, steps=None):
    obs, info = env.reset(seed=seed)
    demo.reset(env.task_of(info), seed=seed)
    actions = []
    while steps is None or len(actions) < steps:
        a = demo.select_action(obs, info)
        actions.append(a)
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:
            break
    return np.array(actions), info


def test_registered_and_privileged():
    import taclab.papers.vtrefine  # noqa: F401 - registers the demonstrator

    demo = make_policy("vtrefine_demo", seed=3)
    assert isinstance(demo, BimanualDemonstrator) and demo.privileged
    env = BimanualAssemblyEnv(tactile=False)
    obs, info = env.reset(seed=0)
    demo.reset(env.task_of(info), seed=0)
    with pytest.raises(ValueError, match="info"):
        demo.select_action(obs)
    assert demo.config()["seed"] == 3


def test_same_seed_same_actions():
    env = BimanualAssemblyEnv(tactile=False)
    a, _ = _episode(env, BimanualDemonstrator(), seed=4, steps=25)
    b, _ = _episode(env, BimanualDemonstrator(), seed=4, steps=25)
    np.testing.assert_array_equal(a, b)
    c, _ = _episode(env, BimanualDemonstrator(), seed=5, steps=25)
    assert not np.array_equal(a, c)


def test_imperfection_is_drawn_per_episode():
    demo = BimanualDemonstrator()
    biases = []
    for seed in range(20):
        demo.reset({"assembly": "round"}, seed=seed)
        biases.append(np.hypot(*demo.bias_pos[1:]))
    assert 0.0005 < np.mean(biases) < 0.002  # a Rayleigh mean of sqrt(pi / 2) * 1 mm
    perfect = BimanualDemonstrator(noise={"align_lateral": 0.0, "align_angle": 0.0, "tremor": 0.0})
    perfect.reset({"assembly": "round"}, seed=0)
    assert not perfect.bias_pos.any() and np.allclose(perfect.bias_rot, np.eye(3))


def test_a_misjudged_axis_jams_at_the_mouth():
    """Seed 5 draws a 2.7 mm lateral misjudgement, past the chamfer's reach: the peg rests on the rim until the
    step limit, pressed with a bounded force, and nothing is dropped."""
    env = BimanualAssemblyEnv(assembly="round", max_steps=90, tactile=False)
    _, info = _episode(env, BimanualDemonstrator(), seed=5)
    assert not info["is_success"] and not info["dropped"] and info["step"] == 90
    assert abs(info["insertion_mm"]) < 1.0 and info["lateral_mm"] > 1.9


def test_relative_actions_reach_the_same_assembly():
    env = BimanualAssemblyEnv(assembly="square", action_mode="relative", max_steps=100, tactile=False)
    _, info = _episode(env, BimanualDemonstrator(action_mode="relative"), seed=1)
    assert info["is_success"]
