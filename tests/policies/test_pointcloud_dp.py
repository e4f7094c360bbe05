"""The point-cloud diffusion policy: overfit gate, training through the shared loop and sampling, identical
actions after save/reload, the vision-only variant ignoring the tactile points, and bad configs."""

import copy

import numpy as np
import pytest
import torch

from taclab.policies import load_policy, make_policy
from taclab.policies.learned import InputSpec, PolicyIO
from taclab.policies.pointcloud_dp import CLOUD, STATE, ddim_timesteps

TINY = {
    "point_widths": (32, 32),
    "feature_dim": 32,
    "step_embed": 16,
    "unet_channels": (32, 32),
    "horizon": 4,
    "n_action_steps": 2,
    "tactile_keep": 1,
}
V, T, A = 24, 16, 14


def synthetic(n: int, seed: int = 0):
    """Clouds whose visual centroid and tactile pressure decide the action chunk."""
    rng = np.random.default_rng(seed)
    cloud = np.zeros((n, V + T, 6), np.float32)
    cloud[..., :3] = rng.normal(0, 0.05, (n, V + T, 3))
    cloud[:, :V, 3] = 1
    cloud[:, V:, 4] = 1
    cloud[:, V:, 5] = rng.uniform(0, 1, (n, T))
    state = rng.normal(0, 1, (n, A)).astype(np.float32)
    w = np.random.default_rng(99).normal(0, 20, (3, A))
    act = np.tanh(cloud[:, :V, :3].mean(1) @ w + 2 * cloud[:, V:, 5].mean(1, keepdims=True) - 1)
    chunks = np.stack([act * (1 - 0.1 * k) for k in range(TINY["horizon"])], 1).astype(np.float32)
    return {CLOUD: cloud, STATE: state}, chunks


def tiny_policy(**overrides):
    io = PolicyIO(
        inputs={CLOUD: InputSpec(shape=(V + T, 6), dtype="float32"), STATE: InputSpec(shape=(A,), dtype="float32")},
        action_low=(-1.0,) * A,
        action_high=(1.0,) * A,
    )
    return make_policy("pointcloud_dp", config={**TINY, **overrides}, io=io)


def fit(policy, batch, chunks, steps: int):
    torch.manual_seed(0)
    policy.fit_stats(batch, chunks)
    opt = torch.optim.AdamW(policy.model.parameters(), 3e-3)
    inputs, y = policy.prepare(batch), torch.tensor(chunks)
    for i in range(steps):
        loss = policy.loss(inputs, y, torch.Generator().manual_seed(i))
        opt.zero_grad()
        loss.backward()
        opt.step()


def mean_loss(policy, batch, chunks) -> float:
    policy.model.eval()
    with torch.no_grad():
        inp, y = policy.prepare(batch), torch.tensor(chunks)
        return float(np.mean([float(policy.loss(inp, y, torch.Generator().manual_seed(10_000 + k))) for k in range(8)]))


def test_overfit_gate():
    torch.set_num_threads(1)
    batch, chunks = synthetic(32)
    p = tiny_policy(prediction_type="sample")
    fit(p, batch, chunks, 150)
    real = mean_loss(p, batch, chunks)
    perm = np.random.default_rng(1).permutation(32)
    shuffled = mean_loss(p, {k: v[perm] for k, v in batch.items()}, chunks)
    assert shuffled > 2 * real, (real, shuffled)
    pred = p.predict(batch).actions
    assert np.abs(pred - chunks[:, 0]).mean() < 0.5 * np.abs(chunks[:, 0] - chunks[:, 0].mean(0)).mean()


