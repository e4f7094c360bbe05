"""Learned policies: a torch model, its declared inputs and action, its normalization statistics and one
preprocessing path.

A :class:`LearnedPolicy` is built from two things: its model config (``Config``, e.g. the encoder size) and its
:class:`PolicyIO`, the declaration of the observation keys it reads (with their shapes and dtypes), the task keys
it is told at ``reset`` (e.g. the peg shape an instruction names) and its action (dimension and bounds). The
training loop derives the ``PolicyIO`` from the dataset; the checkpoint stores it, so a loaded policy refuses
input that does not match what it was trained on.

It is trained by :func:`taclab.train.train` through ``fit_stats`` (normalization statistics from the training
data), ``prepare`` (the shared preprocessing of a batch), ``loss`` and ``predict_batch``. ``select_action`` runs
the very same ``prepare`` + ``predict_batch`` on one observation, so training, offline evaluation and closed-loop
control see identical inputs. Every action leaves :meth:`LearnedPolicy._finish`, the one place where a
non-finite output is replaced by the fallback action (and flagged malformed) and every action is clipped into
the action box.

A checkpoint folder holds ``policy.json`` (name, model config, input/action declaration),
``model.safetensors`` and ``normalization.safetensors``; :func:`taclab.policies.load_policy` rebuilds the policy
from it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from taclab.policies.base import Policy, read_meta
from taclab.policies.preprocess import composite_tensor
from taclab.policies.tactile_input import TACTILE_STAT_KEYS, TactileInputConfig, fit_tactile_stats, images

ACTION_STAT_KEYS = ("action_mean", "action_std", "action_min", "action_max")
STAT_KEYS = (*TACTILE_STAT_KEYS, *ACTION_STAT_KEYS)
LEGACY_IMAGE_KEYS = ("image_mean", "image_std")
"""The image statistics of checkpoints written before the tactile input representation (per-channel mean and
std of the raw composite): such a checkpoint keeps that preprocessing when loaded."""


class InputSpec(BaseModel):
    """One observation key a policy reads: the shape of one observation (no batch dimension) and its dtype."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: tuple[int, ...]
    dtype: str = "uint8"


