"""BAKU (vision only) and ViSk (vision + skin): a transformer over one token per observation key that predicts a
chunk of future actions, executed with a temporal ensemble. VITAL-BC is ViSk trained with semantic augmentation
(``augment: semantic``).

The model (VITAL section 3, its released code's numbers, see docs/vital.md):

- **image encoder**: a randomly initialized ResNet-18 trunk with GroupNorm in place of BatchNorm (``resnet_stages``
  of its four stages), a 1x1 convolution to ``keypoints`` maps, spatial softmax (the expected x, y of each map)
  and a linear layer to ``width`` (256);
- **skin encoder** (ViSk): an MLP over both skins' 30 standardized values, hidden ``skin_hidden`` ([256, 256]);
- **transformer**: minGPT (pre-LayerNorm, GELU MLP of 4x width, causal mask, dropout) over the tokens
  ``[image, skin, action]`` with learned position embeddings; the learned action token is read out;
- **head**: a deterministic MLP to ``horizon`` x action_dim standardized actions; MSE against the next
  ``horizon`` actions of the episode (the last action repeated past its end).

Training augments the wrist images (random shift and colour jitter, or with ``augment: semantic`` the background
replaced through the segmentation mask first, :class:`taclab.data.augment.SemanticAugment`); inference uses the
plain images. ``select_action`` predicts a chunk every step and blends, with :class:`TemporalEnsemble`, every
past chunk's proposal for the current step (weights ``exp(-ensemble_m i)``, i = 0 the oldest).

The dataset's observation keys are ``observation.wrist_rgb``, ``observation.wrist_mask`` and
``observation.skin``; in closed loop the env's ``wrist_rgb``, ``wrist_mask`` and ``skin`` are read under those
names (the mask is only used by training augmentation and may be absent at inference).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from taclab.policies.base import register
from taclab.policies.chunking import TemporalEnsemble
from taclab.policies.learned import LearnedPolicy, Prediction

RGB, MASK, SKIN = "observation.wrist_rgb", "observation.wrist_mask", "observation.skin"
VISK_STAT_KEYS = ("image_mean", "image_std", "skin_mean", "skin_std", "action_mean", "action_std", "action_absmax")


class VisuoSkinConfig(BaseModel):
    """The model and its training augmentation. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use_skin: bool = Field(True, description="add the skin token (ViSk); false: vision only (BAKU)")
    image_size: int | None = Field(
        None, ge=16, le=512, description="resize wrist images to this square size (None: as stored)"
    )
    resnet_stages: int = Field(
        4, ge=1, le=4, description="ResNet-18 stages kept (4: the whole trunk; the released code keeps 2)"
    )
    keypoints: int = Field(256, ge=1, description="spatial-softmax keypoint maps of the image encoder")
    width: int = Field(256, ge=16, description="token width of the transformer and of both encoders' output")
    layers: int = Field(8, ge=1, description="transformer blocks")
    heads: int = Field(4, ge=1, description="attention heads")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the transformer")
    skin_hidden: tuple[int, ...] = Field((256, 256), description="hidden widths of the skin MLP")
    head_hidden: int = Field(256, ge=8, description="hidden width of the action head")
    horizon: int = Field(10, ge=1, le=100, description="actions per predicted chunk")
    ensemble_m: float = Field(0.01, description="temporal ensemble weight exp(-m i), i = 0 the oldest prediction")
    augment: Literal["none", "shift_jitter", "semantic"] = Field(
        "shift_jitter", description="training image augmentation: none, random shift + colour jitter, or semantic"
    )
    shift_px: int = Field(4, ge=0, description="random shift: padding in pixels (of the stored image size)")
    brightness: float = Field(0.3, ge=0, lt=1, description="colour jitter: brightness factor 1 +- this")
    contrast: float = Field(0.3, ge=0, lt=1, description="colour jitter: contrast factor 1 +- this")
    saturation: float = Field(0.2, ge=0, lt=1, description="colour jitter: saturation factor 1 +- this")
    backgrounds: str = Field("procedural", description="semantic augmentation: 'procedural' or a folder of images")
    n_backgrounds: int = Field(64, ge=1, description="semantic augmentation: procedural textures drawn")
    seed: int = Field(0, description="seed of the weight initialization and of the procedural backgrounds")
    action_weights: tuple[float, ...] | None = Field(
        None,
        description="weight of each action component in the MSE of the standardized chunk (None: all 1, the "
        "paper's loss); one non-negative value per action component, not all zero",
    )

    @model_validator(mode="after")
    def _heads(self):
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be a multiple of heads ({self.heads})")
        w = self.action_weights
        if w is not None and (any(v < 0 for v in w) or not any(v > 0 for v in w)):
            raise ValueError(f"action_weights {list(w)}: expected non-negative values, not all zero")
        return self


