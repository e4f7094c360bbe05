"""The Tactile-Language-Action model (paper section IV): a Qwen2-VL that reads the 3x3 composite tactile image and
an instruction naming the peg, and writes the corrective action as text such as ``[-9, 4, 13]``.

- :class:`TLAConfig` holds every setting (validated; unknown keys are rejected).
- :class:`TLAModel` loads a Qwen2-VL folder or hub id with ``from_pretrained``, makes it trainable as configured
  (LoRA on the language model, or full fine-tuning; the vision encoder frozen or not; the 2x2 patch merger
  trained or not), turns tactile sequences into batches, computes the answer-only loss, generates answers with
  beam search and parses them into actions, with a fallback action for malformed answers.

Checkpoints are folders: :meth:`TLAModel.save` writes the LoRA adapter (or the full model), the tokenizer, the
image processor and ``tla_config.json``; :meth:`TLAModel.load` rebuilds the model from it; :meth:`TLAModel.merge`
writes a plain Qwen2-VL folder with the adapter merged in.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taclab.papers.tla.inputs import IMAGE_PAD, VISION_END, VISION_START, build_batch
from taclab.papers.tla.instruct import (
    CHECKPOINT_FILE,
    DEFAULT_TEMPLATES,
    STATS_FILE,
    ActionCodec,
    checkpoint_config,
    instruction,
    load_checkpoint_stats,
    tactile_composites,
)
from taclab.policies.tactile_input import TactileInputConfig, fit_tactile_stats

LANGUAGE_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The linear layers of each Qwen2 decoder layer (attention and MLP)."""
VISION_LINEAR = ("qkv", "proj", "fc1", "fc2")
"""The linear layers of each ViT block; LoRA adapts them too when the vision encoder is not frozen."""


