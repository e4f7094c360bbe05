"""The Touch-R1 model: a Qwen2-VL (the tiny offline one, or any checkpoint by folder or hub id) that reads the
question's composite image (object images and tactile sequences, :mod:`.inputs`) and the question, and writes a
three-tag answer.

Batches are built with the TLA model's input builder (:func:`taclab.papers.tla.inputs.build_batch`): the same
chat layout, the answer-only loss. :func:`processor` makes the ``Qwen2VLProcessor`` that TRL's ``GRPOTrainer``
needs without a video processor (which would need torchvision).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CONFIG_FILE = "touchr1_config.json"


class ModelConfig(BaseModel):
    """Settings of the Touch-R1 model. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str = Field(..., min_length=1, description="base Qwen2-VL: a local folder or a hub id")
    image_size: int = Field(168, description="side of the composite image (a multiple of 84)")
    finetune: Literal["full", "lora"] = Field("full", description="train all weights or LoRA adapters")
    lora_r: int = Field(16, ge=1, description="LoRA rank (finetune: lora)")
    freeze_vision: bool = Field(False, description="keep the ViT frozen (its merger still trains)")
    max_new_tokens: int = Field(96, ge=8, le=1024, description="longest answer in tokens")
    dtype: Literal["float32", "bfloat16"] = Field("float32", description="weight dtype")


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
        from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration

        from taclab.papers.tla.tiny import image_processor
        from taclab.policies.pretrained import require_pretrained

        self.cfg = cfg if isinstance(cfg, ModelConfig) else ModelConfig(**cfg)
        src = weights or self.cfg.model
        require_pretrained(src, "model", "build the tiny offline model with `taclab touchr1 init-tiny PATH`")
        self.tokenizer = AutoTokenizer.from_pretrained(src)
        self.image_processor = image_processor(self.cfg.image_size)
        dtype = torch.bfloat16 if self.cfg.dtype == "bfloat16" else torch.float32
        model = Qwen2VLForConditionalGeneration.from_pretrained(src, dtype=dtype)
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

    @classmethod
    def load(cls, folder: str | Path) -> TouchR1Model:
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ValueError(f"{folder} is not a Touch-R1 checkpoint (no {CONFIG_FILE})")
        cfg = ModelConfig(**json.loads((folder / CONFIG_FILE).read_text()))
        return cls(cfg, weights=str(folder))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.model.merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        (folder / CONFIG_FILE).write_text(json.dumps({**self.cfg.model_dump(), "finetune": "full"}, indent=2) + "\n")
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
