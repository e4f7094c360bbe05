"""The TLA model as a taclab policy (``--policy tla``): trained by the shared loop, evaluated by the harness.

The shared preprocessing of a TLA policy is :meth:`TLAModel.batch`: the composite image of
:func:`taclab.data.instruct.composite_image`, the instruction of the task's peg shape and, for training, the
action encoded as text by the action codec. Training, offline evaluation and ``act`` all go through it.
``act`` writes the answer by beam search; a malformed answer gives the fallback action and sets
``last_malformed`` (counted by the evaluation, never fatal). The answer texts of the last call are kept in
``last_texts``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taclab.policies.base import Policy, _read_meta, register
from taclab.policies.learned import LearnedPolicy, Prediction
from taclab.policies.preprocess import tactile_batch
from taclab.policies.tla.model import TLAConfig, TLAModel


@register("tla")
class TLAPolicy(LearnedPolicy):
    """A Qwen2-VL that reads the composite tactile image and the instruction and writes the action as text."""

    Config = TLAConfig

    def build_model(self) -> torch.nn.Module:
        self.tla = TLAModel(self.cfg)
        self.last_texts: list[str] = []
        self.stats = {}
        return self.tla.model

    def config(self) -> dict:
        return self.tla._config_record()  # the base model's location made absolute

    def fit_stats(self, tactile, actions, max_images: int = 512) -> None:
        """Nothing to fit: the target is the action's text, the image processor normalizes the image."""
        self.stats = {}

    def prepare(self, tactile, shapes: list[str] | None = None) -> dict:
        t = tactile_batch(tactile)
        shapes = list(shapes) if shapes is not None else [self.task.get("shape", "square")] * len(t)
        if len(shapes) != len(t):
            raise ValueError(f"got {len(t)} tactile sequences but {len(shapes)} shapes")
        return {"tactile": t, "shapes": shapes}

    def loss(self, inputs, actions, generator):
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        batch = self.tla.batch(inputs["tactile"], inputs["shapes"], a)
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
    def load(cls, directory: str | Path) -> TLAPolicy:
        d = Path(directory)
        _read_meta(d, cls.name)
        self = cls.__new__(cls)  # the model comes from the checkpoint, not from building the config's base model
        self._init_state()
        self.tla = TLAModel.load(d)
        self.cfg = self.tla.cfg
        self.model = self.tla.model
        self.stats = {}
        self.last_texts = []
        return self
