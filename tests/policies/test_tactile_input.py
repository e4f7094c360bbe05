"""The tactile input representation shared by BC, DP and the TLA model."""

import numpy as np
import pytest
import torch

from taclab.envs.peg_in_hole import PegInHoleEnv, reference_image
from taclab.papers.tla.instruct import composite_image, tactile_composites
from taclab.policies import load_policy, make_policy
from taclab.policies.tactile_input import (
    RAW,
    TactileInputConfig,
    composite,
    fit_tactile_stats,
    represent,
    smooth,
    stacked,
    to_uint8,
)


def _batch(n=6, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 4, 2, size, size, 3), dtype=np.uint8)


def test_the_reference_is_the_untouched_pad_of_the_env():
    ref = reference_image({"image_size": (32, 32)})
    assert ref.shape == (32, 32, 3) and ref.dtype == np.uint8 and ref.std() > 5  # markers on a background
    env = PegInHoleEnv(image_size=(32, 32))
    np.testing.assert_array_equal(ref, env.reference_image())
    obs, _ = env.reset(seed=0)
    assert np.abs(obs["tactile"].astype(int) - ref).mean() > 1  # the grasped peg presses the gel
    cfg = TactileInputConfig(subtract="reference", normalize="none")
    untouched = np.broadcast_to(ref, (1, 4, 2, 32, 32, 3)).copy()
    assert float(represent(untouched, cfg, fit_tactile_stats(untouched, cfg)).abs().max()) == 0.0
    other = TactileInputConfig(subtract="reference", env={"sensor_overrides": {"marker_pitch_mm": 2.4}})
    assert not torch.equal(fit_tactile_stats(untouched, other)["tactile_reference"], torch.as_tensor(ref).float())


def test_a_reference_of_an_unknown_sensor_is_refused():
    with pytest.raises(ValueError, match="tactile.env"):
        fit_tactile_stats(_batch(), TactileInputConfig(subtract="reference", env={"sensor": "nope"}))


def test_first_frame_difference_zeroes_the_first_frame():
    t = _batch()
    cfg = TactileInputConfig(subtract="first_frame", normalize="none")
    x = represent(t, cfg, fit_tactile_stats(t, cfg))
    assert float(x[:, 0].abs().max()) == 0.0
    np.testing.assert_allclose(x[:, 2].numpy() * 255, t[:, 2].astype(np.float32) - t[:, 0], atol=1e-3)


@pytest.mark.parametrize("normalize", ["channel", "center", "pixel"])
def test_normalized_training_data_is_centred_with_unit_spread(normalize):
    t = _batch(n=64)
    cfg = TactileInputConfig(normalize=normalize)
    x = represent(t, cfg, fit_tactile_stats(t, cfg))
    assert abs(float(x.mean())) < 1e-3
    if normalize == "pixel":
        np.testing.assert_allclose(x.mean(0).numpy(), 0, atol=1e-4)
        np.testing.assert_allclose(x.std(0).numpy(), 1, atol=1e-3)
    else:
        assert abs(float(x.std()) - 1) < 0.05
    if normalize == "channel":
        np.testing.assert_allclose(x.mean((0, 1, 2, 3, 4)).numpy(), 0, atol=1e-4)


def test_statistics_of_other_images_are_refused():
    t = _batch()
    stats = fit_tactile_stats(t, TactileInputConfig())
    with pytest.raises(ValueError, match="does not match"):
        represent(_batch(size=8), TactileInputConfig(), stats)
    with pytest.raises(RuntimeError, match="statistics"):
        represent(t, TactileInputConfig(), {})


def test_uint8_export_keeps_raw_images_and_maps_the_mean_to_128():
    t = _batch(n=8)
    np.testing.assert_array_equal(to_uint8(t, RAW, None), t)
    cfg = TactileInputConfig(normalize="center", image_gain=10.0)
    stats = fit_tactile_stats(t, cfg)
    mean_seq = stats["tactile_mean"].round().clamp(0, 255).to(torch.uint8).numpy()[None]
    assert np.abs(to_uint8(mean_seq, cfg, stats).astype(int) - 128).max() <= 10  # the mean within rounding
    big = to_uint8(t, cfg.model_copy(update={"image_gain": 1000.0}), stats)
    assert set(np.unique(big)) <= {0, 128, 255} | set(range(1, 255))  # clipped into 8 bits, never wrapped
    assert (big == 0).mean() > 0.3 and (big == 255).mean() > 0.3


