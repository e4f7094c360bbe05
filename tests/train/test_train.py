import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import taclab.papers  # noqa: F401 - registers the TLA learning spec and policies
from taclab.policies import load_policy
from taclab.train import EMA, TrainingError, load_run_config, lr_lambda, train
from taclab.train.loop import load_columns

TINY = {"train.epochs": 2, "train.batch_size": 16, "train.val_fraction": 0.2, "train.log_every": 1}


def _train(policy, data, out, **sets):
    return train(load_run_config(policy=policy, overrides={**TINY, **sets}), data, out, progress=False)


@pytest.fixture(scope="module")
def bc_run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bc_run")
    _train("bc", tiny_dataset, out)
    return out


def test_run_folder_has_logs_curve_and_policy(bc_run):
    for f in ("run.json", "train.csv", "val.csv", "log.jsonl", "train.log", "learning_curve.png", "summary.json"):
        assert (bc_run / f).is_file(), f
    rows = (bc_run / "train.csv").read_text().splitlines()
    assert len(rows) == 1 + 8  # header + 4 steps x 2 epochs (76 samples / 16)
    val = (bc_run / "val.csv").read_text().splitlines()
    assert len(val) == 1 + 2
    s = json.loads((bc_run / "summary.json").read_text())
    assert s["steps"] == 8 and s["train_samples"] == 77 and s["val_samples"] == 19
    assert 0 <= s["final_val"]["gcr"] <= 100


def _act_script(policy_dir, data):
    return (
        "import json, numpy as np\n"
        "from taclab.policies import load_policy\n"
        "from taclab.train.loop import load_columns\n"
        "from pathlib import Path\n"
        f"a = load_columns(Path({str(data)!r}), 'test', ['tactile'], 3, False)\n"
        f"p = load_policy({str(policy_dir)!r}); p.reset({{'shape': 'square'}})\n"
        "print(json.dumps([p.select_action({'tactile': t}).tolist() for t in a['tactile']]))\n"
    )


@pytest.mark.parametrize("name", ["bc", "dp"])
def test_checkpoint_reloaded_in_a_fresh_process_gives_identical_actions(name, bc_run, tiny_dataset, tmp_path):
    run = bc_run if name == "bc" else tmp_path / "dp"
    if name == "dp":
        _train("dp", tiny_dataset, run, **{"train.epochs": 1, "model.inference_steps": 4})
    script = _act_script(run / "policy", tiny_dataset)
    ns: dict = {}
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(script, ns)
    here = json.loads(buf.getvalue())
    there = json.loads(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    )
    assert here == there
    assert np.isfinite(here).all() and np.abs(np.asarray(here)).max() > 0


def test_act_on_an_observation_equals_batched_prediction(bc_run, tiny_dataset):
    p = load_policy(bc_run)
    a = load_columns(tiny_dataset, "test", ["tactile"], 5, False)
    batched = p.predict({"tactile": a["tactile"]}).actions
    p.reset({"shape": "square"})
    one = np.stack([p.select_action({"tactile": t}) for t in a["tactile"]])
    np.testing.assert_allclose(one, batched, rtol=1e-5, atol=1e-6)


def test_interrupted_training_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    sets = {"train.checkpoint_every": 3, "model.dropout": 0.2}
    _train("bc", tiny_dataset, tmp_path / "full", **sets)
    _train("bc", tiny_dataset, tmp_path / "cut", **sets, **{"train.max_steps": 5})  # stops at step 5
    last = tmp_path / "cut" / "checkpoints" / "last"
    assert {p.name for p in last.iterdir()} == {
        "trained.safetensors", "normalization.safetensors", "ema.safetensors", "optimizer.pt", "state.json"
    }  # fmt: skip
    state = json.loads((last / "state.json").read_text())
    assert state["step"] == 5
    run = load_run_config(policy="bc", overrides={**TINY, **sets})
    train(run, tiny_dataset, tmp_path / "cut", resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / "policy" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "policy" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [json.loads(x) for x in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert train_steps == sorted(set(train_steps)) == list(range(1, 9))  # no step logged twice


def test_bad_input_stops_with_a_clear_message(tiny_dataset, tmp_path, monkeypatch, bc_run):
    with pytest.raises(ValueError, match="'nope' cannot be trained"):
        load_run_config(policy="nope")
    with pytest.raises(ValueError, match="cannot be trained"):
        load_run_config(policy="oracle")
    with pytest.raises(ValueError, match="unknown config key 'train.lrr'"):
        load_run_config(policy="bc", overrides={"train.lrr": 1})
    with pytest.raises(ValueError, match="unknown config key 'model.width'"):
        load_run_config(policy="bc", overrides={"model.width": 1})
    with pytest.raises(ValueError, match="train.<key> or model.<key>"):
        load_run_config(policy="bc", overrides={"lr": 1})
    with pytest.raises(ValueError, match="not a taclab dataset"):
        _train("bc", tmp_path / "missing", tmp_path / "o1")
    with pytest.raises(TrainingError, match="already holds a training run"):
        _train("bc", tiny_dataset, bc_run)
    with pytest.raises(TrainingError, match="different config"):
        train(load_run_config(policy="bc", overrides={**TINY, "train.lr": 0.5}), tiny_dataset, bc_run, resume=True)
    with pytest.raises(TrainingError, match="fp16"):
        _train("bc", tiny_dataset, tmp_path / "o3", **{"train.mixed_precision": "fp16"})
    assert not (tmp_path / "o3").exists()  # a failed start leaves nothing behind
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TrainingError, match="is a file"):
        _train("bc", tiny_dataset, tmp_path / "afile")

    from taclab.policies.bc import BCPolicy

    monkeypatch.setattr(BCPolicy, "loss", lambda self, inputs, actions, generator: torch.tensor(float("nan")))
    with pytest.raises(TrainingError, match="loss is nan at step 0"):
        _train("bc", tiny_dataset, tmp_path / "o2")


def test_lr_schedule_and_ema():
    lrs = [lr_lambda(s, total=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.55)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    m = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(m.weight)
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)  # warm-up decay min(0.5, 1/10) = 0.1
    assert ema.shadow["weight"].item() == pytest.approx(0.9)
    ema.update(m)  # decay min(0.5, 2/11)
    expected = 0.9 * 2 / 11 + 9 / 11
    assert ema.shadow["weight"].item() == pytest.approx(expected)
    with ema.applied(m):
        assert m.weight.item() == pytest.approx(expected)
    assert m.weight.item() == 1.0  # restored
    bn = torch.nn.BatchNorm1d(1)
    ema_bn = EMA(bn, decay=0.5)
    bn.running_mean.fill_(1.0)
    bn.num_batches_tracked.fill_(5)
    ema_bn.update(bn)  # float buffers are averaged like parameters, integer ones copied
    assert ema_bn.shadow["buffer:running_mean"].item() == pytest.approx(0.9)
    assert ema_bn.shadow["buffer:num_batches_tracked"].item() == 5
    frozen = torch.nn.Linear(2, 2)
    frozen.bias.requires_grad_(False)
    assert set(EMA(frozen, 0.9).shadow) == {"weight"}  # only trained weights are shadowed


def test_shipped_run_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = sorted([*(root / "configs").glob("train_*.yaml"), *(root / "configs").glob("tla_?p_*.yaml")])
    assert files
    for f in files:
        run = load_run_config(f)
        assert run.train.epochs >= 1 and run.model
