"""Behavior cloning (the TLA paper's BC baseline): a ResNet on the composite tactile image regresses the action."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from taclab.policies.base import register
from taclab.policies.encoders import EncoderConfig
from taclab.policies.learned import LearnedPolicy, Prediction


class BCConfig(EncoderConfig):
    hidden: int = Field(256, ge=8, description="width of the regression head's hidden layer")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout before the head's output layer")
    loss: Literal["mse", "l1", "huber"] = Field("mse", description="regression loss on normalized actions")
    seed: int = Field(0, description="seed of the weight initialization")


@register("bc")
class BCPolicy(LearnedPolicy):
    """ResNet encoder + MLP head; actions are regressed in standardized units and un-standardized on output."""

    Config = BCConfig

    def build_model(self) -> nn.Module:
        c = self.cfg
        return nn.Sequential(
            c.build_encoder(),
            nn.Linear(c.feature_dim, c.hidden),
            nn.ReLU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, self.io.action_dim),
        )

    def _normalize(self, actions: torch.Tensor) -> torch.Tensor:
        s = self._need_stats()
        return (actions - s["action_mean"]) / s["action_std"]

    def loss(self, inputs, actions, generator):
        out = self.model(inputs["images"])
        target = self._normalize(actions)
        fn = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.smooth_l1_loss}[self.cfg.loss]
        return fn(out, target)

    def predict_batch(self, inputs, generator=None) -> Prediction:
        s = self._need_stats()
        out = self.model(inputs["images"]) * s["action_std"] + s["action_mean"]
        a = out.double().cpu().numpy()
        return Prediction(a, np.zeros(len(a), dtype=bool))
