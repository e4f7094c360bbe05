"""Diffusion Policy (the TLA paper's DP baseline): a conditional denoising diffusion model over the action.

A denoising network (residual MLP blocks modulated by FiLM from the timestep and the tactile feature) is trained
with the DDPM loss on actions scaled to [-1, 1], predicting the clean action (``prediction_type: sample``, the
default) or the noise (``epsilon``, as in the Diffusion Policy paper). With ``epsilon`` the tactile encoder hardly
learns the weaker cues: at high noise levels the target is almost the noisy input itself, so the loss barely
depends on the observation (measured in docs/tla_recipe.md: the sign of y at chance with ``epsilon``, 81 % with
``sample``). The composite is read at 96 px by default, half the TLA data's 192 px: at full size the encoder
did not learn the sign of y within 3 epochs on the full single-peg data (52 %), at 96 px it reads it at 94.7 %
(docs/tla_recipe.md). At inference, diffusers' DDIM (or DDPM) scheduler denoises from Gaussian noise (scaled by
``init_noise_scale``) in ``inference_steps`` steps; with ``num_samples`` > 1 it returns the mean (``reduce:
mean``) or the per-axis median (``reduce: median``) of that many draws per observation. The median is the action
that minimizes the expected L1 error under the learned distribution, and its sign is the majority of the draws'
signs; the mean is what a regression trained with MSE (BC) predicts. Sampling draws from the policy's own
``torch.Generator``, re-seeded by ``reset``, so a policy gives the same actions for the same observations.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from taclab.policies.base import register
from taclab.policies.encoders import EncoderConfig
from taclab.policies.learned import LearnedPolicy, Prediction


class DPConfig(EncoderConfig):
    image_size: int | None = Field(
        96,
        ge=16,
        le=1024,
        description="composite size in px; None keeps 3 x tile. 96 by default (the 192 px composite of the TLA "
        "data's 64 px tiles halved, antialiased): at 96 px the encoder learns the sign of y, at 192 px it did not "
        "within the training budget (docs/tla_recipe.md). With layout stacked the default is None (the tile size)",
    )
    hidden: int = Field(256, ge=8, description="width of the denoiser's residual blocks")
    blocks: int = Field(3, ge=1, description="number of residual FiLM blocks")
    train_timesteps: int = Field(100, ge=2, description="diffusion steps of the training noise schedule")
    beta_schedule: Literal["squaredcos_cap_v2", "linear", "scaled_linear"] = Field(
        "squaredcos_cap_v2", description="noise schedule of the DDPM/DDIM schedulers"
    )
    prediction_type: Literal["epsilon", "sample"] = Field(
        "sample",
        description="what the denoiser predicts: the clean action (sample; trains the tactile encoder much better, "
        "docs/tla_recipe.md) or the noise (epsilon, the Diffusion Policy paper's)",
    )
    scheduler: Literal["ddim", "ddpm"] = Field("ddim", description="sampler used at inference")
    inference_steps: int = Field(10, ge=1, description="denoising steps at inference")
    init_noise_scale: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="scale of the Gaussian noise sampling starts from: 1 samples the learned action distribution; "
        "0 starts from its centre and, with the deterministic DDIM sampler, gives one action per observation",
    )
    num_samples: int = Field(
        1,
        ge=1,
        le=256,
        description="actions drawn per observation, made one by `reduce` (the mean by default): 1 returns one "
        "sample of the learned distribution (the Diffusion Policy paper's); more estimate its mean, so an axis the "
        "policy is unsure of moves little, as a regression's would (docs/tla_recipe.md)",
    )
    reduce: Literal["mean", "median"] = Field(
        "mean",
        description="how the num_samples draws of an observation become one action: their mean (minimizes the "
        "expected squared error, what an MSE regression predicts) or their per-axis median (minimizes the expected "
        "L1 error; its sign is the majority of the draws' signs)",
    )
    seed: int = Field(0, description="seed of the weight initialization and of the sampling generator")

    @model_validator(mode="before")
    @classmethod
    def _stacked_keeps_tile_size(cls, data):
        """The 96 px default is a composite size; a stacked input keeps its tile size unless told otherwise."""
        if isinstance(data, dict) and data.get("layout") == "stacked" and "image_size" not in data:
            data = {**data, "image_size": None}
        return data

    @model_validator(mode="after")
    def _check(self):
        if self.inference_steps > self.train_timesteps:
            raise ValueError(
                f"inference_steps ({self.inference_steps}) must not exceed train_timesteps ({self.train_timesteps})"
            )
        return self


def _timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class _FiLMBlock(nn.Module):
    def __init__(self, width: int, cond: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.lin1 = nn.Linear(width, width)
        self.film = nn.Linear(cond, 2 * width)
        self.lin2 = nn.Linear(width, width)

    def forward(self, x, c):
        scale, shift = self.film(c).chunk(2, -1)
        h = F.mish(self.lin1(self.norm(x)))
        h = h * (1 + scale) + shift
        return x + self.lin2(F.mish(h))


class _Denoiser(nn.Module):
    def __init__(self, cfg: DPConfig, action_dim: int):
        super().__init__()
        self.encoder = cfg.build_encoder()
        self.t_dim = 64
        cond = cfg.feature_dim + self.t_dim
        self.inp = nn.Linear(action_dim, cfg.hidden)
        self.blocks = nn.ModuleList(_FiLMBlock(cfg.hidden, cond) for _ in range(cfg.blocks))
        self.out = nn.Linear(cfg.hidden, action_dim)

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.denoise(noisy, t, self.encoder(images))

    def denoise(self, noisy: torch.Tensor, t: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        c = torch.cat([feature, _timestep_embedding(t, self.t_dim)], 1)
        x = self.inp(noisy)
        for b in self.blocks:
            x = b(x, c)
        return self.out(x)


@register("dp")
class DiffusionPolicy(LearnedPolicy):
    Config = DPConfig
    INFERENCE_KEYS = ("scheduler", "inference_steps", "init_noise_scale", "num_samples", "reduce")

    def build_model(self) -> nn.Module:
        from diffusers import DDIMScheduler, DDPMScheduler

        c = self.cfg
        kw = {"num_train_timesteps": c.train_timesteps, "beta_schedule": c.beta_schedule, "clip_sample": True}
        kw["prediction_type"] = c.prediction_type
        self.train_scheduler = DDPMScheduler(**kw)
        self.sampler = (DDIMScheduler if c.scheduler == "ddim" else DDPMScheduler)(**kw)
        return _Denoiser(c, self.io.action_dim)

    def _scale(self, actions):
        s = self._need_stats()
        return 2 * (actions - s["action_min"]) / (s["action_max"] - s["action_min"]) - 1

    def _unscale(self, x):
        s = self._need_stats()
        return (x + 1) / 2 * (s["action_max"] - s["action_min"]) + s["action_min"]

    def loss(self, inputs, actions, generator):
        x0 = self._scale(actions)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.randint(0, self.cfg.train_timesteps, (len(x0),), generator=generator).to(x0.device)
        noisy = self.train_scheduler.add_noise(x0, noise, t)
        target = noise if self.cfg.prediction_type == "epsilon" else x0
        return F.mse_loss(self.model(noisy, t, inputs["images"]), target)

    def predict_batch(self, inputs, generator=None) -> Prediction:
        feature = self.model.encoder(inputs["images"])
        n, k = len(feature), self.cfg.num_samples
        # k draws per observation in one batch: sample j of observation i is row j * n + i
        feature = feature.repeat(k, 1)
        x = torch.randn((len(feature), self.io.action_dim), generator=generator).to(feature.device)
        x = x * self.cfg.init_noise_scale
        self.sampler.set_timesteps(self.cfg.inference_steps)
        for t in self.sampler.timesteps:
            out = self.model.denoise(x, t.to(x.device).expand(len(x)), feature)
            x = self.sampler.step(out, t, x, generator=generator).prev_sample
        x = x.clamp(-1, 1).reshape(k, n, -1)
        # quantile, not torch.median: with an even number of draws it averages the two middle ones
        x = x.quantile(0.5, dim=0) if self.cfg.reduce == "median" else x.mean(0)
        a = self._unscale(x).double().cpu().numpy()
        return Prediction(a, np.zeros(len(a), dtype=bool))
