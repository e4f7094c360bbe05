"""DPPO: transition log-probabilities against a hand computation (over the executed actions only), GAE on a tiny
case, the fine-tuned copy acting exactly as the pre-trained policy before any update, critic warm-up, and a tiny
run that changes only the fine-tuned denoiser, logs how far its actions moved, resumes, and whose policy loads in
a fresh process."""

import json
import math
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from taclab.policies import load_policy, make_policy
from taclab.policies.learned import InputSpec, PolicyIO
from taclab.policies.pointcloud_dp import CLOUD, STATE
from taclab.rl.dppo import DPPOConfig, _fine_tuned_policy, action_drift, chain_logprobs, gae, sample_chain

TINY = {
    "point_widths": (16,),
    "feature_dim": 16,
    "step_embed": 8,
    "unet_channels": (16, 16),
    "horizon": 4,
    "n_action_steps": 2,
    "tactile_keep": 4,
    "inference_steps": 2,
}
ENV = {"visual_points": 32, "tactile_stride": 4, "camera_size": [24, 32], "max_steps": 6}


def cosine_alpha_bar(T: int) -> np.ndarray:
    f = [math.cos((u / T + 0.008) / 1.008 * math.pi / 2) ** 2 for u in range(T + 1)]
    betas = [min(1 - f[i + 1] / f[i], 0.999) for i in range(T)]
    return np.cumprod(1 - np.array(betas))


def env_policy(tmp_path, seed=0, prediction="epsilon"):
    """A tiny untrained policy whose inputs match the tiny env, with statistics from a few env observations."""
    env = gym.make("taclab/BimanualAssembly-v0", **ENV)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)  # the statistics' actions, hence the policy, are the same in every run
    io = PolicyIO(
        inputs={
            CLOUD: InputSpec(shape=obs["point_cloud"].shape, dtype="float32"),
            STATE: InputSpec(shape=(14,), dtype="float32"),
        },
        action_low=tuple(env.action_space.low.tolist()),
        action_high=tuple(env.action_space.high.tolist()),
    )
    p = make_policy("pointcloud_dp", config={**TINY, "prediction_type": prediction}, io=io)
    clouds, states, acts = [], [], []
    for _ in range(4):
        a = env.action_space.sample()
        clouds.append(obs["point_cloud"]), states.append(obs["state"]), acts.append(a)
        obs, *_ = env.step(a)
    env.close()
    p.fit_stats({CLOUD: np.stack(clouds), STATE: np.stack(states)}, np.stack(acts))
    return p.save(tmp_path / "pretrained"), {CLOUD: np.stack(clouds), STATE: np.stack(states)}


