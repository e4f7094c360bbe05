"""For fixed inputs, the actions of small stored BC, DP and TLA checkpoints equal the stored values.

The checkpoints, inputs and actions in ``fixtures/`` were written by ``make_fixtures.py`` (a tiny TLA dataset,
each policy trained a few steps by the shared loop). A change in loading, preprocessing, normalization, the
models, sampling, decoding or clipping that changes what a saved policy does fails here; rebuild the fixtures
only when that change is intended, and say so.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import taclab.papers  # noqa: F401 - registers the TLA policy
from taclab.policies import load_policy

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="module")
def batch():
    with np.load(FIXTURES / "inputs.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("name", ["bc", "dp", "tla"])
def test_stored_checkpoint_gives_the_stored_actions(name, batch):
    policy = load_policy(FIXTURES / name)
    pred = policy.predict(batch)
    np.testing.assert_allclose(pred.actions, EXPECTED[name]["actions"], rtol=0, atol=2e-5)
    assert pred.malformed.tolist() == EXPECTED[name]["malformed"]
    if name == "tla":
        assert list(policy.last_texts) == EXPECTED[name]["texts"]


@pytest.mark.parametrize("name", ["bc", "dp"])
def test_select_action_agrees_with_the_stored_batch(name, batch):
    policy = load_policy(FIXTURES / name)
    policy.reset({"shape": str(batch["shape"][0])}, seed=0)
    a = policy.select_action({"tactile": batch["tactile"][0]})
    assert a.shape == (3,) and np.all(np.isfinite(a))
    if name == "bc":  # deterministic: one observation gives the batch's first action
        np.testing.assert_allclose(a, EXPECTED[name]["actions"][0], rtol=0, atol=2e-5)
