"""Touch-R1 model and training stages with tiny budgets, offline; overfit gates of every learned model."""

import json
import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from taclab.data.generate import generate
    from taclab.papers.touchr1.dataset import TouchR1DatasetConfig

    out = tmp_path_factory.mktemp("touchr1") / "data"
    cfgs = [
        TouchR1DatasetConfig(split="train", groups=3, objects_per_group=3, seed=0),
        TouchR1DatasetConfig(split="test", groups=2, objects_per_group=2, seed=1),
    ]
    return generate(cfgs, out, workers=1, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    from taclab.papers.touchr1.tiny import init_tiny

    torch.set_num_threads(1)
    return init_tiny(tmp_path_factory.mktemp("tiny") / "model")


SMALL_Q = {"level": 6, "compare": 2, "rank": 2, "cross_sensor": 1, "conflict": 2}


def test_tiny_tokenizer_round_trips_answers(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny))
    s = "<perceive>A (digit): wide, shallow imprint.</perceive><compare>A is soft.</compare><conclude>A=2</conclude>"
    ids = tok(s)["input_ids"]
    assert tok.decode(ids) == s and len(ids) < 40


def test_vlm_overfit_gate(data, tiny):
    """The VLM memorizes 4 questions whose answer only the touch tells (same prompt; hardness 1 or 5; no object
    picture in the composite: its place stays grey), with the tactile tiles in the centred representation and its
    statistics fitted on the 4 objects; with the images shuffled the loss is many times higher. (In the
    relative-to-gel view the same run ends at the same loss with real and shuffled touch, docs/touch_r1.md.)"""
    import torch

    from taclab.papers.touchr1.dataset import TouchR1DatasetConfig, simulate_object
    from taclab.papers.touchr1.inputs import CENTER
    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.objects import TouchObject
    from taclab.papers.touchr1.questions import Question

    torch.manual_seed(0)
    cfg = TouchR1DatasetConfig(sensors=("gelstereo",))
    rng = np.random.default_rng(0)
    hard = [1, 1, 5, 5]
    rows = []
    for k, h in enumerate(hard):
        obj = TouchObject(f"g-o{k}", "g", (h, 1 + k % 3, 1 + k % 2, 3), 0.015, k, (0.0, 0.0))
        rows.append(simulate_object(obj, obj.levels, cfg, rng))
    arrays = {"tactile": np.stack([r["tactile"] for r in rows]), "sensors": np.array(["gelstereo"] * 4),
              "object_image": np.stack([r["object_image"] for r in rows])}  # fmt: skip
    m = TouchR1Model({"model": str(tiny), "image_size": 84, "tactile": CENTER})
    m.fit_tactile_stats(arrays)
    qi = m.question_images(arrays, show_object=False)
    ims = [qi.image(Question("q", "level", "hardness", (k,), (0,), (h,), "", "", "")) for k, h in enumerate(hard)]
    assert all((im[:, :28] == 128).all() for im in ims)  # no object picture
    prompts = ["Touch A: gelstereo. Rate the hardness of A."] * 4
    answers = [f"<conclude>A={h}</conclude>" for h in hard]
    opt = torch.optim.AdamW(m.model.parameters(), lr=1e-3)
    for _ in range(250):
        loss = m.loss(ims, prompts, answers)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.model.eval()
    with torch.no_grad():
        real = float(m.loss(ims, prompts, answers))
        shuffled = float(m.loss([ims[j] for j in np.roll(np.arange(4), 2)], prompts, answers))
    assert real < 0.05 and shuffled > 5 * real, (real, shuffled)