def test_sampling_chunks_queue_and_reload(tmp_path):
    batch, chunks = synthetic(8)
    p = tiny_policy()
    fit(p, batch, chunks, 3)
    obs = {"point_cloud": batch[CLOUD][0], "state": batch[STATE][0]}
    p.reset(seed=0)
    chunk = p.predict_action_chunk(obs)
    assert chunk.shape == (TINY["horizon"], A) and np.all(np.abs(chunk) <= 1)
    p.reset(seed=0)
    acts = [p.select_action(obs) for _ in range(4)]  # two chunks of two executed actions
    np.testing.assert_allclose(acts[:2], chunk[:2], atol=1e-6)
    p.save(tmp_path / "ckpt")
    q = load_policy(tmp_path / "ckpt")
    for pol in (p, q):
        pol.reset(seed=0)
    np.testing.assert_array_equal([p.select_action(obs) for _ in range(4)], [q.select_action(obs) for _ in range(4)])
    c = copy.copy(q)  # a copy has its own queue
    c.reset()
    c.select_action(obs)
    assert q.queue is not c.queue
    with pytest.raises(ValueError, match="point_cloud"):
        q.select_action({"state": batch[STATE][0]})


def test_vision_only_ignores_tactile_points():
    batch, chunks = synthetic(8)
    p = tiny_policy(use_tactile=False)
    fit(p, batch, chunks, 2)
    assert p.prepare(batch)["points"].shape[1] == V
    other = {k: v.copy() for k, v in batch.items()}
    other[CLOUD][:, V:, 5] = 1.0 - other[CLOUD][:, V:, 5]
    np.testing.assert_array_equal(p.predict(batch).actions, p.predict(other).actions)
    t = tiny_policy(tactile_keep=4)
    fit(t, batch, chunks, 1)
    assert t.prepare(batch)["points"].shape[1] == V + T // 4
    assert not np.array_equal(t.predict(batch).actions, t.predict(other).actions)


def test_ddim_schedule_and_bad_config():
    assert ddim_timesteps(100, 5) == [(99, 79), (79, 59), (59, 39), (39, 19), (19, -1)]
    with pytest.raises(ValueError, match="n_action_steps"):
        tiny_policy(n_action_steps=8)
    with pytest.raises(ValueError, match="horizon"):
        tiny_policy(horizon=5)
    with pytest.raises(ValueError, match="tactile_keep"):
        tiny_policy(tactile_keep=0)


def test_trains_on_demonstrations_through_the_shared_loop(tmp_path):
    """Two tiny demonstrations -> ``taclab.train.train`` -> a policy that loads and acts in the env."""
    import gymnasium as gym

    import taclab.papers.vtrefine  # noqa: F401 - registers the generator and its learning spec
    from taclab.data import generate
    from taclab.papers.vtrefine.dataset import VTRefineDemoConfig
    from taclab.train import RunConfig, train

    env_cfg = {"visual_points": 32, "tactile_stride": 4, "camera_size": (24, 32)}
    cfg = VTRefineDemoConfig(split="train", assembly="square", episodes=2, shard_size=2, seed=7, env=env_cfg)
    generate([cfg], tmp_path / "data", progress=False)
    run = RunConfig(
        policy="pointcloud_dp",
        model={**TINY, "horizon": 16, "n_action_steps": 8},
        train={"epochs": 1, "max_steps": 4, "batch_size": 16, "val_fraction": 0.1, "checkpoint_every": 2},
    )
    final = train(run, tmp_path / "data", tmp_path / "run", progress=False)
    p = load_policy(final)
    assert p.io.inputs[CLOUD].shape == (32 + 4 * 8 * 3, 6)
    val = (tmp_path / "run" / "val.csv").read_text()
    assert "hand1_pos_mm" in val
    env = gym.make("taclab/BimanualAssembly-v0", assembly="square", **env_cfg)
    obs, info = env.reset(seed=0)
    p.bind(env.action_space)
    p.reset(env.unwrapped.task_of(info), seed=0)
    for _ in range(9):  # two chunks
        a = p.select_action(obs)
        assert env.action_space.contains(a)
        obs, *_ = env.step(a)
    env.close()
