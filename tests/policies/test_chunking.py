import numpy as np
import pytest

from taclab.policies.chunking import ActionQueue, TemporalEnsemble


def test_temporal_ensemble_by_hand():
    ens = TemporalEnsemble(m=0.5)
    c0 = np.array([[0.0], [10.0], [20.0]])
    c1 = np.array([[1.0], [11.0], [21.0]])
    c2 = np.array([[2.0], [12.0], [22.0]])
    assert ens.update(c0)[0] == 0.0  # step 0: only chunk 0
    w = np.exp(-0.5 * np.arange(2))
    np.testing.assert_allclose(ens.update(c1)[0], (w[0] * 10 + w[1] * 1) / w.sum())  # oldest first
    w = np.exp(-0.5 * np.arange(3))
    np.testing.assert_allclose(ens.update(c2)[0], (w[0] * 20 + w[1] * 11 + w[2] * 2) / w.sum())
    # chunk 0 (horizon 3) has expired at step 3
    w = np.exp(-0.5 * np.arange(3))
    np.testing.assert_allclose(ens.update(c2)[0], (w[0] * 21 + w[1] * 12 + w[2] * 2) / w.sum())
    ens.reset()
    assert ens.update(c1)[0] == 1.0
    with pytest.raises(ValueError, match="action_dim"):
        ens.update(np.zeros((3, 2)))


def test_action_queue():
    q = ActionQueue(2)
    assert q.empty()
    q.push(np.arange(8).reshape(4, 2))
    np.testing.assert_array_equal(q.pop(), [0, 1])
    np.testing.assert_array_equal(q.pop(), [2, 3])
    assert q.empty()
    with pytest.raises(RuntimeError):
        q.pop()
    with pytest.raises(ValueError, match="n_action_steps"):
        q.push(np.zeros((1, 2)))
