"""Point-cloud diffusion policy (VT-Refine's policy): a PointNet over the visuo-tactile point cloud plus the
proprioceptive state conditions a 1-D temporal U-Net (FiLM) that denoises a chunk of future actions.

Inputs (dataset keys; in closed loop the env's ``point_cloud`` and ``state`` are read under these names):

- ``observation.point_cloud`` (N, 6): columns ``x, y, z, visual, tactile, pressure``
  (:data:`taclab.sim.pointcloud.POINT_FEATURES`), the visual points first, then the tactile points;
- ``observation.state`` (S,): the hands' poses and grippers.

Model:

- **point selection**: every visual point and every ``tactile_keep``-th tactile point (``use_tactile: false``, the
  vision-only variant, drops the tactile points altogether); the layout is read from the flags of the first cloud
  of a batch (every cloud of an env has the same layout);
- **PointNet**: per point the standardized position, both flags and the pressure (zero with
  ``use_pressure: false``) go through a shared MLP (``point_widths``, LayerNorm and ReLU), max-pooled over the
  points and projected to ``feature_dim``;
- **condition**: the point feature, the standardized state and a sinusoidal embedding of the diffusion step
  (through a small MLP);
- **1-D temporal U-Net** over the chunk (``horizon`` x action_dim, actions scaled to [-1, 1] by the training
  data's per-dimension min/max): residual blocks of two Conv1d + GroupNorm + Mish, FiLM (per-channel scale and
  shift from the condition) after the first convolution, ``unet_channels`` per level, down-sampling by 2 between
  levels and skip connections on the way up.

Diffusion: DDPM with ``train_timesteps`` (100) steps and the cosine (``squaredcos_cap_v2``) schedule; the network
predicts the noise (``epsilon``) or the clean chunk (``sample``). Sampling is DDIM in ``inference_steps`` steps at
"trailing" timesteps (``T - 1, T - 1 - T/K, ...``; the last jumps to the clean chunk), deterministic given the
initial noise (:meth:`PointCloudDiffusionPolicy.ddim_mean` is the mean of one step; DPPO adds Gaussian noise
around it, :mod:`taclab.rl.dppo`). The initial noise comes from the policy's generator, re-seeded by ``reset``.

Execution: ``select_action`` runs the first ``n_action_steps`` (8) actions of each predicted chunk of 16
(:class:`~taclab.policies.chunking.ActionQueue`), then predicts again. ``predict_batch`` (offline validation)
returns the first action of each chunk. With ``frozen_steps > 0`` the model holds a second denoiser (``frozen``)
used for the first ``frozen_steps`` DDIM steps: what DPPO writes when it fine-tunes only the last steps.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from taclab.policies.base import register
from taclab.policies.chunking import ActionQueue
from taclab.policies.learned import LearnedPolicy, Prediction

CLOUD, STATE = "observation.point_cloud", "observation.state"
PCDP_STAT_KEYS = ("xyz_mean", "xyz_std", "state_mean", "state_std", "action_min", "action_max")
VISUAL_COL, TACTILE_COL, PRESSURE_COL = 3, 4, 5


class PointCloudDPConfig(BaseModel):
    """The point-cloud diffusion policy. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_tactile: bool = Field(True, description="read the tactile points (false: the vision-only variant)")
    use_pressure: bool = Field(True, description="give the PointNet each tactile point's pressure")
    tactile_keep: int = Field(2, ge=1, le=64, description="keep every n-th tactile point (1: all of them)")
    point_widths: tuple[int, ...] = Field((64, 128), description="widths of the PointNet's shared per-point MLP")
    feature_dim: int = Field(128, ge=8, description="size of the point-cloud feature")
    step_embed: int = Field(64, ge=8, description="size of the diffusion-step embedding")
    unet_channels: tuple[int, ...] = Field((64, 128), description="channels of the U-Net's levels")
    kernel_size: int = Field(5, ge=1, description="temporal convolution kernel (odd)")
    groups: int = Field(8, ge=1, description="GroupNorm groups of the U-Net's convolutions")
    horizon: int = Field(16, ge=2, description="actions per predicted chunk")
    n_action_steps: int = Field(8, ge=1, description="actions of each chunk executed before predicting again")
    train_timesteps: int = Field(100, ge=2, description="diffusion steps of the training noise schedule")
    beta_schedule: Literal["squaredcos_cap_v2", "linear"] = Field(
        "squaredcos_cap_v2", description="noise schedule (squaredcos_cap_v2: the cosine schedule)"
    )
    prediction_type: Literal["epsilon", "sample"] = Field(
        "sample",
        description="what the network predicts: the clean chunk (sample; fits the demonstrations far better here, "
        "docs/vt_refine.md) or the noise (epsilon)",
    )
    inference_steps: int = Field(5, ge=1, description="DDIM steps at inference")
    frozen_steps: int = Field(
        0, ge=0, description="the first this many DDIM steps use the frozen denoiser (written by DPPO; 0: none)"
    )
    seed: int = Field(0, description="seed of the weight initialization and of the sampling generator")

    @model_validator(mode="after")
    def _check(self):
        if self.inference_steps > self.train_timesteps:
            raise ValueError(
                f"inference_steps ({self.inference_steps}) must not exceed train_timesteps ({self.train_timesteps})"
            )
        if self.n_action_steps > self.horizon:
            raise ValueError(f"n_action_steps ({self.n_action_steps}) must not exceed horizon ({self.horizon})")
        if self.frozen_steps >= self.inference_steps:
            raise ValueError(f"frozen_steps ({self.frozen_steps}) must be below inference_steps")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not self.point_widths or not self.unet_channels:
            raise ValueError("point_widths and unet_channels need at least one value each")
        if self.horizon % 2 ** (len(self.unet_channels) - 1):
            n = 2 ** (len(self.unet_channels) - 1)
            raise ValueError(f"horizon ({self.horizon}) must be divisible by 2 ** (levels - 1) = {n}")
        bad = [c for c in self.unet_channels if c % self.groups]
        if bad:
            raise ValueError(f"unet_channels {bad} are not multiples of groups ({self.groups})")
        return self


