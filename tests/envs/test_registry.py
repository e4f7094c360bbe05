"""Every registered taclab environment: built through the registry, declares its contract, passes Gymnasium's
checker, is deterministic under a seed, and steps without NaN."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from taclab.envs import ENVS
from taclab.envs.base import TaclabEnv, env_class, make

SMALL = {"taclab/PegInHole-v0": {"image_size": (16, 16)}}


def _flat(obs):
    return np.concatenate([np.asarray(v, np.float64).ravel() for _, v in sorted(obs.items())])


@pytest.mark.parametrize("env_id", sorted(ENVS))
def test_registered_env_follows_the_contract(env_id):
    cls = env_class(env_id)
    assert issubclass(cls, TaclabEnv) and cls.TASK_KEYS and cls.RESULT_FIELDS
    for tasks in cls.TASK_LISTS.values():
        for t in tasks:
            cls.check_task(t)
    env = make(env_id, **SMALL.get(env_id, {}))
    check_env(env.unwrapped, skip_render_check=True)
    a, ia = env.reset(seed=3)
    b, ib = env.reset(seed=3)
    np.testing.assert_array_equal(_flat(a), _flat(b))
    assert set(env.unwrapped.task_of(ia)) <= set(cls.TASK_KEYS)
    env.action_space.seed(0)
    for _ in range(3):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert np.isfinite(_flat(obs)).all() and np.isfinite(r)
        if term or trunc:
            break
    assert set(env.unwrapped.episode_result(info)) == set(cls.RESULT_FIELDS)
    env.close()