def test_vlm_composites_are_the_papers_for_raw_images_and_of_the_mapping_otherwise():
    t = _batch(n=2)
    raw = tactile_composites(t, RAW, None, 56)
    np.testing.assert_array_equal(raw[0], composite_image(t[0], 56))
    cfg = TactileInputConfig(normalize="center", image_gain=64.0)
    stats = fit_tactile_stats(t, cfg)
    np.testing.assert_array_equal(
        tactile_composites(t, cfg, stats, 48)[1], composite_image(to_uint8(t, cfg, stats)[1], 48)
    )
    ninth = tactile_composites(t, cfg.model_copy(update={"ninth_cell": "pad_difference"}), stats, 48)[0]
    assert ninth.shape == (48, 48, 3) and ninth[32:, 32:].std() > 10  # the pad difference fills the ninth cell
    with pytest.raises(RuntimeError, match="statistics"):
        tactile_composites(t, cfg, None, 48)


def test_layouts():
    x = torch.randn(2, 4, 2, 8, 8, 3)
    assert composite(x).shape == (2, 3, 24, 24) and composite(x, 12).shape == (2, 3, 12, 12)
    s = stacked(x)
    assert s.shape == (2, 24, 8, 8)
    torch.testing.assert_close(s[1, 3 * 3 + 1], x[1, 1, 1, :, :, 1])  # frame 1, pad 1, colour channel 1
    t = _batch(n=2, size=8)
    img = composite(represent(t, RAW, fit_tactile_stats(t, RAW)), blank=1.0)
    np.testing.assert_array_equal((img[0].permute(1, 2, 0) * 255).round().byte().numpy(), composite_image(t[0], 24))


IO = {"inputs": {"tactile": {"shape": (4, 2, 16, 16, 3)}}, "action_low": (-1, -1, -1.5), "action_high": (1, 1, 1.5)}


@pytest.mark.parametrize("name", ["bc", "dp"])
@pytest.mark.parametrize("layout", ["composite", "stacked"])
def test_policies_read_the_configured_representation_and_save_its_statistics(name, layout, tmp_path):
    t = _batch(n=8)
    tactile = {"subtract": "first_frame", "normalize": "center"}
    p = make_policy(name, io=IO, layout=layout, tactile=tactile, image_size=None)  # the tiles' own size
    p.fit_stats({"tactile": t}, np.random.default_rng(0).uniform(-1, 1, (8, 3)))
    images = p.prepare({"tactile": t})["images"]
    assert images.shape == ((8, 3, 48, 48) if layout == "composite" else (8, 24, 16, 16))
    first, later = (
        (images[:, :, :16, :32], images[:, :, :16, 32:]) if layout == "composite" else (images[:, :6], images[:, 6:])
    )
    assert float(first.abs().max()) == 0 and float(later.abs().max()) > 0  # frame 0 minus itself; frame 1 not
    p.save(tmp_path / "p")
    q = load_policy(tmp_path / "p")
    assert q.cfg.tactile.subtract == "first_frame"
    torch.testing.assert_close(q.prepare({"tactile": t})["images"], images)


def test_bc_and_dp_default_to_the_reference_difference_standardized_per_channel():
    for name in ("bc", "dp"):
        cfg = make_policy(name).cfg.tactile
        assert (cfg.subtract, cfg.normalize) == ("reference", "channel")
    assert make_policy("dp").cfg.prediction_type == "sample"


def test_bad_representation_is_rejected():
    with pytest.raises(ValueError, match="subtract"):
        TactileInputConfig(subtract="mean")
    with pytest.raises(ValueError, match="normalize"):
        make_policy("bc", tactile={"normalize": "zscore"})
    with pytest.raises(ValueError, match="layout"):
        make_policy("dp", layout="grid")


def test_smoothing_keeps_flat_images_and_averages_noise():
    flat = torch.full((2, 4, 2, 16, 16, 3), 7.0)
    torch.testing.assert_close(smooth(flat, 1.5), flat)
    noise = torch.randn((2, 4, 2, 32, 32, 3), generator=torch.Generator().manual_seed(0))
    assert float(smooth(noise, 1.5).std()) < 0.3 * float(noise.std())
    assert smooth(noise, 0.0) is noise


def test_dp_from_zero_initial_noise_gives_one_action_per_observation():
    t = _batch(n=4)
    p = make_policy("dp", io=IO, init_noise_scale=0.0)
    p.fit_stats({"tactile": t}, np.random.default_rng(0).uniform(-1, 1, (4, 3)))
    np.testing.assert_array_equal(p.predict({"tactile": t}, seed=0).actions, p.predict({"tactile": t}, seed=1).actions)
    q = make_policy("dp", io=IO)
    q.fit_stats({"tactile": t}, np.random.default_rng(0).uniform(-1, 1, (4, 3)))
    assert not np.array_equal(q.predict({"tactile": t}, seed=0).actions, q.predict({"tactile": t}, seed=1).actions)