@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
def test_logprobs_match_hand_computation(tmp_path, prediction):
    path, batch = env_policy(tmp_path, prediction=prediction)
    p = load_policy(path)
    cfg = DPPOConfig(ddim_steps=2, ft_denoising_steps=2, min_sampling_std=0.2, min_logprob_std=0.3, act_steps=2)
    inputs = p.prepare(batch)
    chain, logp, x = sample_chain(p, p.model.net, inputs, cfg, torch.Generator().manual_seed(0))
    assert chain.shape == (4, 3, 4, 14) and logp.shape == (4, 2)
    ab = cosine_alpha_bar(100)
    steps = [(99, 49), (49, -1)]  # trailing DDIM steps of 100 in 2
    with torch.no_grad():
        cond = p.model.net.encode(inputs["points"], inputs["state"])
        for k, (t, tp) in enumerate(steps):
            xk = chain[:, k]
            out = p.model.net(xk, torch.full((4,), t), cond).numpy().astype(np.float64)
            xk = xk.numpy().astype(np.float64)
            x0 = out if prediction == "sample" else (xk - np.sqrt(1 - ab[t]) * out) / np.sqrt(ab[t])
            x0 = np.clip(x0, -1, 1)
            e = (xk - np.sqrt(ab[t]) * x0) / np.sqrt(1 - ab[t])
            a_prev = ab[tp] if tp >= 0 else 1.0
            mean = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * e
            s = 0.3  # the sampling std 0.2 floored at 0.3
            z = chain[:, k + 1].numpy().astype(np.float64)
            dens = -((z - mean) ** 2) / (2 * s * s) - math.log(s) - 0.5 * math.log(2 * math.pi)
            hand = dens[:, :2].mean((1, 2))  # the 2 executed actions of the chunk of 4, all 14 dimensions
            np.testing.assert_allclose(logp[:, k].numpy(), hand, rtol=1e-4, atol=1e-4)
        again = chain_logprobs(p, inputs, chain, cfg)
    np.testing.assert_allclose(again.numpy(), logp.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(x.numpy(), chain[:, -1].clamp(-1, 1).numpy())


def test_logprobs_read_only_the_executed_actions(tmp_path):
    """The actions past ``act_steps`` never reach the env, so their noise must not enter the ratio."""
    path, batch = env_policy(tmp_path, prediction="sample")
    p = load_policy(path)
    cfg = DPPOConfig(ddim_steps=2, ft_denoising_steps=2, act_steps=2)
    inputs = p.prepare(batch)
    chain, logp, _ = sample_chain(p, p.model.net, inputs, cfg, torch.Generator().manual_seed(0))
    with torch.no_grad():
        tail = chain.clone()
        tail[:, 2, 2:] += 0.5  # the final chunk's unexecuted actions
        head = chain.clone()
        head[:, 2, :2] += 0.5  # the final chunk's executed actions
        torch.testing.assert_close(chain_logprobs(p, inputs, tail, cfg), logp)
        assert (chain_logprobs(p, inputs, head, cfg)[:, 1] < logp[:, 1] - 1).all()


@pytest.mark.parametrize("k", [1, 2])
def test_fine_tuned_copy_acts_as_the_pretrained_policy_before_any_update(tmp_path, k):
    path, batch = env_policy(tmp_path, prediction="sample")
    pre = load_policy(path)
    policy = load_policy(path)
    cfg = DPPOConfig(ddim_steps=2, ft_denoising_steps=k, act_steps=2)
    tuned = _fine_tuned_policy(policy, policy.model.net, cfg)
    obs = {"point_cloud": batch[CLOUD][0], "state": batch[STATE][0]}
    pre.reset(seed=3)
    tuned.reset(seed=3)
    np.testing.assert_array_equal(tuned.predict_action_chunk(obs), pre.predict_action_chunk(obs))
    assert action_drift(policy, pre.model.net, policy.prepare(batch), cfg) == 0.0
    with torch.no_grad():  # a moved denoiser moves the executed actions
        for prm in policy.model.net.unet.final.parameters():
            prm.add_(0.05)
    assert action_drift(policy, pre.model.net, policy.prepare(batch), cfg) > 1e-3


def test_gae_tiny_case():
    adv, ret = gae(
        np.array([[0.0], [1.0]]), np.array([[0.5], [0.6]]), np.array([[0.0], [1.0]]), np.array([0.7]), 0.9, 0.8
    )
    np.testing.assert_allclose(adv[:, 0], [0.04 + 0.9 * 0.8 * 0.4, 0.4])
    np.testing.assert_allclose(ret[:, 0], [0.828, 1.0])


def test_bad_config():
    with pytest.raises(ValueError, match="ft_denoising_steps"):
        DPPOConfig(ddim_steps=3, ft_denoising_steps=4)
    with pytest.raises(ValueError, match="unknown DPPO config key 'lr'"):
        DPPOConfig.from_dict({"lr": 1.0})
    assert DPPOConfig.from_dict({"actor_lr": "3e-6"}).actor_lr == 3e-6  # YAML reads 3e-6 as a string
    with pytest.raises(ValueError, match="actor_lr='fast' is not a number"):
        DPPOConfig.from_dict({"actor_lr": "fast"})


def test_one_iteration_changes_only_the_fine_tuned_copy_and_resumes(tmp_path):
    from taclab.rl.dppo import train

    torch.manual_seed(0)  # the same run every time (unseeded, about one run in four left the weights unchanged)
    path, _ = env_policy(tmp_path)
    before = load_policy(path).model.net.state_dict()
    cfg = dict(
        env=ENV, num_envs=2, vectorization="sync", n_steps=2, act_steps=2, ddim_steps=2, ft_denoising_steps=1,
        update_epochs=1, minibatch_size=2, actor_lr=1e-3, target_kl=None, total_env_steps=8,
    )  # fmt: skip
    out = tmp_path / "dppo"
    final = train(DPPOConfig(**cfg), path, out, progress=False)
    tuned = load_policy(final)
    assert tuned.cfg.frozen_steps == 1 and tuned.cfg.inference_steps == 2
    for k, v in before.items():  # the frozen copy is the pre-trained denoiser
        torch.testing.assert_close(tuned.model.frozen.state_dict()[k], v)
    changed = [k for k, v in before.items() if not torch.equal(tuned.model.net.state_dict()[k], v)]
    assert changed, "the fine-tuned denoiser did not change"
    rows = (out / "log.csv").read_text().splitlines()
    assert len(rows) == 2 and int(rows[1].split(",")[1]) == 8
    row = dict(zip(rows[0].split(","), rows[1].split(","), strict=True))
    assert float(row["action_drift"]) > 0  # the update moved the executed actions
    assert (out / "success_curve.png").is_file() and (out / "success_curve.csv").is_file()
    with pytest.raises(ValueError, match="already holds"):
        train(DPPOConfig(**cfg), path, out, progress=False)
    train(DPPOConfig(**{**cfg, "total_env_steps": 16}), path, out, resume=True, progress=False)
    assert json.loads((out / "summary.json").read_text())["iterations"] == 2
    code = (
        "import numpy as np, gymnasium as gym, taclab; from taclab.policies import load_policy; "
        f"p = load_policy({str(final)!r}); env = gym.make('taclab/BimanualAssembly-v0', **{ENV!r}); "
        "obs, _ = env.reset(seed=1); p.reset(seed=0); c = p.predict_action_chunk(obs); print(c.shape)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(4, 14)"


def test_critic_warmup_leaves_the_actor_alone(tmp_path):
    from taclab.rl.dppo import train

    torch.manual_seed(0)  # the same run every time (unseeded, about one run in four left the weights unchanged)
    path, _ = env_policy(tmp_path)
    before = load_policy(path).model.net.state_dict()
    cfg = dict(
        env=ENV, num_envs=2, vectorization="sync", n_steps=2, act_steps=2, ddim_steps=2, ft_denoising_steps=2,
        update_epochs=1, minibatch_size=2, actor_lr=1e-3, target_kl=None, total_env_steps=8, critic_warmup_iters=1,
    )  # fmt: skip
    out = tmp_path / "dppo"
    tuned = load_policy(train(DPPOConfig(**cfg), path, out, progress=False))
    for key, v in before.items():
        torch.testing.assert_close(tuned.model.net.state_dict()[key], v)
    rows = (out / "log.csv").read_text().splitlines()
    row = dict(zip(rows[0].split(","), rows[1].split(","), strict=True))
    assert float(row["action_drift"]) == 0.0 and row["policy_loss"] == "nan" and float(row["value_loss"]) >= 0
    with pytest.raises(ValueError, match="critic_warmup_iters"):
        DPPOConfig(critic_warmup_iters=-1)


def test_every_config_key_is_documented():
    from dataclasses import fields
    from pathlib import Path

    from taclab.papers.vtrefine.demo import DemoConfig
    from taclab.policies.pointcloud_dp import PointCloudDPConfig

    text = (Path(__file__).resolve().parents[2] / "docs" / "vt_refine.md").read_text()
    keys = [f.name for f in fields(DPPOConfig)] + list(PointCloudDPConfig.model_fields) + list(DemoConfig.model_fields)
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/vt_refine.md does not document {missing}"


def test_command_line_errors(tmp_path, capsys):
    from taclab.rl.dppo import main

    assert main(["--pretrained", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "clip_coef=-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: DPPO config clip_coef=-1 is invalid; allowed: > 0"
    assert main(["--pretrained", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_signal_free_drift(tmp_path):
    """Updates on advantages without information move the executed actions in proportion to the learning rate
    (none at lr 0); bad input gets one error line."""
    from taclab.papers.vtrefine.drift import compare_actions, main, signal_free_drift

    path, batch = env_policy(tmp_path, prediction="sample")
    cfg = dict(
        num_envs=1,
        n_steps=2,
        minibatch_size=2,
        update_epochs=2,
        ddim_steps=2,
        ft_denoising_steps=2,
        act_steps=2,
        target_kl=None,
    )
    quiet = dict(probe=2, report=lambda _msg: None)
    still = signal_free_drift(load_policy(path), batch[CLOUD], batch[STATE], 2, DPPOConfig(**cfg, actor_lr=0), **quiet)
    moved = signal_free_drift(
        load_policy(path), batch[CLOUD], batch[STATE], 2, DPPOConfig(**cfg, actor_lr=1e-3), **quiet
    )
    assert [r["env_steps"] for r in moved] == [4, 8]
    assert all(r["action_drift"] == 0 for r in still) and moved[-1]["action_drift"] > 1e-4
    with pytest.raises(ValueError, match="needs at least"):
        signal_free_drift(load_policy(path), batch[CLOUD], batch[STATE], 1, DPPOConfig(**cfg), probe=3)
    assert main(["--policy", str(tmp_path / "nope"), "--data", str(tmp_path)]) == 2
    assert main(["--policy", str(path), "--data", str(tmp_path), "--compare", str(tmp_path / "nope")]) == 2
    r = compare_actions(load_policy(path), load_policy(path), batch[CLOUD], batch[STATE], rows=3)
    assert r["rows"] == 3 and r["rms"].shape == (14,) and not r["rms"].any()
    tuned = load_policy(path)
    with torch.no_grad():
        tuned.model.net.unet.final[-1].bias[0] += 0.5  # hand 0's x, in the scaled action
    r = compare_actions(load_policy(path), tuned, batch[CLOUD], batch[STATE], rows=3)
    assert r["rms"][0] > 0 and r["mean"][0] > 0


def test_gradient_agreement(tmp_path):
    """The rollout's returns are the discounted sums of its rewards; the measured policy gradient is the gradient
    of PPO's actor loss at ratio 1; two batches of the same episodes agree exactly; returns that are all equal are
    refused."""
    from taclab.papers.vtrefine.drift import advantages, gradient_agreement, main, policy_gradient, rollout
    from taclab.rl.dppo import ppo_update

    torch.manual_seed(0)
    path, _ = env_policy(tmp_path)
    cfg = DPPOConfig(
        env=ENV, num_envs=2, vectorization="sync", act_steps=2, ddim_steps=2, ft_denoising_steps=2, gamma=0.9,
        update_epochs=1, target_kl=None, norm_adv=False, clip_coef=10.0,
    )  # fmt: skip
    policy = load_policy(path)
    data = rollout(policy, cfg, 12, report=lambda _m: None)
    n = len(data["returns"])
    assert n == 12 and len(data["success"]) == 4  # 6 steps, 2 actions per decision: 3 decisions per episode
    assert data["chains"].shape == (12, 3, 4, 14) and data[CLOUD].shape[0] == data[STATE].shape[0] == 12
    with pytest.raises(ValueError, match="the gradient is zero"):  # the tiny untrained policy never succeeds
        gradient_agreement(policy, data, [3], cfg)
    data["returns"] = np.random.default_rng(0).standard_normal(n)
    rows = np.arange(n)
    g = policy_gradient(policy, data, rows, data["returns"], cfg, chunk=5)
    opt = torch.optim.SGD(policy.model.net.parameters(), lr=1.0)  # one SGD step of lr 1 subtracts the gradient
    before = torch.cat([p.detach().flatten().clone() for p in policy.model.net.parameters()])
    logp = chain_logprobs(policy, policy.prepare({CLOUD: data[CLOUD], STATE: data[STATE]}), data["chains"], cfg)
    batch = {CLOUD: data[CLOUD], STATE: data[STATE]}
    cfg1 = DPPOConfig(**{**cfg.__dict__, "minibatch_size": n, "max_grad_norm": 1e9})
    ppo_update(policy, opt, batch, data["chains"], logp.detach(), data["returns"], cfg1, torch.Generator())
    after = torch.cat([p.detach().flatten() for p in policy.model.net.parameters()])
    step = (before - after).double()  # float32 weights minus a small step: compare direction and length
    assert torch.nn.functional.cosine_similarity(step, g.double(), dim=0) > 0.9999
    assert step.norm() / g.norm() == pytest.approx(1.0, rel=1e-3)
    twice = {k: np.concatenate([v, v]) if isinstance(v, np.ndarray) else torch.cat([v, v]) for k, v in data.items()}
    twice["episode"] = np.concatenate([np.zeros(n, int), np.ones(n, int)])  # two identical "episodes"
    (row,) = gradient_agreement(load_policy(path), twice, [n], cfg, report=lambda _m: None)
    assert (
        row["batches"] == 2
        and row["signal"] == pytest.approx(1.0, abs=1e-5)
        and row["cos_mean"] == pytest.approx(1.0, abs=1e-5)
        and row["half_b"] < 1e-2
    )
    thrice = {k: np.concatenate([v] * 3) if isinstance(v, np.ndarray) else torch.cat([v] * 3) for k, v in data.items()}
    thrice["episode"] = np.repeat([0, 1, 2], n)
    (row,) = gradient_agreement(load_policy(path), thrice, [n], cfg, report=lambda _m: None)
    assert row["batches"] == 3 and row["signal"] == pytest.approx(1.0, abs=1e-5) and row["signal_se"] < 1e-5
    grouped = rollout(load_policy(path), cfg, 7, grouped=True, report=lambda _m: None)
    assert len(grouped["success"]) == 4 and list(np.unique(grouped["group"])) == [0, 1]  # 2 rounds of 2 episodes
    first = grouped["episode"] == 0
    np.testing.assert_array_equal(grouped[CLOUD][first][0], grouped[CLOUD][grouped["episode"] == 1][0])  # one start
    assert not np.array_equal(grouped[CLOUD][first][0], grouped[CLOUD][grouped["episode"] == 2][0])
    grouped["returns"] = np.repeat([1.0, 0.0, 1.0, 1.0], 3)  # episodes 0..3, 3 decisions each
    adv = advantages(grouped)  # group 0: +1 / -1 against the other episode; group 1: both 0
    np.testing.assert_allclose(adv, np.repeat([1.0, -1.0, 0.0, 0.0], 3) / np.repeat([1.0, -1.0, 0, 0], 3).std())
    assert main(["--policy", str(path), "--agreement", "1"]) == 2
    assert main(["--policy", str(path)]) == 2  # without --agreement, --data is required
