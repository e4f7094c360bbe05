"""taclab/BimanualAssembly-v0: spaces, observations, episode ends (success, drop, step limit), action modes,
privileged info, input validation and vector envs."""

import pickle

import gymnasium as gym
import numpy as np
import pytest

import taclab  # noqa: F401 - registers the environments
from taclab.envs.bimanual import BimanualAssemblyEnv
from taclab.papers.vtrefine.demonstrator import BimanualDemonstrator
from taclab.sim.pointcloud import POINT_FEATURES


@pytest.fixture(scope="module")
def env():
    e = BimanualAssemblyEnv(max_steps=100)
    yield e
    e.close()


def _hold(env) -> np.ndarray:
    """The action that keeps both hands where their targets are, grippers open."""
    t = env.unwrapped._sim.hand_targets
    return np.c_[t, np.zeros(2)].reshape(-1).astype(np.float32)


def _run_demo(env, seed, until=None):
    demo = BimanualDemonstrator()
    obs, info = env.reset(seed=seed)
    demo.reset(env.task_of(info), seed=seed)
    while True:
        obs, r, term, trunc, info = env.step(demo.select_action(obs, info))
        if term or trunc or (until is not None and until(info)):
            return obs, r, term, trunc, info, demo


def test_spaces_and_observation(env):
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (14,)
    cloud = obs["point_cloud"]
    assert cloud.shape == (256 + 4 * 32 * 12, len(POINT_FEATURES)) and cloud.dtype == np.float32
    visual, tactile = cloud[:256], cloud[256:]
    assert (visual[:, 3] == 1).all() and (visual[:, 4] == 0).all() and (visual[:, 5] == 0).all()
    assert (tactile[:, 3] == 0).all() and (tactile[:, 4] == 1).all()
    # nothing is held yet: the pads read zero, the visual points lie in the workspace above the table
    assert (obs["taxels"] == 0).all() and (tactile[:, 5] == 0).all()
    assert (visual[:, 2] > 0.002).all() and (np.abs(visual[:, 0]) <= 0.25).all()
    assert obs["state"].shape == (14,) and obs["taxels"].shape == (4, 32, 12)
    # privileged state stays in info
    assert info["part_poses"].shape == (2, 7) and info["privileged"].dtype == np.float32
    assert not info["is_success"] and not info["dropped"]
    assert env.task_of(info) == {"assembly": "round", "clearance_mm": 0.8}


def test_same_seed_same_episode(env):
    a, ia = env.reset(seed=5)
    act = _hold(env)
    sa = env.step(act)
    b, ib = env.reset(seed=5)
    sb = env.step(act)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(sa[0][k], sb[0][k])
    np.testing.assert_array_equal(ia["part_poses"], ib["part_poses"])
    _, ic = env.reset(seed=6)
    assert not np.array_equal(ic["part_poses"], ia["part_poses"])


def test_holding_still_truncates_at_the_step_limit():
    e = BimanualAssemblyEnv(max_steps=3, tactile=False)
    obs, info = e.reset(seed=1)
    assert set(obs) == {"point_cloud", "state"} and obs["point_cloud"].shape == (256, 6)
    assert (obs["point_cloud"][:, 4] == 0).all()
    act = _hold(e)
    for _ in range(3):
        obs, r, term, trunc, info = e.step(act)
        assert r == 0 and not term
    assert trunc and info["step"] == 3
    with pytest.raises(RuntimeError, match="reset"):
        e.step(act)


@pytest.mark.parametrize("assembly", ["round", "square"])
def test_demonstrator_assembles_and_the_pads_feel_the_parts(assembly):
    e = BimanualAssemblyEnv(assembly=assembly, max_steps=100)
    obs, r, term, trunc, info, _ = _run_demo(e, seed=1)
    assert term and info["is_success"] and r == 1.0
    assert info["insertion_mm"] >= 25.0 and info["lateral_mm"] < 1.0
    assert info["lifted"] == 2 and not info["dropped"]
    # both parts are held: every pad reads, and the tactile points carrying pressure lie next to the parts
    taxels = obs["taxels"]
    assert (taxels.reshape(4, -1).max(axis=1) > 0.2).all()
    tac = obs["point_cloud"][256:]
    pressed = tac[tac[:, 5] > 0]
    parts = info["part_poses"][:, :3]
    dist = np.linalg.norm(pressed[:, None, :3] - parts[None], axis=-1).min(axis=1)
    assert (dist < 0.045).all()
    # the privileged vector holds both part poses first
    np.testing.assert_allclose(info["privileged"][:14], info["part_poses"].reshape(-1), atol=1e-6)


