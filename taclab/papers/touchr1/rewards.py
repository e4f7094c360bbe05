"""The four GRPO rewards of Touch-R1 as taclab defines them (see docs/touch_r1.md), each weighted by a config value.

- **ordinal accuracy** (:func:`ordinal_reward`): ``1 - OMAE / 4`` of the completion (levels read leniently); for
  ``compare`` and ``rank`` the mean of that and 1 / 0 for the right / wrong choice.
- **cross-sensor consistency** (:class:`ConsistencyReward`): for a cross-sensor question, ``1 - |level - ref| / 4``
  where ``ref`` is the mean level the model gave the same object and property through the *other* sensors: in
  the same batch, or remembered from the latest batches (``consistency_memory`` answers per sensor). ``None`` (no
  reward, TRL skips it) for other question types and before any reference exists.
- **format** (:func:`format_reward`): 1 when the completion is exactly the three tags in order with a readable
  ``<conclude>`` holding a level for every object, else 0; never raises, whatever the completion.
- **counterfactual tactile grounding** (:func:`counterfactual_reward`): the question is answered again (greedy)
  with the touch removed, shuffled and noised; the reward is ``max(0, s_real - max_k s_k)`` with ``s`` the ordinal
  accuracy: paid only when the real touch does better than every counterfactual, and zero when touch does not
  help.
"""

from __future__ import annotations

from collections import defaultdict, deque

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taclab.papers.touchr1.metrics import MISSING_ERROR, score_question
from taclab.papers.touchr1.questions import Question, parse_answer

COUNTERFACTUALS = ("removed", "shuffled", "noised")


class RewardConfig(BaseModel):
    """Weights of the four rewards and the counterfactuals used. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ordinal: float = Field(1.0, ge=0, description="weight of the ordinal-accuracy reward")
    consistency: float = Field(0.5, ge=0, description="weight of the cross-sensor consistency reward")
    format: float = Field(0.5, ge=0, description="weight of the format reward")
    counterfactual: float = Field(0.5, ge=0, description="weight of the counterfactual tactile-grounding reward")
    counterfactuals: tuple[str, ...] = Field(COUNTERFACTUALS, description="touch replacements the real touch must beat")
    consistency_memory: int = Field(8, ge=1, description="answers remembered per cross-sensor group and sensor")

    @field_validator("counterfactuals")
    @classmethod
    def _cf(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for k in v:
            if k not in COUNTERFACTUALS:
                raise ValueError(f"unknown counterfactual {k!r}; allowed: {', '.join(COUNTERFACTUALS)}")
        if not v:
            raise ValueError(f"counterfactuals must name at least one of {', '.join(COUNTERFACTUALS)}")
        return v

    def weights(self) -> list[float]:
        """In the order of :data:`REWARD_NAMES`."""
        return [self.ordinal, self.consistency, self.format, self.counterfactual]


REWARD_NAMES = ("ordinal", "consistency", "format", "counterfactual")


def ordinal_reward(q: Question, completion) -> float:
    s = score_question(q, completion)
    r = 1.0 - s["omae"] / MISSING_ERROR
    if q.choice is not None:
        p = parse_answer(completion, q.letters)
        r = 0.5 * r + 0.5 * float(p.choice == q.choice)
    return float(r)


def format_reward(q: Question, completion) -> float:
    return 1.0 if parse_answer(completion, q.letters).format_ok else 0.0


def counterfactual_reward(real: float, counterfactual: list[float]) -> float:
    """``max(0, real - max(counterfactual))``: zero unless the real touch beats every counterfactual."""
    if not counterfactual:
        raise ValueError("counterfactual_reward needs at least one counterfactual score")
    return max(0.0, float(real) - max(float(c) for c in counterfactual))


class ConsistencyReward:
    """Cross-sensor consistency against the model's answers through the other sensors (batch and memory)."""

    def __init__(self, memory: int = 8):
        self.memory: dict[str, dict[int, deque]] = defaultdict(lambda: defaultdict(lambda: deque(maxlen=memory)))

    def __call__(self, questions: list[Question], completions: list) -> list[float | None]:
        levels = [parse_answer(c, q.letters).levels.get("A") for q, c in zip(questions, completions, strict=True)]
        batch: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for q, v in zip(questions, levels, strict=True):
            if q.qtype == "cross_sensor" and v is not None:
                batch[q.group][q.sensors[0]].append(v)
        out: list[float | None] = []
        for q, v in zip(questions, levels, strict=True):
            if q.qtype != "cross_sensor":
                out.append(None)
                continue
            refs = []
            for sensor in set(batch[q.group]) | set(self.memory[q.group]):
                if sensor == q.sensors[0]:
                    continue
                refs.extend(batch[q.group].get(sensor) or list(self.memory[q.group].get(sensor, ())))
            if not refs:
                out.append(None)
            elif v is None:
                out.append(0.0)
            else:
                out.append(1.0 - abs(v - sum(refs) / len(refs)) / MISSING_ERROR)
        for group, per in batch.items():
            for sensor, vals in per.items():
                self.memory[group][sensor].extend(vals)
        return out
