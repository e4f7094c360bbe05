import numpy as np
import pytest
import torch

from taclab.data.instruct import composite_image
from taclab.policies import make_policy
from taclab.policies.preprocess import composite_tensor, tactile_batch


def test_composite_tensor_is_the_dataset_composite():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 256, (2, 4, 2, 16, 16, 3), dtype=np.uint8)
    img = composite_tensor(t)
    assert img.shape == (2, 3, 48, 48)
    for b in range(2):
        ref = composite_image(t[b], size=48)
        np.testing.assert_array_equal((img[b].permute(1, 2, 0) * 255).round().byte().numpy(), ref)
    assert composite_tensor(t, size=24).shape == (2, 3, 24, 24)


def test_tactile_batch_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        tactile_batch(np.zeros((4, 3, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        tactile_batch(np.zeros((4, 2, 8, 8, 3), np.float32))


@pytest.mark.parametrize("name", ["bc", "dp"])
def test_policy_config_is_validated(name):
    with pytest.raises(ValueError, match="encoder"):
        make_policy(name, encoder="resnet9")
    with pytest.raises(ValueError, match="extra"):
        make_policy(name, width=3)


def test_untrained_policy_says_it_needs_statistics():
    p = make_policy("bc")
    with pytest.raises(RuntimeError, match="normalization statistics"):
        p.act({"tactile": np.zeros((4, 2, 8, 8, 3), np.uint8)})


def test_dp_sampling_is_seeded_and_bounded():
    p = make_policy("dp", inference_steps=3)
    rng = np.random.default_rng(1)
    t = rng.integers(0, 256, (6, 4, 2, 8, 8, 3), dtype=np.uint8)
    acts = rng.uniform(-1, 1, (6, 3))
    p.fit_stats(t, acts)
    a1 = p.predict(t, seed=3).actions
    a2 = p.predict(t, seed=3).actions
    a3 = p.predict(t, seed=4).actions
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    lo, hi = acts.min(0), acts.max(0)
    assert (a1 >= lo - 1e-6).all() and (a1 <= hi + 1e-6).all()  # denoised samples are clipped to the data range
    loss = p.loss(p.prepare(t), torch.as_tensor(acts, dtype=torch.float32), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
