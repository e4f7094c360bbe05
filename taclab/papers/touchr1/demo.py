"""The Touch-R1 pipeline in miniature (``taclab demo touchr1``).

1. generate a small ``touchr1`` dataset (``data/``): training and held-out test object groups, four sensors;
2. build the tiny Qwen2-VL offline (``tiny/``) and train it in three stages: tactile-field pre-training
   (``stage1/``), SFT on the reasoning traces (``sft/``), GRPO with the four rewards (``grpo/``);
3. benchmark it, the oracle and chance on the test split (``eval/``), with the touch removed as a counterfactual;
4. draw sample questions (``examples.png``): the object image, the four sensors' tactile sequences, the question,
   the model's reasoning and the reference answer.

The budgets are tiny: the demo shows the pipeline working, not a trained model (``benchmarks/touch_r1.py`` trains
one). A rerun in the same folder reuses the finished steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from taclab.utils import atomic_write_text


class DemoConfig(BaseModel):
    """What ``taclab demo touchr1 --set touchr1.<key>=value`` may set. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_groups: int = Field(6, ge=1, description="object groups (3 objects each) of the training split")
    test_groups: int = Field(3, ge=1, description="object groups (3 objects each) of the test split")
    sft_epochs: int = Field(2, ge=1, description="SFT epochs")
    grpo_steps: int = Field(3, ge=1, description="GRPO steps")
    image_size: int = Field(84, description="composite image size (a multiple of 84)")


SMALL_Q = {"level": 24, "compare": 6, "rank": 4, "cross_sensor": 2, "conflict": 4}


