import numpy as np
import pytest

from taclab.policies import POLICIES, load_policy, make_policy


def test_registry_and_unknown_name():
    assert {"oracle", "random", "zero", "bc", "dp", "tla"} <= set(POLICIES)
    with pytest.raises(ValueError, match=r"unknown policy 'bcc'.*oracle"):
        make_policy("bcc")


def test_save_load_round_trip(tmp_path):
    p = make_policy("random", seed=7)
    p.save(tmp_path / "r")
    q = load_policy(tmp_path / "r")
    assert type(q) is type(p) and q.seed == 7
    p.reset()
    q.reset()
    np.testing.assert_array_equal(p.act({}), q.act({}))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a taclab policy checkpoint"):
        load_policy(tmp_path)
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_policy(tmp_path)
    (tmp_path / "policy.json").write_text('{"policy": "zero"}')
    with pytest.raises(ValueError, match="lacks the key 'config'"):
        load_policy(tmp_path)


def test_oracle_needs_info_and_random_stays_in_the_box():
    with pytest.raises(ValueError, match="info"):
        make_policy("oracle").act({})
    r = make_policy("random", seed=1)
    r.reset()
    acts = np.array([r.act({}) for _ in range(200)])
    assert np.all(np.abs(acts) <= [1.0, 1.0, 1.5]) and acts.std(axis=0).min() > 0.3
