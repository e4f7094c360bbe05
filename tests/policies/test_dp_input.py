"""The input resolution of the diffusion policy.

With the 192 px composite of the TLA data's 64 px tiles, DP's encoder did not learn the sign of y (the difference
between the two pads, a few grey levels under per-pixel noise of 2) within the training budget, while at 96 px it
did (docs/tla_recipe.md). The default composite is therefore halved, with antialiasing, which averages the
independent pixel noise of each 2x2 block.
"""

import numpy as np
import pytest

from taclab.policies import load_policy, make_policy

TILE = 64  # the TLA env's tactile image size


def _noise_batch(n=16, sigma=2.0, seed=0):
    """A flat grey sensor image under fresh Gaussian pixel noise (the profile's noise_std), 64 px tiles."""
    rng = np.random.default_rng(seed)
    t = 128 + sigma * rng.standard_normal((n, 4, 2, TILE, TILE, 3))
    return np.clip(np.round(t), 0, 255).astype(np.uint8)


def _io():
    shape = (4, 2, TILE, TILE, 3)
    return {"inputs": {"tactile": {"shape": shape}}, "action_low": (-1, -1, -1.5), "action_high": (1, 1, 1.5)}


def _input_noise(policy, batch):
    policy.fit_stats({"tactile": batch}, np.zeros((len(batch), 3)))
    img = policy.prepare({"tactile": batch})["images"]
    tiles = img[..., : img.shape[-1] // 3 * 2]  # the first two columns of the grid: tactile tiles only
    return img.shape[-1], float(tiles.std(0).mean())  # the spread across samples: the noise alone


def test_dp_default_input_halves_the_composite_and_its_pixel_noise():
    batch = _noise_batch()
    size, noise = _input_noise(make_policy("dp", io=_io()), batch)
    full_size, full_noise = _input_noise(make_policy("dp", io=_io(), image_size=None), batch)
    assert full_size == 3 * TILE and size == 3 * TILE // 2
    # the antialiased halving averages independent pixel noise with the weights (1, 3, 3, 1) / 8 per axis: its
    # spread becomes 0.3125 of what it was (0.31 measured); without the halving it stays 1
    assert noise < 0.4 * full_noise, (noise, full_noise)


def test_saved_full_size_policy_keeps_its_resolution(tmp_path):
    """A checkpoint trained on the full-size composite (image_size None, as before the default changed) is loaded
    with its own input size and gives the same actions."""
    batch = _noise_batch(n=4)
    p = make_policy("dp", io=_io(), image_size=None)
    p.fit_stats({"tactile": batch}, np.zeros((len(batch), 3)))
    loaded = load_policy(p.save(tmp_path / "dp"))
    assert loaded.cfg.image_size is None
    assert loaded.prepare({"tactile": batch})["images"].shape[-1] == 3 * TILE
    np.testing.assert_allclose(loaded.predict({"tactile": batch}).actions, p.predict({"tactile": batch}).actions)


def test_stacked_layout_keeps_the_tile_size_by_default():
    """96 px is a composite size: a stacked input (tile-sized, 24 channels) is not resized unless asked."""
    assert make_policy("dp", layout="stacked").cfg.image_size is None
    assert make_policy("dp", layout="stacked", image_size=32).cfg.image_size == 32


def test_evaluation_may_change_inference_settings_of_a_checkpoint_and_nothing_else(tmp_path):
    """``load_policy(..., overrides)`` (``taclab eval ... --policy-set``): the sampler's settings change how the
    loaded policy acts; a key that would change what the weights mean is refused, naming the allowed keys."""
    import pytest

    from taclab.policies.base import resolve

    batch = _noise_batch(n=4)
    p = make_policy("dp", io=_io())
    p.fit_stats({"tactile": batch}, np.random.default_rng(0).uniform(-1, 1, (4, 3)))
    d = p.save(tmp_path / "dp")
    zero = load_policy(d, overrides={"init_noise_scale": 0.0})
    assert zero.cfg.init_noise_scale == 0.0 and load_policy(d).cfg.init_noise_scale == 1.0
    a0, a1 = (zero.predict({"tactile": batch}, seed=s).actions for s in (0, 1))
    np.testing.assert_array_equal(a0, a1)  # deterministic from zero noise
    b0, b1 = (load_policy(d).predict({"tactile": batch}, seed=s).actions for s in (0, 1))
    assert not np.array_equal(b0, b1)  # the saved setting samples
    with pytest.raises(ValueError, match=r"'hidden' cannot be changed .* allowed: scheduler, inference_steps"):
        load_policy(d, overrides={"hidden": 64})
    with pytest.raises(ValueError, match="overridden only for checkpoints"):
        resolve("zero", overrides={"init_noise_scale": 0.0})
    assert resolve(d, overrides={"init_noise_scale": 0.0}) is not resolve(d)  # cached per setting


def test_a_checkpoint_saved_again_is_loaded_again_not_served_from_the_cache(tmp_path):
    """An RL run evaluates its actor by saving it to the same folder at every evaluation: ``resolve`` must see
    the new weights (it once returned the first save's policy for every later evaluation of the run)."""
    from taclab.policies.base import resolve

    batch = _noise_batch(n=4)
    d = tmp_path / "dp"
    first = make_policy("dp", io=_io(), init_noise_scale=0.0)
    first.fit_stats({"tactile": batch}, np.random.default_rng(0).uniform(-1, 1, (4, 3)))
    first.save(d)
    a = resolve(d).predict({"tactile": batch}, seed=0).actions
    assert resolve(d) is resolve(d)  # cached while unchanged
    second = make_policy("dp", io=_io(), init_noise_scale=0.0, seed=1)  # other weights
    second.fit_stats({"tactile": batch}, np.random.default_rng(0).uniform(-1, 1, (4, 3)))
    second.save(d)
    b = resolve(d).predict({"tactile": batch}, seed=0).actions
    np.testing.assert_allclose(b, second.predict({"tactile": batch}, seed=0).actions)
    assert not np.allclose(a, b)


def _draws_and_reduced(k: int, **inference):
    """(k, 3, 3) actions of a single-draw policy on a 3-observation batch repeated k times, and the (3, 3) actions of
    the same policy with ``num_samples=k`` (and ``inference``) on the batch: draw j of observation i is row j * n + i
    of one batch, so both see the same noise in the same order."""
    batch = _noise_batch(n=3)
    acts = np.random.default_rng(0).uniform(-1, 1, (3, 3))
    one = make_policy("dp", io=_io())
    one.fit_stats({"tactile": batch}, acts)
    many = make_policy("dp", io=_io(), num_samples=k, **inference)
    many.fit_stats({"tactile": batch}, acts)
    repeated = one.predict({"tactile": np.concatenate([batch] * k)}, seed=5).actions.reshape(k, 3, 3)
    return repeated, many.predict({"tactile": batch}, seed=5).actions


def test_num_samples_returns_the_mean_of_that_many_draws_per_observation():
    """Draw j of observation i is row j * n + i of one batch: the mean over draws equals the mean of the
    single-draw policy's actions on the batch repeated num_samples times (the same noise, in the same order)."""
    repeated, mean = _draws_and_reduced(4)
    np.testing.assert_allclose(mean, repeated.mean(0), atol=1e-5)
    assert not np.allclose(repeated[0], repeated[1])  # the draws differ: the mean is not one of them
    assert mean.shape == (3, 3)


def test_reduce_median_returns_the_per_axis_median_of_the_draws():
    """``reduce: median``: per axis the middle of the draws, with an even number the mean of the two middle ones
    (torch.median would return the lower one); the same draws as the mean's, so only the reduction differs."""
    repeated, median = _draws_and_reduced(4, reduce="median")
    srt = np.sort(repeated, 0)
    np.testing.assert_allclose(median, (srt[1] + srt[2]) / 2, atol=1e-5)
    assert not np.allclose(median, repeated.mean(0), atol=1e-4)
    with pytest.raises(ValueError, match="reduce"):
        make_policy("dp", io=_io(), reduce="mode")
