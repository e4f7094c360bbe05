"""The Touch-R1 benchmark over a split (``taclab eval reason``): any answerer, the real touch and the counterfactuals.

An *answerer* turns questions into completions: a Touch-R1 model checkpoint (greedy answers to the composites),
or a reference row (:mod:`.baselines`: the tactile-only classifier, the vision-only classifier, chance, the
oracle), which predict levels and state them in a well-formed answer. :func:`evaluate` scores the real inputs and,
for tactile reliance, the counterfactual ones (touch removed, shuffled, noised).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from taclab.papers.touchr1.metrics import benchmark, tactile_reliance
from taclab.papers.touchr1.questions import QuestionConfig, make_questions

TEST_QUESTIONS = QuestionConfig(level=80, compare=40, rank=24, cross_sensor=20, conflict=30, seed=1)
"""The benchmark's questions per split (the cross-sensor groups hold one question per sensor)."""


class ModelAnswerer:
    """Greedy answers of a :class:`taclab.papers.touchr1.model.TouchR1Model`."""

    def __init__(self, model, batch_size: int = 16):
        self.model, self.batch_size = model, batch_size

    def __call__(self, questions, images_of, kind: str) -> list[str]:
        out = []
        rng = np.random.default_rng(0)
        images_of = self.model.question_images(images_of)  # the model's tactile representation
        for i in range(0, len(questions), self.batch_size):
            qs = questions[i : i + self.batch_size]
            imgs = [images_of.image(q, kind, rng) for q in qs]
            out += self.model.generate(imgs, [q.prompt for q in qs])
        return out


def evaluate(
    answerer,
    data,
    split: str = "test",
    questions: QuestionConfig | None = None,
    counterfactuals: tuple[str, ...] = ("removed", "shuffled", "noised"),
    image_size: int = 168,
    out: str | Path | None = None,
    name: str = "model",
) -> dict:
    """Benchmark ``answerer`` on ``split``; writes ``<out>/reason_<split>.json`` (metrics and completions)."""
    from taclab.papers.touchr1.inputs import QuestionImages, load_split

    arrays = load_split(data, split)
    qs = make_questions(arrays, questions or TEST_QUESTIONS, split)
    qi = QuestionImages(arrays, image_size)
    t0 = time.perf_counter()
    comps = answerer(qs, qi, "real")
    real = benchmark(qs, comps)
    cfs = {k: benchmark(qs, answerer(qs, qi, k)) for k in counterfactuals}
    rec = {
        "name": name,
        "split": split,
        "questions": len(qs),
        "overall": real["overall"],
        "by_type": real["by_type"],
        "counterfactual": {k: v["overall"] for k, v in cfs.items()},
        "tactile_reliance": tactile_reliance(real, cfs) if cfs else {},
        "seconds": time.perf_counter() - t0,
        "samples": [
            {
                "qid": q.qid,
                "qtype": q.qtype,
                "objects": list(q.objects),
                "sensors": list(q.sensors),
                "prompt": q.prompt,
                "reference": q.trace,
                "completion": c,
                "omae": sc["omae"],
                "exact": sc["exact"],
            }
            for q, c, sc in zip(qs, comps, real["scores"], strict=True)
        ],  # fmt: skip
    }
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"reason_{split}.json").write_text(json.dumps(rec, indent=1) + "\n")
    return rec