def test_tactile_representation_saved_with_checkpoint(data, tiny, tmp_path):
    """Statistics fitted on the training split, saved in normalization.safetensors and read back; the average
    object's touch maps to 128; a checkpoint without the tactile key reads the relative-to-gel view; the raw
    frames stay available."""
    from taclab.papers.touchr1.inputs import CENTER, RELATIVE, QuestionImages, load_split, represented_frames
    from taclab.papers.touchr1.model import STATS_FILE, TouchR1Model

    a = load_split(data, "train")
    m = TouchR1Model({"model": str(tiny), "image_size": 84})
    assert m.cfg.tactile == CENTER
    with pytest.raises(RuntimeError, match="needs statistics"):
        m.question_images(a)
    m.fit_tactile_stats(a)
    sensors = str(a["sensors"][0]).split(",")
    assert {f"tactile_mean/{s}" for s in sensors} <= set(m.tactile_stats)
    mean = m.tactile_stats[f"tactile_mean/{sensors[1]}"].numpy()
    avg = represented_frames(np.round(mean).astype(np.uint8), sensors[1], CENTER, m.tactile_stats)
    assert abs(avg.astype(float) - 128).mean() < 40  # rounding of the mean only (gain 128 per std)
    f = m.question_images(a).frames(0, 1)
    assert f.dtype == np.uint8 and f.shape == a["tactile"][0, 1].shape and f.std() > 20
    assert not np.array_equal(f, QuestionImages(a).frames(0, 1))  # differs from the relative view
    m.save(tmp_path / "ck")
    assert (tmp_path / "ck" / STATS_FILE).is_file()
    m2 = TouchR1Model.load(tmp_path / "ck")
    assert np.array_equal(m2.question_images(a).frames(0, 1), f)
    # a checkpoint written before the key: the relative view, exactly as before
    cfg = json.loads((tmp_path / "ck" / "touchr1_config.json").read_text())
    del cfg["tactile"]
    (tmp_path / "ck" / "touchr1_config.json").write_text(json.dumps(cfg))
    old = TouchR1Model.load(tmp_path / "ck")
    assert old.cfg.tactile == RELATIVE
    assert np.array_equal(old.question_images(a).frames(0, 1), QuestionImages(a).frames(0, 1))
    raw = TouchR1Model.load(tmp_path / "ck", tactile={"subtract": "none", "normalize": "none"})
    assert np.array_equal(raw.question_images(a).frames(2, 0), a["tactile"][2, 0])


def test_stages_end_to_end(data, tiny, tmp_path):
    """Stage 1 -> stage 2 -> stage 3 with tiny budgets, then the benchmark on the result; reruns are skipped."""
    from taclab.papers.touchr1.evaluate import ModelAnswerer, evaluate
    from taclab.papers.touchr1.grpo import run_grpo
    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.pretrain import run_pretrain
    from taclab.papers.touchr1.questions import QuestionConfig
    from taclab.papers.touchr1.sft import run_sft

    m = TouchR1Model({"model": str(tiny), "image_size": 84})
    s1 = run_pretrain(m, data, tmp_path / "s1", {"epochs": 1, "max_pairs": 32, "batch_size": 16}, progress=False)
    assert set(s1["test"]) == {"model_mse", "mean_mse", "copy_mse"} and s1["steps"] == 2
    m = TouchR1Model.load(tmp_path / "s1" / "model")
    s2 = run_sft(m, data, tmp_path / "s2", {"epochs": 1, "batch_size": 8, "questions": SMALL_Q}, progress=False)
    assert s2["steps"] == 2 and (tmp_path / "s2" / "loss.png").is_file()
    m = TouchR1Model.load(tmp_path / "s2" / "model")
    cfg = {"steps": 2, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 16, "questions": SMALL_Q}
    s3 = run_grpo(m, data, tmp_path / "s3", cfg, progress=False)
    assert s3["steps"] == 2 and (tmp_path / "s3" / "rewards.png").is_file()
    log = json.loads((tmp_path / "s3" / "log.json").read_text())
    assert any("rewards/counterfactual/mean" in h for h in log)
    same = {"epochs": 1, "batch_size": 8, "questions": SMALL_Q}
    assert run_sft(m, data, tmp_path / "s2", same) == s2  # finished: not run again
    with pytest.raises(ValueError, match="another config.*epochs: 1 -> 5"):
        run_sft(m, data, tmp_path / "s2", {**same, "epochs": 5})  # an old result is not passed off as this one
    m = TouchR1Model.load(tmp_path / "s3" / "model")
    q = QuestionConfig(level=3, compare=1, rank=0, cross_sensor=1, conflict=1)
    r = evaluate(ModelAnswerer(m), data, "test", q, counterfactuals=("removed",), image_size=84, out=tmp_path / "ev")
    assert r["questions"] >= 3 + 1 + 4 and set(r["tactile_reliance"]) == {"removed", "mean"}
    assert (tmp_path / "ev" / "reason_test.json").is_file()


