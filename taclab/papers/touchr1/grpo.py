"""Stage 3: GRPO through TRL's ``GRPOTrainer`` with Touch-R1's four rewards (:mod:`.rewards`).

Top to bottom:

1. the training questions (:class:`QuestionConfig`) become a ``datasets.Dataset`` of conversational prompts (the
   composite image and the question) with a ``qidx`` column that points back at the question, in a random order
   that keeps the questions of a cross-sensor group together (:func:`group_adjacent`);
2. the four rewards become TRL reward functions ``f(prompts, completions, qidx, ...) -> [float | None]``:
   ordinal accuracy, cross-sensor consistency (``None`` for other question types), format, and the counterfactual
   tactile-grounding reward, a closure over the trainer's model that answers each prompt again greedily with the
   touch removed, shuffled and noised (once per prompt and step, shared by its generations);
3. ``GRPOTrainer`` runs with the rewards' weights as ``reward_weights`` (a weight of 0 turns a reward off; its
   function is then not called);
4. the trained model is saved to ``<out>/model``; ``<out>/log.json`` holds TRL's log history and
   ``<out>/rewards.png`` the reward curves. A finished run (``<out>/done.json``) is not run again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taclab.papers.touchr1.questions import QuestionConfig
from taclab.papers.touchr1.rewards import (
    REWARD_NAMES,
    ConsistencyReward,
    RewardConfig,
    counterfactual_reward,
    format_reward,
    ordinal_reward,
)


class GRPOStageConfig(BaseModel):
    """Settings of stage 3. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(60, ge=1, description="optimizer steps")
    prompts_per_step: int = Field(4, ge=1, description="questions per step")
    num_generations: int = Field(4, ge=2, description="sampled answers per question (the GRPO group)")
    max_completion_length: int = Field(96, ge=8, description="longest sampled answer in tokens")
    temperature: float = Field(1.0, gt=0, description="sampling temperature")
    lr: float = Field(2e-5, gt=0, description="learning rate")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the starting model (TRL's default 0)")
    rewards: RewardConfig = Field(default_factory=RewardConfig, description="weights of the four rewards")
    questions: QuestionConfig = Field(
        default_factory=lambda: QuestionConfig(level=200, compare=100, rank=60, cross_sensor=60, conflict=60, seed=2),
        description="training questions per type",
    )
    seed: int = Field(0, ge=0, description="seed of TRL's trainer")


def _text(completion) -> str:
    """A TRL completion (text, or a list of chat messages) as text."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") if isinstance(m.get("content"), str) else "" for m in completion)
    return completion if isinstance(completion, str) else ""


def _nanmean(v) -> float | None:
    v = [x for x in v if x == x]
    return float(np.mean(v)) if v else None


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def greedy_answers(model, tokenizer, image_processor, images, prompts, max_new_tokens: int) -> list[str]:
    """Greedy answers of a Qwen2-VL module (used by the counterfactual reward during training)."""
    import torch

    from taclab.papers.tla.inputs import build_batch

    b = build_batch(tokenizer, image_processor, images, prompts)
    dev = next(model.parameters()).device
    b = {k: v.to(dev) for k, v in b.items()}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**b, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
    model.train(was_training)
    return tokenizer.batch_decode(out[:, b["input_ids"].shape[1] :], skip_special_tokens=True)


class RewardFunctions:
    """The four rewards as TRL reward functions over the question list."""

    def __init__(self, questions, images_of, model, cfg: GRPOStageConfig):
        self.questions, self.images_of, self.model, self.cfg = questions, images_of, model, cfg
        self.consistency_state = ConsistencyReward(cfg.rewards.consistency_memory)
        self.trainer = None  # set after the trainer is built: the counterfactual reward answers with its model
        self.rng = np.random.default_rng(cfg.seed)
        self.cf_calls = 0

    def functions(self) -> list:
        fns = [self.ordinal, self.consistency, self.format, self.counterfactual]
        for f, name in zip(fns, REWARD_NAMES, strict=True):
            f.__func__.__name__ = name
        return fns

    def ordinal(self, prompts, completions, qidx, **_):
        return [ordinal_reward(self.questions[i], _text(c)) for i, c in zip(qidx, completions, strict=True)]

    def format(self, prompts, completions, qidx, **_):
        return [format_reward(self.questions[i], _text(c)) for i, c in zip(qidx, completions, strict=True)]

    def consistency(self, prompts, completions, qidx, **_):
        return self.consistency_state([self.questions[i] for i in qidx], [_text(c) for c in completions])

    def counterfactual(self, prompts, completions, qidx, **_):
        unique = sorted(set(int(i) for i in qidx))
        module = self.trainer.model if self.trainer is not None else self.model.model
        cf_score: dict[int, list[float]] = {i: [] for i in unique}
        for kind in self.cfg.rewards.counterfactuals:
            imgs = [self.images_of.image(self.questions[i], kind, self.rng) for i in unique]
            answers = greedy_answers(
                module, self.model.tokenizer, self.model.image_processor, imgs,
                [self.questions[i].prompt for i in unique], self.cfg.max_completion_length,
            )  # fmt: skip
            for i, a in zip(unique, answers, strict=True):
                cf_score[i].append(ordinal_reward(self.questions[i], a))
        self.cf_calls += 1
        out = []
        for i, c in zip(qidx, completions, strict=True):
            real = ordinal_reward(self.questions[i], _text(c))
            out.append(counterfactual_reward(real, cf_score[int(i)]))
        return out


def group_adjacent(questions: list, seed: int) -> list:
    """The questions in random order, the questions of one cross-sensor group kept next to each other (so that a
    batch holds the same object through several sensors and the consistency reward has references)."""
    blocks: dict[str, list] = {}
    for i, q in enumerate(questions):
        blocks.setdefault(q.group or f"single-{i}", []).append(q)
    keys = list(blocks)
    order = np.random.default_rng(seed).permutation(len(keys))
    return [q for k in order for q in blocks[keys[k]]]


def run_grpo(model, data, out, cfg: GRPOStageConfig | dict | None = None, progress: bool = True) -> dict:
    """Train ``model`` (:class:`taclab.papers.touchr1.model.TouchR1Model`) with GRPO on ``data``'s train split."""
    import datasets
    from PIL import Image
    from trl import GRPOConfig, GRPOTrainer

    from taclab.papers.touchr1.inputs import load_split
    from taclab.papers.touchr1.questions import make_questions
    from taclab.papers.touchr1.sft import finished_run, plot_curve

    cfg = cfg if isinstance(cfg, GRPOStageConfig) else GRPOStageConfig(**(cfg or {}))
    out = Path(out)
    if (done := finished_run(out, cfg)) is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    arrays = load_split(data, "train")
    qs = group_adjacent(make_questions(arrays, cfg.questions, "train"), cfg.seed)
    if model.tactile_stats is None:
        model.fit_tactile_stats(arrays)
    qi = model.question_images(arrays)
    rows = {
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q.prompt}]}] for q in qs],
        "image": [Image.fromarray(qi.image(q)) for q in qs],
        "qidx": list(range(len(qs))),
    }
    ds = datasets.Dataset.from_dict(rows)
    weights = cfg.rewards.weights()
    rf = RewardFunctions(qs, qi, model, cfg)
    fns = [f for f, w in zip(rf.functions(), weights, strict=True) if w > 0]
    used = [w for w in weights if w > 0]
    on_gpu = next(model.model.parameters()).device.type == "cuda"
    args = GRPOConfig(
        output_dir=str(out / "trl"),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.prompts_per_step * cfg.num_generations,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        learning_rate=cfg.lr,
        beta=cfg.beta,
        reward_weights=used,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        bf16=on_gpu and model.cfg.dtype == "bfloat16",
        use_cpu=not on_gpu,  # the model's device (ModelConfig.device) decides
        seed=cfg.seed,
        remove_unused_columns=False,
        shuffle_dataset=False,  # group_adjacent shuffled already, keeping cross-sensor groups together
        disable_tqdm=not progress,
    )
    trainer = GRPOTrainer(
        model=model.model, reward_funcs=fns, args=args, train_dataset=ds, processing_class=model.processor
    )
    rf.trainer = trainer
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.model = trainer.model
    model.save(out / "model")
    hist = [h for h in trainer.state.log_history if "reward" in h]
    (out / "log.json").write_text(json.dumps(trainer.state.log_history, indent=1) + "\n")
    series = {"total (weighted)": [_num(h.get("reward")) for h in hist]}
    for name, w in zip(REWARD_NAMES, weights, strict=True):
        key = f"rewards/{name}/mean"
        if w > 0 and hist and key in hist[0]:
            series[name] = [_num(h.get(key)) for h in hist]
    if hist:
        plot_curve(out / "rewards.png", series, "reward", "Stage 3: GRPO rewards")
    summary = {
        "questions": len(qs),
        "steps": cfg.steps,
        "seconds": seconds,
        "final": {k: _nanmean(v[-10:]) for k, v in series.items()},
        "config": cfg.model_dump(),
    }
    (out / "done.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
