import numpy as np
import pytest
from gymnasium import spaces

import taclab.papers  # noqa: F401 - registers the paper policies
from taclab.policies import POLICIES, load_policy, make_policy, resolve

BOX = spaces.Box(np.array([-1, -1, -1.5], np.float32), np.array([1, 1, 1.5], np.float32))


def test_registry_and_unknown_name():
    assert {"oracle", "random", "zero", "bc", "dp", "tla"} <= set(POLICIES)
    with pytest.raises(ValueError, match=r"unknown policy 'bcc'.*oracle"):
        make_policy("bcc")
    with pytest.raises(ValueError, match="neither a checkpoint folder"):
        resolve("nosuch")


def test_save_load_round_trip(tmp_path):
    p = make_policy("random", seed=7)
    p.save(tmp_path / "r")
    q = load_policy(tmp_path / "r")
    assert type(q) is type(p) and q.seed == 7
    for pol in (p, q):
        pol.bind(BOX)
        pol.reset(seed=3)
    np.testing.assert_array_equal(p.select_action({}), q.select_action({}))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a taclab policy checkpoint"):
        load_policy(tmp_path)
    (tmp_path / "policy.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_policy(tmp_path)
    (tmp_path / "policy.json").write_text('{"policy": "zero"}')
    with pytest.raises(ValueError, match="lacks the key 'config'"):
        load_policy(tmp_path)


def test_reference_policies_need_the_box_and_stay_in_it():
    with pytest.raises(ValueError, match="info"):
        make_policy("oracle").select_action({})
    r = make_policy("random", seed=1)
    with pytest.raises(RuntimeError, match="bind"):
        r.select_action({})
    r.bind(BOX)
    r.reset(seed=5)
    acts = np.array([r.select_action({}) for _ in range(200)])
    assert np.all(np.abs(acts) <= [1.0, 1.0, 1.5]) and acts.std(axis=0).min() > 0.3
    r.reset(seed=5)
    np.testing.assert_array_equal(r.select_action({}), acts[0])  # the episode seed fixes the stream
    z = make_policy("zero")
    z.bind(spaces.Box(np.array([0.5, -1], np.float32), np.array([1, 1], np.float32)))
    np.testing.assert_array_equal(z.select_action({}), [0.5, 0.0])  # zero, clipped into the box
