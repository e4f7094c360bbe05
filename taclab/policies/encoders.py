"""Tactile image encoders: ResNets from ``transformers`` (randomly initialized), sized by a preset."""

from __future__ import annotations

import torch
from torch import nn

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


class TactileEncoder(nn.Module):
    """ResNet trunk + global average pool + linear projection to ``feature_dim``."""

    def __init__(self, preset: str = "small", feature_dim: int = 256):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        if preset not in ENCODER_PRESETS:
            raise ValueError(f"unknown encoder {preset!r}; allowed: {sorted(ENCODER_PRESETS)}")
        cfg = ResNetConfig(num_channels=3, **ENCODER_PRESETS[preset])
        self.trunk = ResNetModel(cfg)
        self.proj = nn.Sequential(nn.Linear(cfg.hidden_sizes[-1], feature_dim), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.trunk(pixel_values=images).pooler_output.flatten(1)
        return self.proj(pooled)
