import numpy as np
import pytest
import torch
from gymnasium import spaces

from taclab.papers.tla.instruct import composite_image
from taclab.policies import make_policy
from taclab.policies.learned import PolicyIO
from taclab.policies.preprocess import composite_tensor, tactile_batch

IO = {"inputs": {"tactile": {"shape": (4, 2, 8, 8, 3)}}, "action_low": (-1, -1, -1.5), "action_high": (1, 1, 1.5)}


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
    with pytest.raises(ValueError, match="low <= high"):
        PolicyIO(inputs={"t": {"shape": (1,)}}, action_low=(1,), action_high=(0,))


def test_untrained_policy_says_what_it_needs():
    with pytest.raises(RuntimeError, match="declared inputs"):
        make_policy("bc").select_action({"tactile": np.zeros((4, 2, 8, 8, 3), np.uint8)})
    with pytest.raises(RuntimeError, match="normalization statistics"):
        make_policy("bc", io=IO).select_action({"tactile": np.zeros((4, 2, 8, 8, 3), np.uint8)})


def _fitted(name, **kw):
    p = make_policy(name, io=IO, **kw)
    rng = np.random.default_rng(1)
    t = rng.integers(0, 256, (6, 4, 2, 8, 8, 3), dtype=np.uint8)
    acts = rng.uniform(-1, 1, (6, 3))
    p.fit_stats({"tactile": t}, acts)
    return p, t, acts


def test_input_spec_is_enforced():
    p, t, _ = _fitted("bc")
    with pytest.raises(ValueError, match=r"uint8 of shape \(4, 2, 8, 8, 3\).*\(4, 2, 16, 16, 3\)"):
        p.select_action({"tactile": np.zeros((4, 2, 16, 16, 3), np.uint8)})
    with pytest.raises(ValueError, match="reads observation key"):
        p.select_action({"image": t[0]})
    with pytest.raises(ValueError, match="writes 3-d actions"):
        p.bind(spaces.Box(-1, 1, (7,)))


def test_actions_are_clipped_into_the_box_in_one_place():
    p, t, _ = _fitted("bc")
    with torch.no_grad():  # push the head far outside the box
        p.model[-1].bias.fill_(50.0)
    a = p.predict({"tactile": t}).actions
    np.testing.assert_allclose(a, np.tile([1.0, 1.0, 1.5], (len(t), 1)))
    p.bind(spaces.Box(-0.5, 0.5, (3,)))
    assert np.all(np.abs(p.select_action({"tactile": t[0]})) <= 0.5)
    with torch.no_grad():
        p.model[-1].bias.fill_(float("nan"))
    pred = p.predict({"tactile": t})
    assert pred.malformed.all() and np.all(pred.actions == 0)


def test_dp_sampling_is_seeded_and_bounded():
    p, t, acts = _fitted("dp", inference_steps=3)
    batch = {"tactile": t}
    a1 = p.predict(batch, seed=3).actions
    a2 = p.predict(batch, seed=3).actions
    a3 = p.predict(batch, seed=4).actions
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    lo, hi = acts.min(0), acts.max(0)
    assert (a1 >= lo - 1e-6).all() and (a1 <= hi + 1e-6).all()  # denoised samples are clipped to the data range
    loss = p.loss(p.prepare(batch), torch.as_tensor(acts, dtype=torch.float32), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", ["bc", "dp"])
def test_checkpoint_round_trip_declares_inputs(tmp_path, name):
    from taclab.policies import load_policy

    p, t, _ = _fitted(name)
    p.save(tmp_path / name)
    q = load_policy(tmp_path / name)
    assert q.io == p.io
    np.testing.assert_array_equal(p.predict({"tactile": t}).actions, q.predict({"tactile": t}).actions)
    (tmp_path / name / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors|cannot read"):
        load_policy(tmp_path / name)
