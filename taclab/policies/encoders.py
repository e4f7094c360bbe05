"""Tactile image encoders: ResNets from ``transformers`` (randomly initialized), sized by a preset."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from taclab.policies.tactile_input import REFERENCE_CHANNEL, TactileInputConfig

ENCODER_PRESETS: dict[str, dict] = {
    # widths and depths of the four ResNet stages
    "small": {"embedding_size": 16, "hidden_sizes": [16, 32, 64, 128], "depths": [1, 1, 1, 1], "layer_type": "basic"},
    "resnet18": {
        "embedding_size": 64,
        "hidden_sizes": [64, 128, 256, 512],
        "depths": [2, 2, 2, 2],
        "layer_type": "basic",
    },
    "resnet50": {
        "embedding_size": 64,
        "hidden_sizes": [256, 512, 1024, 2048],
        "depths": [3, 4, 6, 3],
        "layer_type": "bottleneck",
    },
}
"""``small`` is the CPU default (0.3 M parameters); ``resnet50`` is the paper's BC backbone (23.5 M)."""


POOLINGS = ("avg", "spatial_softmax")


class SpatialSoftmax(nn.Module):
    """Per channel, the softmax-weighted mean image coordinate: 2 numbers (x, y in [-1, 1]) per channel."""

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        b, c, h, w = fmap.shape
        attn = fmap.flatten(2).softmax(-1).reshape(b, c, h, w)
        ys = torch.linspace(-1, 1, h, device=fmap.device, dtype=fmap.dtype)
        xs = torch.linspace(-1, 1, w, device=fmap.device, dtype=fmap.dtype)
        return torch.cat([(attn.sum(2) * xs).sum(-1), (attn.sum(3) * ys).sum(-1)], 1)


class TactileEncoder(nn.Module):
    """ResNet trunk, then global average pooling (``avg``) or spatial-softmax keypoints (``spatial_softmax``,
    which keep where each feature is: which tile, which pad), then a linear projection to ``feature_dim``."""

    def __init__(self, preset: str = "small", feature_dim: int = 256, pooling: str = "avg", channels: int = 3):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        if preset not in ENCODER_PRESETS:
            raise ValueError(f"unknown encoder {preset!r}; allowed: {sorted(ENCODER_PRESETS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; allowed: {list(POOLINGS)}")
        cfg = ResNetConfig(num_channels=channels, **ENCODER_PRESETS[preset])
        self.trunk = ResNetModel(cfg)
        self.pooling = pooling
        width = cfg.hidden_sizes[-1]
        self.keypoints = SpatialSoftmax() if pooling == "spatial_softmax" else None
        self.proj = nn.Sequential(nn.Linear(width * (2 if self.keypoints else 1), feature_dim), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.trunk(pixel_values=images)
        if self.keypoints is not None:
            return self.proj(self.keypoints(out.last_hidden_state))
        return self.proj(out.pooler_output.flatten(1))


class EncoderConfig(BaseModel):
    """The config keys of a policy's tactile encoder (shared by ``bc`` and ``dp``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: Literal["small", "resnet18", "resnet50"] = Field("small", description="ResNet preset of the encoder")
    image_size: int | None = Field(None, ge=16, le=1024, description="composite size in px; None keeps 3 x tile")
    layout: Literal["composite", "stacked"] = Field(
        "composite",
        description="how the 4 frames x 2 pads reach the encoder: the paper's 3x3 composite image (3 channels), or "
        "stacked as the channels of one tile-sized image (24 channels: every pixel sees both pads at every frame)",
    )
    pooling: Literal["avg", "spatial_softmax"] = Field(
        "avg", description="how the ResNet's feature map becomes a vector: average or keypoints"
    )
    feature_dim: int = Field(256, ge=8, description="width of the encoder's projected feature")
    tactile: TactileInputConfig = Field(
        default_factory=lambda: REFERENCE_CHANNEL,
        description="tactile input representation (docs/training.md); by default the difference from the sensor's "
        "no-contact image, standardized per channel (measured best for BC and DP, docs/tla_recipe.md)",
    )

    def build_encoder(self) -> TactileEncoder:
        channels = 3 if self.layout == "composite" else 24
        return TactileEncoder(self.encoder, self.feature_dim, self.pooling, channels)
