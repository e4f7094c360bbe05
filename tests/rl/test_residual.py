"""Residual RL (taclab.rl.residual): the offset bound by hand, a tiny run end to end that resumes to the same
result as an uninterrupted one, and its policy reloaded in a fresh process acting identically."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import taclab.papers  # noqa: F401 - registers the vital generator, its learning spec and vital_residual
from taclab.data import generate, load_arrays
from taclab.papers.vital.dataset import VitalDemoConfig
from taclab.rl.residual import ResidualConfig, compose, linear_schedule, offset_bound, reward_of, train_residual
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
}


def test_offset_bound_by_hand():
    demo = np.array([[2.0, -8.0, 1.0, 0.0, 0.5, -3.0, 1.0], [-5.0, 4.0, -0.5, 0.0, -1.5, 2.0, -1.0]])
    bound = offset_bound(demo, 0.2, (0, 1, 2, 3, 4, 5))
    np.testing.assert_allclose(bound, [1.0, 1.6, 0.2, 0.0, 0.3, 0.6])  # 20 % of 5, 8, 1, 0, 1.5, 3
    base = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    a = compose(base, np.array([1.0, -1.0, 0.5, 1.0, 3.0, -7.0]), bound, (0, 1, 2, 3, 4, 5))
    np.testing.assert_allclose(a, [2.0, -0.6, 1.1, 1.0, 1.3, 0.4, 1.0])  # u clipped to [-1, 1]; gripper untouched
    np.testing.assert_allclose(offset_bound(demo, 0.2, (0, 1, 2)), [1.0, 1.6, 0.2])
    assert linear_schedule(0.25, 0.1, 5000, 0) == 0.25
    assert linear_schedule(0.25, 0.1, 5000, 2500) == pytest.approx(0.175)
    assert linear_schedule(0.25, 0.1, 5000, 9000) == 0.1
    cfg = ResidualConfig(distance_weight=0.01, success_reward=5.0, failure_reward=-1.0)
    assert reward_of({"goal_error_mm": np.array([1.0, -2.0, 3.0]), "is_success": False}, False, cfg) == -0.06
    assert reward_of({"goal_error_mm": np.zeros(3), "is_success": True}, True, cfg) == 5.0
    assert reward_of({"goal_error_mm": np.zeros(3), "is_success": False}, True, cfg) == -1.0


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="unknown residual RL config key"):
        ResidualConfig.from_dict({"utdd": 3})
    with pytest.raises(ValueError, match="offset_fraction=1.5"):
        ResidualConfig(offset_fraction=1.5)
    with pytest.raises(ValueError, match="offset_dims"):
        ResidualConfig(offset_dims=(0, 9))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual")
    env = {"image_size": [24, 24]}
    generate(
        [VitalDemoConfig(split="usb", task="usb", episodes=2, shard_size=2, seed=3, env=env)],
        root / "data",
        progress=False,
    )
    run = load_run_config(
        policy="visk",
        overrides={
            **{f"model.{k}": v for k, v in TINY.items()},
            "train.split": "usb",
            "train.max_steps": 3,
            "train.batch_size": 8,
        },
    )
    return root, train(run, root / "data", root / "bc", progress=False)


def _cfg(root, policy_dir, steps):
    return ResidualConfig(
        base=str(policy_dir),
        demos=str(root / "data"),
        task="usb",
        env={"max_steps": 8},
        total_steps=steps,
        utd=2,
        batch_size=16,
        hidden=(32, 32),
        learning_starts=16,
        aug_views=2,
        threads=1,
        eval_every=0,
        eval_episodes=0,
        checkpoint_every=1,
        n_step=3,
    )


def _episodes(run):
    with open(run / "episodes.csv", newline="") as fh:
        return [(r["env_step"], r["return"]) for r in csv.DictReader(fh)]


def test_residual_runs_resumes_and_reloads(base):
    root, policy_dir = base
    whole = train_residual(_cfg(root, policy_dir, 16), root / "whole", progress=False)
    assert whole["env_steps"] >= 16 and whole["demo_transitions"] > 0 and whole["updates"] > 0
    assert (root / "whole" / "curves.png").is_file()
    train_residual(_cfg(root, policy_dir, 8), root / "parts", progress=False)
    with pytest.raises(ValueError, match="different config"):
        train_residual(
            ResidualConfig(**{**_cfg(root, policy_dir, 16).__dict__, "utd": 3}),
            root / "parts",
            resume=True,
            progress=False,
        )
    train_residual(_cfg(root, policy_dir, 16), root / "parts", resume=True, progress=False)
    assert _episodes(root / "whole") == _episodes(root / "parts")
    a, b = (
        load_file(str(root / "whole" / "policy" / "actor.safetensors")),
        load_file(str(root / "parts" / "policy" / "actor.safetensors")),
    )
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    # the demonstrations' actions bound the offset
    demo = load_arrays(root / "data", "usb", progress=False)["action"]
    meta = json.loads((root / "whole" / "policy" / "policy.json").read_text())
    np.testing.assert_allclose(meta["config"]["bound"], 0.2 * np.abs(demo[:, :6]).max(0), rtol=1e-6)
    # a fresh process loads the policy and acts identically
    from taclab.policies import load_policy

    a = load_arrays(root / "data", "usb", progress=False)
    obs = [{"wrist_rgb": a["observation.wrist_rgb"][i], "skin": a["observation.skin"][i]} for i in range(4)]
    np.savez(root / "obs.npz", **{f"{k}_{i}": v for i, o in enumerate(obs) for k, v in o.items()})
    p = load_policy(root / "whole" / "policy")
    p.reset()
    here = np.stack([p.select_action(o) for o in obs])
    code = (
        "import numpy as np; from taclab.policies import load_policy\n"
        f"z = np.load({str(root / 'obs.npz')!r}); p = load_policy({str(root / 'whole' / 'policy')!r}); p.reset()\n"
        "acts = [p.select_action({k: z[f'{k}_{i}'] for k in ('wrist_rgb', 'skin')}) for i in range(4)]\n"
        f"np.save({str(root / 'there.npy')!r}, np.stack(acts))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.testing.assert_array_equal(here, np.load(root / "there.npy"))


def test_rlpd_runs_and_reloads(base):
    """RLPD (taclab.rl.rlpd): a tiny run from scratch on the frozen encoders, half of each batch from the
    demonstrations; its policy acts in the action box and reloads in a fresh process with identical actions."""
    from taclab.rl.rlpd import RLPDConfig, train_rlpd

    root, policy_dir = base
    with pytest.raises(ValueError, match="unknown RLPD config key"):
        RLPDConfig.from_dict({"encodr": "x"})
    cfg = RLPDConfig(encoder=str(policy_dir), demos=str(root / "data"), task="usb", env={"max_steps": 6},
                     total_steps=12, utd=2, batch_size=16, hidden=(32, 32), learning_starts=4, eval_episodes=0,
                     checkpoint_every=1, threads=1)  # fmt: skip
    s = train_rlpd(cfg, root / "rlpd", progress=False)
    assert s["env_steps"] >= 12 and s["updates"] > 0 and s["demo_transitions"] > 0
    from taclab.policies import load_policy

    a = load_arrays(root / "data", "usb", progress=False)
    obs = [{"wrist_rgb": a["observation.wrist_rgb"][i], "skin": a["observation.skin"][i]} for i in range(3)]
    np.savez(root / "obs_rlpd.npz", **{f"{k}_{i}": v for i, o in enumerate(obs) for k, v in o.items()})
    p = load_policy(root / "rlpd" / "policy")
    here = np.stack([p.select_action(o) for o in obs])
    assert np.all(np.abs(here[:, :3]) <= 10) and np.all(np.abs(here[:, 6]) <= 1)
    code = (
        "import numpy as np; from taclab.policies import load_policy\n"
        f"z = np.load({str(root / 'obs_rlpd.npz')!r}); p = load_policy({str(root / 'rlpd' / 'policy')!r})\n"
        "acts = [p.select_action({k: z[f'{k}_{i}'] for k in ('wrist_rgb', 'skin')}) for i in range(3)]\n"
        f"np.save({str(root / 'there_rlpd.npy')!r}, np.stack(acts))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.testing.assert_array_equal(here, np.load(root / "there_rlpd.npy"))


def test_batched_critics_equal_separate_mlps():
    """The batched critic ensemble computes what separate LayerNorm MLPs with the same initial draws compute."""
    from taclab.rl.residual import Critics, mlp

    torch.manual_seed(5)
    separate = [mlp([10 + 3, 16, 16, 1], layer_norm=True) for _ in range(3)]
    torch.manual_seed(5)
    critics = Critics(10, 3, (16, 16), 3)
    for lin, ln in ((0, 1), (3, 4)):  # LayerNorm starts at ones / zeros: give it values that matter
        for k, q in enumerate(separate):
            q[ln].weight.data.uniform_(0.5, 1.5)
            q[ln].bias.data.uniform_(-0.5, 0.5)
            critics.g[lin // 3].data[k, 0] = q[ln].weight.data
            critics.beta[lin // 3].data[k, 0] = q[ln].bias.data
    s, u = torch.randn(7, 10), torch.rand(7, 3, requires_grad=True)
    ref = torch.stack([q(torch.cat([s, u], -1))[:, 0] for q in separate])
    got = critics(s, u)
    torch.testing.assert_close(got, ref)
    (g_ref,) = torch.autograd.grad(ref.sum(), u)
    (g_got,) = torch.autograd.grad(got.sum(), u)
    torch.testing.assert_close(g_got, g_ref)
    with pytest.raises(ValueError, match="batched critic"):
        critics.load_state_dict({f"qs.{k}": v for k, v in separate[0].state_dict().items()})


def test_stored_views_are_the_encoders_features(base):
    """The features stored for replay (plain image and augmented views, encoded in one pass) equal the frozen
    encoder's output for the plain image and for the same augmented images encoded on their own."""
    from taclab.rl.residual import FrozenBase

    root, policy_dir = base
    fb = FrozenBase(policy_dir)
    a = load_arrays(root / "data", "usb", progress=False)
    batch = {k: a[k][:2] for k in ("observation.wrist_rgb", "observation.wrist_mask", "observation.skin")}
    feats, chunks = fb.encode(batch, 3, "semantic", torch.Generator().manual_seed(1))
    plain, plain_chunks = fb.encode(batch)
    assert feats.shape == (2, 4, fb.feature_dim)
    np.testing.assert_allclose(feats[:, :1], plain, atol=1e-5)
    np.testing.assert_allclose(chunks, plain_chunks, atol=1e-6)
    p = fb.policy
    p.cfg = p.cfg.model_copy(update={"augment": "semantic"})  # what encode uses for augment="semantic"
    inp = p.prepare(batch)
    aug = p.augment(
        inp["rgb"].repeat_interleave(3, 0), inp["mask"].repeat_interleave(3, 0), torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        alone = torch.cat(p.model.features(p.normalize_images(aug), inp["skin"].repeat_interleave(3, 0)), -1)
    np.testing.assert_allclose(feats[:, 1:], alone.reshape(2, 3, -1).numpy(), atol=1e-5)


def test_a_second_writer_is_refused(base, capsys):
    """A residual RL or RLPD run folder that another writer holds is refused, naming the holder, and left as it
    was; the command line says so in one error line (exit code 2)."""
    from taclab.rl.residual import main as residual_main
    from taclab.rl.rlpd import RLPDConfig, train_rlpd
    from taclab.utils import FolderLock, FolderLockedError

    root, policy_dir = base
    out = root / "held"
    rlpd = RLPDConfig(encoder=str(policy_dir), demos=str(root / "data"), task="usb", total_steps=4)
    with FolderLock(out, "another run"):
        with pytest.raises(FolderLockedError, match="another run"):
            train_residual(_cfg(root, policy_dir, 4), out, progress=False)
        with pytest.raises(FolderLockedError, match="another run"):
            train_rlpd(rlpd, out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [".taclab.lock"]  # nothing written
        args = ["--base", str(policy_dir), "--demos", str(root / "data"), "--out", str(out), "--set", "task=usb"]
        capsys.readouterr()
        assert residual_main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "is locked by" in err
    assert not out.exists()  # the lock's empty folder is removed with it
