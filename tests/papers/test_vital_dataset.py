"""The VITAL demonstration generator: an episode dataset of successful demonstrations with wrist images, masks,
skins, proprioception and actions that loads back with its declared features; bad configs are refused."""

from pathlib import Path

import numpy as np
import pytest

import taclab.papers.vital  # noqa: F401 - registers the generator
from taclab.data import ConfigError, generate, load_arrays, read_config, read_meta
from taclab.papers.vital.dataset import VitalDemoConfig


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("vital")
    cfg = VitalDemoConfig(split="key", task="key", episodes=2, shard_size=1, seed=7, env={"image_size": [32, 32]})
    generate([cfg], out, progress=False)
    return out


def test_demonstrations_load_as_episodes(demos):
    meta = read_meta(demos)
    assert meta["layout"] == "episode" and meta["splits"]["key"]["episodes"] == 2
    a = load_arrays(demos, "key", progress=False)
    assert a["observation.wrist_rgb"].shape[1:] == (32, 32, 3)
    assert a["observation.wrist_mask"].shape[1:] == (32, 32, 1) and a["observation.wrist_mask"].max() <= 3
    assert a["observation.skin"].shape[1:] == (2, 15) and a["observation.proprio"].shape[1:] == (7,)
    assert a["action"].shape[1:] == (7,) and np.all(np.abs(a["action"][:, :3]) <= 10)
    idx = a["episode_index"]
    for e in np.unique(idx):
        s, d = a["next.success"][idx == e], a["next.done"][idx == e]
        assert s[-1] and not s[:-1].any() and d[-1] and not d[:-1].any()
    assert set(a["task"]) == {"key"}
    np.testing.assert_allclose(np.diff(a["timestamp"][idx == 0]), 0.167, atol=1e-6)


def test_config_file_and_bad_configs(tmp_path):
    splits = read_config(Path(__file__).parents[2] / "configs" / "vital_demos.yaml")
    assert [(s.task, s.episodes) for s in splits] == [(t, 32) for t in ("plug", "usb", "card", "key", "pick")]
    with pytest.raises(ValueError, match="unknown VITAL task 'lock'"):
        VitalDemoConfig(task="lock")
    with pytest.raises(ValueError, match="env"):
        VitalDemoConfig(env={"max_stepz": 3})
    with pytest.raises(ValueError, match="follows the split's task"):
        VitalDemoConfig(demo={"task": "usb"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator: vital\nsplits:\n  - {split: a, episodes: 0}\n")
    with pytest.raises(ConfigError, match="episodes"):
        read_config(bad)


def test_evaluation_sees_what_training_saw_and_replays_the_demonstration(demos):
    """The closed-loop evaluation's env (the benchmark's 'paper' task list, the dataset's image size) starts each
    demonstration's seed on exactly the stored first frame, and the demonstration's actions replayed open loop
    succeed again: training and evaluation observations match (keys, channel order, scale, skin baseline)."""
    from taclab.envs.base import make
    from taclab.envs.vital import ENV_CLASSES, ENV_IDS

    a = load_arrays(demos, "key", progress=False)
    (paper,) = ENV_CLASSES["key"].TASK_LISTS["paper"]
    env = make(ENV_IDS["key"], image_size=(32, 32))
    try:
        for e in np.unique(a["episode_index"]):
            rows = np.flatnonzero(a["episode_index"] == e)
            obs, _ = env.reset(seed=int(a["episode_seed"][rows[0]]), options=dict(paper))
            np.testing.assert_array_equal(obs["wrist_rgb"], a["observation.wrist_rgb"][rows[0]])
            np.testing.assert_array_equal(obs["wrist_mask"][..., None], a["observation.wrist_mask"][rows[0]])
            np.testing.assert_array_equal(obs["skin"], a["observation.skin"][rows[0]])
            for i, r in enumerate(rows):
                if i:
                    np.testing.assert_allclose(obs["skin"], a["observation.skin"][r], atol=1e-3)
                obs, _, term, trunc, info = env.step(a["action"][r])
            assert info["is_success"] and term and not trunc
    finally:
        env.close()


def test_pushed_demonstrations_record_the_intended_action(tmp_path):
    """``noise.push_prob`` pushes the executed move sideways (x, y only, within the env's step) from its own
    random stream; the dataset keeps the demonstrator's intended action, so replaying the recorded actions does
    not retrace the pushed episode; by default nothing is pushed."""
    from taclab.papers.vital.demonstrator import VitalDemonstrator

    demo = VitalDemonstrator(seed=3, task="key", noise={"push_prob": 1.0, "push_mm": 4.0})
    demo.reset(seed=11)
    a = np.array([1.0, -2.0, -3.0, 0.5, 0.0, 0.2, 1.0], np.float32)
    pushed = [demo.executed(a) for _ in range(50)]
    d = np.array([p - a for p in pushed])
    assert np.all(d[:, 2:] == 0) and np.abs(d[:, :2]).std() > 1.0
    assert np.all(np.abs(np.array(pushed)[:, :2]) <= 10.0)
    demo.reset(seed=11)
    np.testing.assert_array_equal(demo.executed(a), pushed[0])  # the pushes follow the episode seed
    turned = VitalDemonstrator(seed=3, task="key", noise={"push_prob": 1.0, "push_mm": 0.0, "push_deg": 2.0})
    turned.reset(seed=11)
    t = np.array([turned.executed(a) - a for _ in range(50)])
    assert np.all(t[:, [0, 1, 2, 3, 4, 6]] == 0) and t[:, 5].std() > 0.5 and np.all(np.abs(a[5] + t[:, 5]) <= 5.0)
    quiet = VitalDemonstrator(seed=3, task="key")
    assert quiet.executed(a) is a

    cfg = VitalDemoConfig(
        split="key",
        task="key",
        episodes=1,
        shard_size=1,
        seed=7,
        env={"image_size": [32, 32]},
        demo={"noise": {"push_prob": 0.5, "push_mm": 3.0}},
    )
    generate([cfg], tmp_path, progress=False)
    pushed_set = load_arrays(tmp_path, "key", progress=False)
    # the pushed episode's goal errors are not those that its recorded actions give when replayed from its start
    from taclab.envs.base import make as make_env
    from taclab.envs.vital import ENV_IDS

    env = make_env(ENV_IDS["key"], image_size=(32, 32))
    try:
        env.reset(seed=int(pushed_set["episode_seed"][0]))
        errs = []
        for act in pushed_set["action"]:
            _, _, term, trunc, info = env.step(act)
            errs.append(info["goal_error_mm"])
            if term or trunc:
                break
    finally:
        env.close()
    n = min(len(errs), len(pushed_set["action"]))
    assert np.abs(np.array(errs[:n])[:, :2] - pushed_set["next.goal_error_mm"][:n, :2]).max() > 0.5
