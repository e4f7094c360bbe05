"""The TLA model as a policy of the harness: trained by the shared loop, evaluated offline and in closed loop."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from taclab.eval.closed_loop import evaluate_closed_loop
from taclab.eval.offline import evaluate_offline
from taclab.papers.tla.learning import ENV_ID, SPEC
from taclab.papers.tla.model import expected_action
from taclab.papers.tla.tiny import init_tiny
from taclab.policies import load_policy, make_policy
from taclab.train import load_run_config, train
from taclab.train.loop import policy_io

SIZE = 56


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield init_tiny(tmp_path_factory.mktemp("tla_policy") / "tiny", image_size=SIZE, seed=0)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tla_run(tiny, tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("tla_run")
    sets = {"model.model": str(tiny), "model.image_size": SIZE, "model.lora_dropout": 0.0, "model.num_beams": 2}
    sets |= {"train.epochs": 1, "train.batch_size": 16, "train.val_fraction": 0.2, "train.lr": 5e-3}
    train(load_run_config(policy="tla", overrides=sets), tiny_dataset, out, progress=False)
    return out


def test_trained_by_the_shared_loop(tla_run):
    policy_dir = tla_run / "policy"
    for f in ("policy.json", "tla_config.json", "adapter_model.safetensors", "tokenizer.json"):
        assert (policy_dir / f).is_file(), f
    val = json.loads((tla_run / "summary.json").read_text())["final_val"]
    assert 0 <= val["malformed"] <= 100 and val["samples"] == 19
    assert (tla_run / "learning_curve.png").is_file()


def test_reloaded_in_a_fresh_process_gives_identical_beam_search_output(tla_run, tiny_dataset):
    script = (
        "import json, torch\n"
        "torch.set_num_threads(1)\n"
        "from taclab.policies import load_policy\n"
        "from pathlib import Path\n"
        "from taclab.train.loop import load_columns\n"
        f"a = load_columns(Path({str(tiny_dataset)!r}), 'test', ['tactile', 'shape'], 3, False)\n"
        f"p = load_policy({str(tla_run)!r})\n"
        "pred = p.predict(a)\n"
        "print(json.dumps({'texts': p.last_texts, 'actions': pred.actions.tolist()}))\n"
    )
    env = {"HF_HUB_OFFLINE": "1", "PATH": ""}
    there = json.loads(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout
    )
    ns: dict = {}
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(script, ns)
    here = json.loads(buf.getvalue())
    assert here == there and len(here["texts"]) == 3


def test_evaluation_may_switch_the_decoding_of_a_checkpoint(tla_run, tiny_dataset):
    from taclab.train.loop import load_columns

    a = load_columns(tiny_dataset, "test", ["tactile", "shape"], 3, False)
    beam = load_policy(tla_run)
    expected = load_policy(tla_run, overrides={"decoding": "expected", "num_beams": 3})
    assert (beam.tla.cfg.decoding, beam.tla.cfg.num_beams) == ("beam", 2)
    assert (expected.tla.cfg.decoding, expected.tla.cfg.num_beams) == ("expected", 3)
    texts, logp = expected.tla.generate_candidates(a["tactile"], list(a["shape"]))
    parsed = [expected.tla.parse(t) for t in texts]
    want, _ = expected_action(np.stack([p for p, _ in parsed]), ~np.stack([m for _, m in parsed]), logp)
    np.testing.assert_allclose(expected.predict(a).actions, want)
    with pytest.raises(ValueError, match="'lora_r' cannot be changed at evaluation for a 'tla' policy; allowed: dec"):
        load_policy(tla_run, overrides={"lora_r": 4})
    with pytest.raises(ValueError, match="num_beams >= 2"):
        load_policy(tla_run, overrides={"decoding": "expected", "num_beams": 1})


def test_garbage_answers_are_counted_and_episodes_go_on(tiny, tiny_dataset, tmp_path):
    """An untrained model writes garbage: every answer is malformed, replaced by the zero action, counted."""
    cls = make_policy("tla", model=str(tiny), image_size=SIZE, num_beams=1, max_new_tokens=8).__class__
    io = policy_io(cls, SPEC, {"tactile": np.zeros((1, 4, 2, 32, 32, 3), np.uint8)})
    policy = make_policy("tla", io=io, model=str(tiny), image_size=SIZE, num_beams=1, max_new_tokens=8)
    policy.fit_stats(
        {"tactile": np.zeros((1, 4, 2, 32, 32, 3), np.uint8), "shape": np.array(["square"])}, np.zeros((1, 3))
    )
    policy.save(tmp_path / "untrained")
    rec = evaluate_offline(tmp_path / "untrained", tiny_dataset, "test", limit=8, out=tmp_path / "ev", progress=False)
    assert rec["metrics"]["malformed"] == 8 and rec["metrics"]["malformed_rate"] == 100.0
    loop = evaluate_closed_loop(
        tmp_path / "untrained", ENV_ID, [{"shape": "round", "clearance_mm": 2.0}], episodes=1, workers=1,
        env_config={"image_size": (32, 32)}, out=tmp_path / "ev", progress=False,
    )  # fmt: skip
    t = loop["tasks"][0]
    assert t["success_rate"] == 0.0 and t["episode_results"][0]["attempt"] == 15
    assert t["malformed"] == t["actions"] == 14 and t["failures"] == 0
    p = load_policy(tmp_path / "untrained")
    p.reset({"shape": "round"})
    a = p.select_action({"tactile": np.zeros((4, 2, 32, 32, 3), np.uint8)})
    assert p.last_malformed and np.array_equal(a, np.zeros(3)) and p.last_texts


def test_tla_config_errors_are_clear(tiny):
    with pytest.raises(ValueError, match="model.model"):
        load_run_config(policy="tla")  # no base model given
    with pytest.raises(ValueError, match="image_size"):
        load_run_config(policy="tla", overrides={"model.model": str(tiny), "model.image_size": 50})
