"""The TLA recipe's earlier stages: captions, masked-patch pre-training of the vision tower, tactile-language
alignment; each writes a base model that the next stage (and the action stage) trains from, and each reads its
input images (overfit gates with shuffled images or targets)."""

import json

import numpy as np
import pytest
import torch

from taclab.data import load_arrays
from taclab.papers.tla.model import TLAConfig, TLAModel
from taclab.papers.tla.recipe import (
    CAPTION_INSTRUCTION,
    MaskedPatchHead,
    PretrainConfig,
    caption,
    caption_batch,
    caption_loss,
    captions,
    gate,
    load_stage_config,
    masked_batch,
    stage_images,
)
from taclab.papers.tla.tiny import init_tiny

SIZE = 56  # 4 image tokens of the tiny model: the end-to-end runs
GATE_SIZE = 84  # 9 image tokens: the overfit gates
N = 32
SHUFFLE = np.roll(np.arange(N), 1)  # every sample gets its neighbour's images


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("tla_recipe") / "tiny", image_size=SIZE, seed=0)


@pytest.fixture(scope="module")
def tiny_gate(tmp_path_factory):
    return init_tiny(tmp_path_factory.mktemp("tla_recipe_gate") / "tiny", image_size=GATE_SIZE, seed=0)


# -- captions -------------------------------------------------------------------------------------------------


def test_captions_by_hand():
    assert caption((0.8, -1.3, 1.2), 2.0) == "x 0.8 right; y 1.3 back, blocked; rz 1.2 ccw."
    assert caption((-1.55, 1.01, -2.4), 2.0) == "x 1.6 left, blocked; y 1.0 front, blocked; rz 2.4 cw."
    assert caption((0.02, -0.04, 0.0), 2.0) == "x 0.0; y 0.0; rz 0.0."
    # blocked is |e| > clearance / 2: the same error is blocked at a smaller clearance
    assert caption((0.7, 0.3, -0.26), 1.0) == "x 0.7 right, blocked; y 0.3 front; rz 0.3 cw."
    assert caption((-0.5, 0.5, 0.0), 1.0) == "x 0.5 left; y 0.5 front; rz 0.0."
    assert captions([[0.8, -1.3, 1.2], [0.0, 0.0, 0.0]], 2.0) == [
        "x 0.8 right; y 1.3 back, blocked; rz 1.2 ccw.",
        "x 0.0; y 0.0; rz 0.0.",
    ]
    with pytest.raises(ValueError, match="positive clearance"):
        caption((0.1, 0.2, 0.3), 0.0)
    with pytest.raises(ValueError, match="finite"):
        caption((np.nan, 0.2, 0.3), 1.0)


def test_caption_fields_read_a_caption_back():
    from taclab.papers.tla.recipe import caption_fields

    assert caption_fields(caption((0.8, -1.3, 1.2), 2.0)) == {
        "x": "right",
        "x_blocked": False,
        "y": "back",
        "y_blocked": True,
        "rz": "ccw",
    }
    assert caption_fields("x 0.0; y 0.0; rz 0.0.")["rz"] == ""
    assert caption_fields("[1, 2, 3]")["x"] is None


def test_captions_are_short_for_the_tiny_tokenizer(tiny, tiny_dataset):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny))
    a = load_arrays(tiny_dataset, "train", columns=["error", "clearance_mm"], progress=False)
    lengths = [len(tok(t + "<|im_end|>", add_special_tokens=False)["input_ids"]) for t in captions(**_cap(a))]
    assert max(lengths) <= 56, max(lengths)


def _cap(a):
    return {"errors": a["error"], "clearances": a["clearance_mm"]}


# -- configs --------------------------------------------------------------------------------------------------