class PolicyIO(BaseModel):
    """What a learned policy reads and writes (saved in its checkpoint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: dict[str, InputSpec] = Field(..., description="observation keys read by the policy")
    task_keys: tuple[str, ...] = Field((), description="keys of the task given to reset() that the policy reads")
    action_low: tuple[float, ...] = Field(..., description="lower bound of each action dimension")
    action_high: tuple[float, ...] = Field(..., description="upper bound of each action dimension")

    @model_validator(mode="after")
    def _check(self):
        if not self.inputs:
            raise ValueError("a policy reads at least one observation key")
        lo, hi = np.asarray(self.action_low), np.asarray(self.action_high)
        if lo.shape != hi.shape or lo.size == 0 or not np.all(lo <= hi) or not np.all(np.isfinite(lo + hi)):
            raise ValueError(
                f"action bounds must be finite with low <= high, got {self.action_low} / {self.action_high}"
            )
        return self

    @property
    def action_dim(self) -> int:
        return len(self.action_low)

    def image_sequence_key(self) -> str:
        """The one (T, P, H, W, 3) uint8 tactile image-sequence input of a tactile-image policy."""
        keys = [k for k, s in self.inputs.items() if len(s.shape) == 5 and s.shape[-1] == 3 and s.dtype == "uint8"]
        if len(keys) != 1:
            raise ValueError(
                f"expected exactly one (T, P, H, W, 3) uint8 image-sequence input, got {dict(self.inputs)}"
            )
        return keys[0]


@dataclass
class Prediction:
    """Actions (B, action_dim) and, per sample, whether the model's raw output was unusable (malformed text, a
    non-finite number) and was replaced by the fallback action."""

    actions: np.ndarray
    malformed: np.ndarray


class LearnedPolicy(Policy):
    """Base class of policies with a torch model. Subclasses set ``Config`` and implement ``build_model``,
    ``loss`` and ``predict_batch``; tactile-image policies (``bc``, ``dp``) use the shared ``prepare``."""

    Config: ClassVar[type[BaseModel]]
    TASK_KEYS: ClassVar[tuple[str, ...]] = ()
    """Task keys (given to ``reset``) this policy family reads, e.g. the peg shape an instruction names."""

    def __init__(self, config: dict | BaseModel | None = None, io: PolicyIO | dict | None = None, **overrides):
        if isinstance(config, BaseModel):
            config = config.model_dump()
        self.cfg = self.Config(**{**(config or {}), **overrides})
        self.io = PolicyIO(**io) if isinstance(io, dict) else io
        self._init_state()
        self.model = None
        if self.io is not None:
            torch.manual_seed(getattr(self.cfg, "seed", 0))
            self.model = self.build_model()

    @classmethod
    def from_parts(cls, config: BaseModel, io: PolicyIO, model: torch.nn.Module, stats: dict | None) -> LearnedPolicy:
        """A policy around an already built model (e.g. one loaded from a checkpoint folder by its own loader)."""
        self = cls.__new__(cls)
        self.cfg, self.io = config, io
        self._init_state()
        self.model, self.stats = model, stats
        return self

    def training_keys(self) -> tuple[str, ...]:
        """Privileged columns of the training data that ``prepare`` passes to ``loss`` (e.g. the pose error a
        reasoning target is written from); never read at inference. None by default."""
        return ()

    def _init_state(self) -> None:
        """What a policy holds besides its config and model: statistics, task, flags, device."""
        self.stats: dict[str, torch.Tensor] | None = None
        self.task: dict[str, Any] = {}
        self.last_malformed = False
        self.device = torch.device("cpu")

    def _need_io(self) -> PolicyIO:
        if self.io is None or self.model is None:
            raise RuntimeError(
                f"the {self.name} policy has no declared inputs and action: train it or load a checkpoint"
            )
        return self.io

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

    def loss(self, inputs: dict[str, Any], actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training loss of a prepared batch against its (B, action_dim) actions."""
        raise NotImplementedError

    def predict_batch(self, inputs: dict[str, Any], generator: torch.Generator | None = None) -> Prediction:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return self.cfg.model_dump()

    def checkpoint_record(self) -> dict[str, Any]:
        return {"config": self.config(), "io": self._need_io().model_dump(mode="json")}

    def check_batch(self, batch: dict[str, np.ndarray]) -> int:
        """The batch size of ``batch`` after checking every declared input's shape and dtype (and the task
        keys); raises ``ValueError`` naming the key, the expected and the given shape."""
        io = self._need_io()
        n = None
        for key, spec in io.inputs.items():
            if key not in batch:
                raise ValueError(f"the {self.name} policy reads observation key {key!r}; got keys {sorted(batch)}")
            a = np.asarray(batch[key])
            if a.shape[1:] != tuple(spec.shape) or str(a.dtype) != spec.dtype:
                raise ValueError(
                    f"observation {key!r} must be {spec.dtype} of shape {tuple(spec.shape)} per sample (the input "
                    f"this policy was trained on), got {a.dtype} of shape {a.shape[1:]}"
                )
            if n is not None and len(a) != n:
                raise ValueError(f"observation {key!r} has {len(a)} samples, others have {n}")
            n = len(a)
        for key in io.task_keys:
            if key not in batch or len(batch[key]) != n:
                raise ValueError(f"the {self.name} policy needs the task key {key!r} for each of the {n} samples")
        return n

    def fit_stats(self, batch: dict[str, np.ndarray], actions: np.ndarray, max_images: int = 512) -> None:
        """Normalization statistics from training data: those of the tactile input representation (``tactile``,
        see :mod:`taclab.policies.tactile_input`) and per-dimension action mean/std/min/max."""
        io = self._need_io()
        n = self.check_batch(batch)
        t = np.asarray(batch[io.image_sequence_key()])
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (n, io.action_dim):
            raise ValueError(f"actions must be (N, {io.action_dim}) for N={n} samples, got {a.shape}")
        std = a.std(0)
        stats = {
            **fit_tactile_stats(t, self.tactile_cfg, max_images),
            "action_mean": torch.tensor(a.mean(0), dtype=torch.float32),
            "action_std": torch.tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32),
            "action_min": torch.tensor(a.min(0), dtype=torch.float32),
            "action_max": torch.tensor(np.where(a.max(0) > a.min(0), a.max(0), a.min(0) + 1.0), dtype=torch.float32),
        }
        self.stats = {k: v.to(self.device) for k, v in stats.items()}

    @property
    def image_size(self) -> int | None:
        return getattr(self.cfg, "image_size", None)

    @property
    def tactile_cfg(self) -> TactileInputConfig:
        """The tactile input representation of the config (``tactile``)."""
        return getattr(self.cfg, "tactile", None) or TactileInputConfig()

    def _need_stats(self) -> dict[str, torch.Tensor]:
        if self.stats is None:
            raise RuntimeError(f"{self.name} policy has no normalization statistics: train it or load a checkpoint")
        return self.stats

    def prepare(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """The shared preprocessing of tactile-image policies: the tactile input representation as composite
        images (B, 3, S, S), or with ``layout: stacked`` as (B, 24, H, W) images."""
        s = self._need_stats()
        self.check_batch(batch)
        t = np.asarray(batch[self.io.image_sequence_key()])
        if "image_mean" in s:  # a checkpoint from before the tactile input representation: its own preprocessing
            img = composite_tensor(t, self.image_size).to(self.device)
            return {"images": (img - s["image_mean"][:, None, None]) / s["image_std"][:, None, None]}
        layout = getattr(self.cfg, "layout", "composite")
        return {"images": images(t, self.tactile_cfg, s, self.image_size, layout).to(self.device)}

    def _finish(self, pred: Prediction) -> Prediction:
        """The one place every action passes: non-finite actions become the fallback (zero, clipped into the box)
        and are flagged malformed; every action is clipped into the action box (the bound env's, else the one
        the policy was trained on)."""
        io = self._need_io()
        a = np.asarray(pred.actions, dtype=np.float64).reshape(-1, io.action_dim)
        low = self.action_low if self.action_low is not None else np.asarray(io.action_low)
        high = self.action_high if self.action_high is not None else np.asarray(io.action_high)
        bad = ~np.isfinite(a).all(1)
        if bad.any():
            a = a.copy()
            a[bad] = np.clip(0.0, low, high)
        return Prediction(np.clip(a, low, high), np.asarray(pred.malformed, dtype=bool) | bad)

    def _infer(self, batch: dict[str, np.ndarray], generator: torch.Generator) -> Prediction:
        self.model.eval()
        with torch.no_grad():
            pred = self.predict_batch(self.prepare(batch), generator=generator)
        return self._finish(pred)

    def predict(self, batch: dict[str, np.ndarray], seed: int = 0) -> Prediction:
        """Actions for a batch (observation keys and task keys, each with a leading batch dimension); ``seed``
        drives any sampling."""
        return self._infer(batch, torch.Generator().manual_seed(int(seed)))

    def bind(self, action_space) -> None:
        io = self._need_io()
        if tuple(action_space.shape) != (io.action_dim,):
            raise ValueError(
                f"the {self.name} policy writes {io.action_dim}-d actions, the action space is {action_space.shape}"
            )
        super().bind(action_space)

    def reset(self, task: dict | None = None, seed: int | None = None) -> None:
        """Keep the task; re-seed the sampling generator from the config's seed (the same samples every episode
        for the same observations: a deterministic policy for evaluation)."""
        self.task = dict(task or {})
        self._generator = torch.Generator().manual_seed(int(getattr(self.cfg, "seed", 0)))

    def observation_batch(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One observation (and the task of ``reset``) as a batch of one."""
        io = self._need_io()
        if not isinstance(obs, dict):
            raise ValueError(f"an observation is a dict of arrays, got {type(obs).__name__}")
        missing = [k for k in io.inputs if k not in obs]
        if missing:
            raise ValueError(f"the {self.name} policy reads observation key(s) {missing}; got keys {sorted(obs)}")
        batch = {k: np.asarray(obs[k])[None] for k in io.inputs}
        for k in io.task_keys:
            if k not in self.task:
                raise ValueError(f"the {self.name} policy needs {k!r} in the task given to reset(), got {self.task}")
            batch[k] = np.asarray([self.task[k]])
        return batch

    def select_action(self, obs, info=None) -> np.ndarray:
        if not hasattr(self, "_generator"):
            self.reset()
        pred = self._infer(self.observation_batch(obs), self._generator)
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

    def required_stats(self) -> tuple[str, ...]:
        """The keys a checkpoint's ``normalization.safetensors`` must hold for this policy (subclasses with other
        statistics override this, not :meth:`load`)."""
        if getattr(self, "_legacy_checkpoint", False):
            return (*LEGACY_IMAGE_KEYS, *ACTION_STAT_KEYS)
        return STAT_KEYS

    @classmethod
    def read_io(cls, directory: str | Path) -> tuple[dict, PolicyIO]:
        meta = read_meta(directory, cls.name)
        if "io" not in meta:
            raise ValueError(
                f"{Path(directory) / 'policy.json'} declares no inputs and action ('io'): it was written by an "
                "older taclab; retrain the policy"
            )
        return meta, PolicyIO(**meta["io"])

    @classmethod
    def load(cls, directory: str | Path, overrides: dict | None = None) -> LearnedPolicy:
        from safetensors.torch import load_file

        from taclab.policies.base import check_overrides

        d = Path(directory)
        meta, io = cls.read_io(d)
        config = {**meta["config"], **check_overrides(cls, overrides)}
        legacy = "tactile" in cls.Config.model_fields and "tactile" not in config
        if legacy:  # written before the tactile input representation: the raw composite, standardized per channel
            config["tactile"] = {"subtract": "none", "normalize": "channel"}
        policy = cls(config, io=io)
        policy._legacy_checkpoint = legacy
        for f in ("model.safetensors", "normalization.safetensors"):
            if not (d / f).is_file():
                raise FileNotFoundError(f"{d / f} is missing: the checkpoint is incomplete")
        try:
            policy.model.load_state_dict(load_file(str(d / "model.safetensors")))
            stats = load_file(str(d / "normalization.safetensors"))
        except Exception as e:  # noqa: BLE001 - a corrupt file is reported with its name
            raise ValueError(f"{d}: cannot read the checkpoint's weights: {e}") from None
        missing = [k for k in policy.required_stats() if k not in stats]
        if missing:
            raise ValueError(f"{d / 'normalization.safetensors'} lacks {missing}")
        policy.stats = stats
        return policy
