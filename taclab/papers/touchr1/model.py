"""The Touch-R1 model: a Qwen2-VL (the tiny offline one, or any checkpoint by folder or hub id) that reads the
question's composite image (object images and tactile sequences, :mod:`.inputs`) and the question, and writes a
three-tag answer.

Batches are built with the TLA model's input builder (:func:`taclab.papers.tla.inputs.build_batch`): the same
chat layout, the answer-only loss. :func:`processor` makes the ``Qwen2VLProcessor`` that TRL's ``GRPOTrainer``
needs without a video processor (which would need torchvision).

The tactile tiles of the composite are shown in the representation ``tactile`` of :class:`ModelConfig`
(:mod:`.inputs`; by default ``center`` at gain 128); its statistics are fitted on the training split
(:meth:`TouchR1Model.fit_tactile_stats`, done by the SFT and GRPO stages when missing) and saved with the checkpoint
in ``normalization.safetensors``. A checkpoint written before the ``tactile`` key existed reads the relative-to-gel
view (:data:`taclab.papers.touchr1.inputs.RELATIVE`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from taclab.papers.touchr1.inputs import CENTER, RELATIVE
from taclab.policies.tactile_input import TactileInputConfig

CONFIG_FILE = "touchr1_config.json"
STATS_FILE = "normalization.safetensors"


class ModelConfig(BaseModel):
    """Settings of the Touch-R1 model. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(..., min_length=1, description="base Qwen2-VL or Qwen2.5-VL: a local folder or a hub id")
    image_size: int = Field(168, description="side of the composite image (a multiple of 84)")
    finetune: Literal["full", "lora"] = Field("full", description="train all weights or LoRA adapters")
    lora_r: int = Field(16, ge=1, description="LoRA rank (finetune: lora)")
    freeze_vision: bool = Field(False, description="keep the ViT frozen (its merger still trains)")
    max_new_tokens: int = Field(96, ge=8, le=1024, description="longest answer in tokens")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="weight dtype")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where the model runs: auto (a GPU when there is one), cpu or cuda"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass (saves memory)")
    tactile: TactileInputConfig = Field(
        default_factory=lambda: CENTER,
        description="representation of the tactile tiles (docs/touch_r1.md); statistics fitted on training data",
    )


def processor(tokenizer, image_processor):
    """A ``Qwen2VLProcessor`` over the given tokenizer and image processor, with no video processor."""
    from transformers import Qwen2VLProcessor

    p = Qwen2VLProcessor.__new__(Qwen2VLProcessor)
    p.image_token, p.video_token = "<|image_pad|>", "<|video_pad|>"
    p.image_token_id = tokenizer.convert_tokens_to_ids(p.image_token)
    p.video_token_id = tokenizer.convert_tokens_to_ids(p.video_token)
    p.image_processor, p.tokenizer, p.video_processor = image_processor, tokenizer, None
    p.chat_template = tokenizer.chat_template
    return p