def test_stage_configs_validate_and_name_bad_keys():
    run = load_stage_config("configs/tla_stage_pretrain_tiny.yaml", stage="pretrain")
    assert run.model["layout"] == "pad_colours" and run.model["freeze_vision"] is False
    run = load_stage_config("configs/tla_stage_align_tiny.yaml", stage="align")
    assert run.model["freeze_vision"] is True and run.model["finetune"] == "full"
    with pytest.raises(ValueError, match="unknown config key 'pretrain.mask'"):
        load_stage_config("configs/tla_stage_pretrain_tiny.yaml", {"pretrain": {"mask": 0.5}}, stage="pretrain")
    with pytest.raises(ValueError, match="unknown config key 'model.layoutt'"):
        load_stage_config("configs/tla_stage_align_tiny.yaml", {"model": {"layoutt": "x"}}, stage="align")
    with pytest.raises(ValueError, match="this command runs stage 'align'"):
        load_stage_config("configs/tla_stage_pretrain_tiny.yaml", stage="align")


def test_the_hold_out_is_the_shared_loops():
    from taclab.train.loop import _seed_of, holdout_indices  # the recipe's stages hold out with it

    train, val = holdout_indices(100, 0, 0.05)
    perm = np.random.default_rng(_seed_of(0, 1)).permutation(100)
    assert sorted(val) == sorted(perm[:5]) and len(train) == 95 and not set(train) & set(val)


# -- stage 1: masked-patch pre-training -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(tiny_dataset):
    a = load_arrays(tiny_dataset, "train", columns=["tactile", "error", "clearance_mm"], progress=False)
    return {k: v[:N] for k, v in a.items()}


