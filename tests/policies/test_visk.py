"""BAKU and ViSk (taclab.policies.visk): the overfit gate, training through the shared loop on VITAL
demonstrations, a reload in a fresh process that acts identically (temporal ensemble included), the chunk
targets of the learning spec, and clear errors for bad configs and inputs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import taclab.papers  # noqa: F401 - registers the vital generator and its learning spec
from taclab.data import generate, load_arrays
from taclab.papers.vital.dataset import VitalDemoConfig
from taclab.papers.vital.learning import action_chunks
from taclab.policies import make_policy
from taclab.policies.learned import PolicyIO
from taclab.train import load_run_config, train

TINY = {
    "resnet_stages": 1,
    "keypoints": 8,
    "width": 32,
    "heads": 2,
    "layers": 1,
    "skin_hidden": [32],
    "head_hidden": 32,
    "horizon": 4,
    "dropout": 0.0,
}
IO = PolicyIO(
    inputs={
        "observation.wrist_rgb": {"shape": (24, 24, 3)},
        "observation.wrist_mask": {"shape": (24, 24, 1)},
        "observation.skin": {"shape": (2, 15), "dtype": "float32"},
    },
    action_low=(-10.0,) * 3 + (-5.0,) * 3 + (-1.0,),
    action_high=(10.0,) * 3 + (5.0,) * 3 + (1.0,),
)


def _samples(n=32, seed=0):
    rng = np.random.default_rng(seed)
    batch = {
        "observation.wrist_rgb": rng.integers(0, 256, (n, 24, 24, 3), dtype=np.uint8),
        "observation.wrist_mask": rng.integers(0, 4, (n, 24, 24, 1), dtype=np.uint8),
        "observation.skin": rng.normal(0, 50, (n, 2, 15)).astype(np.float32),
    }
    return batch, rng.uniform(-4, 4, (n, 4, 7)).astype(np.float32)


@pytest.mark.parametrize("name", ["baku", "visk"])
def test_overfit_gate(name):
    """A few dozen samples are memorized; with the inputs shuffled against the targets the loss stays high."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy shared machine makes several threads wait on each other
    try:
        _overfit(name)
    finally:
        torch.set_num_threads(threads)


def _overfit(name):
    torch.manual_seed(0)
    p = make_policy(name, config={**TINY, "augment": "none"}, io=IO)
    batch, y = _samples()
    p.fit_stats(batch, y)
    inputs, target = p.prepare(batch), torch.as_tensor(y)
    opt = torch.optim.Adam(p.model.parameters(), lr=3e-3)
    p.model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        opt.zero_grad()
        loss = p.loss(inputs, target, g)
        loss.backward()
        opt.step()
    p.model.eval()
    with torch.no_grad():
        real = float(p.loss(inputs, target, g))
        perm = np.roll(np.arange(32), 1)
        shuffled = float(p.loss(p.prepare({k: v[perm] for k, v in batch.items()}), target, g))
    assert real < 0.05, real
    assert shuffled > 10 * real and shuffled > 0.5, (real, shuffled)


def test_action_weights_scale_each_component_of_the_loss():
    """``action_weights``: the squared error of each standardized component times its weight, over the mean
    weight (equal weights give the plain MSE); bad weights are named."""
    batch, y = _samples(8)
    plain = make_policy("baku", config={**TINY, "augment": "none"}, io=IO)
    weights = (1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 0.0)
    weighted = make_policy("baku", config={**TINY, "augment": "none", "action_weights": weights}, io=IO)
    for p in (plain, weighted):
        p.fit_stats(batch, y)
    weighted.model.load_state_dict(plain.model.state_dict())
    plain.model.eval()
    weighted.model.eval()
    inputs, target = plain.prepare(batch), torch.as_tensor(y)
    with torch.no_grad():
        s = plain._need_stats()
        err = plain.model(plain.normalize_images(inputs["rgb"]), None) - (target - s["action_mean"]) / s["action_std"]
        per_component = (err**2).mean(dim=(0, 1))  # (7,)
        assert torch.isclose(plain.loss(inputs, target, None), per_component.mean())
        by_hand = (per_component * torch.tensor(weights)).sum() / sum(weights)
        assert torch.isclose(weighted.loss(inputs, target, None), by_hand)
    with pytest.raises(ValueError, match="one weight each"):
        make_policy("baku", config={**TINY, "action_weights": [1.0, 2.0]}, io=IO)
    for bad in ([1, 1, 1, 1, 1, -1, 1], [0] * 7):
        with pytest.raises(ValueError, match="non-negative values, not all zero"):
            load_run_config(policy="baku", overrides={"model.action_weights": bad})


def test_action_chunks_follow_each_episode():
    a = np.arange(7, dtype=np.float32)[:, None].repeat(2, 1)  # rows 0..6
    ep = np.array([0, 0, 0, 1, 1, 1, 1])
    c = action_chunks(a, ep, horizon=3)
    assert c[:, :, 0].tolist() == [[0, 1, 2], [1, 2, 2], [2, 2, 2], [3, 4, 5], [4, 5, 6], [5, 6, 6], [6, 6, 6]]
    with pytest.raises(ValueError, match="contiguous"):
        action_chunks(a, np.array([0, 1, 0, 1, 1, 1, 1]))


