"""The VT-Refine demonstration generator: an episode dataset of successful demonstrations that loads back with
its declared features, depends on its config only, and refuses bad configs."""

import numpy as np
import pytest

import taclab.papers.vtrefine  # noqa: F401 - registers the generator
from taclab.data import ConfigError, generate, load_arrays, read_config, read_meta
from taclab.papers.vtrefine.dataset import VTRefineDemoConfig

SMALL_ENV = {"visual_points": 32, "tactile_stride": 4, "camera_size": (24, 32)}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("vtrefine")
    cfg = VTRefineDemoConfig(split="square", assembly="square", episodes=2, shard_size=1, seed=7, env=SMALL_ENV)
    generate([cfg], out, progress=False)
    return out


def test_demonstrations_load_as_episodes(demos):
    meta = read_meta(demos)
    assert meta["layout"] == "episode" and meta["splits"]["square"]["episodes"] == 2
    a = load_arrays(demos, "square", progress=False)
    n = 32 + 4 * 8 * 3
    assert a["observation.point_cloud"].shape[1:] == (n, 6)
    assert a["observation.state"].shape[1:] == (14,) and a["action"].shape[1:] == (14,)
    assert a["observation.taxels"].shape[1:] == (4, 32, 12)
    assert a["observation.privileged"].shape[1:] == (34,)
    # every episode ends with the assembly complete, and only there
    idx = a["episode_index"]
    for e in np.unique(idx):
        s = a["next.success"][idx == e]
        d = a["next.done"][idx == e]
        assert s[-1] and not s[:-1].any() and d[-1] and not d[:-1].any()
        assert a["next.reward"][idx == e].sum() == 1.0
    assert set(a["assembly"]) == {"square"}
    np.testing.assert_allclose(np.diff(a["timestamp"][idx == 0]), 0.1, atol=1e-6)


def test_config_file_and_bad_configs(tmp_path):
    from pathlib import Path

    splits = read_config(Path(__file__).parents[2] / "configs" / "vtrefine_demos.yaml")
    assert [(s.split, s.assembly, s.episodes) for s in splits] == [("round", "round", 30), ("square", "square", 30)]
    with pytest.raises(ValueError, match="assembly"):
        VTRefineDemoConfig(assembly="hexagon")
    with pytest.raises(ValueError, match="set assembly instead"):
        VTRefineDemoConfig(env={"assembly": "round"})
    with pytest.raises(ValueError, match="under env"):
        VTRefineDemoConfig(demo={"action_mode": "relative"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator: vtrefine\nsplits:\n  - {split: a, episodes: 0}\n")
    with pytest.raises(ConfigError, match="episodes"):
        read_config(bad)
