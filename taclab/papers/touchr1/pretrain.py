"""Stage 1: tactile-encoder pre-training by predicting the next frame's contact field from the previous frames.

The encoder is the VLM's own vision tower (``model.model.visual``, the ViT and its patch merger), so what it
learns is what stages 2 and 3 start from. An input is two consecutive tactile frames of one sensor (shown
relative to the untouched gel, side by side: 56 x 112 px, 8 merged tokens); the target is the gel depth field of
the following frame, average-pooled to 8 x 8 and divided by a fixed scale. A linear head on the flattened tokens
predicts it; the loss is the mean squared error. Pairs (t-1, t) -> t+1 for t = 1, 2, 3 (frames 2-4 are the
slide), every sensor, every training object.

The test loss is reported beside two references: predicting the mean target, and copying the current frame's
pooled field (a model that learned the slide's dynamics beats the copy).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

DEPTH_SCALE_MM = 0.1
POOL = 3  # 24 x 24 taxels -> 8 x 8


class PretrainConfig(BaseModel):
    """Settings of stage 1. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(2, ge=1, description="passes over the training pairs")
    batch_size: int = Field(32, ge=1, description="pairs per step")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate")
    max_pairs: int = Field(6000, ge=1, description="at most this many training pairs (drawn once)")
    seed: int = Field(0, ge=0, description="seed of the pair draw and the batch order")


def _pool(depth: np.ndarray) -> np.ndarray:
    r, c = depth.shape[-2:]
    d = depth.reshape(*depth.shape[:-2], r // POOL, POOL, c // POOL, POOL).astype(np.float32)
    return d.mean(axis=(-3, -1)) / DEPTH_SCALE_MM


def make_pairs(data, split: str, max_pairs: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """``x``: (N, 56, 112, 3) uint8 inputs, ``y``: (N, 64) targets, ``copy``: (N, 64) the current frame's field."""
    from PIL import Image

    from taclab.data import load_arrays
    from taclab.papers.touchr1.inputs import relative_frames

    a = load_arrays(data, split, columns=["tactile", "depth", "sensors"], progress=False)
    names = str(a["sensors"][0]).split(",")
    idx = [(o, s, t) for o in range(len(a["tactile"])) for s in range(len(names)) for t in (1, 2, 3)]
    rng = np.random.default_rng(seed)
    if max_pairs is not None and len(idx) > max_pairs:
        idx = [idx[i] for i in np.sort(rng.choice(len(idx), max_pairs, replace=False))]
    xs, ys, cs = [], [], []
    for o, s, t in idx:
        fr = relative_frames(a["tactile"][o, s, t - 1 : t + 1], names[s])
        pair = np.concatenate(
            [np.asarray(Image.fromarray(f).resize((56, 56), Image.Resampling.BILINEAR)) for f in fr], 1
        )
        xs.append(pair)
        ys.append(_pool(a["depth"][o, s, t + 1]).reshape(-1))
        cs.append(_pool(a["depth"][o, s, t]).reshape(-1))
    return {"x": np.stack(xs), "y": np.stack(ys), "copy": np.stack(cs)}


class NextFieldPredictor:
    """The vision tower plus a linear head: two frames in, the next frame's pooled field out."""

    def __init__(self, model):
        import torch

        self.model = model  # TouchR1Model
        base = model.model.get_base_model() if hasattr(model.model, "get_base_model") else model.model  # LoRA
        visual = base.model.visual
        self.visual = visual
        for p in visual.parameters():  # stage 1 trains the tower, also under LoRA (which freezes the base weights)
            p.requires_grad_(True)
        hidden = int(visual.merger.mlp[-1].out_features) if hasattr(visual.merger, "mlp") else None
        hidden = hidden or int(model.model.config.text_config.hidden_size)
        ref = next(visual.parameters())
        self.head = torch.nn.Linear(8 * hidden, 64).to(device=ref.device, dtype=ref.dtype)
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        self.processor = Qwen2VLImageProcessorPil(min_pixels=56 * 112, max_pixels=56 * 112, patch_size=14, merge_size=2)

    def parameters(self):
        return [*self.visual.parameters(), *self.head.parameters()]

    def __call__(self, x: np.ndarray):
        enc = self.processor(images=list(x), return_tensors="pt")
        ref = next(self.visual.parameters())
        pixels = enc["pixel_values"].to(device=ref.device, dtype=ref.dtype)
        tokens = self.visual(pixels, grid_thw=enc["image_grid_thw"].to(ref.device))
        tokens = getattr(tokens, "pooler_output", tokens)
        return self.head(tokens.reshape(len(x), -1)).float()


def run_pretrain(model, data, out, cfg: PretrainConfig | dict | None = None, progress: bool = True) -> dict:
    """Pre-train ``model``'s vision tower; saves the whole model to ``<out>/model`` (stage 2 starts from it)."""
    import torch

    from taclab.papers.touchr1.sft import finished_run, plot_curve

    cfg = cfg if isinstance(cfg, PretrainConfig) else PretrainConfig(**(cfg or {}))
    out = Path(out)
    if (done := finished_run(out, cfg)) is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    tr = make_pairs(data, "train", cfg.max_pairs, cfg.seed)
    te = make_pairs(data, "test", 600, cfg.seed)
    net = NextFieldPredictor(model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    y = torch.tensor(tr["y"]).to(next(net.visual.parameters()).device)
    losses, t0, step = [], time.perf_counter(), 0
    total = cfg.epochs * int(np.ceil(len(y) / cfg.batch_size))
    with open(out / "log.jsonl", "w") as log:
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(y))
            for i in range(0, len(order), cfg.batch_size):
                b = order[i : i + cfg.batch_size]
                loss = torch.nn.functional.mse_loss(net(tr["x"][b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                losses.append(float(loss.detach()))
                log.write(json.dumps({"step": step, "epoch": epoch, "loss": losses[-1]}) + "\n")
                if progress and (step % 20 == 0 or step == total):
                    print(f"pretrain step {step}/{total} loss {np.mean(losses[-20:]):.4f}", flush=True)
    test = evaluate_predictor(net, te)
    model.save(out / "model")
    plot_curve(out / "loss.png", {"next-field MSE": losses}, "loss", "Stage 1: next tactile field prediction")
    summary = {"pairs": len(y), "steps": step, "seconds": time.perf_counter() - t0, "test": test,
               "config": cfg.model_dump()}  # fmt: skip
    (out / "done.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_predictor(net, pairs: dict[str, np.ndarray], batch_size: int = 64) -> dict:
    """Test MSE of the predictor, of the mean target and of copying the current frame's field."""
    import torch

    preds = []
    with torch.no_grad():
        for i in range(0, len(pairs["x"]), batch_size):
            preds.append(net(pairs["x"][i : i + batch_size]).cpu().numpy())
    p = np.concatenate(preds)
    y = pairs["y"]
    return {
        "model_mse": float(np.mean((p - y) ** 2)),
        "mean_mse": float(np.mean((y.mean(0) - y) ** 2)),
        "copy_mse": float(np.mean((pairs["copy"] - y) ** 2)),
    }