class TouchR1Model:
    """Loads a Qwen2-VL folder (or a Touch-R1 checkpoint written by :meth:`save`) and trains / answers."""

    def __init__(self, cfg: ModelConfig | dict, weights: str | None = None):
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer

        from taclab.papers.tla.tiny import image_processor
        from taclab.policies.pretrained import require_pretrained

        self.cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig(**cfg)
        src = weights or self.cfg.model
        require_pretrained(src, "model", "build the tiny offline model with `taclab touchr1 init-tiny PATH`")
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.image_processor = image_processor(self.cfg.image_size)
        dtype = torch.bfloat16 if self.cfg.dtype == "bfloat16" else torch.float32
        device = self.cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no GPU; allowed here: auto, cpu")
        kind = AutoConfig.from_pretrained(src).model_type
        if kind not in ("qwen2_vl", "qwen2_5_vl"):
            raise ValueError(f"{src} is a {kind!r} model; allowed: a Qwen2-VL or Qwen2.5-VL checkpoint")
        model = AutoModelForImageTextToText.from_pretrained(src, dtype=dtype)
        model.to(device)
        if self.cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        if self.cfg.finetune == "lora" and weights is None:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(
                model,
                LoraConfig(
                    r=self.cfg.lora_r,
                    lora_alpha=2 * self.cfg.lora_r,
                    target_modules=r"model\.language_model\.layers\.\d+\.(?:self_attn|mlp)\.\w+_proj",
                    modules_to_save=["merger"],
                ),
            )
        elif self.cfg.freeze_vision:
            for name, p in model.model.visual.named_parameters():
                p.requires_grad_(name.startswith("merger."))
        self.model = model
        self.tactile_stats: dict | None = None  # per-sensor statistics of cfg.tactile (inputs.fit_stats)

    @classmethod
    def load(cls, folder: str | Path, **overrides) -> TouchR1Model:
        """A checkpoint written by :meth:`save`; ``overrides`` replace config keys (e.g. ``tactile``: another
        representation, whose statistics the next training stage fits; ``device``)."""
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ValueError(f"{folder} is not a Touch-R1 checkpoint (no {CONFIG_FILE})")
        config = json.loads((folder / CONFIG_FILE).read_text())
        if "tactile" not in config:  # written before the representation existed: the relative-to-gel view
            config["tactile"] = RELATIVE.model_dump()
        cfg = ModelConfig(**{**config, **overrides})
        self = cls(cfg, weights=str(folder))
        if (folder / STATS_FILE).is_file() and cfg.tactile == ModelConfig(**config).tactile:
            from safetensors.torch import load_file

            self.tactile_stats = load_file(str(folder / STATS_FILE))
        return self

    def fit_tactile_stats(self, arrays: dict, max_samples: int = 512) -> None:
        """Fit the statistics of ``cfg.tactile`` on a training split's arrays (``tactile``, ``sensors``)."""
        from taclab.papers.touchr1.inputs import fit_stats

        if self.cfg.tactile.is_raw:
            self.tactile_stats = {}
            return
        sensors = str(arrays["sensors"][0]).split(",")
        self.tactile_stats = fit_stats(arrays["tactile"], sensors, self.cfg.tactile, max_samples)

    def question_images(self, arrays_or_images, **kw):
        """:class:`taclab.papers.touchr1.inputs.QuestionImages` of a split (its arrays, or the composites of another
        view of it) in this model's representation and image size."""
        from taclab.papers.touchr1.inputs import QuestionImages

        qi = arrays_or_images
        if not isinstance(qi, QuestionImages):
            qi = QuestionImages(qi, self.cfg.image_size, **kw)
        if self.cfg.tactile == RELATIVE:
            return qi.represented(None)
        if not self.cfg.tactile.is_raw and self.tactile_stats is None and self.cfg.tactile.normalize != "none":
            raise RuntimeError(
                f"the tactile representation {self.cfg.tactile.normalize!r} needs statistics: fit them on the "
                "training split first (fit_tactile_stats)"
            )
        return qi.represented(self.cfg.tactile, self.tactile_stats or None)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.model.merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        if self.tactile_stats:
            from safetensors.torch import save_file

            stats = {k: v.detach().cpu().contiguous() for k, v in self.tactile_stats.items()}
            save_file(stats, str(folder / STATS_FILE))
        (folder / CONFIG_FILE).write_text(
            json.dumps({**self.cfg.model_dump(), "finetune": "full", "device": "auto"}, indent=2) + "\n"
        )
        return folder

    @property
    def processor(self):
        return processor(self.tokenizer, self.image_processor)

    def batch(self, images, prompts, answers=None) -> dict:
        from taclab.papers.tla.inputs import build_batch

        b = build_batch(self.tokenizer, self.image_processor, images, prompts, answers)
        dev = next(self.model.parameters()).device
        return {k: v.to(dev) for k, v in b.items()}

    def loss(self, images, prompts, answers):
        """Mean next-token loss of the answers (answer tokens only)."""
        return self.model(**self.batch(images, prompts, answers)).loss

    def generate(self, images, prompts, max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers."""
        import torch

        b = self.batch(images, prompts)
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(
                **b, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens, do_sample=False, num_beams=1
            )
        return self.tokenizer.batch_decode(out[:, b["input_ids"].shape[1] :], skip_special_tokens=True)