def test_bad_config_and_inputs_are_named():
    with pytest.raises(ValueError, match="multiple of heads"):
        load_run_config(policy="visk", overrides={"model.width": 30, "model.heads": 4})
    with pytest.raises(ValueError, match="unknown config key 'model.colour'"):
        load_run_config(policy="baku", overrides={"model.colour": 1})
    assert load_run_config(policy="baku").model["use_skin"] is False
    p = make_policy("visk", config=TINY, io=IO)
    p.fit_stats(*_samples())
    with pytest.raises(ValueError, match="reads observation key 'skin'"):
        p.select_action({"wrist_rgb": np.zeros((24, 24, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"observation 'observation.wrist_rgb' must be uint8 of shape \(24, 24, 3\)"):
        p.select_action({"wrist_rgb": np.zeros((32, 32, 3), np.uint8), "skin": np.zeros((2, 15), np.float32)})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("visk")
    cfg = VitalDemoConfig(split="usb", task="usb", episodes=2, shard_size=2, seed=5, env={"image_size": [24, 24]})
    generate([cfg], root / "data", progress=False)
    run = load_run_config(
        policy="visk",
        overrides={
            **{f"model.{k}": v for k, v in TINY.items()},
            "model.augment": "semantic",
            "train.split": "usb",
            "train.max_steps": 6,
            "train.batch_size": 8,
            "train.val_fraction": 0.2,
            "train.checkpoint_every": 3,
        },
    )
    return root, train(run, root / "data", root / "run", progress=False)


def test_trains_on_vital_demos_and_reloads_identically(trained):
    """Training through the shared loop writes a policy that a fresh process loads and that acts the same,
    step by step through the temporal ensemble."""
    root, policy_dir = trained
    meta = json.loads((policy_dir / "policy.json").read_text())
    assert meta["policy"] == "visk" and meta["config"]["augment"] == "semantic"
    a = load_arrays(root / "data", "usb", progress=False)
    obs = [
        {
            "wrist_rgb": a["observation.wrist_rgb"][i],
            "wrist_mask": a["observation.wrist_mask"][i, ..., 0],
            "skin": a["observation.skin"][i],
        }
        for i in range(6)
    ]
    np.savez(root / "obs.npz", **{f"{k}_{i}": v for i, o in enumerate(obs) for k, v in o.items()})
    from taclab.policies import load_policy

    p = load_policy(policy_dir)
    p.reset()
    here = np.stack([p.select_action(o) for o in obs])
    chunk = p.predict_action_chunk(obs[0])
    assert chunk.shape == (4, 7) and np.all(np.abs(chunk[:, :3]) <= 10)
    code = (
        "import numpy as np, sys; from taclab.policies import load_policy\n"
        f"z = np.load({str(root / 'obs.npz')!r}); p = load_policy({str(policy_dir)!r}); p.reset()\n"
        "acts = [p.select_action({k: z[f'{k}_{i}'] for k in ('wrist_rgb', 'wrist_mask', 'skin')}) for i in range(6)]\n"
        f"np.save({str(root / 'there.npy')!r}, np.stack(acts))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    there = np.load(root / "there.npy")
    np.testing.assert_array_equal(here, there)
    # the temporal ensemble blends: the second action is not simply the second chunk's first action
    p.reset()
    p.select_action(obs[0])
    second_chunk_first = p.predict_action_chunk(obs[1])[0]
    p.reset()
    p.select_action(obs[0])
    assert not np.allclose(p.select_action(obs[1]), second_chunk_first)


def test_training_resumes(trained):
    root, _ = trained
    run = load_run_config(
        policy="visk",
        overrides={
            **{f"model.{k}": v for k, v in TINY.items()},
            "model.augment": "semantic",
            "train.split": "usb",
            "train.max_steps": 9,
            "train.batch_size": 8,
            "train.val_fraction": 0.2,
            "train.checkpoint_every": 3,
        },
    )
    train(run, root / "data", root / "run", resume=True, progress=False)
    state = json.loads((root / "run" / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] == 9


def test_fit_diagnostic_reads_a_trained_policy(trained, benchmark):
    """benchmarks/vital_fit.py on a trained ViSk: the first action of each chunk against the recorded one, per
    component (a constant component has no R^2); two demonstrations are too few to hold one out for the readout."""
    root, policy_dir = trained
    r = benchmark("vital_fit").measure(root / "data", "usb", policy_dir)
    c = r["components"]
    assert r["episodes"] == 2 and r["frames"] > 10
    assert c["dx_mm"]["fit_r2"] is not None and c["dx_mm"]["fit_r2"] <= 1.0 and c["dx_mm"]["std"] > 0
    assert c["gripper"]["std"] == 0.0 and c["gripper"]["fit_r2"] is None
    assert c["drz_deg"]["readout"] is None
