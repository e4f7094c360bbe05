"""Benchmark metrics of Touch-R1 as taclab defines them (the paper publishes no formulas; see docs/touch_r1.md).

Per question (:func:`score_question`), from the completion's ``<conclude>`` levels (read leniently when the format
is broken, so a wrong format does not hide a right level):

- **OMAE** (ordinal mean absolute error): the mean over the question's objects of ``|predicted - true|`` level;
  an object the answer gives no level for counts as the largest error, ``LEVELS - 1`` (4);
- **exact match**: every object's level right and, for ``compare`` / ``rank``, the choice / order right too;
- **format error**: the completion is not exactly the three tags in order with a readable ``<conclude>``.

Over a set (:func:`benchmark`), per question type and overall: OMAE, exact match (%), format-error rate (%), and
**CSC** (cross-sensor consistency, %): the share of cross-sensor groups (one object and property asked through
every sensor) whose answers all give the same level (an answer without a level breaks the group). Since a model
that always answers 3 is perfectly consistent, **CSC-correct** (the group agrees *and* is right) is reported too.

**Tactile reliance** (:func:`tactile_reliance`): exact match with the real touch minus exact match when the touch is
removed, shuffled between questions or replaced by noise (percentage points; their mean is the headline).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from taclab.papers.touchr1.objects import LEVELS
from taclab.papers.touchr1.questions import QTYPES, Question, conclude_body, order_of, parse_answer

MISSING_ERROR = LEVELS - 1
"""OMAE of an object the answer gives no level for."""


def score_question(q: Question, completion) -> dict:
    """``format_ok``, ``omae``, ``exact``, ``pred`` (LETTER -> level or None) of one completion."""
    p = parse_answer(completion, q.letters)
    errs, pred = [], {}
    for k, true in zip(q.letters, q.levels, strict=True):
        v = p.levels.get(k)
        pred[k] = v
        errs.append(MISSING_ERROR if v is None else abs(v - true))
    exact = all(e == 0 for e in errs)
    if exact and q.choice is not None:
        exact = p.choice == q.choice
    return {"format_ok": p.format_ok, "omae": float(np.mean(errs)), "exact": bool(exact), "pred": pred}


def completion_from_levels(q: Question, levels: dict[str, int]) -> str:
    """A well-formed answer that states the given levels (for models that predict levels without language)."""
    choice = None
    if q.qtype == "compare":
        choice = "A" if levels["A"] >= levels["B"] else "B"
    elif q.qtype == "rank":
        choice = order_of(levels)
    return f"<perceive>-</perceive><compare>-</compare><conclude>{conclude_body(levels, choice)}</conclude>"


def _summary(scores: list[dict]) -> dict:
    if not scores:
        return {"n": 0, "omae": None, "exact_match": None, "format_error": None}
    return {
        "n": len(scores),
        "omae": float(np.mean([s["omae"] for s in scores])),
        "exact_match": 100.0 * float(np.mean([s["exact"] for s in scores])),
        "format_error": 100.0 * float(np.mean([not s["format_ok"] for s in scores])),
    }


def cross_sensor_consistency(questions: list[Question], scores: list[dict]) -> dict:
    """``csc`` and ``csc_correct`` (%) over the cross-sensor groups, and the number of groups."""
    groups: dict[str, list[tuple[Question, dict]]] = defaultdict(list)
    for q, s in zip(questions, scores, strict=True):
        if q.qtype == "cross_sensor":
            groups[q.group].append((q, s))
    agree, right = [], []
    for members in groups.values():
        preds = [s["pred"]["A"] for _, s in members]
        same = None not in preds and len(set(preds)) == 1
        agree.append(same)
        right.append(same and preds[0] == members[0][0].levels[0])
    if not agree:
        return {"groups": 0, "csc": None, "csc_correct": None}
    return {"groups": len(agree), "csc": 100.0 * float(np.mean(agree)), "csc_correct": 100.0 * float(np.mean(right))}


def benchmark(questions: list[Question], completions: list) -> dict:
    """Every metric, overall and per question type (``by_type``)."""
    if len(questions) != len(completions):
        raise ValueError(f"got {len(questions)} questions and {len(completions)} completions: the counts must match")
    scores = [score_question(q, c) for q, c in zip(questions, completions, strict=True)]
    out = {"overall": _summary(scores), "by_type": {}}
    for t in QTYPES:
        out["by_type"][t] = _summary([s for q, s in zip(questions, scores, strict=True) if q.qtype == t])
    out["overall"].update(cross_sensor_consistency(questions, scores))
    out["scores"] = scores
    return out


def tactile_reliance(real: dict, counterfactual: dict[str, dict], key: str = "exact_match") -> dict:
    """Real minus counterfactual ``key`` (overall) per counterfactual kind, and their ``mean``."""
    base = real["overall"][key]
    out = {kind: base - r["overall"][key] for kind, r in counterfactual.items()}
    out["mean"] = float(np.mean(list(out.values()))) if out else None
    return out