def demo(out: str | Path, seed: int = 0, workers: int | None = None, config: dict | None = None) -> dict:
    """``taclab demo touchr1``: run the pipeline into ``out``; returns the summary written to ``summary.json``."""
    import torch

    from taclab.data.generate import generate
    from taclab.papers.touchr1.baselines import LevelAnswerer
    from taclab.papers.touchr1.dataset import TouchR1DatasetConfig
    from taclab.papers.touchr1.evaluate import ModelAnswerer, evaluate
    from taclab.papers.touchr1.grpo import run_grpo
    from taclab.papers.touchr1.model import TouchR1Model
    from taclab.papers.touchr1.pretrain import run_pretrain
    from taclab.papers.touchr1.questions import QuestionConfig
    from taclab.papers.touchr1.sft import run_sft
    from taclab.papers.touchr1.tiny import init_tiny
    from taclab.utils import validation_message

    try:
        cfg = DemoConfig(**(config or {}))
    except ValueError as e:
        raise ValueError(f"invalid demo config for touchr1: {validation_message(e, prefix='touchr1.')}") from None
    if cfg.image_size % 84 or not 84 <= cfg.image_size <= 336:
        raise ValueError(f"touchr1.image_size must be 84, 168, 252 or 336, got {cfg.image_size}")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    generate(
        [
            TouchR1DatasetConfig(split="train", groups=cfg.train_groups, objects_per_group=3, seed=seed),
            TouchR1DatasetConfig(split="test", groups=cfg.test_groups, objects_per_group=3, seed=seed + 1),
        ],
        data,
        workers=workers or 1,
    )
    tiny = out / "tiny"
    if not (tiny / "tiny_init.json").is_file():
        init_tiny(tiny, image_size=cfg.image_size, seed=seed)
    m = TouchR1Model({"model": str(tiny), "image_size": cfg.image_size})
    s1 = run_pretrain(m, data, out / "stage1", {"epochs": 1, "max_pairs": 96, "seed": seed})
    s2 = run_sft(TouchR1Model.load(out / "stage1" / "model"), data, out / "sft",
                 {"epochs": cfg.sft_epochs, "lr": 1e-3, "questions": SMALL_Q, "seed": seed})  # fmt: skip
    grpo = {"steps": cfg.grpo_steps, "prompts_per_step": 2, "num_generations": 2, "max_completion_length": 48,
            "questions": SMALL_Q, "seed": seed}  # fmt: skip
    s3 = run_grpo(TouchR1Model.load(out / "sft" / "model"), data, out / "grpo", grpo, progress=False)
    q = QuestionConfig(level=8, compare=2, rank=2, cross_sensor=1, conflict=2, seed=seed)
    model = TouchR1Model.load(out / "grpo" / "model")
    rows = {}
    for name, ans, cf in (
        ("Touch-R1 (tiny, demo budget)", ModelAnswerer(model), ("removed",)),
        ("oracle", LevelAnswerer("oracle"), ()),
        ("chance", LevelAnswerer("chance", seed=seed), ()),
    ):
        rows[name] = evaluate(ans, data, "test", q, counterfactuals=cf, image_size=cfg.image_size,
                              out=out / "eval" / name.split(" ")[0].lower(), name=name)  # fmt: skip
    examples = draw_examples(out / "examples.png", data, rows["Touch-R1 (tiny, demo budget)"])
    summary = {
        "seconds": round(time.perf_counter() - t0, 1),
        "report": str(examples),
        "stage1_test": s1["test"],
        "sft_final_loss": s2["final_loss"],
        "grpo_final_rewards": s3["final"],
        "benchmark": {
            n: {k: r["overall"][k] for k in ("omae", "exact_match", "csc", "format_error")} for n, r in rows.items()
        },  # fmt: skip
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    for n, b in summary["benchmark"].items():
        csc = "-" if b["csc"] is None else f"{b['csc']:.0f}"
        print(f"{n:>30}: OMAE {b['omae']:.2f}  EM {b['exact_match']:5.1f} %  CSC {csc} %  "
              f"format errors {b['format_error']:.0f} %")  # fmt: skip
    return summary


def _wrap(text: str, width: int = 70) -> str:
    import textwrap

    return "\n".join(textwrap.fill(part, width) for part in str(text).replace("><", ">\n<").split("\n"))


def draw_examples(path: Path, data, record: dict, count: int = 3) -> Path:
    """A PNG of ``count`` questions: object image, the four sensors' tactile sequences (rows: sensors, columns:
    frames), the question, the model's answer and the reference answer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.papers.touchr1.inputs import load_split
    from taclab.papers.touchr1.physics import FRAME_NAMES

    a = load_split(data, "test")
    names = str(a["sensors"][0]).split(",")
    samples = [s for s in record["samples"] if s["qtype"] in ("level", "conflict")][:count]
    fig = plt.figure(figsize=(17, 4.2 * len(samples)))
    outer = fig.add_gridspec(len(samples), 3, width_ratios=[1.1, 5, 4.2], hspace=0.35, wspace=0.05)
    for i, s in enumerate(samples):
        o = s["objects"][0]
        ax = fig.add_subplot(outer[i, 0])
        ax.imshow(a["object_image"][o])
        ax.set_title("object image", fontsize=9)
        ax.axis("off")
        inner = outer[i, 1].subgridspec(len(names), 5, hspace=0.08, wspace=0.04)
        for k, sname in enumerate(names):
            for t in range(5):
                ax = fig.add_subplot(inner[k, t])
                ax.imshow(a["tactile"][o, k, t])
                ax.set_xticks([])
                ax.set_yticks([])
                if t == 0:
                    ax.set_ylabel(sname, fontsize=8)
                if k == 0:
                    ax.set_title(FRAME_NAMES[t], fontsize=8)
        ax = fig.add_subplot(outer[i, 2])
        ax.axis("off")
        lv = ", ".join(f"{p} {v}" for p, v in zip(("hardness", "roughness", "bumpiness", "friction"), a["levels"][o],
                                                   strict=True))  # fmt: skip
        text = (f"Q ({s['qtype']}): {_wrap(s['prompt'])}\n\nModel:\n{_wrap(s['completion'][:400]) or '(empty)'}\n\n"
                f"Reference:\n{_wrap(s['reference'])}\n\nTrue levels: {lv}")  # fmt: skip
        ax.text(0, 1, text, va="top", ha="left", fontsize=8, family="monospace")
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
