"""taclab/PegInHole-v0: API conformance, determinism and input validation."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import taclab  # noqa: F401 - registers the environments
import taclab.papers  # noqa: F401 - registers the oracle
from taclab.envs.peg_in_hole import PegInHoleEnv
from taclab.papers.tla.labels import tla_label
from taclab.policies import make_policy

SMALL = {"image_size": (32, 32)}


@pytest.fixture(scope="module")
def env():
    e = PegInHoleEnv(**SMALL)
    yield e
    e.close()


def test_check_env_passes():
    check_env(PegInHoleEnv(**SMALL), skip_render_check=True)


def test_first_observation_is_a_collision_and_info_is_complete(env):
    obs, info = env.reset(seed=3)
    assert obs["tactile"].shape == (4, 2, 32, 32, 3) and obs["tactile"].dtype == np.uint8
    assert info["attempt"] == 1 and not info["is_success"] and info["contact"]
    assert set(info) >= {"error", "initial_error", "attempt", "is_success", "shape", "clearance_mm"}
    assert "label" not in info  # the paper's label is computed by its package, not by the env
    # the true pose error stays out of the observation
    assert set(obs) == {"tactile"}
    err = info["error"]
    assert np.abs(err[0]) <= 5 and np.abs(err[1]) <= 5 and np.abs(err[2]) <= 6


def test_same_seed_same_episode():
    a, b = PegInHoleEnv(**SMALL), PegInHoleEnv(**SMALL)
    for env in (a, b):
        env.action_space.seed(0)
    oa, ia = a.reset(seed=11)
    ob, ib = b.reset(seed=11)
    np.testing.assert_array_equal(oa["tactile"], ob["tactile"])
    np.testing.assert_array_equal(ia["error"], ib["error"])
    for _ in range(3):
        act = a.action_space.sample()
        sa = a.step(act)
        sb = b.step(act)
        np.testing.assert_array_equal(sa[0]["tactile"], sb[0]["tactile"])
        assert sa[1:4] == sb[1:4]
        if sa[2] or sa[3]:
            break
    oc, ic = a.reset(seed=12)
    assert not np.array_equal(ic["error"], ia["error"])


def test_oracle_inserts_and_zero_policy_does_not(env):
    oracle, zero = make_policy("oracle"), make_policy("zero")
    zero.bind(env.action_space)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        while True:
            obs, r, term, trunc, info = env.step(oracle.select_action(obs, info))
            if term or trunc:
                break
        assert term and info["is_success"] and r == 1.0
        assert info["attempt"] <= 6
    obs, info = env.reset(seed=0)
    n = 0
    while True:
        obs, r, term, trunc, info = env.step(zero.select_action(obs, info))
        n += 1
        if term or trunc:
            break
    assert trunc and not term and info["attempt"] == env.config.max_attempts and n == env.config.max_attempts - 1


def test_step_after_end_raises(env):
    env.reset(seed=0, options={"error": (0.0, 0.0, 0.0)})  # aligned: inserts on the first attempt
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3))


def test_reset_options(env):
    obs, info = env.reset(seed=0, options={"shape": "hexagon", "clearance_mm": 1.0, "error": (2.5, 0.0, 0.0)})
    assert info["shape"] == "hexagon" and info["clearance_mm"] == 1.0
    np.testing.assert_allclose(info["error"], [2.5, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(tla_label(info["error"], info["clearance_mm"]), [-1.0, 0.0, 0.0], atol=1e-4)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"shape": "star"}, "unknown peg shape 'star'"),
        ({"clearance_mm": 0.0}, "clearance_mm must be > 0"),
        ({"clearance_mm": -1}, "clearance_mm must be > 0"),
        ({"clearance_mm": 50.0}, "too large"),
        ({"clearance_mm": 30.0}, "error ranges .* are too small for clearance 30.0 mm"),
        ({"colour": "red"}, r"unknown reset option\(s\) \['colour'\]; allowed"),
        ({"error": (1.0, 2.0)}, "option 'error'"),
    ],
)
def test_bad_reset_options(env, options, match):
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)


@pytest.mark.parametrize(
    "action, match",
    [(np.array([np.nan, 0, 0]), "finite"), (np.zeros(2), r"shape \(3,\)"), (np.zeros((1, 3)), "shape")],
)
def test_bad_actions(env, action, match):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_out_of_range_action_is_clipped(env):
    env.reset(seed=2)
    *_, info = env.step(np.array([5.0, 0.0, 0.0]))
    assert info["action_clipped"]


def test_bad_config_key():
    with pytest.raises(ValueError, match="max_atempts"):
        PegInHoleEnv(max_atempts=3)


def test_env_pickles_mid_episode(env):
    env.reset(seed=4)
    env.step(np.array([0.5, -0.5, 1.0]))
    clone = pickle.loads(pickle.dumps(env))
    act = np.array([-1.0, 1.0, 0.0])
    env.np_random = np.random.default_rng(0)
    clone.np_random = np.random.default_rng(0)
    a = env.step(act)
    b = clone.step(act)
    np.testing.assert_array_equal(a[0]["tactile"], b[0]["tactile"])
    np.testing.assert_array_equal(a[4]["error"], b[4]["error"])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    venv = gym.make_vec("taclab/PegInHole-v0", num_envs=2, vectorization_mode=mode, **SMALL)
    try:
        obs, info = venv.reset(seed=[0, 1])
        assert obs["tactile"].shape == (2, 4, 2, 32, 32, 3)
        assert not np.array_equal(info["error"][0], info["error"][1])
        obs, r, term, trunc, info = venv.step(np.zeros((2, 3), np.float32))
        assert obs["tactile"].shape[0] == 2
    finally:
        venv.close()


def test_raw_fields_on_request():
    e = PegInHoleEnv(raw_fields=True, **SMALL)
    obs, info = e.reset(seed=0)
    assert e.observation_space.contains(obs)
    assert obs["depth"].shape == (4, 2, 32, 32) and obs["shear"].shape == (4, 2, 32, 32, 2)
    assert obs["depth"].max() > 0 and obs["force"].sum() > 0


def test_keep_slip_option_carries_the_slip(env):
    _, info = env.reset(seed=0, options={"error": (3.0, 0.0, 0.0), "keep_slip": True})
    before = info["error"].copy()
    _, _, _, _, info = env.step(np.zeros(3))
    # with the slip kept, the peg's pose has moved although the hand did not
    assert np.abs(info["error"] - before).max() > 1e-3
    _, info = env.reset(seed=0, options={"error": (3.0, 0.0, 0.0)})
    _, _, _, _, info2 = env.step(np.zeros(3))
    np.testing.assert_allclose(info2["error"], info["error"], atol=1e-6)


def test_scene_renders(env):
    env.reset(seed=0)
    img = env.render_scene(width=64, height=48)
    assert img.shape == (48, 64, 3) and img.std() > 1


def test_sensor_overrides():
    e = PegInHoleEnv(sensor="gelsight", sensor_overrides={"noise_std": 0.0}, **SMALL)
    a, _ = e.reset(seed=1)
    b, _ = e.reset(seed=1)
    np.testing.assert_array_equal(a["tactile"], b["tactile"])
    with pytest.raises(ValueError, match="nois"):
        PegInHoleEnv(sensor_overrides={"nois": 1.0})
    with pytest.raises(ValueError, match="unknown optical profile 'nosuch'"):
        PegInHoleEnv(sensor="nosuch")


@pytest.mark.parametrize("shape", ["triangle", "round", "hexagon", "polygon:5", "custom"])
def test_oracle_inserts_every_shape(shape):
    scene = {"peg_vertices": [(-0.006, -0.005), (0.007, -0.005), (0.004, 0.006), (-0.005, 0.005)]}
    e = PegInHoleEnv(shape=shape, scene=scene if shape == "custom" else {}, **SMALL)
    oracle = make_policy("oracle")
    for seed in range(2):
        obs, info = e.reset(seed=seed)
        assert info["contact"] and not info["is_success"]
        while True:
            obs, r, term, trunc, info = e.step(oracle.select_action(obs, info))
            if term or trunc:
                break
        assert term, f"{shape}: oracle did not insert (seed {seed})"


def test_built_through_the_registry_with_its_declarations():
    import gymnasium as gym

    from taclab.envs.base import env_class, make

    cls = env_class("taclab/PegInHole-v0")
    assert cls is PegInHoleEnv and cls.TASK_KEYS == ("shape", "clearance_mm")
    env = make("taclab/PegInHole-v0", **SMALL)
    assert isinstance(env.unwrapped, PegInHoleEnv)
    with pytest.raises(ValueError, match="unknown environment 'taclab/Nope-v0'"):
        make("taclab/Nope-v0")
    with pytest.raises(ValueError, match=r"unknown task key\(s\) \['color'\]"):
        cls.check_task({"color": "red"})
    with pytest.raises(ValueError, match="unknown peg shape"):
        cls.check_task({"shape": "blob"})
    assert isinstance(gym.make("taclab/PegInHole-v0", **SMALL).unwrapped, PegInHoleEnv)
