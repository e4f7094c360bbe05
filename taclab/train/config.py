"""Training configuration: a YAML file with ``policy``, ``train`` and ``model`` sections, plus ``--set`` overrides.

.. code-block:: yaml

    policy: bc            # registered policy name
    train: {epochs: 20, batch_size: 64, lr: 1.0e-3}
    model: {encoder: small}

``--set train.lr=3e-4`` or ``--set model.encoder=resnet50`` override single keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class TrainConfig(BaseModel):
    """Hyper-parameters of the shared training loop."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: str = Field("train", description="dataset split to train on")
    limit: int | None = Field(None, ge=1, description="use only the first N samples of the split (quick runs)")
    val_fraction: float = Field(0.05, ge=0.0, lt=1.0, description="share of the split held out for validation")
    epochs: int = Field(20, ge=1, description="passes over the training samples")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (None: all epochs)")
    batch_size: int = Field(64, ge=1, description="samples per optimizer step (over all processes)")
    lr: float = Field(1e-3, gt=0, description="peak learning rate of AdamW")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    warmup_fraction: float = Field(0.05, ge=0, le=1, description="share of the steps with linear warm-up")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine decay ends at lr * min_lr_ratio")
    grad_clip: float | None = Field(1.0, gt=0, description="max global gradient norm (None: no clipping)")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA decay of the weights (0: no EMA)")
    seed: int = Field(0, description="seed of data order, dropout and diffusion noise")
    val_every: int = Field(1, ge=1, description="validate every N epochs (and at the end)")
    val_max_samples: int = Field(1000, ge=1, description="validation samples scored per validation")
    checkpoint_every: int = Field(200, ge=1, description="save a resumable checkpoint every N steps")
    log_every: int = Field(10, ge=1, description="log the training loss every N steps")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="accelerate's mixed precision")
    tensorboard: bool = Field(True, description="also log to TensorBoard when it is installed")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str
    train: TrainConfig = TrainConfig()
    model: dict[str, Any] = {}


def set_dotted(
    cfg: dict, key: str, value: Any, sections: tuple[str, ...] = ("train", "model"), top_level: tuple[str, ...] = ()
) -> None:
    """Apply one ``--set`` item to a config mapping: ``section.key`` for one of ``sections``, or one of the
    ``top_level`` keys; anything else is refused, naming what is allowed."""
    if key in top_level:
        cfg[key] = value
        return
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in sections:
        allowed = " or ".join([*top_level, *(f"{s}.<key>" for s in sections)])
        raise ValueError(f"--set key {key!r} must be {allowed}")
    section = cfg.setdefault(parts[0], {})
    if not isinstance(section, dict):
        raise ValueError(f"{parts[0]} must be a mapping")
    section[parts[1]] = value


def read_config_file(path: str | Path | None, sections: tuple[str, ...]) -> dict[str, Any]:
    """The mapping a YAML config file holds (``{}`` without a path); a missing file or one that does not hold a
    mapping is refused, the error naming the expected ``sections``."""
    import yaml

    if path is None:
        return {}
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} not found")
    cfg = yaml.safe_load(p.read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{p} must hold a mapping with {'/'.join(sections)} keys")
    return cfg


def load_run_config(
    path: str | Path | None = None, policy: str | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Read a YAML run config, apply ``policy`` and dotted overrides, and validate everything, including the
    policy's own model config, with errors that name the bad key."""
    from taclab.policies.base import POLICIES
    from taclab.policies.learned import LearnedPolicy

    cfg = read_config_file(path, ("policy", "train", "model"))
    unknown = sorted(set(cfg) - {"policy", "train", "model"})
    if unknown:
        raise ValueError(f"{Path(path)}: unknown top-level key(s) {unknown}; allowed: ['model', 'policy', 'train']")
    if policy is not None:
        cfg["policy"] = policy
    for k, v in (overrides or {}).items():
        set_dotted(cfg, k, v)
    if "policy" not in cfg:
        raise ValueError("no policy given: pass --policy NAME or set policy: in the config file")
    import taclab.policies  # noqa: F401 - registers the built-in policies

    name = cfg["policy"]
    cls = POLICIES.get(name)
    trainable = sorted(k for k, c in POLICIES.items() if issubclass(c, LearnedPolicy))
    if cls is None or not issubclass(cls, LearnedPolicy):
        raise ValueError(f"policy {name!r} cannot be trained; trainable policies: {trainable}")
    try:
        run = RunConfig(**cfg)
    except ValidationError as e:
        raise ValueError(_explain(e)) from None
    try:
        model = cls.Config(**run.model).model_dump(mode="json")
    except ValidationError as e:
        raise ValueError(_explain(e, prefix="model.")) from None
    return run.model_copy(update={"model": model})


def _explain(e: ValidationError, prefix: str = "") -> str:
    lines = []
    for err in e.errors():
        loc = prefix + ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown config key {loc!r}")
        else:
            lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return "invalid training config: " + "; ".join(lines)
