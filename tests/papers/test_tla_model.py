"""The TLA model on a tiny offline Qwen2-VL: tokenizer, inputs, training, checkpoints, merging, fallback."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from taclab.papers.tla import TLAConfig, TLAModel, build_tokenizer, init_tiny  # noqa: E402
from taclab.papers.tla.inputs import IGNORE_INDEX, build_batch  # noqa: E402
from taclab.papers.tla.instruct import ActionCodec, render_chat  # noqa: E402
from taclab.papers.tla.model import expected_action  # noqa: E402
from taclab.papers.tla.tiny import SPECIAL_TOKENS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SIZE = 56  # composite pixels: 4x4 patches of 14, 2x2 image tokens after merging
SHAPES = ["square", "triangle", "round", "hexagon"]


def _data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    tactile = rng.integers(0, 256, (n, 4, 2, 16, 16, 3), dtype=np.uint8)
    actions = np.round(rng.uniform(-1, 1, (n, 3)) * [1.0, 1.0, 1.5], 1)
    shapes = [SHAPES[i % 4] for i in range(n)]
    return tactile, shapes, actions


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("tla") / "tiny", image_size=SIZE, seed=0)


RAW = {"subtract": "none", "normalize": "none"}  # the paper's raw composite: these tests check the plumbing


def _cfg(tiny, **kw):
    kw.setdefault("tactile", RAW)
    return TLAConfig(model=str(tiny), image_size=SIZE, max_new_tokens=16, **kw)


@pytest.fixture(scope="module")
def lora_ckpt(tiny, tmp_path_factory):
    """A LoRA model trained a few steps (so that the adapter changes outputs) and its checkpoint folder."""
    model = TLAModel(_cfg(tiny, lora_dropout=0.0, lora_r=4))
    tactile, shapes, actions = _data()
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=2e-2)
    batch = model.batch(tactile, shapes, actions)
    for _ in range(4):
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, model.save(tmp_path_factory.mktemp("tla") / "ckpt")


def test_tokenizer_and_config_are_built_offline_and_agree(tiny):
    from transformers import AutoConfig, AutoTokenizer

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tok = AutoTokenizer.from_pretrained(tiny)
    cfg = AutoConfig.from_pretrained(tiny)
    assert 256 < len(tok) <= 512 and cfg.text_config.vocab_size == len(tok)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    assert len(set(ids.values())) == len(SPECIAL_TOKENS)
    assert cfg.image_token_id == ids["<|image_pad|>"] and cfg.video_token_id == ids["<|video_pad|>"]
    assert cfg.vision_start_token_id == ids["<|vision_start|>"]
    assert cfg.vision_end_token_id == ids["<|vision_end|>"]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    # special tokens are single tokens, digits are spelled one by one, the chat template is the paper's layout
    assert tok("<|im_start|><|image_pad|><|im_end|>", add_special_tokens=False)["input_ids"] == [
        ids["<|im_start|>"],
        ids["<|image_pad|>"],
        ids["<|im_end|>"],
    ]
    digits = [tok.decode([i]) for i in tok("[-10, 4, 13]", add_special_tokens=False)["input_ids"]]
    assert "13" not in digits and "1" in digits and "3" in digits
    sample = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]}
    assert tok.apply_chat_template(sample["messages"], tokenize=False, add_generation_prompt=True) == (
        render_chat(sample) + "<|im_start|>assistant\n"
    )
    # deterministic: the same tokenizer and the same weights for the same seed
    assert build_tokenizer().get_vocab() == tok.get_vocab()


def test_init_tiny_is_deterministic(tiny, tmp_path):
    from safetensors.torch import load_file

    a = load_file(tiny / "model.safetensors")
    b = load_file(init_tiny(tmp_path / "same", image_size=SIZE, seed=0) / "model.safetensors")
    c = load_file(init_tiny(tmp_path / "other", image_size=SIZE, seed=1) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="100"):
        init_tiny(tmp_path / "bad", image_size=100)


def test_labels_cover_only_the_answer_and_the_end_token(tiny):
    model = TLAModel(_cfg(tiny))
    tok = model.tokenizer
    tactile, shapes, actions = _data(3)
    batch = model.batch(tactile, shapes, actions)
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    merge = model.image_processor.merge_size
    grid = batch["image_grid_thw"]
    assert grid.tolist() == [[1, SIZE // 14, SIZE // 14]] * 3
    for i in range(3):
        ids, labels, mask = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        assert int((ids == image_id).sum()) == int(grid[i].prod()) // merge**2 == model.image_tokens
        answer = model.codec.encode(actions[i])
        assert tok.decode(labels[labels != IGNORE_INDEX]) == answer + "<|im_end|>"
        assert mask[0] == 1  # training rows are padded on the right
        assert torch.equal(batch["mm_token_type_ids"][i], (ids == image_id).int())
        text = tok.decode(ids[mask.bool()]).replace("<|image_pad|>" * model.image_tokens, "<|image_pad|>")
        sample = {
            "messages": [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _instruction(shapes[i])}]},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]},
            ]
        }
        assert text == render_chat(sample)
    prompt = model.batch(tactile, shapes)
    assert "labels" not in prompt
    for i in range(3):
        ids = prompt["input_ids"][i][prompt["attention_mask"][i].bool()]
        assert tok.decode(ids).endswith("<|im_start|>assistant\n")
        assert prompt["attention_mask"][i][-1] == 1  # prompts are padded on the left
    with pytest.raises(ValueError, match="counts must match"):
        build_batch(tok, model.image_processor, [np.zeros((SIZE, SIZE, 3), np.uint8)], ["a", "b"])


def _instruction(shape):
    from taclab.papers.tla.instruct import instruction

    return instruction(shape, 0)


def test_a_saved_model_loads_by_folder_path(tiny):
    from transformers import Qwen2VLForConditionalGeneration

    hf = Qwen2VLForConditionalGeneration.from_pretrained(tiny).eval()
    model = TLAModel(_cfg(tiny, finetune="full"))
    model.torch_module.eval()
    batch = model.batch(*_data(2))
    with torch.no_grad():
        a = hf(**{k: v for k, v in batch.items() if k != "labels"}).logits
        b = model.torch_module(**{k: v for k, v in batch.items() if k != "labels"}).logits
    assert torch.equal(a, b)


@pytest.mark.parametrize("finetune, drop", [("full", 0.5), ("lora", 0.8)])
def test_a_few_steps_overfit_a_handful_of_samples(tiny, finetune, drop):
    # LoRA learns slower here: the random embeddings and output layer of the tiny model stay frozen
    model = TLAModel(_cfg(tiny, finetune=finetune, lora_dropout=0.0))
    counts = model.parameter_count()
    assert 0 < counts["trainable"] < counts["total"]
    tactile, shapes, actions = _data()
    batch = model.batch(tactile, shapes, actions)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < drop * losses[0], losses


def test_freezing_follows_the_config(tiny):
    full = TLAModel(_cfg(tiny, finetune="full", freeze_vision=True, train_merger=False))
    named = dict(full.torch_module.named_parameters())
    assert not any(p.requires_grad for n, p in named.items() if ".visual." in n)
    assert named["lm_head.weight"].requires_grad
    full = TLAModel(_cfg(tiny, finetune="full", freeze_vision=True, train_merger=True))
    trainable = [n for n, p in full.torch_module.named_parameters() if p.requires_grad and ".visual." in n]
    assert trainable and all(".merger." in n for n in trainable)
    lora = TLAModel(_cfg(tiny, lora_targets=("q_proj", "v_proj"), train_merger=False))
    trainable = [n for n, p in lora.torch_module.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    assert all(("q_proj" in n) or ("v_proj" in n) for n in trainable)


def test_an_adapter_reloaded_in_a_fresh_process_writes_the_same_text(lora_ckpt):
    model, ckpt = lora_ckpt
    tactile, shapes, _ = _data(3, seed=1)
    expected = model.generate_text(tactile, shapes)
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    np.save(ckpt.parent / "tactile.npy", tactile)
    code = (
        "import json, sys, numpy as np\n"
        "from taclab.papers.tla import TLAModel\n"
        "m = TLAModel.load(sys.argv[1])\n"
        "t = np.load(sys.argv[2])\n"
        "print('RESULT=' + json.dumps(m.generate_text(t, json.loads(sys.argv[3]))))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(ckpt), str(ckpt.parent / "tactile.npy"), json.dumps(shapes)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ckpt.parent),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT=")][-1]
    assert json.loads(line[len("RESULT=") :]) == expected


def test_a_full_checkpoint_round_trips(tiny, tmp_path):
    model = TLAModel(_cfg(tiny, finetune="full", num_beams=2))
    with torch.no_grad():
        model.torch_module.lm_head.weight.mul_(1.5)  # differ from the base model
    tactile, shapes, _ = _data(2)
    d = model.save(tmp_path / "full")
    assert (d / "model.safetensors").is_file() and (d / "tla_config.json").is_file()
    again = TLAModel.load(d)
    assert again.cfg == model.cfg and not again.is_lora
    assert again.generate_text(tactile, shapes) == model.generate_text(tactile, shapes)
    with pytest.raises(FileNotFoundError, match="not a TLA model checkpoint"):
        TLAModel.load(tmp_path)


def test_malformed_answers_get_the_zero_fallback_without_raising(tiny, monkeypatch):
    model = TLAModel(_cfg(tiny))
    tactile, shapes, _ = _data(6)
    # the untrained random model writes whatever it writes: predict never raises and flags what it cannot parse
    actions, malformed, texts = model.predict(tactile[:2], shapes[:2])
    assert actions.shape == (2, 3) and malformed.dtype == bool and len(texts) == 2
    for text, a, bad in zip(texts, actions, malformed, strict=True):
        assert bad == (not ActionCodec().decode(text).ok)
        if bad:
            assert np.all(a == 0)
    garbage = ["", "hello", "[1, 2]", "[100, 0, 0]", "[1, 2, 3]", "\ufffd\ufffd"]
    monkeypatch.setattr(model, "generate_text", lambda t, s: list(garbage))
    actions, malformed, texts = model.predict(tactile, shapes)
    assert texts == garbage
    assert malformed.tolist() == [True, True, True, True, False, True]
    np.testing.assert_allclose(actions[4], [0.1, 0.2, 0.3])
    assert np.all(actions[malformed] == 0)


def test_expected_action_is_the_probability_weighted_mean_of_the_well_formed_answers():
    acts = np.array([[[1.0, 1.0, 1.5], [1.0, 1.0, -1.5], [0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]] * 3])
    ok = np.array([[True, True, False], [False, False, False]])
    logp = np.log([[0.3, 0.1, 0.6], [0.5, 0.3, 0.2]])
    actions, malformed = expected_action(acts, ok, logp)
    # row 0: weights 0.75 / 0.25 over the two well-formed answers (the malformed one is dropped, not zeroed in)
    np.testing.assert_allclose(actions[0], [1.0, 1.0, 0.75 * 1.5 - 0.25 * 1.5])
    assert malformed.tolist() == [False, True] and np.all(actions[1] == 0)
    # very unlikely answers (large negative log-probabilities) do not underflow to a zero total
    actions, malformed = expected_action(acts[:1], ok[:1], np.array([[-2000.0, -2000.0, 0.0]]))
    np.testing.assert_allclose(actions[0], [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"\(B, K, 3\)"):
        expected_action(acts[0], ok[0], logp[0])


def test_expected_decoding_scores_every_beam_and_averages_their_actions(tiny, monkeypatch):
    model = TLAModel(_cfg(tiny, decoding="expected", num_beams=3))
    tactile, shapes, _ = _data(2)
    texts, logp = model.generate_candidates(tactile, shapes)
    assert [len(t) for t in texts] == [3, 3] and logp.shape == (2, 3)
    assert np.all(np.isfinite(logp)) and np.all(logp <= 0) and np.all(np.diff(logp, axis=1) <= 1e-5)  # best first
    fake = ([["[10, 0, 15]", "[10, 0, -15]", "junk"], ["junk", "junk", "junk"]], np.log([[0.5, 0.5, 0.0001]] * 2))
    monkeypatch.setattr(model, "generate_candidates", lambda t, s: fake)
    actions, malformed, answer = model.predict(tactile, shapes)
    np.testing.assert_allclose(actions[0], [1.0, 0.0, 0.0], atol=1e-9)  # the unsure rotation cancels out
    assert malformed.tolist() == [False, True] and answer == ["[10, 0, 15]", "junk"]


def test_expected_decoding_needs_several_beams():
    with pytest.raises(ValueError, match="num_beams >= 2, got 1"):
        TLAConfig(model="m", decoding="expected", num_beams=1)


def test_merge_exports_a_loadable_folder_with_the_same_outputs(lora_ckpt, tmp_path):
    from transformers import Qwen2VLForConditionalGeneration
    from typer.testing import CliRunner

    from taclab.papers.tla.cli import tla_app

    model, ckpt = lora_ckpt
    out = tmp_path / "merged"
    result = CliRunner().invoke(tla_app, ["merge", str(ckpt), str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    Qwen2VLForConditionalGeneration.from_pretrained(out)
    merged = TLAModel(_cfg(out, finetune="full"))
    tactile, shapes, actions = _data(3, seed=2)
    assert merged.generate_text(tactile, shapes) == model.generate_text(tactile, shapes)
    batch = model.batch(tactile, shapes, actions)
    model.torch_module.eval()
    merged.torch_module.eval()
    with torch.no_grad():
        assert abs(model.loss(batch).item() - merged.loss(batch).item()) < 1e-4
    assert model.is_lora  # merging leaves the adapter model as it was
    base = TLAModel(_cfg(model.cfg.model, finetune="full"))
    base.torch_module.eval()
    with torch.no_grad():
        assert abs(base.loss(batch).item() - merged.loss(batch).item()) > 1e-3  # the adapter did change the model


def test_init_tiny_command(tmp_path):
    from typer.testing import CliRunner

    from taclab.papers.tla.cli import tla_app

    result = CliRunner().invoke(tla_app, ["init-tiny", str(tmp_path / "m"), "--image-size", "84", "--seed", "3"])
    assert result.exit_code == 0, result.output
    pre = json.loads((tmp_path / "m" / "preprocessor_config.json").read_text())
    assert pre["size"] == {"shortest_edge": 84 * 84, "longest_edge": 84 * 84}
    gen = json.loads((tmp_path / "m" / "generation_config.json").read_text())
    assert gen["pad_token_id"] is not None and gen["eos_token_id"]


@pytest.mark.parametrize(
    "key, value",
    [
        ("finetune", "lorra"),
        ("image_size", 100),
        ("template", 7),
        ("dtype", "float16"),
        ("fallback", "last"),
        ("num_beams", 0),
        ("decoding", "sampled"),
        ("lora_dropout", 1.5),
        ("lora_targets", ["q-proj"]),
        ("resolution", (0.1, -0.1, 0.1)),
    ],
)
def test_bad_config_values_raise_naming_the_value(key, value):
    with pytest.raises(ValueError, match=str(value).replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TLAConfig(model="m", **{key: value})


def test_unknown_config_keys_are_rejected():
    with pytest.raises(ValueError, match="lora_rank"):
        TLAConfig(model="m", lora_rank=8)


def test_every_config_key_is_documented():
    text = (ROOT / "docs" / "tla.md").read_text()
    missing = [k for k in TLAConfig.model_fields if f"`{k}`" not in text]
    assert not missing, f"docs/tla.md does not document {missing}"
    assert all(f.description for f in TLAConfig.model_fields.values())


def test_the_tactile_representation_needs_statistics_and_keeps_them_in_the_checkpoint(tiny, tmp_path):
    tactile, shapes, actions = _data()
    model = TLAModel(_cfg(tiny, finetune="full", tactile={"normalize": "center", "image_gain": 64}))
    with pytest.raises(RuntimeError, match="statistics"):
        model.batch(tactile, shapes, actions)
    with pytest.raises(RuntimeError, match="statistics"):
        model.save(tmp_path / "incomplete")
    model.fit_tactile_stats(tactile)
    batch = model.batch(tactile, shapes, actions)
    raw = TLAModel(_cfg(tiny, finetune="full")).batch(tactile, shapes, actions)
    assert not torch.equal(raw["pixel_values"], batch["pixel_values"])  # the representation reaches the model
    loaded = TLAModel.load(model.save(tmp_path / "ckpt"))
    assert loaded.cfg.tactile.normalize == "center"
    torch.testing.assert_close(loaded.batch(tactile, shapes, actions)["pixel_values"], batch["pixel_values"])
    (tmp_path / "ckpt" / "normalization.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="normalization"):
        TLAModel.load(tmp_path / "ckpt")


def test_the_layout_is_kept_in_the_checkpoint_and_old_checkpoints_read_the_composite(tiny, tmp_path):
    import json

    tactile, shapes, actions = _data()
    model = TLAModel(_cfg(tiny, finetune="full", layout="pad_channels"))
    batch = model.batch(tactile, shapes, actions)
    composite = TLAModel(_cfg(tiny, finetune="full", layout="composite")).batch(tactile, shapes, actions)
    assert not torch.equal(composite["pixel_values"], batch["pixel_values"])
    d = model.save(tmp_path / "ckpt")
    loaded = TLAModel.load(d)
    assert loaded.cfg.layout == "pad_channels"
    torch.testing.assert_close(loaded.batch(tactile, shapes, actions)["pixel_values"], batch["pixel_values"])
    record = json.loads((d / "tla_config.json").read_text())
    del record["config"]["layout"]  # a checkpoint written before the layouts
    (d / "tla_config.json").write_text(json.dumps(record))
    assert TLAModel.load(d).cfg.layout == "composite"
    assert TLAConfig(model="m").layout == "pad_colours"  # the default: what the tiny model reads y from
    with pytest.raises(ValueError, match="ninth"):
        TLAConfig(model="m", layout="pad_channels", tactile={"ninth_cell": "pad_difference"})
