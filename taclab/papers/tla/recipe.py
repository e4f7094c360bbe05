"""The earlier stages of the TLA training recipe, before action fine-tuning (``taclab train``):

1. **Self-supervised tactile encoder pre-training** (``stage: pretrain``, :func:`pretrain`): the vision tower (ViT
   and, with ``pretrain.train_merger``, the 2x2 patch merger) learns masked-patch prediction on the tactile
   images of the training split, no labels. Whole merged tokens (2x2 patches, 28 px) are masked: the patch
   embeddings of the masked patches are replaced by a learned mask token (as SimMIM does: the rotary positions of
   Qwen2-VL's ViT come from the image grid, so the masked tokens stay in place), and a small head (``linear`` or
   ``mlp``) predicts their pixels (the image processor's normalized values, one temporal copy) from the tower's
   output. The loss is the mean squared error over the masked tokens only.
2. **Tactile-language alignment** (``stage: align``, :func:`align`): the model learns to describe the tactile
   images with captions written from the simulator's privileged state (:func:`caption`: the pose error, which
   side the peg is blocked on, the sense of rotation), answering a separate instruction
   (:data:`CAPTION_INSTRUCTION`); the vision tower is frozen, the merger and the language model are trained.

Both read exactly the images the action stage sees: the tactile representation with statistics fitted on the
same training samples (the shared loop's validation hold-out, :func:`taclab.train.loop.holdout_indices`), the same
layout and image processor (:func:`taclab.papers.tla.instruct.tactile_composites`,
:meth:`TLAModel.fit_tactile_stats`). Both
write a base-model folder in the standard layout (``config.json``, ``model.safetensors``, tokenizer, image
processor), loadable as ``TLAConfig(model=folder)``, so that the next stage names it as ``model.model``; beside
it the stage's record ``recipe_stage.json`` (written last), ``train.csv``, ``train.log`` and
``learning_curve.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taclab.papers.tla.captions import caption, caption_fields, captions
from taclab.papers.tla.instruct import tactile_composites
from taclab.papers.tla.model import TLAConfig, TLAModel

STAGES = ("pretrain", "align")
STAGE_FILE = "recipe_stage.json"
"""The record of a finished stage folder (written last)."""

CAPTION_INSTRUCTION = "Describe what the tactile images show."
"""The instruction of the alignment stage (the action stage's instructions ask for the action)."""

# -- configuration --------------------------------------------------------------------------------------------


class StageTrainConfig(BaseModel):
    """The optimizer and data settings of a recipe stage (AdamW, linear warm-up, cosine decay, as the shared loop)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str = Field("train", description="dataset split to train on")
    limit: int | None = Field(None, ge=1, description="use only the first N samples of the split (quick runs)")
    val_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="share held out, as the shared loop holds it out (the same samples)"
    )
    epochs: int = Field(5, ge=1, description="passes over the training samples")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(16, ge=1, description="samples per optimizer step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate of AdamW")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_fraction: float = Field(0.05, ge=0, le=1, description="share of the steps with linear warm-up")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine decay ends at lr * min_lr_ratio")
    grad_clip: float | None = Field(1.0, gt=0, description="max global gradient norm (None: no clipping)")
    seed: int = Field(0, description="seed of the data order, the masks and the head (and of the hold-out)")
    log_every: int = Field(10, ge=1, description="log the training loss every N steps")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")


class PretrainConfig(BaseModel):
    """Masked-patch prediction (``stage: pretrain``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mask_ratio: float = Field(0.5, gt=0, lt=1, description="share of the merged tokens (2x2 patches) masked")
    train_merger: bool = Field(
        True, description="pre-train the merger too: the head reads the merged tokens (else the ViT's patches)"
    )
    decoder: Literal["linear", "mlp"] = Field("mlp", description="the prediction head (dropped after the stage)")
    decoder_hidden: int = Field(256, ge=1, description="hidden width of the mlp head")
    target_pool: int = Field(
        7,
        description="the target is each masked patch averaged over blocks of this many pixels (1: every pixel; a "
        "divisor of the patch size 14): the pixel noise, as large as the contact signal, cannot be predicted",
    )

    @field_validator("target_pool")
    @classmethod
    def _pool(cls, v: int) -> int:
        if v not in (1, 2, 7, 14):
            raise ValueError(f"target_pool must divide the patch size 14 (1, 2, 7 or 14), got {v}")
        return v


class AlignConfig(BaseModel):
    """Tactile-language alignment (``stage: align``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction: str = Field(CAPTION_INSTRUCTION, min_length=1, description="the instruction of every sample")
    max_caption_tokens: int = Field(
        56, ge=1, le=512, description="refuse data whose longest caption has more tokens (end token included)"
    )


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Literal["pretrain", "align"]
    train: StageTrainConfig = StageTrainConfig()
    model: dict[str, Any] = {}
    pretrain: PretrainConfig = PretrainConfig()
    align: AlignConfig = AlignConfig()

    @field_validator("model")
    @classmethod
    def _model(cls, v):
        if "model" not in v:
            raise ValueError("model.model (the base Qwen2-VL folder) is required")
        return v


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``--set`` items parsed into a tree, back to dotted keys of depth 2 (model values may be mappings)."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix:
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def load_stage_config(path: str | Path | None, overrides: dict[str, Any] | None = None, stage: str | None = None):
    """Read a stage config (YAML with ``stage``, ``train``, ``model``, ``pretrain``, ``align``), apply dotted
    overrides and validate everything, the ``model`` section as a :class:`TLAConfig`; errors name the bad key.
    ``stage`` is the stage the command runs: a config of the other stage is refused."""
    from taclab.train.config import _explain, read_config_file, set_dotted

    cfg = read_config_file(path, ("stage", "train", "model"))
    for k, v in _flatten(overrides or {}).items():
        set_dotted(cfg, k, v, sections=("train", "model", "pretrain", "align"), top_level=("stage",))
    if stage is not None:
        cfg.setdefault("stage", stage)
        if cfg["stage"] != stage:
            raise ValueError(f"the config is of stage {cfg['stage']!r}; this command runs stage {stage!r}")
    try:
        run = StageConfig(**cfg)
    except ValidationError as e:
        raise ValueError(_explain(e).replace("training config", "stage config")) from None
    model = dict(run.model)
    if run.stage == "pretrain":  # the tower is what this stage trains, in full
        model.update(finetune="full", freeze_vision=False, train_merger=run.pretrain.train_merger)
    try:
        tla = TLAConfig(**model).model_dump(mode="json")
    except ValidationError as e:
        raise ValueError(_explain(e, prefix="model.").replace("training config", "stage config")) from None
    return run.model_copy(update={"model": tla})


# -- data -----------------------------------------------------------------------------------------------------


def load_split(data: str | Path, tc: StageTrainConfig, columns: list[str], progress: bool = True) -> dict:
    from taclab.data import read_meta
    from taclab.train.loop import holdout_indices, load_columns

    meta = read_meta(data)
    if tc.split not in meta["splits"]:
        raise ValueError(f"{data} has no split {tc.split!r}; splits: {sorted(meta['splits'])}")
    cols = load_columns(Path(data), tc.split, columns, tc.limit, progress)
    train, _ = holdout_indices(len(cols[columns[0]]), tc.seed, tc.val_fraction)
    if len(train) == 0:
        raise ValueError("no training samples left after the validation hold-out")
    return {k: v[train] for k, v in cols.items()}


def stage_images(tla: TLAModel, tactile: np.ndarray, batch: int = 64) -> np.ndarray:
    """The model's 8-bit input images (N, S, S, 3) of tactile sequences, as :meth:`TLAModel.batch` draws them."""
    c = tla.cfg
    out = []
    for i in range(0, len(tactile), batch):
        out.extend(
            tactile_composites(
                tactile[i : i + batch], c.tactile, tla.tactile_stats, c.image_size, c.layout, c.pad_channels_blue
            )
        )
    return np.stack(out)


# -- the output folder ----------------------------------------------------------------------------------------


def check_out(out: Path) -> None:
    """A stage writes into a new or empty folder; it has no resume (a stage takes minutes: start it again)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a new folder for the stage")
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"--out {out} is not empty: recipe stages do not resume; remove it or give a new folder")


class _Log:
    """``train.csv`` (step, epoch, loss, lr, elapsed_s), ``train.log`` (readable lines), the progress bar."""

    def __init__(self, out: Path, total: int, progress: bool):
        from tqdm.auto import tqdm

        self.out = out
        self.csv = (out / "train.csv").open("w")
        self.csv.write("step,epoch,loss,lr,elapsed_s\n")
        self.text = (out / "train.log").open("w")
        self.bar = tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True)

    def say(self, msg: str) -> None:
        self.text.write(msg + "\n")
        self.text.flush()
        self.bar.write(msg) if not self.bar.disable else None

    def row(self, step: int, epoch: int, loss: float, lr: float, elapsed: float) -> None:
        self.csv.write(f"{step},{epoch},{loss:.6g},{lr:.6g},{elapsed:.2f}\n")
        self.csv.flush()

    def close(self) -> None:
        self.bar.close()
        self.csv.close()
        self.text.close()


def _optimizer(params, tc: StageTrainConfig, total: int):
    import torch

    from taclab.train.loop import lr_lambda

    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    warmup = int(round(tc.warmup_fraction * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_lambda(s, total, warmup, tc.min_lr_ratio))
    return opt, sched


def _fit(step_fn, params, n: int, tc: StageTrainConfig, log: _Log) -> list[float]:
    """The epochs: ``step_fn(indices, generator) -> loss`` per batch; returns the losses of every step."""
    import torch

    from taclab.train.loop import _seed_of

    per_epoch = max(1, n // tc.batch_size)
    total = per_epoch * tc.epochs if tc.max_steps is None else min(per_epoch * tc.epochs, tc.max_steps)
    opt, sched = _optimizer(params, tc, total)
    losses, step, t0, window = [], 0, time.perf_counter(), []
    for epoch in range(tc.epochs):
        order = np.random.default_rng(_seed_of(tc.seed, 2, epoch)).permutation(n)
        for b in range(per_epoch):
            if step >= total:
                break
            idx = np.sort(order[b * tc.batch_size : (b + 1) * tc.batch_size])
            gen = torch.Generator().manual_seed(_seed_of(tc.seed, 3, step))
            loss = step_fn(idx, gen)
            if not torch.isfinite(loss):
                raise RuntimeError(f"the loss is {float(loss)} at step {step}: lower train.lr (now {tc.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            opt.step()
            sched.step()
            step += 1
            value = float(loss.detach())
            losses.append(value)
            window.append(value)
            log.bar.update(1)
            log.bar.set_postfix(loss=f"{value:.4g}")
            if step % tc.log_every == 0 or step == total:
                mean = float(np.mean(window))
                window = []
                elapsed = time.perf_counter() - t0
                log.row(step, epoch, mean, sched.get_last_lr()[0], elapsed)
                log.say(f"step {step}/{total} epoch {epoch} loss {mean:.5g} ({elapsed:.0f} s)")
    return losses


def learning_curve(out: Path, losses: list[float], title: str) -> Path | None:
    """``learning_curve.png``: the loss of every step and its running mean, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.utils import save_png

    if not losses:
        return None
    loss = np.asarray(losses, dtype=float)
    steps = np.arange(1, len(loss) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, loss, color="0.7", lw=0.6, label="train (per step)")
    k = max(1, len(loss) // 30)
    if len(loss) >= 2 * k > 1:
        ax.plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), color="C0", label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    p = save_png(out / "learning_curve.png", fig)
    plt.close(fig)
    return p


def _finish(tla: TLAModel, run: StageConfig, out: Path, data, losses: list[float], t_train: float, extra: dict):
    tla.merge(out)  # the plain Qwen2-VL folder: weights, tokenizer, image processor
    what = "masked-patch prediction" if run.stage == "pretrain" else "caption loss (tower frozen)"
    curve = learning_curve(out, losses, f"{out.name}: stage {run.stage}, {what}")
    record = {
        "format": "taclab-tla-recipe-stage",
        "stage": run.stage,
        "config": run.model_dump(mode="json"),
        "data": str(Path(data).resolve()),
        "train_time_s": round(t_train, 1),
        "steps": len(losses),
        "first_loss": losses[0] if losses else None,
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
        "learning_curve": curve.name if curve else None,
        **extra,
    }
    tmp = out / f".{STAGE_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out / STAGE_FILE)
    return record


def _setup(run: StageConfig, out: Path, data):
    import torch

    from taclab.data import read_meta

    check_out(out)
    meta = read_meta(data)  # nothing is written before the data are known to be a dataset with this split
    if run.train.split not in meta["splits"]:
        raise ValueError(f"{data} has no split {run.train.split!r}; splits: {sorted(meta['splits'])}")
    if run.train.threads:
        torch.set_num_threads(run.train.threads)
    torch.manual_seed(run.train.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stage_config.json").write_text(json.dumps(run.model_dump(mode="json"), indent=2) + "\n")


# -- stage 1: masked-patch prediction -------------------------------------------------------------------------


class MaskedPatchHead:
    """The mask token and the pixel-prediction head of :func:`pretrain` around a Qwen2-VL vision tower."""

    def __init__(self, visual, cfg: PretrainConfig, seed: int = 0):
        import torch

        self.visual, self.cfg = visual, cfg
        vc = visual.config
        self.merge = int(vc.spatial_merge_size)
        self.pool, self.size = cfg.target_pool, int(vc.patch_size)
        self.patch_dim = int(vc.in_channels) * (self.size // self.pool) ** 2  # one patch's target
        self.temporal = int(vc.temporal_patch_size)
        embed = int(vc.embed_dim)
        width = int(vc.hidden_size) if cfg.train_merger else embed
        target = self.patch_dim * self.merge**2 if cfg.train_merger else self.patch_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.mask_token = torch.nn.Parameter(torch.randn(embed) * 0.02)
            if cfg.decoder == "linear":
                self.head = torch.nn.Linear(width, target)
            else:
                self.head = torch.nn.Sequential(
                    torch.nn.LayerNorm(width),
                    torch.nn.Linear(width, cfg.decoder_hidden),
                    torch.nn.GELU(),
                    torch.nn.Linear(cfg.decoder_hidden, target),
                )
        self._mask = None
        visual.patch_embed.register_forward_hook(self._hook)

    def parameters(self) -> list:
        return [self.mask_token, *self.head.parameters()]

    def _hook(self, module, args, output):
        if self._mask is None:
            return output
        m = self._mask.to(output.device).unsqueeze(-1)
        return torch_where(m, self.mask_token.to(output.dtype), output)

    def targets(self, pixel_values):
        """Per merged token, the pixels of its 2x2 patches (processor-normalized, the first temporal copy),
        averaged over blocks of ``target_pool`` pixels."""
        # a patch row is (channel, temporal, ph, pw): keep temporal copy 0 (a still image is repeated in time)
        n, c, k, b = len(pixel_values), int(self.visual.config.in_channels), self.pool, self.size // self.pool
        p = pixel_values.reshape(n, c, self.temporal, b, k, b, k)[:, :, 0].mean((3, 5)).reshape(n, -1)
        return p.reshape(-1, self.merge**2 * self.patch_dim) if self.cfg.train_merger else p

    def draw_mask(self, n_tokens: int, generator, ratio: float | None = None):
        """A mask over the merged tokens (exactly ``round(ratio * n)`` of them), expanded to the patches."""
        import torch

        k = max(1, int(round((self.cfg.mask_ratio if ratio is None else ratio) * n_tokens)))
        scores = torch.rand(n_tokens, generator=generator)
        tok = torch.zeros(n_tokens, dtype=torch.bool)
        tok[torch.topk(scores, k).indices] = True
        return tok, tok.repeat_interleave(self.merge**2)

    def loss(self, pixel_values, grid_thw, token_mask, patch_mask, target_perm=None, reduce: bool = True):
        """Mean squared error of the predicted pixels of the masked tokens; ``target_perm`` (an index over the
        images) takes each image's targets from another image (the overfit gate's control)."""
        self._mask = patch_mask
        try:
            out = self.visual(pixel_values, grid_thw=grid_thw)
        finally:
            self._mask = None
        feats = out.pooler_output if self.cfg.train_merger else out.last_hidden_state
        pred = self.head(feats)
        target = self.targets(pixel_values).to(pred.dtype)
        mask = token_mask if self.cfg.train_merger else patch_mask
        if target_perm is not None:
            n_img = len(grid_thw)
            target = target.reshape(n_img, -1, target.shape[-1])[target_perm].reshape(target.shape)
        err = ((pred - target) ** 2).mean(-1)[mask.to(pred.device)]
        return err.mean() if reduce else err


def torch_where(mask, a, b):
    import torch

    return torch.where(mask, a, b)


def _pixels(tla: TLAModel, images: np.ndarray):
    from taclab.papers.tla.inputs import encode_images

    v = encode_images(tla.image_processor, list(images))
    return v["pixel_values"], v["image_grid_thw"]


def masked_batch(head: MaskedPatchHead, tla: TLAModel, images: np.ndarray, generator):
    """Pixel values, grid and one independent mask per image for a batch of 8-bit images."""
    import torch

    pixel_values, grid = _pixels(tla, images)
    tokens = [int(t * h * w) // head.merge**2 for t, h, w in grid.tolist()]
    parts = [head.draw_mask(n, generator) for n in tokens]
    token_mask = torch.cat([p[0] for p in parts])
    patch_mask = torch.cat([p[1] for p in parts])
    return pixel_values, grid, token_mask, patch_mask


def pretrain(run: StageConfig, data: str | Path, out: str | Path, progress: bool = True) -> dict:
    """Stage 1: masked-patch prediction on the training split's tactile images; writes the base-model folder."""
    import torch

    out = Path(out)
    _setup(run, out, data)
    tc = run.train
    log = None
    try:
        cols = load_split(data, tc, ["tactile"], progress)
        tla = TLAModel(TLAConfig(**run.model))
        tla.fit_tactile_stats(cols["tactile"])
        images = stage_images(tla, cols.pop("tactile"))
        visual = tla.model.model.visual
        head = MaskedPatchHead(visual, run.pretrain, tc.seed)
        tower = [p for p in visual.parameters() if p.requires_grad]
        params = tower + head.parameters()
        per_epoch = max(1, len(images) // tc.batch_size)
        total = per_epoch * tc.epochs if tc.max_steps is None else min(per_epoch * tc.epochs, tc.max_steps)
        log = _Log(out, total, progress)
        n_tower = sum(p.numel() for p in tower)
        log.say(
            f"stage pretrain: {len(images)} training images of {data}, {total} steps of batch {tc.batch_size}; "
            f"masked-patch prediction, mask ratio {run.pretrain.mask_ratio}, {run.pretrain.decoder} head; "
            f"{n_tower} tower parameters trained"
        )
        visual.train()

        def step(idx, gen):
            pv, grid, tok, patch = masked_batch(head, tla, images[idx], gen)
            return head.loss(pv, grid, tok, patch)

        t0 = time.perf_counter()
        losses = _fit(step, params, len(images), tc, log)
        t_train = time.perf_counter() - t0
        visual.eval()
        with torch.no_grad():  # the overfit gate's measure on a fixed set: real targets against shuffled ones
            check = gate(head, tla, images[: min(64, len(images))], tc.seed)
        log.say(
            f"done in {t_train:.0f} s: loss {losses[0]:.4g} -> {np.mean(losses[-10:]):.4g}; on "
            f"{check['images']} training images, masked-pixel error {check['real']:.4g} with their own targets, "
            f"{check['shuffled']:.4g} with another image's"
        )
        return _finish(tla, run, out, data, losses, t_train, {"gate": check, "train_images": len(images)})
    finally:
        if log is not None:
            log.close()


def gate(head: MaskedPatchHead, tla: TLAModel, images: np.ndarray, seed: int = 0) -> dict:
    """The masked-pixel error of the tower's predictions against each image's own masked pixels and against
    another image's (the targets shifted by one image); a tower that ignores its input scores the same."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    pv, grid, tok, patch = masked_batch(head, tla, images, gen)
    perm = torch.roll(torch.arange(len(images)), 1)
    real = float(head.loss(pv, grid, tok, patch))
    shuffled = float(head.loss(pv, grid, tok, patch, target_perm=perm))
    return {"images": len(images), "real": real, "shuffled": shuffled}


# -- stage 2: tactile-language alignment ----------------------------------------------------------------------


def caption_batch(tla: TLAModel, images: np.ndarray, texts: list[str] | None, instruction: str) -> dict:
    """Model inputs for 8-bit images with the alignment instruction and, for training, the captions as answers."""
    from taclab.papers.tla.inputs import build_batch

    return build_batch(tla.tokenizer, tla.image_processor, list(images), [instruction] * len(images), texts)


def caption_loss(tla: TLAModel, images, texts, instruction: str = CAPTION_INSTRUCTION, batch: int = 16) -> float:
    """Mean caption loss over samples (batches of ``batch``), without gradients."""
    import torch

    total = 0.0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            b = caption_batch(tla, images[i : i + batch], texts[i : i + batch], instruction)
            total += float(tla.loss(b)) * len(images[i : i + batch])
    return total / len(images)


def describe(tla: TLAModel, images, instruction: str = CAPTION_INSTRUCTION, max_new_tokens: int = 64) -> list[str]:
    """The model's captions of 8-bit images (greedy decoding)."""
    import torch

    batch = {k: v.to(tla.device) for k, v in caption_batch(tla, images, None, instruction).items()}
    gen = tla.generation_config()
    gen.num_beams, gen.max_new_tokens = 1, max_new_tokens
    module = tla.model
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module.generate(**batch, generation_config=gen)
    finally:
        module.train(was_training)
    new = out[:, batch["input_ids"].shape[1] :]
    return tla.tokenizer.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def align(run: StageConfig, data: str | Path, out: str | Path, progress: bool = True) -> dict:
    """Stage 2: the captions of :func:`caption` as answers to :attr:`AlignConfig.instruction`, the vision tower
    frozen as the config says; writes the base-model folder."""

    out = Path(out)
    _setup(run, out, data)
    tc, ac = run.train, run.align
    log = None
    try:
        cols = load_split(data, tc, ["tactile", "error", "clearance_mm"], progress)
        tla = TLAModel(TLAConfig(**run.model))
        tla.fit_tactile_stats(cols["tactile"])
        images = stage_images(tla, cols.pop("tactile"))
        texts = captions(cols["error"], cols["clearance_mm"])
        longest = tla.answer_tokens(texts)
        if longest > ac.max_caption_tokens:
            raise ValueError(
                f"the longest caption has {longest} tokens, more than align.max_caption_tokens {ac.max_caption_tokens}"
            )
        params = tla.trainable_parameters()
        per_epoch = max(1, len(images) // tc.batch_size)
        total = per_epoch * tc.epochs if tc.max_steps is None else min(per_epoch * tc.epochs, tc.max_steps)
        log = _Log(out, total, progress)
        log.say(
            f"stage align: {len(images)} training samples of {data}, {total} steps of batch {tc.batch_size}; "
            f"instruction {ac.instruction!r}; longest caption {longest} tokens, e.g. {texts[0]!r}; "
            f"{sum(p.numel() for p in params)} parameters trained (vision tower frozen: {tla.cfg.freeze_vision})"
        )
        tla.torch_module.train()

        def step(idx, gen):
            return tla.loss(caption_batch(tla, images[idx], [texts[i] for i in idx], ac.instruction))

        t0 = time.perf_counter()
        losses = _fit(step, params, len(images), tc, log)
        t_train = time.perf_counter() - t0
        tla.torch_module.eval()
        k = min(64, len(images))
        shifted = np.roll(np.arange(k), 1)
        check = {
            "samples": k,
            "real": caption_loss(tla, images[:k], texts[:k], ac.instruction),
            "shuffled": caption_loss(tla, images[:k][shifted], texts[:k], ac.instruction),
        }
        log.say(
            f"done in {t_train:.0f} s: loss {losses[0]:.4g} -> {np.mean(losses[-10:]):.4g}; on {k} training "
            f"samples, caption loss {check['real']:.4g} with their images, {check['shuffled']:.4g} with another's"
        )
        extra = {
            "gate": check,
            "train_samples": len(images),
            "longest_caption_tokens": longest,
            "example_captions": texts[:3],
        }
        return _finish(tla, run, out, data, losses, t_train, extra)
    finally:
        if log is not None:
            log.close()


def run_stage(run: StageConfig, data, out, progress: bool = True) -> dict:
    return {"pretrain": pretrain, "align": align}[run.stage](run, data, out, progress)


__all__ = [
    "CAPTION_INSTRUCTION",
    "STAGES",
    "AlignConfig",
    "MaskedPatchHead",
    "PretrainConfig",
    "StageConfig",
    "StageTrainConfig",
    "align",
    "caption",
    "caption_fields",
    "caption_loss",
    "captions",
    "describe",
    "gate",
    "load_stage_config",
    "pretrain",
    "run_stage",
]