def test_grpo_zero_weight_turns_a_reward_off(data, tiny, tmp_path):
    from taclab.papers.touchr1.grpo import run_grpo
    from taclab.papers.touchr1.model import TouchR1Model

    m = TouchR1Model({"model": str(tiny), "image_size": 84})
    cfg = {"steps": 1, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 8,
           "questions": SMALL_Q, "rewards": {"counterfactual": 0.0, "consistency": 0.0}}  # fmt: skip
    run_grpo(m, data, tmp_path / "g", cfg, progress=False)
    log = json.loads((tmp_path / "g" / "log.json").read_text())
    assert not any("rewards/counterfactual/mean" in h for h in log)
    assert any("rewards/ordinal/mean" in h for h in log)


def test_next_field_predictor_overfit_gate(data, tiny):
    import torch

    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.pretrain import NextFieldPredictor, make_pairs

    torch.manual_seed(0)
    p = make_pairs(data, "train", max_pairs=16)
    net = NextFieldPredictor(TouchR1Model({"model": str(tiny)}))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    y = torch.tensor(p["y"])
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(net(p["x"]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        real = float(torch.nn.functional.mse_loss(net(p["x"]), y))
        shuffled = float(torch.nn.functional.mse_loss(net(p["x"][np.roll(np.arange(16), 5)]), y))
    assert real < 0.3 * shuffled


@pytest.mark.parametrize("kind", ["tactile", "vision"])
def test_cnn_overfit_gate(data, kind):
    import torch

    from taclab.papers.touchr1.baselines import CNNConfig, tactile_input, train_classifier, vision_input
    from taclab.papers.touchr1.inputs import QuestionImages, load_split

    a = load_split(data, "train")
    if kind == "tactile":
        qi = QuestionImages(a)
        x = tactile_input(np.stack([qi.frames(o, 0) for o in range(len(a["levels"]))]))
    else:
        x = vision_input(a["object_image"])
    y = a["levels"]
    net, _ = train_classifier(x, y, CNNConfig(epochs=60, batch_size=12, lr=3e-3, width=8))
    with torch.no_grad():

        def loss(inp):
            logits = net(torch.tensor(inp)).reshape(-1, 5)
            return float(torch.nn.functional.cross_entropy(logits, torch.tensor(y - 1, dtype=torch.long).reshape(-1)))

        real, shuffled = loss(x), loss(x[np.roll(np.arange(len(x)), 5)])
    assert real < 0.3 and shuffled > 3 * real


def test_reference_rows(data):
    from taclab.papers.touchr1.baselines import LevelAnswerer
    from taclab.papers.touchr1.evaluate import evaluate
    from taclab.papers.touchr1.questions import QuestionConfig

    q = QuestionConfig(level=10, compare=3, rank=1, cross_sensor=2, conflict=2)
    oracle = evaluate(LevelAnswerer("oracle"), data, "test", q)
    assert oracle["overall"]["exact_match"] == 100.0 and oracle["overall"]["omae"] == 0.0
    assert oracle["tactile_reliance"]["mean"] == 0.0  # the oracle reads no touch
    chance = evaluate(LevelAnswerer("chance"), data, "test", q, counterfactuals=())
    assert chance["overall"]["omae"] > 0.5
    with pytest.raises(ValueError, match="unknown reference row 'gpt'"):
        LevelAnswerer("gpt")


def test_eval_reason_cli(data, tmp_path):
    from typer.testing import CliRunner

    from taclab.cli import app

    r = CliRunner().invoke(app, ["eval", "reason", "--model", "oracle", "--data", str(data), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "EM 100.0 %" in r.output and (tmp_path / "reason_test.json").is_file()


def test_tiny_qwen25vl_trains_saves_and_answers(data, tmp_path):
    """The Qwen2.5-VL architecture (the paper's family) is built offline, loads through the same model class, learns
    (its SFT loss falls), and its checkpoint reloads and answers."""
    import torch

    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.sft import run_sft
    from taclab.papers.touchr1.tiny import init_tiny

    torch.manual_seed(0)
    folder = init_tiny(tmp_path / "tiny25", image_size=84, arch="qwen2_5_vl")
    m = TouchR1Model({"model": str(folder), "image_size": 84})
    assert m.model.config.model_type == "qwen2_5_vl" and m.model.config.vision_config.fullatt_block_indexes == [1]
    cfg = {"epochs": 6, "batch_size": 13, "lr": 2e-3, "warmup_steps": 0, "questions": SMALL_Q}
    s = run_sft(m, data, tmp_path / "sft", cfg, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    assert s["steps"] == len(losses) >= 6 and np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2])
    again = TouchR1Model.load(tmp_path / "sft" / "model")
    assert again.model.config.model_type == "qwen2_5_vl"
    from taclab.papers.touchr1.inputs import load_split
    from taclab.papers.touchr1.questions import QuestionConfig, make_questions

    arrays = load_split(data, "test")
    q = make_questions(arrays, QuestionConfig(level=2, compare=0, rank=0, cross_sensor=0, conflict=0), "test")
    qi = again.question_images(arrays)
    out = again.generate([qi.image(x) for x in q], [x.prompt for x in q], max_new_tokens=12)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def test_device_and_model_kind_are_checked(tiny, tmp_path):
    import torch

    from taclab.papers.touchr1.model import TouchR1Model

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda'.*no GPU"):
            TouchR1Model({"model": str(tiny), "device": "cuda"})
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (other / f).write_text((tiny / f).read_text())
    with pytest.raises(ValueError, match="'gpt2' model; allowed: a Qwen2-VL or Qwen2.5-VL"):
        TouchR1Model({"model": str(other)})


def test_stage1_trains_the_vision_tower_under_lora(data, tiny):
    """LoRA freezes the base weights; stage 1 still trains the vision tower (its purpose)."""
    import torch

    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.pretrain import NextFieldPredictor, make_pairs

    m = TouchR1Model({"model": str(tiny), "finetune": "lora", "lora_r": 2})
    net = NextFieldPredictor(m)
    before = [p.detach().clone() for p in net.visual.parameters()]
    p = make_pairs(data, "train", max_pairs=4)
    loss = torch.nn.functional.mse_loss(net(p["x"]), torch.tensor(p["y"]))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = [not torch.equal(a, b) for a, b in zip(before, net.visual.parameters(), strict=True)]
    assert sum(changed) > 0.8 * len(changed)


@pytest.mark.parametrize("stage", ["pretrain", "sft", "grpo"])
def test_gpu_config_file_is_valid(stage):
    """configs/touchr1_qwen25vl7b.yaml (the paper-size run on GPUs) validates for every stage without loading the
    model; a config with an unknown section is refused."""
    from pathlib import Path

    from taclab.papers.touchr1.cli import _stage_config
    from taclab.papers.touchr1.grpo import GRPOStageConfig
    from taclab.papers.touchr1.pretrain import PretrainConfig
    from taclab.papers.touchr1.sft import SFTConfig

    cls = {"pretrain": PretrainConfig, "sft": SFTConfig, "grpo": GRPOStageConfig}[stage]
    path = Path(__file__).resolve().parents[2] / "configs" / "touchr1_qwen25vl7b.yaml"
    source, model, cfg = _stage_config(None, path, stage, cls, ["model.image_size=336"])
    assert source == "Qwen/Qwen2.5-VL-7B-Instruct" and model["image_size"] == 336
    assert model["device"] == "cuda" and model["dtype"] == "bfloat16" and model["finetune"] == "lora"
    assert isinstance(cfg, cls)


def test_config_sections_and_model_keys_are_checked(tmp_path):
    from taclab.papers.touchr1.cli import _stage_config
    from taclab.papers.touchr1.sft import SFTConfig

    bad = tmp_path / "c.yaml"
    bad.write_text("model: {model: x}\ntrain: {epochs: 2}\n")
    with pytest.raises(ValueError, match=r"unknown section\(s\) \['train'\]"):
        _stage_config(None, bad, "sft", SFTConfig, [])
    with pytest.raises(ValueError, match="unknown model key"):
        _stage_config("m", None, "sft", SFTConfig, ["model.imagesize=84"])
    with pytest.raises(ValueError, match="no model"):
        _stage_config(None, None, "sft", SFTConfig, [])
    source, model, cfg = _stage_config("m", None, "sft", SFTConfig, ["epochs=2", "model.dtype=bfloat16"])
    assert (source, model, cfg.epochs) == ("m", {"dtype": "bfloat16"}, 2)