class TLAConfig(BaseModel):
    """Settings of the TLA model. Unknown keys are rejected; see docs/tla.md."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(..., min_length=1, description="base Qwen2-VL: a local folder or a hub id (from_pretrained)")
    image_size: int = Field(168, description="side of the square composite tactile image in pixels (616 in the paper)")
    template: int = Field(0, description="index of the instruction template in DEFAULT_TEMPLATES (0: the paper's)")
    resolution: tuple[float, float, float] = Field(
        (0.1, 0.1, 0.1), description="action codec step (mm, mm, deg) per integer of the answer text"
    )
    finetune: Literal["lora", "full"] = Field("lora", description="train LoRA adapters or all unfrozen weights")
    lora_r: int = Field(8, ge=1, le=1024, description="LoRA rank")
    lora_alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the LoRA input during training")
    lora_targets: tuple[str, ...] = Field(
        LANGUAGE_LINEAR, description="names of the language-model linear layers that get LoRA adapters"
    )
    freeze_vision: bool = Field(True, description="keep the ViT (patch embedding and blocks) frozen, as the paper")
    train_merger: bool = Field(True, description="train the 2x2 patch merger (the MLP between ViT and language model)")
    num_beams: int = Field(3, ge=1, le=64, description="beams of the beam search that writes the answer")
    decoding: Literal["beam", "expected"] = Field(
        "beam",
        description="how the answer becomes the action: beam (the best answer of the beam search, the paper's) or "
        "expected (the mean of the actions of the num_beams answers the beam search returns, weighted by their "
        "probabilities renormalized over the well-formed ones: an axis the model is unsure of moves less, as a "
        "regression's would; needs num_beams >= 2)",
    )
    max_new_tokens: int = Field(16, ge=1, le=512, description="longest answer in tokens, the end token included")
    reason: Literal["none", "sides", "caption"] = Field(
        "none",
        description="reason, then act: the answer first states in words what touch shows, then the action (e.g. "
        "'x right; y back, blocked; rz ccw. [-9, 4, 13]'); none (the paper's: the action alone), sides (the side "
        "of each axis's error and whether the peg is blocked on it) or caption (the same with the error's "
        "magnitudes, the recipe's alignment captions). The words are written from the simulator's pose error, so "
        "training needs the dataset's error and clearance_mm columns; max_new_tokens must cover the longer "
        "answer (about 40 tokens for sides, 60 for caption with the tiny tokenizer; checked at training)",
    )
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="weight dtype the model is loaded in")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward to save memory")
    fallback: Literal["zero"] = Field("zero", description="action for malformed answers: zero (no correction)")
    seed: int = Field(0, description="seed of the LoRA initialization (the base weights come from the folder)")
    tactile: TactileInputConfig = Field(
        default_factory=lambda: TactileInputConfig(subtract="none", normalize="center", image_gain=128.0),
        description="tactile input representation, mapped to 8-bit images before the composite (docs/training.md); "
        "by default how each sample differs from the average sample, 128 grey levels per std (what a randomly "
        "initialized model learns from, docs/tla_recipe.md); the paper's raw composite is "
        "{subtract: none, normalize: none}",
    )
    layout: Literal["composite", "pad_channels", "pad_colours"] = Field(
        "pad_colours",
        description="how the tactile sequence becomes the one image: composite (the paper's 3x3 grid of the 8 "
        "tiles), pad_channels (the 4 frames in a 2x2 grid, each tile R = pad 0 grey, G = pad 1 grey, B = as "
        "pad_channels_blue says) or pad_colours (a 3x3 grid of frames 1-3 x colour channels, each tile R = pad 0, "
        "G = pad 1, B = as pad_channels_blue says, in that colour), so that every patch holds both pads; by "
        "default pad_colours, with which the tiny model reads the sign of y (docs/tla_recipe.md)",
    )
    pad_channels_blue: Literal["difference", "mean"] = Field(
        "difference",
        description="layouts pad_channels and pad_colours: the third colour channel holds (pad 0 - pad 1) / sqrt 2 "
        "or their mean",
    )

    @model_validator(mode="after")
    def _layout(self):
        if self.layout != "composite" and self.tactile.ninth_cell != "blank":
            raise ValueError(f"tactile.ninth_cell is a setting of layout: composite; {self.layout} has no ninth cell")
        return self

    @model_validator(mode="after")
    def _decoding(self):
        if self.decoding == "expected" and self.num_beams < 2:
            raise ValueError(
                f"decoding: expected averages over the beams' answers and needs num_beams >= 2, got {self.num_beams}"
            )
        return self

    @field_validator("image_size")
    @classmethod
    def _image_size(cls, v: int) -> int:
        if v % 28 or not 28 <= v <= 1344:
            raise ValueError(f"image_size must be a multiple of 28 (patch 14 x merge 2) in [28, 1344], got {v}")
        return v

    @field_validator("template")
    @classmethod
    def _template(cls, v: int) -> int:
        if not 0 <= v < len(DEFAULT_TEMPLATES):
            raise ValueError(f"template must be an index below {len(DEFAULT_TEMPLATES)}, got {v}")
        return v

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, v):
        if not all(r > 0 for r in v):
            raise ValueError(f"resolution must be 3 positive numbers (mm, mm, deg), got {v}")
        return v

    @field_validator("lora_targets")
    @classmethod
    def _targets(cls, v):
        if not v:
            raise ValueError("lora_targets must name at least one linear layer")
        bad = [t for t in v if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t)]
        if bad:
            raise ValueError(f"lora_targets must be layer names such as 'q_proj', got {bad}")
        return tuple(v)


def expected_action(actions, ok, logp) -> tuple[np.ndarray, np.ndarray]:
    """The probability-weighted mean of candidate actions (``decoding: expected``).

    ``actions`` ``(B, K, 3)``, ``ok`` ``(B, K)`` (well formed), ``logp`` ``(B, K)`` log-probabilities of the K
    answers. The weights are ``softmax(logp)`` over the well-formed candidates of each row; a row with none gets
    the zero action and is flagged malformed. Returns ``(actions (B, 3), malformed (B,))``."""
    actions = np.asarray(actions, dtype=np.float64)
    ok = np.asarray(ok, dtype=bool)
    logp = np.asarray(logp, dtype=np.float64)
    if actions.ndim != 3 or actions.shape[-1] != 3 or ok.shape != actions.shape[:2] or logp.shape != ok.shape:
        shapes = f"{actions.shape}, {ok.shape}, {logp.shape}"
        raise ValueError(f"expected actions (B, K, 3), ok and logp (B, K); got {shapes}")
    z = np.where(ok, logp, -np.inf)
    top = z.max(axis=1, keepdims=True)
    w = np.where(ok, np.exp(z - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = w.sum(axis=1, keepdims=True)
    malformed = ~ok.any(axis=1)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    return (w[..., None] * actions).sum(axis=1), malformed


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def _load_image_processor(path: str, image_size: int):
    """The folder's Qwen2-VL image processor, set to keep an ``image_size`` square at its size."""
    try:  # the PIL implementation; the default one needs torchvision
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil as cls
    except ImportError:  # pragma: no cover - older transformers
        from transformers import Qwen2VLImageProcessor as cls
    pixels = int(image_size) ** 2
    return cls.from_pretrained(path, size={"shortest_edge": pixels, "longest_edge": pixels})


