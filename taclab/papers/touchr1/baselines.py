"""Reference rows of the Touch-R1 benchmark: answerers that predict levels without language.

- ``tactile-cnn``: a small CNN that reads one sensor's five tactile frames (relative to the untouched gel, 15
  channels) and predicts the four levels (four 5-way heads); trained on every (object, sensor) of the train split.
- ``vision-cnn``: the same network on the object's image alone (no touch).
- ``chance``: uniform random levels (seeded).
- ``oracle``: the true levels (privileged).

Their levels are stated in a well-formed answer (:func:`taclab.papers.touchr1.metrics.completion_from_levels`),
so their format error is 0 by construction. For the counterfactual inputs the tactile CNN reads the changed touch
the same way the VLM does (removed, shuffled, noised).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taclab.papers.touchr1.metrics import completion_from_levels
from taclab.papers.touchr1.objects import LEVELS, PROPERTIES

BASELINES = ("tactile-cnn", "vision-cnn", "chance", "oracle")


class CNNConfig(BaseModel):
    """Training settings of the reference classifiers. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(15, ge=1, description="passes over the training samples")
    batch_size: int = Field(64, ge=1, description="samples per step")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate")
    width: int = Field(32, ge=4, description="channels of the first conv layer (doubled twice)")
    seed: int = Field(0, ge=0, description="seed of the initialization and the batch order")


def build_cnn(in_channels: int, width: int = 32):
    import torch.nn as nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(4, o), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(
        block(in_channels, width), block(width, 2 * width), block(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, len(PROPERTIES) * LEVELS),
    )  # fmt: skip


def tactile_input(frames: np.ndarray) -> np.ndarray:
    """(N, 5, H, W, 3) uint8 relative frames -> (N, 15, H, W) float32 in about [-1, 1]."""
    x = (frames.astype(np.float32) - 128.0) / 64.0
    return np.moveaxis(x, -1, 2).reshape(len(x), -1, *x.shape[2:4])


def vision_input(images: np.ndarray) -> np.ndarray:
    return np.moveaxis(images.astype(np.float32) / 127.5 - 1.0, -1, 1)


def train_classifier(x: np.ndarray, levels: np.ndarray, cfg: CNNConfig, log_path: Path | None = None):
    """Train the CNN on inputs ``x`` (N, C, H, W) and levels (N, 4) in 1..5; returns (net, losses)."""
    import torch

    torch.manual_seed(cfg.seed)
    net = build_cnn(x.shape[1], cfg.width)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    xt, yt = torch.tensor(x), torch.tensor(levels - 1, dtype=torch.long)
    rng = np.random.default_rng(cfg.seed)
    losses = []
    log = open(log_path, "w") if log_path else None
    try:
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(x))
            for i in range(0, len(order), cfg.batch_size):
                b = order[i : i + cfg.batch_size]
                logits = net(xt[b]).reshape(len(b), len(PROPERTIES), LEVELS)
                loss = torch.nn.functional.cross_entropy(logits.reshape(-1, LEVELS), yt[b].reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                if log:
                    log.write(json.dumps({"epoch": epoch, "loss": losses[-1]}) + "\n")
    finally:
        if log:
            log.close()
    net.eval()
    return net, losses


def predict_levels(net, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = net(torch.tensor(x[i : i + batch_size])).reshape(-1, len(PROPERTIES), LEVELS)
            out.append(logits.argmax(-1).numpy() + 1)
    return np.concatenate(out)


def train_baselines(data, out, cfg: CNNConfig | dict | None = None) -> dict:
    """Train the tactile and vision classifiers on ``data``'s train split into ``<out>/{tactile,vision}_cnn.pt``."""
    import torch

    from taclab.papers.touchr1.inputs import QuestionImages, load_split

    cfg = cfg if isinstance(cfg, CNNConfig) else CNNConfig(**(cfg or {}))
    out = Path(out)
    if (out / "done.json").is_file():
        return json.loads((out / "done.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    a = load_split(data, "train")
    qi = QuestionImages(a)
    n, s = a["tactile"].shape[:2]
    frames = np.stack([qi.frames(o, k) for o in range(n) for k in range(s)])
    t0 = time.perf_counter()
    tac, tl = train_classifier(tactile_input(frames), np.repeat(a["levels"], s, axis=0), cfg, out / "tactile_log.jsonl")
    vis, vl = train_classifier(vision_input(a["object_image"]), a["levels"], cfg, out / "vision_log.jsonl")
    torch.save({"state": tac.state_dict(), "in": 15, "width": cfg.width}, out / "tactile_cnn.pt")
    torch.save({"state": vis.state_dict(), "in": 3, "width": cfg.width}, out / "vision_cnn.pt")
    summary = {"seconds": time.perf_counter() - t0, "tactile_final_loss": float(np.mean(tl[-10:])),
               "vision_final_loss": float(np.mean(vl[-10:])), "config": cfg.model_dump()}  # fmt: skip
    (out / "done.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_cnn(path: str | Path):
    import torch

    ck = torch.load(path, weights_only=True)
    net = build_cnn(ck["in"], ck["width"])
    net.load_state_dict(ck["state"])
    net.eval()
    return net


class LevelAnswerer:
    """Answers questions from per-(object, sensor) levels: ``mode`` is one of :data:`BASELINES`."""

    def __init__(self, mode: str, net=None, seed: int = 0):
        if mode not in BASELINES:
            raise ValueError(f"unknown reference row {mode!r}; allowed: {', '.join(BASELINES)}")
        if mode in ("tactile-cnn", "vision-cnn") and net is None:
            raise ValueError(f"{mode} needs a trained network (train it with `taclab touchr1 baselines`)")
        self.mode, self.net, self.seed = mode, net, seed

    def _levels(self, q, images_of, kind: str, rng) -> list[np.ndarray]:
        p = PROPERTIES.index(q.prop)
        out = []
        for o, s in zip(q.objects, q.sensors, strict=True):
            if self.mode == "oracle":
                out.append(int(q.levels[q.objects.index(o)]))
            elif self.mode == "chance":
                out.append(int(rng.integers(1, LEVELS + 1)))
            elif self.mode == "vision-cnn":
                out.append(int(predict_levels(self.net, vision_input(images_of.object_image[o : o + 1]))[0, p]))
            else:
                frames = images_of.frames(o, s)
                if kind == "removed":
                    frames = np.full_like(frames, 128)
                elif kind == "shuffled":
                    other = int(rng.integers(len(images_of.tactile) - 1))
                    frames = images_of.frames(other + (other >= o), s)
                elif kind == "noised":
                    frames = np.clip(rng.normal(128, images_of.spread(), frames.shape), 0, 255).astype(np.uint8)
                out.append(int(predict_levels(self.net, tactile_input(frames[None]))[0, p]))
        return out

    def __call__(self, questions, images_of, kind: str) -> list[str]:
        rng = np.random.default_rng(self.seed)
        comps = []
        for q in questions:
            lv = self._levels(q, images_of, kind, rng)
            comps.append(completion_from_levels(q, dict(zip(q.letters, lv, strict=True))))
        return comps