def test_pad_channels_hold_each_pad_in_its_channel_and_their_difference():
    from taclab.policies.tactile_input import frame_grid, pad_channels

    x = torch.randn(3, 4, 2, 8, 8, 3, generator=torch.Generator().manual_seed(0))
    p = pad_channels(x)
    assert p.shape == (3, 4, 8, 8, 3)
    torch.testing.assert_close(p[..., 0], x[:, :, 0].mean(-1))  # R: pad 0, grey
    torch.testing.assert_close(p[..., 1], x[:, :, 1].mean(-1))  # G: pad 1, grey
    torch.testing.assert_close(p[..., 2], (x[:, :, 0].mean(-1) - x[:, :, 1].mean(-1)) / 2**0.5)
    swapped = pad_channels(x.flip(2))  # the pads exchanged
    torch.testing.assert_close(swapped[..., 2], -p[..., 2])  # the difference changes sign
    torch.testing.assert_close(swapped[..., :2], p[..., [1, 0]])
    torch.testing.assert_close(pad_channels(x, "mean")[..., 2], (p[..., 0] + p[..., 1]) / 2)
    g = frame_grid(p)
    assert g.shape == (3, 16, 16, 3)
    for f, (r, c) in enumerate([(0, 0), (0, 8), (8, 0), (8, 8)]):  # time-major 2x2 grid
        torch.testing.assert_close(g[:, r : r + 8, c : c + 8], p[:, f])
    with pytest.raises(ValueError, match="blue"):
        pad_channels(x, "ratio")


def test_vlm_pad_channel_images_put_the_pads_in_the_colour_channels():
    t = _batch(n=2, size=16)
    t[:, :, 0] = 60  # pad 0 dark, pad 1 bright: every tile's difference channel is below 128
    t[:, :, 1] = 200
    raw = tactile_composites(t, RAW, None, 32, "pad_channels")[0]
    assert raw.shape == (32, 32, 3)
    np.testing.assert_array_equal(raw[..., 0], 60)
    np.testing.assert_array_equal(raw[..., 1], 200)
    np.testing.assert_array_equal(raw[..., 2], round(128 + (60 - 200) / 2**0.5))
    swapped = tactile_composites(t[:, :, ::-1].copy(), RAW, None, 32, "pad_channels")[0]
    np.testing.assert_array_equal(swapped[..., 2], round(128 + (200 - 60) / 2**0.5))
    cfg = TactileInputConfig(normalize="center", image_gain=64.0)
    u = _batch(n=4, size=16)
    stats = fit_tactile_stats(u, cfg)
    img = tactile_composites(u, cfg, stats, 32, "pad_channels")
    assert len(img) == 4 and img[0].shape == (32, 32, 3) and img[0].std() > 10
    with pytest.raises(ValueError, match="layout"):
        tactile_composites(u, cfg, stats, 32, "grid")


def test_pad_colours_keep_each_colour_and_drop_the_first_frame():
    from taclab.policies.tactile_input import pad_channels_per_colour

    x = torch.randn(2, 4, 2, 8, 8, 3, generator=torch.Generator().manual_seed(1))
    p = pad_channels_per_colour(x)
    assert p.shape == (2, 4, 3, 8, 8, 3)
    torch.testing.assert_close(p[:, 2, 1, ..., 0], x[:, 2, 0, ..., 1])  # frame 2, colour G: R holds pad 0
    torch.testing.assert_close(p[:, 2, 1, ..., 1], x[:, 2, 1, ..., 1])  # G holds pad 1
    torch.testing.assert_close(pad_channels_per_colour(x.flip(2))[..., 2], -p[..., 2])  # pads swapped: sign flips
    t = _batch(n=1, size=16)
    g = tactile_composites(t, RAW, None, 48, "pad_colours")[0]  # rows frames 1-3, columns colours R, G, B
    np.testing.assert_array_equal(g[:16, 32:, 0], t[0, 1, 0, :, :, 2])
    np.testing.assert_array_equal(g[32:, :16, 1], t[0, 3, 1, :, :, 0])
    diff = (t[0, 2, 0, :, :, 1].astype(float) - t[0, 2, 1, :, :, 1]) / 2**0.5
    np.testing.assert_array_equal(g[16:32, 16:32, 2], np.clip(np.round(128 + diff), 0, 255))
