"""Learned policies: a torch model, its normalization statistics and one preprocessing path.

A :class:`LearnedPolicy` is trained by :func:`taclab.train.train` through four methods: ``fit_stats`` (the
normalization statistics, from the training data), ``prepare`` (the shared preprocessing of a tactile batch),
``loss`` and ``predict``. ``act`` runs the very same ``prepare`` + ``predict`` on one observation, so training,
offline evaluation and closed-loop control see identical inputs.

A checkpoint folder holds ``policy.json`` (name and model config), ``model.safetensors`` and
``normalization.safetensors``; :func:`taclab.policies.load_policy` rebuilds the policy from it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel

from taclab.policies.base import Policy, _read_meta
from taclab.policies.preprocess import composite_tensor, tactile_batch, tactile_from_obs

STAT_KEYS = ("image_mean", "image_std", "action_mean", "action_std", "action_min", "action_max")


@dataclass
class Prediction:
    """Actions (B, 3) in (mm, mm, deg) and, per sample, whether the model's raw output was unusable (malformed
    text, a non-finite number) and was replaced by the fallback action."""

    actions: np.ndarray
    malformed: np.ndarray


class LearnedPolicy(Policy):
    """Base class of policies with a torch model. Subclasses set ``Config`` and implement ``build_model``,
    ``loss`` and ``predict_batch``."""

    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: dict | BaseModel | None = None, **overrides):
        if isinstance(config, BaseModel):
            config = config.model_dump()
        self.cfg = self.Config(**{**(config or {}), **overrides})
        torch.manual_seed(getattr(self.cfg, "seed", 0))
        self._init_state()
        self.model = self.build_model()

    def _init_state(self) -> None:
        """What a policy holds besides its config and model: statistics, task, flags, device."""
        self.stats: dict[str, torch.Tensor] | None = None
        self.task: dict[str, Any] = {}
        self.last_malformed = False
        self.device = torch.device("cpu")

    def to(self, device) -> LearnedPolicy:
        """Move the model and the normalization statistics to ``device``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        if self.stats is not None:
            self.stats = {k: v.to(self.device) for k, v in self.stats.items()}
        return self

    # -- to implement -------------------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def loss(self, inputs: dict[str, torch.Tensor], actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training loss of a prepared batch against its (B, 3) actions in (mm, mm, deg)."""
        raise NotImplementedError

    def predict_batch(self, inputs: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> Prediction:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return self.cfg.model_dump()

    def fit_stats(self, tactile: np.ndarray, actions: np.ndarray, max_images: int = 512) -> None:
        """Normalization statistics from training data: per-channel image mean/std, per-dimension action
        mean/std/min/max."""
        t = tactile_batch(tactile)
        a = np.asarray(actions, dtype=np.float64)
        if len(a) != len(t) or a.shape[1:] != (3,):
            raise ValueError(f"actions must be (N, 3) for N={len(t)} sequences, got {a.shape}")
        idx = np.linspace(0, len(t) - 1, min(len(t), max_images)).astype(int)
        img = composite_tensor(t[idx], self.image_size)
        std = a.std(0)
        stats = {
            "image_mean": img.mean((0, 2, 3)),
            "image_std": img.std((0, 2, 3)).clamp_min(1e-3),
            "action_mean": torch.tensor(a.mean(0), dtype=torch.float32),
            "action_std": torch.tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32),
            "action_min": torch.tensor(a.min(0), dtype=torch.float32),
            "action_max": torch.tensor(np.where(a.max(0) > a.min(0), a.max(0), a.min(0) + 1.0), dtype=torch.float32),
        }
        self.stats = {k: v.to(self.device) for k, v in stats.items()}

    @property
    def image_size(self) -> int | None:
        return getattr(self.cfg, "image_size", None)

    def _need_stats(self) -> dict[str, torch.Tensor]:
        if self.stats is None:
            raise RuntimeError(f"{self.name} policy has no normalization statistics: train it or load a checkpoint")
        return self.stats

    def prepare(self, tactile: np.ndarray, shapes: list[str] | None = None) -> dict[str, torch.Tensor]:
        """The shared preprocessing: normalized composite images (B, 3, S, S)."""
        s = self._need_stats()
        img = composite_tensor(tactile, self.image_size).to(self.device)
        img = (img - s["image_mean"][:, None, None]) / s["image_std"][:, None, None]
        return {"images": img}

    def _infer(self, tactile: np.ndarray, shapes: list[str] | None, generator: torch.Generator) -> Prediction:
        """The inference path of :meth:`predict` and :meth:`act`: prepare, predict, replace non-finite actions."""
        self.model.eval()
        with torch.no_grad():
            pred = self.predict_batch(self.prepare(tactile, shapes), generator=generator)
        a = np.asarray(pred.actions, dtype=np.float64).reshape(-1, 3)
        bad = ~np.isfinite(a).all(1)
        if bad.any():
            a = a.copy()
            a[bad] = 0.0
        return Prediction(a, np.asarray(pred.malformed, dtype=bool) | bad)

    def predict(self, tactile: np.ndarray, shapes: list[str] | None = None, seed: int = 0) -> Prediction:
        """Actions for a batch of tactile sequences (B, 4, 2, H, W, 3); ``seed`` drives any sampling.
        Non-finite actions are replaced by the zero action and flagged as malformed."""
        return self._infer(tactile_batch(tactile), shapes, torch.Generator().manual_seed(int(seed)))

    def reset(self, task: dict | None = None) -> None:
        self.task = dict(task or {})
        self._generator = torch.Generator().manual_seed(int(getattr(self.cfg, "seed", 0)))

    def act(self, obs, info=None) -> np.ndarray:
        if not hasattr(self, "_generator"):
            self.reset()
        pred = self._infer(tactile_from_obs(obs), [self.task.get("shape", "square")], self._generator)
        self.last_malformed = bool(pred.malformed[0])
        return pred.actions[0].astype(np.float32)

    # -- checkpoints ----------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        stats = self._need_stats()
        for name, tensors in (("model", self.model.state_dict()), ("normalization", stats)):
            tmp = d / f".{name}.safetensors.tmp"
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
            tmp.replace(d / f"{name}.safetensors")
        return super().save(d)  # policy.json last: a folder with policy.json is complete

    @classmethod
    def load(cls, directory: str | Path) -> LearnedPolicy:
        from safetensors.torch import load_file

        d = Path(directory)
        policy = cls(_read_meta(d, cls.name)["config"])
        for f in ("model.safetensors", "normalization.safetensors"):
            if not (d / f).is_file():
                raise FileNotFoundError(f"{d / f} is missing: the checkpoint is incomplete")
        policy.model.load_state_dict(load_file(str(d / "model.safetensors")))
        stats = load_file(str(d / "normalization.safetensors"))
        missing = [k for k in STAT_KEYS if k not in stats]
        if missing:
            raise ValueError(f"{d / 'normalization.safetensors'} lacks {missing}")
        policy.stats = stats
        return policy