def test_opening_a_gripper_in_the_air_drops_the_part(env):
    obs, r, term, trunc, info, demo = _run_demo(env, seed=2, until=lambda i: i["lifted"] == 2)
    assert not term
    act = _hold(env)
    act[13] = 1.0  # hand 1 keeps its peg, hand 0 lets go of the socket
    for _ in range(10):
        obs, r, term, trunc, info = env.step(act)
        if term:
            break
    assert term and info["dropped"] and not info["is_success"] and r == 0.0


def test_relative_actions_move_the_targets():
    e = BimanualAssemblyEnv(action_mode="relative", max_steps=5, tactile=False)
    e.reset(seed=0)
    before = e._sim.hand_targets
    act = np.zeros(14, np.float32)
    act[2] = 0.01  # hand 0 up by 1 cm
    act[7 + 5] = 0.1  # hand 1 turns by 0.1 rad
    e.step(act)
    after = e._sim.hand_targets
    np.testing.assert_allclose(after - before, [[0, 0, 0.01, 0, 0, 0], [0, 0, 0, 0, 0, 0.1]], atol=1e-6)
    assert e.action_space.high[2] == pytest.approx(e.config.max_step_m)


def test_absolute_targets_are_rate_limited(env):
    env.reset(seed=0)
    act = _hold(env)
    start = env._sim.hand_targets
    act[0] += 0.2  # 20 cm in one step: limited to max_step_m
    env.step(act)
    assert env._sim.hand_targets[0, 0] - start[0, 0] == pytest.approx(env.config.max_step_m)


def test_bad_input_is_refused(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(7))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(14, np.nan))
    with pytest.raises(ValueError, match="allowed"):
        env.reset(options={"shape": "round"})
    with pytest.raises(ValueError, match="allowed"):
        env.reset(options={"assembly": "hexagon"})
    with pytest.raises(ValueError, match="clearance"):
        env.reset(options={"clearance_mm": -1})
    with pytest.raises(ValueError):
        BimanualAssemblyEnv(downsample="random")
    with pytest.raises(ValueError, match="grid"):
        BimanualAssemblyEnv(taxel={"grid": (16, 16)})
    assert BimanualAssemblyEnv.check_task({"assembly": "square", "clearance_mm": 0.5})
    with pytest.raises(ValueError, match="task key"):
        BimanualAssemblyEnv.check_task({"shape": "round"})


def test_reset_options_set_the_task_and_the_parts(env):
    poses = np.array([[-0.11, 0.02, 0.1], [0.13, -0.01, -0.2]])
    obs, info = env.reset(seed=0, options={"assembly": "square", "clearance_mm": 0.5, "part_poses": poses})
    assert env.task_of(info) == {"assembly": "square", "clearance_mm": 0.5}
    np.testing.assert_allclose(info["part_poses"][:, :2], poses[:, :2], atol=1e-6)
    assert env._sim.geometry.clearance == pytest.approx(0.0005)


def test_pickled_env_needs_a_reset(env):
    env.reset(seed=0)
    copy = pickle.loads(pickle.dumps(env))
    with pytest.raises(RuntimeError, match="reset"):
        copy.step(_hold(env))
    obs, _ = copy.reset(seed=0)
    assert copy.observation_space.contains(obs)


def test_async_vector_env_steps():
    venv = gym.make_vec("taclab/BimanualAssembly-v0", num_envs=2, vectorization_mode="async", tactile_stride=2)
    try:
        obs, info = venv.reset(seed=[0, 1])
        assert obs["point_cloud"].shape == (2, 256 + 4 * 16 * 6, 6)
        obs, r, term, trunc, info = venv.step(np.stack([venv.single_action_space.sample()] * 2))
        assert np.isfinite(obs["point_cloud"]).all() and r.shape == (2,)
    finally:
        venv.close()
