"""The TLA model as a taclab policy (``--policy tla``): trained by the shared loop, evaluated by the harness.

The shared preprocessing of a TLA policy is :meth:`TLAModel.batch`: the composite image of the tactile input
representation (:func:`taclab.papers.tla.instruct.tactile_composites`, its statistics fitted by ``fit_stats``),
the instruction of the task's peg shape and, for training, the action encoded as text by the action codec.
Training, offline evaluation and ``select_action`` all go through it. ``select_action`` writes the answer by beam
search (with ``decoding: expected``, the action is the probability-weighted mean of the beams' answers); a
malformed answer gives the fallback action and sets ``last_malformed`` (counted by the evaluation, never fatal).
The answer texts of the last call are kept in ``last_texts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taclab.papers.tla.model import TLAConfig, TLAModel
from taclab.policies.base import Policy, register
from taclab.policies.learned import LearnedPolicy, Prediction


@register("tla")
class TLAPolicy(LearnedPolicy):
    """A Qwen2-VL that reads the composite tactile image and the instruction and writes the action as text."""

    Config = TLAConfig
    TASK_KEYS = ("shape",)
    INFERENCE_KEYS = ("decoding", "num_beams", "max_new_tokens")

    def build_model(self) -> torch.nn.Module:
        self.tla = TLAModel(self.cfg)
        return self.tla.model

    def _init_state(self) -> None:
        super()._init_state()
        self.last_texts: list[str] = []

    def config(self) -> dict:
        return self.tla._config_record()  # the base model's location made absolute

    REASON_KEYS = ("error", "clearance_mm")
    """The dataset columns the reason texts of ``reason`` are written from (the simulator's pose error)."""

    def training_keys(self) -> tuple[str, ...]:
        return () if self.cfg.reason == "none" else self.REASON_KEYS

    def fit_stats(self, batch, actions, max_images: int = 512) -> None:
        """The statistics of the tactile input representation (none for the raw images), saved with the model;
        the target is the action's text, so actions need none. With ``reason``, refuses a ``max_new_tokens``
        shorter than the longest answer of the training data (such an answer could never be written)."""
        self.check_batch(batch)
        self.stats = {}
        self.tla.fit_tactile_stats(np.asarray(batch[self.io.image_sequence_key()]), max_images)
        if self.cfg.reason != "none":
            reasons = self.tla.reasons(batch["error"], batch["clearance_mm"])
            longest = self.tla.answer_tokens(self.tla.answer_texts(np.asarray(actions), reasons))
            if longest > self.cfg.max_new_tokens:
                raise ValueError(
                    f"with reason: {self.cfg.reason} the longest answer has {longest} tokens, more than "
                    f"max_new_tokens {self.cfg.max_new_tokens}; set model.max_new_tokens to at least {longest}"
                )

    def prepare(self, batch) -> dict:
        self.check_batch(batch)
        tactile = np.asarray(batch[self.io.image_sequence_key()])
        inputs = {"tactile": tactile, "shapes": [str(s) for s in batch["shape"]]}
        if self.cfg.reason != "none" and all(k in batch for k in self.REASON_KEYS):  # training only
            inputs["reasons"] = self.tla.reasons(batch["error"], batch["clearance_mm"])
        return inputs

    def loss(self, inputs, actions, generator):
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        batch = self.tla.batch(inputs["tactile"], inputs["shapes"], a, inputs.get("reasons"))
        batch = {k: v.to(self.device) for k, v in batch.items()}
        return self.model(**batch, use_cache=False).loss  # through self.model: the accelerate-wrapped module

    def predict_batch(self, inputs, generator=None) -> Prediction:
        actions, malformed, texts = self.tla.predict(inputs["tactile"], inputs["shapes"])
        self.last_texts = list(texts)
        return Prediction(actions, malformed)

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        self.tla.save(d)
        return Policy.save(self, d)  # policy.json last

    @classmethod
    def load(cls, directory: str | Path, overrides: dict | None = None) -> TLAPolicy:
        from taclab.policies.base import check_overrides

        d = Path(directory)
        _, io = cls.read_io(d)
        # the model comes from the checkpoint, not from the config's base model
        tla = TLAModel.load(d, overrides=check_overrides(cls, overrides))
        self = cls.from_parts(tla.cfg, io, tla.model, {})
        self.tla = tla
        return self
