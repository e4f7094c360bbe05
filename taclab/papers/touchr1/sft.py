"""Stage 2: supervised fine-tuning on the reference reasoning traces (answer-only next-token loss).

A plain PyTorch loop (TRL's ``SFTTrainer`` would build a Qwen2-VL processor, which needs torchvision): questions of
the training split (:class:`QuestionConfig`) with their composites, AdamW, a linear warm-up, a loss log
(``log.jsonl``, one line per step), the model saved to ``<out>/model`` and the loss curve to ``<out>/loss.png``.
A finished run (``<out>/done.json``) is not run again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taclab.papers.touchr1.questions import QuestionConfig


class SFTConfig(BaseModel):
    """Settings of stage 2. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(3, ge=1, description="passes over the training questions")
    batch_size: int = Field(8, ge=1, description="questions per step")
    lr: float = Field(5e-4, gt=0, description="AdamW learning rate")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up steps")
    questions: QuestionConfig = Field(default_factory=QuestionConfig, description="training questions per type")
    seed: int = Field(0, ge=0, description="seed of the batch order")


def plot_curve(path: Path, series: dict[str, list[float]], ylabel: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, ys in series.items():
        ys = np.asarray(ys, dtype=float)
        if np.isnan(ys).any():  # a sparse series (a reward that is not paid every step): points
            x = np.flatnonzero(~np.isnan(ys))
            ax.plot(x, ys[x], ".", label=name)
            continue
        k = max(1, len(ys) // 30)
        smooth = np.convolve(ys, np.ones(k) / k, mode="valid") if len(ys) >= k else ys
        ax.plot(np.arange(len(smooth)) + k - 1, smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def finished_run(out: Path, cfg) -> dict | None:
    """The summary of the finished run in ``out`` (``done.json``), None when there is none; a finished run of
    another config is refused (ValueError naming the differing keys), so a rerun never passes off an old result
    as the one asked for."""
    from taclab.utils import config_diff

    done = Path(out) / "done.json"
    if not done.is_file():
        return None
    summary = json.loads(done.read_text())
    now = json.loads(json.dumps(cfg.model_dump()))
    if "config" in summary and summary["config"] != now:
        raise ValueError(
            f"{out} holds a finished run of another config ({config_diff(summary['config'], now)}); allowed: the "
            "same config (the run is not repeated) or a new run folder"
        )
    return summary


def run_sft(model, data, out, cfg: SFTConfig | dict | None = None, progress: bool = True) -> dict:
    """Fine-tune ``model`` (:class:`taclab.papers.touchr1.model.TouchR1Model`) on the traces of ``data``'s train
    split; returns the summary written to ``<out>/done.json``."""
    import torch

    from taclab.papers.touchr1.inputs import load_split
    from taclab.papers.touchr1.questions import make_questions

    cfg = cfg if isinstance(cfg, SFTConfig) else SFTConfig(**(cfg or {}))
    out = Path(out)
    if (done := finished_run(out, cfg)) is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    arrays = load_split(data, "train")
    qs = make_questions(arrays, cfg.questions, "train")
    if model.tactile_stats is None:
        model.fit_tactile_stats(arrays)  # the representation's statistics, on the training split
    qi = model.question_images(arrays)
    images = [qi.image(q) for q in qs]
    rng = np.random.default_rng(cfg.seed)
    params = [p for p in model.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps = cfg.epochs * int(np.ceil(len(qs) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, cfg.warmup_steps)))
    losses, t0, step = [], time.perf_counter(), 0
    model.model.train()
    with open(out / "log.jsonl", "w") as log:
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(qs))
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                loss = model.loss([images[j] for j in idx], [qs[j].prompt for j in idx], [qs[j].trace for j in idx])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step += 1
                losses.append(float(loss.detach()))
                log.write(json.dumps({"step": step, "epoch": epoch, "loss": losses[-1]}) + "\n")
                if progress and (step % 20 == 0 or step == steps):
                    rate = step / (time.perf_counter() - t0)
                    recent = np.mean(losses[-20:])
                    print(f"sft step {step}/{steps} epoch {epoch} loss {recent:.3f} ({rate:.1f} steps/s)", flush=True)
    model.save(out / "model")
    plot_curve(out / "loss.png", {"SFT loss": losses}, "loss", "Stage 2: SFT on reasoning traces")
    summary = {
        "questions": len(qs),
        "steps": step,
        "final_loss": float(np.mean(losses[-10:])),
        "seconds": time.perf_counter() - t0,
        "tactile": model.cfg.tactile.model_dump(),
        "config": cfg.model_dump(),
    }
    (out / "done.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
