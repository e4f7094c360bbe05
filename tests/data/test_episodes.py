"""The generic driver with generators defined here: the episode layout (trajectories) and the default plan."""

import numpy as np
import pytest
from pydantic import Field

from taclab.data import (
    DatasetError,
    Feature,
    Generator,
    SplitConfig,
    fingerprint,
    generate,
    load,
    load_arrays,
    read_meta,
    register_generator,
)
from taclab.data.generate import ConfigError, get_generator


class ReachConfig(SplitConfig):
    episodes: int = Field(5, ge=1)
    shard_size: int = Field(2, ge=1)
    fps: float = Field(6.0, gt=0)
    max_frames: int = Field(6, ge=1)


@register_generator("test_reach")
class ReachGenerator(Generator):
    """Random reaching trajectories: a camera image, a state, a point cloud, an instruction, a reward."""

    Config = ReachConfig
    layout = "episode"
    description = "random reaching trajectories (a test generator)"

    def features(self, cfg):
        return [
            Feature("observation.image", "uint8", (8, 8, 3), "image", "wrist camera"),
            Feature("observation.state", "float32", (4,), "vector", "joint positions"),
            Feature("observation.cloud", "float32", (None, 3), "point_cloud", "contact points"),
            Feature("action", "float32", (2, 3), "vector", "a chunk of two 3-d actions"),
            Feature("task", "string", (), "text", "instruction"),
            Feature("reward", "float32", (), "scalar", "reward"),
        ]

    def episodes(self, cfg, shard, rng):
        for _ in range(shard.size):
            t = int(rng.integers(2, cfg.max_frames + 1))
            yield {
                "observation.image": rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8),
                "observation.state": rng.normal(size=(t, 4)),
                "observation.cloud": [rng.normal(size=(int(rng.integers(0, 5)), 3)) for _ in range(t)],
                "action": rng.normal(size=(t, 2, 3)),
                "task": "reach the red block",  # one value for every frame
                "reward": np.linspace(0, 1, t),
            }


class CountConfig(SplitConfig):
    samples: int = Field(7, ge=1)
    shard_size: int = Field(3, ge=1)


@register_generator("test_count")
class CountGenerator(Generator):
    Config = CountConfig

    def features(self, cfg):
        return [Feature("x", "int64", (), "scalar", "a random number"), Feature("q", "string", (), "text")]

    def rows(self, cfg, shard, rng):
        for _ in range(shard.size):
            yield {"x": int(rng.integers(0, 1000)), "q": f"shard {shard.key}"}


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("episodes")
    generate([ReachConfig(split="train", seed=1), ReachConfig(split="test", episodes=2, seed=2)], out, progress=False)
    return out


def test_episode_columns_follow_the_lerobot_convention(episodes):
    meta = read_meta(episodes)
    assert meta["layout"] == "episode" and meta["splits"]["train"]["episodes"] == 5
    a = load_arrays(episodes, "train", progress=False)
    idx, frame, ts = a["episode_index"], a["frame_index"], a["timestamp"]
    assert idx.dtype == np.int64 and frame.dtype == np.int64 and ts.dtype == np.float32
    assert sorted(set(idx.tolist())) == [0, 1, 2, 3, 4]  # numbered over the split, across shards
    for e in range(5):
        f = frame[idx == e]
        np.testing.assert_array_equal(f, np.arange(len(f)))
        np.testing.assert_allclose(ts[idx == e], f / 6.0, rtol=1e-6)
    assert (a["task"] == "reach the red block").all()
    assert a["observation.image"].shape == (len(idx), 8, 8, 3) and a["action"].shape == (len(idx), 2, 3)
    assert a["observation.cloud"].dtype == object and a["observation.cloud"][0].shape[1] == 3
    card = (episodes / "README.md").read_text()
    assert "layout `episode`" in card and "| test_reach | " in card
    assert "| `observation.cloud` | point_cloud | float32 | (N, 3) |" in card


def test_episodes_are_deterministic_per_shard(episodes, tmp_path):
    generate(ReachConfig(split="train", seed=1), tmp_path, progress=False)
    assert fingerprint(tmp_path, "train") == fingerprint(episodes, "train")
    a = load_arrays(tmp_path, "train", ["observation.state"], progress=False)["observation.state"]
    b = load_arrays(episodes, "train", ["observation.state"], progress=False)["observation.state"]
    np.testing.assert_array_equal(a, b)
    assert load(episodes, "test").num_rows == read_meta(episodes)["splits"]["test"]["rows"]


def test_sample_generator_with_the_default_plan(tmp_path):
    generate(CountConfig(split="all", seed=4), tmp_path, progress=False)
    meta = read_meta(tmp_path)
    assert [r["file"] for r in meta["splits"]["all"]["shards"]] == [f"data/all-0000{k}.parquet" for k in range(3)]
    a = load_arrays(tmp_path, "all", progress=False)
    assert a["x"].shape == (7,) and a["q"].tolist() == ["shard (0,)"] * 3 + ["shard (1,)"] * 3 + ["shard (2,)"]


def test_a_dataset_has_one_declaration(episodes):
    with pytest.raises(DatasetError, match=r"split 'other' declares other features than the dataset in .*"):
        generate(CountConfig(split="other"), episodes, progress=False)


def test_generator_registry_errors():
    with pytest.raises(ConfigError, match=r"unknown generator 'nope'; registered generators: .*test_reach"):
        get_generator("nope")
    with pytest.raises(ValueError, match="lowercase letters"):
        register_generator("Bad Name")
    with pytest.raises(ValueError, match="generator name 'test_reach' is taken"):

        @register_generator("test_reach")
        class Other(Generator):
            Config = ReachConfig


def test_an_episode_with_bad_keys_is_refused(tmp_path):
    class Broken(ReachGenerator):
        def episodes(self, cfg, shard, rng):
            yield {"observation.state": np.zeros((3, 4))}

    broken = Broken()
    broken.name = "test_reach"
    from taclab.data.generate import Shard, write_shard

    with pytest.raises(ValueError, match=r"an episode lacks the key\(s\) \['observation.image'"):
        write_shard(broken, ReachConfig(), Shard("x.parquet", 1, (0,)), tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial file left