# ------------------------------------------------------------------------------------------------- the model
def step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of diffusion steps (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], 1)


class PointNet(nn.Module):
    """Shared per-point MLP (LayerNorm, ReLU), max pooling over the points, linear projection."""

    def __init__(self, widths: tuple[int, ...], out: int, in_dim: int = 6):
        super().__init__()
        layers, c = [], in_dim
        for w in widths:
            layers += [nn.Linear(c, w), nn.LayerNorm(w), nn.ReLU()]
            c = w
        self.mlp = nn.Sequential(*layers)
        self.proj = nn.Sequential(nn.Linear(c, out), nn.LayerNorm(out))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.proj(self.mlp(points).max(1).values)


class ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, groups: int):
        super().__init__(nn.Conv1d(cin, cout, k, padding=k // 2), nn.GroupNorm(groups, cout), nn.Mish())


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts each channel after the first; residual 1x1 conv."""

    def __init__(self, cin: int, cout: int, cond: int, k: int, groups: int):
        super().__init__()
        self.b1, self.b2 = ConvBlock(cin, cout, k, groups), ConvBlock(cout, cout, k, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c)[:, :, None].chunk(2, 1)
        h = self.b1(x) * (1 + scale) + shift
        return self.b2(h) + self.skip(x)


class TemporalUNet(nn.Module):
    """1-D U-Net over the chunk's time axis, every block FiLM-conditioned: per level two residual blocks, halving
    the time axis between levels; on the way up each level concatenates the down path's output of its size."""

    def __init__(self, action_dim: int, cond: int, channels: tuple[int, ...], k: int, groups: int):
        super().__init__()
        pairs = list(zip([action_dim, *channels[:-1]], channels, strict=True))
        self.down = nn.ModuleList()
        for i, (a, b) in enumerate(pairs):
            down = nn.Conv1d(b, b, 3, 2, 1) if i < len(pairs) - 1 else nn.Identity()
            self.down.append(
                nn.ModuleList([FiLMResBlock(a, b, cond, k, groups), FiLMResBlock(b, b, cond, k, groups), down])
            )
        c = channels[-1]
        self.mid = nn.ModuleList([FiLMResBlock(c, c, cond, k, groups), FiLMResBlock(c, c, cond, k, groups)])
        self.up = nn.ModuleList()
        for a, b in reversed(pairs[1:]):
            self.up.append(
                nn.ModuleList(
                    [FiLMResBlock(2 * b, a, cond, k, groups), FiLMResBlock(a, a, cond, k, groups),
                     nn.ConvTranspose1d(a, a, 4, 2, 1)]
                )
            )  # fmt: skip
        c0 = channels[0]
        self.final = nn.Sequential(ConvBlock(c0, c0, k, groups), nn.Conv1d(c0, action_dim, 1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """(B, horizon, action_dim) -> (B, horizon, action_dim); horizon divisible by 2 ** (levels - 1)."""
        h = x.transpose(1, 2)
        skips = []
        for r1, r2, down in self.down:
            h = r2(r1(h, c), c)
            skips.append(h)
            h = down(h)
        for r in self.mid:
            h = r(h, c)
        for r1, r2, up in self.up:
            h = up(r2(r1(torch.cat([h, skips.pop()], 1), c), c))
        return self.final(h).transpose(1, 2)


class Denoiser(nn.Module):
    """PointNet + state + step embedding -> condition; the U-Net predicts the noise or the clean chunk."""

    def __init__(self, cfg: PointCloudDPConfig, state_dim: int, action_dim: int):
        super().__init__()
        self.pointnet = PointNet(cfg.point_widths, cfg.feature_dim)
        e = cfg.step_embed
        self.step_mlp = nn.Sequential(nn.Linear(e, 2 * e), nn.Mish(), nn.Linear(2 * e, e))
        self.step_dim = e
        self.unet = TemporalUNet(
            action_dim, cfg.feature_dim + state_dim + e, cfg.unet_channels, cfg.kernel_size, cfg.groups
        )

    def encode(self, points: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The observation's part of the condition (B, feature_dim + state_dim)."""
        return torch.cat([self.pointnet(points), state], 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs_cond: torch.Tensor) -> torch.Tensor:
        c = torch.cat([obs_cond, self.step_mlp(step_embedding(t, self.step_dim))], 1)
        return self.unet(x, c)


class PCDPModel(nn.Module):
    """The denoiser (``net``) and, with ``frozen_steps``, the frozen denoiser of the first DDIM steps."""

    def __init__(self, cfg: PointCloudDPConfig, state_dim: int, action_dim: int):
        super().__init__()
        self.net = Denoiser(cfg, state_dim, action_dim)
        self.frozen = Denoiser(cfg, state_dim, action_dim) if cfg.frozen_steps else None


# ------------------------------------------------------------------------------------------------ the schedule
def alphas_cumprod(train_timesteps: int, beta_schedule: str) -> torch.Tensor:
    """The cumulative products of (1 - beta) of the training schedule (diffusers' DDPM scheduler's)."""
    from diffusers import DDPMScheduler

    s = DDPMScheduler(num_train_timesteps=train_timesteps, beta_schedule=beta_schedule)
    return s.alphas_cumprod.to(torch.float64).clone()


def ddim_timesteps(train_timesteps: int, steps: int) -> list[tuple[int, int]]:
    """(t, t_prev) of each DDIM step at trailing spacing; t_prev = -1 means the clean chunk (alpha-bar 1)."""
    ts = [int(v) for v in np.round(np.arange(train_timesteps, 0, -train_timesteps / steps)).astype(int) - 1]
    return list(zip(ts, [*ts[1:], -1], strict=True))


@register("pointcloud_dp")
class PointCloudDiffusionPolicy(LearnedPolicy):
    """See the module docstring."""

    Config = PointCloudDPConfig
    INFERENCE_KEYS = ("n_action_steps",)

    def _init_state(self) -> None:
        super()._init_state()
        self.queue = ActionQueue(self.cfg.n_action_steps)
        self._index_cache: dict[tuple, np.ndarray] = {}

    def build_model(self) -> nn.Module:
        io = self.io
        for key in (CLOUD, STATE):
            if key not in io.inputs:
                raise ValueError(f"the {self.name} policy reads {key!r}; the inputs are {sorted(io.inputs)}")
        cloud = io.inputs[CLOUD].shape
        if len(cloud) != 2 or cloud[1] != 6:
            raise ValueError(f"{CLOUD} must be (N, 6) points, got {cloud}")
        ab = alphas_cumprod(self.cfg.train_timesteps, self.cfg.beta_schedule)
        self.alpha_bar = ab.float()
        return PCDPModel(self.cfg, io.inputs[STATE].shape[0], io.action_dim)

    # -- inputs -------------------------------------------------------------------------------------------------
    def point_index(self, cloud0: np.ndarray) -> np.ndarray:
        """Indices of the points the policy reads, from one cloud's flags: the visual points and every
        ``tactile_keep``-th tactile point (none without ``use_tactile``)."""
        key = (cloud0.shape[0], cloud0[:, VISUAL_COL].tobytes(), cloud0[:, TACTILE_COL].tobytes())
        if key not in self._index_cache:
            vis = np.flatnonzero(cloud0[:, VISUAL_COL] > 0.5)
            tac = np.flatnonzero(cloud0[:, TACTILE_COL] > 0.5)[:: self.cfg.tactile_keep]
            idx = np.concatenate([vis, tac]) if self.cfg.use_tactile else vis
            if len(idx) == 0:
                raise ValueError(f"{CLOUD} holds no point this policy reads (use_tactile={self.cfg.use_tactile})")
            self._index_cache = {key: idx}
        return self._index_cache[key]

    def fit_stats(self, batch: dict[str, np.ndarray], actions: np.ndarray, max_images: int = 512) -> None:
        """Position mean/std over the visual points, state mean/std and per-dimension action min/max of the
        training data; ``actions`` are (N, action_dim) or chunks (N, horizon, action_dim)."""
        n = self.check_batch(batch)
        cloud = np.asarray(batch[CLOUD][: min(n, 2048)], np.float64)
        vis = cloud[..., VISUAL_COL] > 0.5
        xyz = cloud[..., :3][vis]
        state = np.asarray(batch[STATE], np.float64)
        a = np.asarray(actions, np.float64).reshape(-1, self.io.action_dim)
        lo, hi = a.min(0), a.max(0)
        span = np.maximum(hi - lo, 1e-4)  # a constant dimension gets a small span around its value
        mid = (hi + lo) / 2
        stats = {
            "xyz_mean": xyz.mean(0),
            "xyz_std": np.maximum(xyz.std(0), 1e-3),
            "state_mean": state.mean(0),
            "state_std": np.maximum(state.std(0), 1e-4),
            "action_min": mid - span / 2,
            "action_max": mid + span / 2,
        }
        self.stats = {k: torch.tensor(v, dtype=torch.float32, device=self.device) for k, v in stats.items()}

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """Selected points with standardized positions (B, M, 6) and the standardized state (B, S)."""
        s = self._need_stats()
        self.check_batch(batch)
        cloud = np.asarray(batch[CLOUD])
        pts = torch.as_tensor(cloud[:, self.point_index(cloud[0])], dtype=torch.float32, device=self.device)
        xyz = (pts[..., :3] - s["xyz_mean"]) / s["xyz_std"]
        flags = pts[..., VISUAL_COL : PRESSURE_COL + 1]
        if not self.cfg.use_pressure:
            flags = torch.cat([flags[..., :2], torch.zeros_like(flags[..., 2:])], -1)
        state = torch.as_tensor(np.asarray(batch[STATE]), dtype=torch.float32, device=self.device)
        return {"points": torch.cat([xyz, flags], -1), "state": (state - s["state_mean"]) / s["state_std"]}

    def scale(self, actions: torch.Tensor) -> torch.Tensor:
        s = self._need_stats()
        return 2 * (actions - s["action_min"]) / (s["action_max"] - s["action_min"]) - 1

    def unscale(self, x: torch.Tensor) -> torch.Tensor:
        s = self._need_stats()
        return (x + 1) / 2 * (s["action_max"] - s["action_min"]) + s["action_min"]

    def _chunks(self, actions: torch.Tensor) -> torch.Tensor:
        h = self.cfg.horizon
        if actions.ndim == 2:
            return actions[:, None].expand(-1, h, -1)
        if actions.shape[1] < h:
            raise ValueError(f"horizon {h} is longer than the training chunks ({actions.shape[1]} actions)")
        return actions[:, :h]

    # -- diffusion ------------------------------------------------------------------------------------------------
    def loss(self, inputs, actions, generator) -> torch.Tensor:
        """DDPM loss on the scaled chunk: MSE of the predicted noise (or clean chunk) at a random step."""
        x0 = self.scale(self._chunks(actions))
        net = self.model.net
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.randint(0, self.cfg.train_timesteps, (len(x0),), generator=generator).to(x0.device)
        ab = self.alpha_bar.to(x0.device)[t][:, None, None]
        noisy = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        target = noise if self.cfg.prediction_type == "epsilon" else x0
        return F.mse_loss(net(noisy, t, net.encode(inputs["points"], inputs["state"])), target)

    def denoiser_at(self, step: int) -> Denoiser:
        """The denoiser of DDIM step ``step`` (0 = the first, from pure noise)."""
        return self.model.frozen if step < self.cfg.frozen_steps else self.model.net

    def ddim_mean(self, net: Denoiser, x: torch.Tensor, t: int, t_prev: int, obs_cond: torch.Tensor) -> torch.Tensor:
        """The deterministic DDIM step x_t -> x_{t_prev} (eta 0), the clean-chunk estimate clipped to [-1, 1]."""
        ab = self.alpha_bar.to(x.device)
        a_t = ab[t]
        a_prev = ab[t_prev] if t_prev >= 0 else torch.ones((), device=x.device)
        out = net(x, torch.full((len(x),), t, device=x.device, dtype=torch.long), obs_cond)
        if self.cfg.prediction_type == "epsilon":
            x0 = (x - (1 - a_t).sqrt() * out) / a_t.sqrt()
        else:
            x0 = out
        x0 = x0.clamp(-1, 1)
        eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps

    def encode_all(self, inputs) -> dict[int, torch.Tensor]:
        """The observation condition of each denoiser, keyed by its id."""
        nets = {id(self.model.net): self.model.net}
        if self.model.frozen is not None:
            nets[id(self.model.frozen)] = self.model.frozen
        return {k: n.encode(inputs["points"], inputs["state"]) for k, n in nets.items()}

    def sample(self, inputs, generator=None) -> torch.Tensor:
        """(B, horizon, action_dim) scaled chunks by DDIM from Gaussian noise drawn from ``generator``."""
        conds = self.encode_all(inputs)
        b = len(inputs["state"])
        x = torch.randn((b, self.cfg.horizon, self.io.action_dim), generator=generator).to(self.device)
        for i, (t, tp) in enumerate(ddim_timesteps(self.cfg.train_timesteps, self.cfg.inference_steps)):
            net = self.denoiser_at(i)
            x = self.ddim_mean(net, x, t, tp, conds[id(net)])
        return x.clamp(-1, 1)

    def chunk(self, inputs, generator=None) -> torch.Tensor:
        """(B, horizon, action_dim) actions (un-scaled, not yet clipped into the action box)."""
        return self.unscale(self.sample(inputs, generator))

    def predict_batch(self, inputs, generator=None) -> Prediction:
        """The first action of each predicted chunk (offline validation)."""
        a = self.chunk(inputs, generator)[:, 0].double().cpu().numpy()
        return Prediction(a, np.zeros(len(a), dtype=bool))

    # -- closed loop ------------------------------------------------------------------------------------------------
    def observation_batch(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One env observation as a batch of one under the dataset's key names (``point_cloud`` is read as
        ``observation.point_cloud``)."""
        io = self._need_io()
        if not isinstance(obs, dict):
            raise ValueError(f"an observation is a dict of arrays, got {type(obs).__name__}")
        out = {}
        for key in io.inputs:
            short = key.removeprefix("observation.")
            v = obs.get(key, obs.get(short))
            if v is None:
                raise ValueError(f"the {self.name} policy reads observation key {short!r}; got keys {sorted(obs)}")
            out[key] = np.asarray(v)[None]
        return out

    def reset(self, task: dict | None = None, seed: int | None = None) -> None:
        super().reset(task, seed)
        self.queue = ActionQueue(self.cfg.n_action_steps)

    def predict_action_chunk(self, obs) -> np.ndarray:
        """(horizon, action_dim) actions for the coming steps, clipped into the action box."""
        if not hasattr(self, "_generator"):
            self.reset()
        self.model.eval()
        with torch.no_grad():
            c = self.chunk(self.prepare(self.observation_batch(obs)), self._generator)[0].double().cpu().numpy()
        pred = self._finish(Prediction(c, np.zeros(len(c), bool)))
        self.last_malformed = bool(pred.malformed.any())
        return pred.actions

    def select_action(self, obs, info=None) -> np.ndarray:
        """The next action of the queue; an empty queue is refilled with the first ``n_action_steps`` of a new
        chunk."""
        if not hasattr(self, "_generator"):
            self.reset()
        if self.queue.empty():
            self.queue.push(self.predict_action_chunk(obs))
        return self.queue.pop().astype(np.float32)

    def __copy__(self):
        new = self.__class__.__new__(self.__class__)
        new.__dict__.update(self.__dict__)
        new.queue = ActionQueue(self.cfg.n_action_steps)
        return new

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def required_stats(self) -> tuple[str, ...]:
        return PCDP_STAT_KEYS
