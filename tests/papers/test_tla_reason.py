"""Reason, then act: the TLA answer states what touch shows (written from the simulator's pose error), then the
action; training reads the privileged columns through the shared loop, inference never does."""

import json

import numpy as np
import pytest

from taclab.papers.tla.captions import caption, captions
from taclab.papers.tla.model import TLAConfig, TLAModel
from taclab.papers.tla.tiny import init_tiny
from taclab.policies import load_policy
from taclab.train import load_run_config, train
from taclab.train.loop import TrainingError, load_columns

SIZE = 56
IGNORE_INDEX = -100

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("tla_reason") / "tiny", image_size=SIZE, seed=0)


def test_captions_without_magnitudes_state_the_sides_only():
    assert caption((0.8, -1.3, 1.2), 2.0, magnitudes=False) == "x right; y back, blocked; rz ccw."
    assert caption((-0.04, 0.6, -0.3), 1.0, magnitudes=False) == "x none; y front, blocked; rz cw."
    assert caption((-0.04, 0.6, -0.3), 1.0) == "x 0.0; y 0.6 front, blocked; rz 0.3 cw."
    assert captions([[0.8, -1.3, 1.2], [-0.2, 0.1, 0.0]], 2.0, magnitudes=False) == [
        "x right; y back, blocked; rz ccw.",
        "x left; y front; rz none.",
    ]


def _data(n):
    rng = np.random.default_rng(0)
    tactile = rng.integers(0, 256, (n, 4, 2, 32, 32, 3), dtype=np.uint8)
    return tactile, ["square"] * n, rng.uniform(-1, 1, (n, 3))


def test_the_answer_is_the_reason_then_the_action(tiny):
    model = TLAModel(TLAConfig(model=str(tiny), image_size=SIZE, reason="sides", max_new_tokens=56))
    model.fit_tactile_stats(_data(4)[0])
    tactile, shapes, actions = _data(2)
    reasons = model.reasons([[0.8, -1.3, 1.2], [-0.2, 0.1, 0.0]], [2.0, 2.0])
    assert reasons == ["x right; y back, blocked; rz ccw.", "x left; y front; rz none."]
    batch = model.batch(tactile, shapes, actions, reasons)
    for i in range(2):
        labels = batch["labels"][i]
        want = f"{reasons[i]} {model.codec.encode(actions[i])}<|im_end|>"
        assert model.tokenizer.decode(labels[labels != IGNORE_INDEX]) == want
    with pytest.raises(ValueError, match="reason: sides needs one reason text per action, got none"):
        model.batch(tactile, shapes, actions)
    # the action is read after the reason; a reason without an action is malformed
    actions, malformed = model.parse(["x right; y back; rz ccw. [1, -2, 3]", "x right; y back", "[4, 5, 6]"])
    assert malformed.tolist() == [False, True, False]
    np.testing.assert_allclose(actions[0], [0.1, -0.2, 0.3])
    np.testing.assert_allclose(actions[2], [0.4, 0.5, 0.6])
    plain = TLAModel(TLAConfig(model=str(tiny), image_size=SIZE))
    assert plain.reasons([[0.8, -1.3, 1.2]], 2.0) is None
    assert plain.parse(["x right. [1, -2, 3]"])[1].tolist() == [True]  # the paper's answer is the action alone


def _sets(tiny, **model):
    sets = {"model.model": str(tiny), "model.image_size": SIZE, "model.lora_dropout": 0.0, "model.num_beams": 2}
    sets |= {f"model.{k}": v for k, v in model.items()}
    return sets | {"train.epochs": 1, "train.batch_size": 16, "train.val_fraction": 0.2, "train.lr": 5e-3}


def test_a_reasoning_policy_trains_through_the_loop_and_acts_without_the_privileged_columns(
    tiny, tiny_dataset, tmp_path
):
    out = tmp_path / "run"
    run = load_run_config(policy="tla", overrides=_sets(tiny, reason="sides", max_new_tokens=56))
    train(run, tiny_dataset, out, progress=False)
    record = json.loads((out / "policy" / "tla_config.json").read_text())
    assert record["config"]["reason"] == "sides"
    policy = load_policy(out)
    assert policy.training_keys() == ("error", "clearance_mm")
    obs = load_columns(tiny_dataset, "test", ["tactile", "shape"], 2, False)  # no error column at inference
    pred = policy.predict(obs)
    assert pred.actions.shape == (2, 3) and len(policy.last_texts) == 2
    for text, bad in zip(policy.last_texts, pred.malformed, strict=True):
        assert bad == (not policy.tla.codec.decode(text[text.rfind("[") :] if "[" in text else text).ok)


def test_an_answer_longer_than_max_new_tokens_is_refused_before_training(tiny, tiny_dataset, tmp_path):
    run = load_run_config(policy="tla", overrides=_sets(tiny, reason="caption", max_new_tokens=16))
    with pytest.raises(ValueError, match=r"with reason: caption the longest answer has \d+ tokens, more than "):
        train(run, tiny_dataset, tmp_path / "run", progress=False)


def test_a_loss_reading_a_column_the_data_lacks_is_refused(tiny, tiny_dataset, tmp_path, monkeypatch):
    from taclab.papers.tla.policy import TLAPolicy

    monkeypatch.setattr(TLAPolicy, "training_keys", lambda self: ("contact_depth",))
    run = load_run_config(policy="tla", overrides=_sets(tiny))
    with pytest.raises(TrainingError, match=r"reads the column\(s\) \['contact_depth'\], which this dataset"):
        train(run, tiny_dataset, tmp_path / "run", progress=False)


def test_without_reason_the_loss_reads_no_privileged_column(tiny):
    from taclab.papers.tla.policy import TLAPolicy

    cfg = TLAConfig(model=str(tiny), image_size=SIZE)
    policy = TLAPolicy.from_parts(cfg, None, None, {})
    assert policy.training_keys() == ()
    assert TLAPolicy.from_parts(cfg.model_copy(update={"reason": "caption"}), None, None, {}).training_keys()