def _enable_checkpointing(model) -> None:
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - transformers before the rename
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


@contextlib.contextmanager
def _quiet_peft():
    """peft reads an attribute that this transformers version marks deprecated; hide that warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class TLAModel:
    """A Qwen2-VL set up for the TLA task. ``TLAModel(cfg)`` loads ``cfg.model`` and prepares it for training.

    Tactile input is uint8 ``(B, 4, 2, H, W, 3)`` (4 frames x 2 pads, as ``taclab/PegInHole-v0`` observes it);
    shapes are peg shape names, one per sample. Tensors are moved to the model's device when used.
    """

    def __init__(self, cfg: TLAConfig | dict[str, Any] | None = None, **overrides):
        if cfg is None:
            cfg = TLAConfig(**overrides)
        elif isinstance(cfg, dict):
            cfg = TLAConfig(**{**cfg, **overrides})
        elif overrides:
            cfg = TLAConfig(**{**cfg.model_dump(), **overrides})
        self._setup(cfg, weights=cfg.model, adapter=None)

    # -- construction ---------------------------------------------------------------------------------------

    def _setup(self, cfg: TLAConfig, weights: str, adapter: str | None, files: str | None = None) -> None:
        import torch
        from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration

        self.cfg = cfg
        self.codec = ActionCodec(resolution=cfg.resolution)
        self.tactile_stats: dict | None = None  # statistics of the tactile representation (fit_tactile_stats)
        from taclab.policies.pretrained import require_pretrained

        files = files or weights
        hint = "build the tiny offline model with `taclab tla init-tiny PATH` or give a Qwen2-VL folder or hub id"
        require_pretrained(weights, "base model", hint)
        if files != weights:  # a checkpoint's tokenizer and processor files
            require_pretrained(files, "checkpoint", marker=None)
        self.tokenizer = AutoTokenizer.from_pretrained(files)
        self.image_processor = _load_image_processor(files, cfg.image_size)
        base = Qwen2VLForConditionalGeneration.from_pretrained(weights, dtype=_dtype(cfg.dtype))
        self._check_compatible(base)
        if cfg.gradient_checkpointing:
            _enable_checkpointing(base)
        if adapter is not None:
            from peft import PeftModel

            with _quiet_peft():
                model = PeftModel.from_pretrained(base, adapter, is_trainable=True)
        elif cfg.finetune == "lora":
            model = self._add_lora(base)
        else:
            model = base
            self._freeze(model)
        self.model: torch.nn.Module = model

    def _check_compatible(self, base) -> None:
        c = base.config
        tok = self.tokenizer
        for attr, token in (
            ("image_token_id", IMAGE_PAD),
            ("vision_start_token_id", VISION_START),
            ("vision_end_token_id", VISION_END),
        ):
            tid = tok.convert_tokens_to_ids(token)
            if getattr(c, attr) != tid:
                raise ValueError(f"model config {attr}={getattr(c, attr)} but the tokenizer gives {token} id {tid}")
        if len(tok) > c.text_config.vocab_size:
            raise ValueError(f"tokenizer has {len(tok)} tokens, more than the model's vocab_size")
        step = int(c.vision_config.patch_size) * int(c.vision_config.spatial_merge_size)
        if self.cfg.image_size % step:
            raise ValueError(
                f"image_size {self.cfg.image_size} is not a multiple of patch_size x merge_size = {step} of this model"
            )
        if int(self.image_processor.merge_size) != int(c.vision_config.spatial_merge_size):
            raise ValueError("the image processor's merge_size differs from the model's spatial_merge_size")

    def _freeze(self, model) -> None:
        """Full fine-tuning: train everything but the vision encoder (``freeze_vision``) and the merger
        (``train_merger``). With LoRA, peft has frozen the base model and trains the adapters and the merger."""
        for p in model.parameters():
            p.requires_grad_(True)
        visual = model.model.visual
        if self.cfg.freeze_vision:
            for name, p in visual.named_parameters():
                if not name.startswith("merger."):
                    p.requires_grad_(False)
        for p in visual.merger.parameters():
            p.requires_grad_(self.cfg.train_merger)

    def _lora_pattern(self) -> str:
        names = "|".join(re.escape(t) for t in self.cfg.lora_targets)
        pattern = rf"model\.language_model\.layers\.\d+\.(?:self_attn|mlp)\.(?:{names})"
        if not self.cfg.freeze_vision:
            vision = "|".join(VISION_LINEAR)
            pattern += rf"|model\.visual\.blocks\.\d+\.(?:attn|mlp)\.(?:{vision})"
        return pattern

    def _add_lora(self, base):
        import torch
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(
            r=self.cfg.lora_r,
            lora_alpha=self.cfg.lora_alpha,
            lora_dropout=self.cfg.lora_dropout,
            target_modules=self._lora_pattern(),
            modules_to_save=["merger"] if self.cfg.train_merger else None,
        )
        with torch.random.fork_rng(devices=[]), _quiet_peft():
            torch.manual_seed(self.cfg.seed)
            return get_peft_model(base, lcfg)

    # -- properties -----------------------------------------------------------------------------------------

    @property
    def torch_module(self):
        """The ``nn.Module`` to optimize (a peft model with LoRA, the Qwen2-VL model otherwise)."""
        return self.model

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> TLAModel:
        self.model.to(device)
        return self

    def trainable_parameters(self) -> list:
        """The parameters that training updates (``requires_grad``)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def parameter_count(self) -> dict[str, int]:
        """Numbers of parameters: ``total`` and ``trainable``."""
        params = list(self.model.parameters())
        return {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        }

    @property
    def image_tokens(self) -> int:
        """Image tokens per composite image: (image_size / patch / merge) ** 2."""
        merge = int(self.image_processor.merge_size)
        side = self.cfg.image_size // int(self.image_processor.patch_size) // merge
        return side * side

    # -- data -----------------------------------------------------------------------------------------------

    def fit_tactile_stats(self, tactile, max_samples: int = 512) -> None:
        """Fit the statistics of the tactile representation (``cfg.tactile``) on training sequences
        ``(N, 4, 2, H, W, 3)``; the raw images need none."""
        raw = self.cfg.tactile.is_raw
        self.tactile_stats = None if raw else fit_tactile_stats(tactile, self.cfg.tactile, max_samples)

    def batch(self, tactile, shapes, actions=None, reasons=None) -> dict:
        """Model inputs for tactile sequences ``(B, 4, 2, H, W, 3)`` and peg shapes (a list, or one name for all).

        With ``actions`` ``(B, 3)`` (dx_mm, dy_mm, drz_deg) the batch has ``labels`` for :meth:`loss`; without,
        it is a left-padded prompt batch for generation. With ``reason`` set, training needs ``reasons`` (one
        text per sample, :meth:`reasons`), which the answer states before the action.
        """
        t = np.asarray(tactile)
        if t.ndim == 5:
            t = t[None]
        if t.ndim != 6 or t.shape[1:3] != (4, 2) or t.shape[-1] != 3 or t.dtype != np.uint8:
            raise ValueError(f"tactile must be uint8 of shape (B, 4, 2, H, W, 3), got {t.dtype} {t.shape}")
        shapes = [shapes] * len(t) if isinstance(shapes, str) else list(shapes)
        if len(shapes) != len(t):
            raise ValueError(f"got {len(t)} tactile sequences but {len(shapes)} shapes")
        if not self.cfg.tactile.is_raw and self.tactile_stats is None:
            raise RuntimeError(
                "the tactile representation needs statistics: call fit_tactile_stats on training data first"
            )
        images = tactile_composites(
            t, self.cfg.tactile, self.tactile_stats, self.cfg.image_size, self.cfg.layout, self.cfg.pad_channels_blue
        )
        instructions = [instruction(s, self.cfg.template) for s in shapes]
        answers = None
        if actions is not None:
            a = np.asarray(actions, dtype=float).reshape(-1, 3) if np.size(actions) else np.zeros((0, 3))
            if len(a) != len(t):
                raise ValueError(f"got {len(t)} tactile sequences but {len(a)} actions")
            answers = self.answer_texts(a, reasons)
        return build_batch(self.tokenizer, self.image_processor, images, instructions, answers)

    def reasons(self, errors, clearances) -> list[str] | None:
        """The reason texts of ``reason`` for pose errors ``(N, 3)`` and clearances (None with ``reason: none``)."""
        from taclab.papers.tla.captions import captions

        if self.cfg.reason == "none":
            return None
        return captions(errors, clearances, magnitudes=self.cfg.reason == "caption")

    def answer_texts(self, actions, reasons=None) -> list[str]:
        """The answers the model is trained to write for actions ``(N, 3)``: the action as text, after its reason
        text with ``reason`` set (one per action, :meth:`reasons`)."""
        answers = [self.codec.encode(x) for x in actions]
        if self.cfg.reason == "none":
            return answers
        if reasons is None or len(reasons) != len(answers):
            got = "none" if reasons is None else len(reasons)
            raise ValueError(f"reason: {self.cfg.reason} needs one reason text per action, got {got}")
        return [f"{r} {x}" for r, x in zip(reasons, answers, strict=True)]

    def answer_tokens(self, answers: list[str]) -> int:
        """The token count of the longest answer text, its end token included."""
        return max(len(self.tokenizer(t + "<|im_end|>", add_special_tokens=False)["input_ids"]) for t in answers)

    def _on_device(self, batch: dict) -> dict:
        device = self.device
        return {k: v.to(device) for k, v in batch.items()}

    # -- training and inference -----------------------------------------------------------------------------

    def loss(self, batch: dict):
        """Mean next-token cross-entropy over the answer tokens (labels that are not -100): eq. 4 of the paper."""
        if "labels" not in batch:
            raise ValueError("the batch has no labels: build it with actions")
        out = self.model(**self._on_device(batch), use_cache=False)
        return out.loss

    def generation_config(self, candidates: bool = False):
        """Beam search without sampling. With ``candidates``, every beam's answer is returned with its summed
        log-probability (no length normalization: ``length_penalty`` 0), for ``decoding: expected``."""
        from transformers import GenerationConfig

        tok = self.tokenizer
        eos = [tok.convert_tokens_to_ids("<|im_end|>")]
        if tok.eos_token_id is not None and tok.eos_token_id not in eos:
            eos.append(tok.eos_token_id)
        extra = {}
        if candidates:
            extra = dict(length_penalty=0.0, output_scores=True, return_dict_in_generate=True)
        return GenerationConfig(
            num_beams=self.cfg.num_beams,
            do_sample=False,
            max_new_tokens=self.cfg.max_new_tokens,
            eos_token_id=eos,
            pad_token_id=tok.pad_token_id,
            num_return_sequences=self.cfg.num_beams if candidates else 1,
            **extra,
        )

    def _generate(self, tactile, shapes, candidates: bool):
        import torch

        batch = self._on_device(self.batch(tactile, shapes))
        module = self.model
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module.generate(**batch, generation_config=self.generation_config(candidates))
        finally:
            module.train(was_training)
        sequences = out.sequences if candidates else out
        new = sequences[:, batch["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return texts, (out.sequences_scores.float().cpu().numpy() if candidates else None)

    def generate_text(self, tactile, shapes) -> list[str]:
        """The answers as text: beam search (``num_beams``) until the end token, special tokens removed."""
        return self._generate(tactile, shapes, candidates=False)[0]

    def generate_candidates(self, tactile, shapes) -> tuple[list[list[str]], np.ndarray]:
        """Every beam's answer, best first: ``(texts, B lists of num_beams; log-probabilities (B, num_beams))``."""
        texts, scores = self._generate(tactile, shapes, candidates=True)
        k = self.cfg.num_beams
        return [texts[i * k : (i + 1) * k] for i in range(len(texts) // k)], scores.reshape(-1, k)

    def parse(self, texts) -> tuple[np.ndarray, np.ndarray]:
        """Actions ``(B, 3)`` and malformed flags ``(B,)`` for answer texts; malformed answers get the fallback."""
        actions = np.zeros((len(texts), 3), dtype=np.float64)  # the "zero" fallback
        malformed = np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            if self.cfg.reason != "none":  # the action follows the reason: the text from its last "["
                text = text[text.rfind("[") :] if "[" in text else text
            result = self.codec.decode(text)
            if result.ok:
                actions[i] = result.action
            else:
                malformed[i] = True
        return actions, malformed

    def predict(self, tactile, shapes) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(actions (B, 3) in mm, mm, deg; malformed (B,) bool; answer texts)``.

        An answer that is not exactly ``[int, int, int]`` within the action limits is malformed and gets the
        fallback action (zero); it never raises. With ``decoding: expected`` the action is the probability-weighted
        mean of the beams' well-formed answers (:func:`expected_action`), malformed only when none is well formed,
        and the text is the best beam's.
        """
        if self.cfg.decoding == "beam":
            texts = list(self.generate_text(tactile, shapes))
            actions, malformed = self.parse(texts)
            return actions, malformed, texts
        candidates, logp = self.generate_candidates(tactile, shapes)
        parsed = [self.parse(c) for c in candidates]
        acts = np.stack([a for a, _ in parsed])
        ok = ~np.stack([m for _, m in parsed])
        actions, malformed = expected_action(acts, ok, logp)
        return actions, malformed, [c[0] for c in candidates]

    # -- checkpoints ----------------------------------------------------------------------------------------

    @property
    def is_lora(self) -> bool:
        from peft import PeftModel

        return isinstance(self.model, PeftModel)

    def _config_record(self) -> dict:
        cfg = self.cfg.model_dump(mode="json")
        local = Path(cfg["model"]).expanduser()
        if local.is_dir():  # store an absolute path so that another working folder finds the base model
            cfg["model"] = str(local.resolve())
        return cfg

    def save(self, directory: str | Path) -> Path:
        """Write the adapter (LoRA) or the full model, tokenizer, image processor, the statistics of the tactile
        representation (``normalization.safetensors``) and ``tla_config.json``."""
        if self.tactile_stats is None and not self.cfg.tactile.is_raw:
            raise RuntimeError(
                "cannot save a TLA model whose tactile representation has no statistics: call fit_tactile_stats "
                "on training data first (or use the raw composite, tactile: {subtract: none, normalize: none})"
            )
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(d))
        self.tokenizer.save_pretrained(str(d))
        self.image_processor.save_pretrained(str(d))
        if self.tactile_stats is not None:
            from safetensors.torch import save_file

            stats = {k: v.detach().cpu().contiguous() for k, v in self.tactile_stats.items()}
            save_file(stats, str(d / STATS_FILE))
        record = {"format": "taclab-tla", "weights": "adapter" if self.is_lora else "full"}
        record["config"] = self._config_record()
        tmp = d / f".{CHECKPOINT_FILE}.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(d / CHECKPOINT_FILE)  # written last: a folder without it is incomplete
        return d

    @classmethod
    def load(cls, directory: str | Path, base: str | None = None, overrides: dict | None = None) -> TLAModel:
        """Rebuild a model saved with :meth:`save`. ``base`` replaces the saved base model location (adapters);
        ``overrides`` replace config keys (the policy lets evaluation change only its inference settings)."""
        from taclab.utils import read_json_record

        d = Path(directory)
        record = read_json_record(d / CHECKPOINT_FILE, ("weights", "config"), "not a TLA model checkpoint")
        if record["weights"] not in ("adapter", "full"):
            raise ValueError(f"{d / CHECKPOINT_FILE}: unknown weights kind {record['weights']!r}")
        config = checkpoint_config(record["config"])
        if base is not None:
            config["model"] = str(base)
        cfg = TLAConfig(**{**config, **(overrides or {})})
        self = cls.__new__(cls)
        if record["weights"] == "adapter":
            self._setup(cfg, weights=cfg.model, adapter=str(d), files=str(d))
        else:
            self._setup(cfg, weights=str(d), adapter=None)
        if cfg.tactile.is_raw:
            return self
        self.tactile_stats = load_checkpoint_stats(d)
        return self

    def merge(self, out_dir: str | Path) -> Path:
        """Write a plain Qwen2-VL folder (adapter merged into the weights) with tokenizer and image processor.

        It loads with ``Qwen2VLForConditionalGeneration.from_pretrained`` and as ``TLAConfig(model=out_dir)``.
        The model in memory is left as it is (LoRA merges a copy).
        """
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        merged = copy.deepcopy(self.model).merge_and_unload() if self.is_lora else self.model
        merged.save_pretrained(str(d))
        self.tokenizer.save_pretrained(str(d))
        self.image_processor.save_pretrained(str(d))
        return d