def test_pretraining_reads_the_images(tiny_gate, samples):
    """Masked-patch prediction memorizes 32 images: the loss falls, and the predictions match each image's own
    masked pixels far better than another image's (with the same masks)."""
    tla = TLAModel(TLAConfig(model=str(tiny_gate), image_size=GATE_SIZE, finetune="full", freeze_vision=False))
    tla.fit_tactile_stats(samples["tactile"])
    images = stage_images(tla, samples["tactile"])
    visual = tla.model.model.visual
    head = MaskedPatchHead(visual, PretrainConfig(decoder="mlp", decoder_hidden=128), seed=0)
    params = [p for p in visual.parameters() if p.requires_grad] + head.parameters()
    opt = torch.optim.AdamW(params, lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        first = float(head.loss(*masked_batch(head, tla, images, gen)))
    for _ in range(150):
        loss = head.loss(*masked_batch(head, tla, images, gen))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    visual.eval()
    with torch.no_grad():
        check = gate(head, tla, images, seed=1)
    assert check["real"] < 0.7 * first, (first, check)
    assert check["shuffled"] > 1.25 * check["real"], check


# -- stage 2: alignment ---------------------------------------------------------------------------------------


def test_alignment_reads_the_images(tiny_gate, samples):
    """The caption loss of the aligned model (vision tower frozen) with shuffled images is far above that with the
    real ones after memorizing 32 captions: a model that ignores its input scores the same."""
    cfg = TLAConfig(model=str(tiny_gate), image_size=GATE_SIZE, finetune="full", freeze_vision=True)
    tla = TLAModel(cfg)
    assert not any(p.requires_grad for n, p in tla.model.model.visual.named_parameters() if "merger" not in n)
    tla.fit_tactile_stats(samples["tactile"])
    images = stage_images(tla, samples["tactile"])
    texts = captions(samples["error"], samples["clearance_mm"])
    assert len(set(texts)) == N
    params = tla.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    tla.model.train()
    for _ in range(250):
        b = np.sort(rng.choice(N, 8, replace=False))
        loss = tla.loss(caption_batch(tla, images[b], [texts[i] for i in b], CAPTION_INSTRUCTION))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    tla.model.eval()
    real = caption_loss(tla, images, texts)
    shuffled = caption_loss(tla, images[SHUFFLE], texts)
    assert shuffled > 3 * real and real < 0.2, (real, shuffled)


# -- end to end: stage 1, stage 2, the action stage -----------------------------------------------------------


def _invoke(args):
    from typer.testing import CliRunner

    from taclab.papers.tla.cli import tla_app

    return CliRunner().invoke(tla_app, args)


def _loads_and_differs(folder, base, prefix):
    from safetensors.torch import load_file

    TLAModel(TLAConfig(model=str(folder), image_size=SIZE))  # a base model of the standard layout
    new, old = load_file(str(folder / "model.safetensors")), load_file(str(base / "model.safetensors"))
    assert set(new) == set(old)
    changed = {k for k in new if not torch.equal(new[k], old[k])}
    return changed, {k for k in changed if k.startswith(prefix)}


@pytest.fixture(scope="module")
def stages(tiny, tiny_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("tla_stages")
    common = ["--data", str(tiny_dataset), "--no-progress", "--set", f"model.model={tiny}"]
    common += ["--set", f"model.image_size={SIZE}", "--set", "train.max_steps=4", "--set", "train.batch_size=8"]
    pre = _invoke(["pretrain", "--config", "configs/tla_stage_pretrain_tiny.yaml", "--out", str(root / "pre"), *common])
    assert pre.exit_code == 0, pre.output
    al = _invoke(
        ["align", "--config", "configs/tla_stage_align_tiny.yaml", "--out", str(root / "align"), *common]
        + ["--set", f"model.model={root / 'pre'}"]
    )
    assert al.exit_code == 0, al.output
    return root


def test_pretrain_stage_writes_a_base_model_with_new_vision_weights(stages, tiny):
    out = stages / "pre"
    for f in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "learning_curve.png"):
        assert (out / f).is_file(), f
    record = json.loads((out / "recipe_stage.json").read_text())
    assert record["stage"] == "pretrain" and record["steps"] == 4
    assert "masked-patch prediction" in (out / "train.log").read_text()
    changed, visual = _loads_and_differs(out, tiny, "visual.")
    assert visual and changed == visual  # only the tower (the head is not part of the model)


def test_align_stage_keeps_the_tower_and_trains_the_rest(stages):
    out = stages / "align"
    record = json.loads((out / "recipe_stage.json").read_text())
    assert record["stage"] == "align" and record["longest_caption_tokens"] <= 56
    changed, visual = _loads_and_differs(out, stages / "pre", "visual.")
    assert visual and all(k.startswith("visual.merger.") for k in visual)
    assert any(not k.startswith("visual.") for k in changed)


def test_the_action_stage_trains_from_the_aligned_model(stages, tiny_dataset):
    from taclab.train import load_run_config, train

    sets = {"model.model": str(stages / "align"), "model.image_size": SIZE, "train.max_steps": 2}
    sets |= {"train.batch_size": 8, "train.val_fraction": 0.2, "train.val_max_samples": 4}
    run = load_run_config("configs/tla_sp_tiny.yaml", overrides=sets)
    policy = train(run, tiny_dataset, stages / "act", progress=False)
    assert (policy / "tla_config.json").is_file()


def test_stage_commands_refuse_bad_input(stages, tiny, tiny_dataset):
    common = ["--data", str(tiny_dataset), "--no-progress", "--set", f"model.model={tiny}"]
    r = _invoke(["pretrain", "--config", "configs/tla_stage_pretrain_tiny.yaml", "--out", str(stages / "pre"), *common])
    assert r.exit_code == 2 and "error: --out" in r.output and "not empty" in r.output
    r = _invoke(
        ["align", "--config", "configs/tla_stage_align_tiny.yaml", "--out", str(stages / "x"), *common]
        + ["--set", "train.epoch=3"]
    )
    assert r.exit_code == 2 and "error: invalid stage config: unknown config key 'train.epoch'" in r.output
    assert not (stages / "x").exists()
    r = _invoke(
        ["align", "--config", "configs/tla_stage_align_tiny.yaml", "--out", str(stages / "x"), *common]
        + ["--set", "train.split=validation"]
    )
    assert r.exit_code == 2 and "has no split 'validation'" in r.output and not (stages / "x").exists()


def test_every_stage_config_key_is_documented():
    from pathlib import Path

    from taclab.papers.tla.recipe import AlignConfig, PretrainConfig, StageTrainConfig

    text = (Path(__file__).resolve().parents[2] / "docs" / "tla.md").read_text()
    keys = [f"train.{k}" for k in StageTrainConfig.model_fields]
    keys += [f"pretrain.{k}" for k in PretrainConfig.model_fields] + [f"align.{k}" for k in AlignConfig.model_fields]
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, missing