class BakuConfig(VisuoSkinConfig):
    """BAKU: as ViSk without the skin token."""

    use_skin: bool = Field(False, description="add the skin token (ViSk); false: vision only (BAKU)")


# ------------------------------------------------------------------------------------------------- the model
def _gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, c // 16), c)


class GNBlock(nn.Module):
    """ResNet basic block with GroupNorm."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.n1 = _gn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.n2 = _gn(cout)
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _gn(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        y = F.relu(self.n1(self.conv1(x)))
        return F.relu(self.n2(self.conv2(y)) + self.skip(x))


class ImageEncoder(nn.Module):
    """ResNet-18 trunk (GroupNorm), 1x1 conv to keypoint maps, spatial softmax, linear to ``width``."""

    def __init__(self, stages: int, keypoints: int, width: int):
        super().__init__()
        mods = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), _gn(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for i, c in enumerate((64, 128, 256, 512)[:stages]):
            mods += [GNBlock(cin, c, 1 if i == 0 else 2), GNBlock(c, c, 1)]
            cin = c
        self.trunk = nn.Sequential(*mods)
        self.to_maps = nn.Conv2d(cin, keypoints, 1)
        self.out = nn.Linear(2 * keypoints, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.to_maps(self.trunk(x))
        b, k, h, w = m.shape
        p = m.flatten(2).softmax(-1).reshape(b, k, h, w)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=p.dtype)
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=p.dtype)
        kp = torch.cat([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], 1)
        return self.out(kp)


class Block(nn.Module):
    """minGPT block: pre-LayerNorm causal self-attention and a GELU MLP of 4x width, both residual."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class VisuoSkinNet(nn.Module):
    """Encoders, token transformer and chunk head; ``features`` and ``head`` are exposed for residual RL."""

    def __init__(self, cfg: VisuoSkinConfig, action_dim: int):
        super().__init__()
        w = cfg.width
        self.image = ImageEncoder(cfg.resnet_stages, cfg.keypoints, w)
        self.use_skin = cfg.use_skin
        if cfg.use_skin:
            dims, mods = (30, *cfg.skin_hidden), []
            for a, b in zip(dims[:-1], dims[1:], strict=True):
                mods += [nn.Linear(a, b), nn.SiLU()]
            self.skin = nn.Sequential(*mods, nn.Linear(dims[-1], w))
        n_tokens = 3 if cfg.use_skin else 2
        self.action_token = nn.Parameter(torch.zeros(1, 1, w))
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, w))
        nn.init.normal_(self.action_token, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(w, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(w)
        self.mlp_head = nn.Sequential(
            nn.Linear(w, cfg.head_hidden), nn.GELU(), nn.Linear(cfg.head_hidden, cfg.horizon * action_dim)
        )
        self.register_buffer("mask", torch.triu(torch.ones(n_tokens, n_tokens, dtype=torch.bool), 1), persistent=False)
        self.horizon, self.action_dim = cfg.horizon, action_dim

    def features(self, images: torch.Tensor, skin: torch.Tensor | None) -> list[torch.Tensor]:
        """One (B, width) token per observation key: [image] or [image, skin]."""
        out = [self.image(images)]
        if self.use_skin:
            out.append(self.skin(skin))
        return out

    def head(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """(B, horizon, action_dim) standardized actions from the observation tokens."""
        b = tokens[0].shape[0]
        x = torch.cat([torch.stack(tokens, 1), self.action_token.expand(b, -1, -1)], 1) + self.pos
        x = self.drop(x)
        for blk in self.blocks:
            x = blk(x, self.mask)
        return self.mlp_head(self.ln(x[:, -1])).reshape(b, self.horizon, self.action_dim)

    def forward(self, images: torch.Tensor, skin: torch.Tensor | None) -> torch.Tensor:
        return self.head(self.features(images, skin))


# ------------------------------------------------------------------------------------------------ the policy
@register("visk")
class VisuoSkinPolicy(LearnedPolicy):
    """ViSk: wrist image + skin tokens -> chunk of ``horizon`` actions, temporal ensemble at inference."""

    Config = VisuoSkinConfig
    INFERENCE_KEYS = ("ensemble_m",)

    def _init_state(self) -> None:
        super()._init_state()
        self.ensemble = TemporalEnsemble(self.cfg.ensemble_m)
        self._augment = None

    def build_model(self) -> nn.Module:
        io = self.io
        for key in (RGB, SKIN) if self.cfg.use_skin else (RGB,):
            if key not in io.inputs:
                raise ValueError(f"the {self.name} policy reads {key!r}; the inputs are {sorted(io.inputs)}")
        if self.cfg.augment == "semantic" and MASK not in io.inputs:
            raise ValueError(f"augment 'semantic' needs the segmentation mask {MASK!r} among the inputs")
        w = self.cfg.action_weights
        if w is not None and len(w) != io.action_dim:
            raise ValueError(
                f"action_weights has {len(w)} values; the actions have {io.action_dim} components: one weight each"
            )
        return VisuoSkinNet(self.cfg, io.action_dim)

    # -- statistics ----------------------------------------------------------------------------------------------
    def fit_stats(self, batch: dict[str, np.ndarray], actions: np.ndarray, max_images: int = 512) -> None:
        """Per-channel image mean/std (of the resized images), per-value skin mean/std, per-dimension action
        mean/std and largest absolute value. ``actions`` are (N, action_dim) or chunks (N, horizon, action_dim)
        whose first step is the row's own action."""
        io = self._need_io()
        n = self.check_batch(batch)
        a = np.asarray(actions, dtype=np.float64)
        a = a[:, 0] if a.ndim == 3 else a
        if a.shape != (n, io.action_dim):
            raise ValueError(f"actions must be (N, {io.action_dim}) for N={n} samples, got {a.shape}")
        idx = np.linspace(0, n - 1, min(n, max_images)).astype(int)
        img = self._resize(torch.as_tensor(np.asarray(batch[RGB])[idx])).float() / 255
        skin = np.asarray(batch[SKIN], np.float64).reshape(n, -1) if SKIN in batch else np.zeros((n, 30))
        sstd, astd = skin.std(0), a.std(0)
        f32 = lambda v: torch.tensor(np.asarray(v), dtype=torch.float32)
        stats = {
            "image_mean": img.mean((0, 1, 2)),
            "image_std": img.std((0, 1, 2)).clamp_min(1e-3),
            "skin_mean": f32(skin.mean(0)),
            "skin_std": f32(np.maximum(sstd, 1.0)),  # uT: readings that barely move are not blown up
            "action_mean": f32(a.mean(0)),
            "action_std": f32(np.where(astd > 1e-6, astd, 1.0)),
            "action_absmax": f32(np.abs(a).max(0)),
        }
        self.stats = {k: v.to(self.device) for k, v in stats.items()}

    # -- inputs --------------------------------------------------------------------------------------------------
    def _resize(self, rgb: torch.Tensor, mask: torch.Tensor | None = None):
        """uint8 (B, H, W, 3) images (and (B, H, W) masks) at ``image_size``."""
        s = self.cfg.image_size
        if s is None or tuple(rgb.shape[1:3]) == (s, s):
            return rgb if mask is None else (rgb, mask)
        x = F.interpolate(rgb.permute(0, 3, 1, 2).float(), size=(s, s), mode="bilinear", antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        if mask is None:
            return x
        m = F.interpolate(mask[:, None].float(), size=(s, s), mode="nearest")[:, 0].to(torch.uint8)
        return x, m

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """uint8 images (B, h, w, 3) at ``image_size``, their masks (B, h, w) and standardized skins (B, 30)."""
        s = self._need_stats()
        n = self.check_batch(batch)
        rgb = torch.as_tensor(np.asarray(batch[RGB]))
        mask = torch.as_tensor(np.asarray(batch[MASK]).reshape(rgb.shape[:3])) if MASK in batch else None
        if mask is None:
            mask = torch.zeros(rgb.shape[:3], dtype=torch.uint8)
        rgb, mask = self._resize(rgb, mask)
        out = {"rgb": rgb.to(self.device), "mask": mask.to(self.device), "skin": None}
        if self.cfg.use_skin:
            skin = torch.as_tensor(np.asarray(batch[SKIN], np.float32).reshape(n, -1), device=self.device)
            out["skin"] = (skin - s["skin_mean"]) / s["skin_std"]
        return out

    def augment(self, rgb: torch.Tensor, mask: torch.Tensor, generator) -> torch.Tensor:
        """The training augmentation of uint8 (B, h, w, 3) images (``augment`` of the config)."""
        from taclab.data.augment import SemanticAugment, colour_jitter, shift

        c = self.cfg
        if c.augment == "none":
            return rgb
        if c.augment == "semantic":
            if self._augment is None:
                self._augment = SemanticAugment(
                    c.backgrounds,
                    size=tuple(rgb.shape[1:3]),
                    shift_px=c.shift_px,
                    brightness=c.brightness,
                    contrast=c.contrast,
                    saturation=c.saturation,
                    n_procedural=c.n_backgrounds,
                    seed=c.seed,
                )
            return self._augment(rgb, mask, generator)
        return colour_jitter(shift(rgb, c.shift_px, generator), generator, c.brightness, c.contrast, c.saturation)

    def normalize_images(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 (B, h, w, 3) -> standardized float (B, 3, h, w)."""
        s = self._need_stats()
        x = rgb.to(self.device).float().div(255)
        return ((x - s["image_mean"]) / s["image_std"]).permute(0, 3, 1, 2).contiguous()

    # -- training and inference ----------------------------------------------------------------------------------
    def loss(self, inputs, actions, generator) -> torch.Tensor:
        """MSE of the standardized chunk; ``actions`` (B, horizon, action_dim), or (B, action_dim) repeated."""
        s = self._need_stats()
        rgb = self.augment(inputs["rgb"], inputs["mask"], generator) if self.model.training else inputs["rgb"]
        out = self.model(self.normalize_images(rgb), inputs["skin"])
        h = self.cfg.horizon
        target = actions if actions.ndim == 3 else actions[:, None].expand(-1, h, -1)
        if target.shape[1] < h:
            raise ValueError(f"horizon {h} is longer than the training chunks ({target.shape[1]} actions)")
        target = target[:, :h]
        err = (out - (target - s["action_mean"]) / s["action_std"]) ** 2
        if self.cfg.action_weights is None:
            return err.mean()
        w = torch.as_tensor(self.cfg.action_weights, dtype=err.dtype, device=err.device)
        return (err * w).mean() / w.mean()  # the plain MSE when every weight is equal

    def chunk(self, inputs) -> torch.Tensor:
        """(B, horizon, action_dim) actions (un-standardized, not yet clipped)."""
        s = self._need_stats()
        return self.model(self.normalize_images(inputs["rgb"]), inputs["skin"]) * s["action_std"] + s["action_mean"]

    def predict_batch(self, inputs, generator=None) -> Prediction:
        """The first action of each predicted chunk (offline evaluation)."""
        a = self.chunk(inputs)[:, 0].double().cpu().numpy()
        return Prediction(a, np.zeros(len(a), dtype=bool))

    def observation_batch(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One env observation as a batch of one under the dataset's key names (``wrist_rgb`` is read as
        ``observation.wrist_rgb``); a missing mask (used by training augmentation only) reads as zeros."""
        io = self._need_io()
        if not isinstance(obs, dict):
            raise ValueError(f"an observation is a dict of arrays, got {type(obs).__name__}")
        out = {}
        for key, spec in io.inputs.items():
            short = key.removeprefix("observation.")
            v = obs.get(key, obs.get(short))
            if v is None and key == MASK:
                v = np.zeros(spec.shape, np.uint8)
            if v is None:
                raise ValueError(f"the {self.name} policy reads observation key {short!r}; got keys {sorted(obs)}")
            v = np.asarray(v)
            if key == MASK and v.size == int(np.prod(spec.shape)):
                v = v.reshape(spec.shape)
            out[key] = v[None]
        return out

    def reset(self, task: dict | None = None, seed: int | None = None) -> None:
        super().reset(task, seed)
        self.ensemble = TemporalEnsemble(self.cfg.ensemble_m)

    def _raw_chunk(self, obs) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            return self.chunk(self.prepare(self.observation_batch(obs)))[0].double().cpu().numpy()

    def predict_action_chunk(self, obs) -> np.ndarray:
        """(horizon, action_dim) actions for the coming steps, clipped into the action box."""
        return self._finish(Prediction(self._raw_chunk(obs), np.zeros(self.cfg.horizon, bool))).actions

    def select_action(self, obs, info=None) -> np.ndarray:
        """Predict a chunk, blend every past chunk's proposal for this step (temporal ensemble), clip."""
        if not hasattr(self, "_generator"):
            self.reset()
        chunk = self._raw_chunk(obs)
        if np.isfinite(chunk).all():
            a = self.ensemble.update(chunk)
        else:
            a = np.full(chunk.shape[1], np.nan)
        pred = self._finish(Prediction(a[None], np.zeros(1, bool)))
        self.last_malformed = bool(pred.malformed[0])
        return pred.actions[0].astype(np.float32)

    def required_stats(self) -> tuple[str, ...]:
        return VISK_STAT_KEYS


@register("baku")
class BakuPolicy(VisuoSkinPolicy):
    """BAKU: the same model with the wrist image token only (``use_skin`` false by default)."""

    Config = BakuConfig
