"""Questions, reference answers and reasoning traces over a split of the ``touchr1`` dataset.

Questions are a deterministic function of the split's rows and a seed (:func:`make_questions`). Objects in a
question are called A, B, C; each is seen through one sensor. Five types (:data:`QTYPES`):

- ``level``: rate one property of A from 1 to 5;
- ``compare``: which of A and B has more of a property (their levels differ), rating both;
- ``rank``: order A, B, C from most to least (distinct levels), rating each;
- ``cross_sensor``: a level question on one object and property asked once through every sensor; the questions
  of one object and property share a ``group`` (cross-sensor consistency is scored over it);
- ``conflict``: an object of the conflict subset whose look contradicts the asked property: the prompt says how it
  looks; the answer follows touch.

Every answer is written in the three-tag format (:data:`ANSWER_FORMAT`)::

    <perceive>A (gelsight): narrow, deep imprint.</perceive><compare>A is hard on the 1-5 scale.</compare>
    <conclude>A=4</conclude>

The ``<conclude>`` body lists ``LETTER=LEVEL`` for every object, then for ``compare`` and ``rank`` ``; `` and the
choice (``B``) or the order (``B>A>C``). :func:`parse_answer` reads any text and never raises.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from taclab.papers.touchr1.objects import LEVELS, PROPERTIES, WORDS, stable_seed

QTYPES = ("level", "compare", "rank", "cross_sensor", "conflict")
LETTERS = "ABC"
ANSWER_FORMAT = re.compile(
    r"^\s*<perceive>(?P<perceive>.+?)</perceive>\s*<compare>(?P<compare>.+?)</compare>\s*"
    r"<conclude>(?P<conclude>.+?)</conclude>\s*$",
    re.DOTALL,
)
MORE = {"hardness": "harder", "roughness": "rougher", "bumpiness": "bumpier", "friction": "grippier"}
CUES = {
    "hardness": ("very wide, shallow imprint", "wide, shallow imprint", "medium imprint", "narrow, deep imprint",
                 "very narrow, deep imprint"),
    "roughness": ("no fine texture", "faint fine texture", "some fine texture", "clear fine texture",
                  "strong fine texture"),
    "bumpiness": ("no bumps", "small dense bumps", "medium bumps", "large bumps", "very large bumps"),
    "friction": ("slips at once", "slips early", "slips midway", "slips late", "slips at the very end"),
}  # fmt: skip
"""What touch shows at each level, used in the reference traces' <perceive> step."""


class QuestionConfig(BaseModel):
    """How many questions of each type a split gets. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: int = Field(200, ge=0, description="single-property level questions")
    compare: int = Field(100, ge=0, description="pairwise comparisons")
    rank: int = Field(60, ge=0, description="rankings of three")
    cross_sensor: int = Field(40, ge=0, description="cross-sensor groups (one question per sensor each)")
    conflict: int = Field(60, ge=0, description="visual-tactile conflict questions (at most one per conflict object "
                                               "and property; fewer when the split has fewer)")  # fmt: skip
    seed: int = Field(0, ge=0, description="seed of the question draw")


@dataclass
class Question:
    qid: str
    qtype: str
    prop: str
    objects: tuple[int, ...]  # row indices in the split
    sensors: tuple[int, ...]  # sensor (tile row) index per object
    levels: tuple[int, ...]  # true level per object
    prompt: str
    answer: str  # the reference <conclude> body
    trace: str  # the full reference completion
    group: str = ""  # cross-sensor group ("" for other types)
    apparent: tuple[int, ...] = field(default_factory=tuple)  # apparent level per object (conflict questions)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.objects)]

    @property
    def choice(self) -> str | None:
        """The expected choice (compare) or order (rank), else None."""
        return self.answer.split("; ")[1] if "; " in self.answer else None


def conclude_body(levels: dict[str, int], choice: str | None = None) -> str:
    body = " ".join(f"{k}={v}" for k, v in levels.items())
    return body if choice is None else f"{body}; {choice}"


def order_of(levels: dict[str, int]) -> str:
    """Letters from most to least (ties keep letter order)."""
    return ">".join(sorted(levels, key=lambda k: (-levels[k], k)))


def _prompt(q_type: str, prop: str, sensor_names: list[str], apparent: list[int] | None = None) -> str:
    lo, hi = WORDS[prop][0], WORDS[prop][-1]
    seen = " ".join(f"{LETTERS[i]}: {s}." for i, s in enumerate(sensor_names))
    scale = f"1 ({lo}) to {LEVELS} ({hi})"
    if q_type in ("level", "cross_sensor"):
        ask = f"Rate the {prop} of A from {scale}."
    elif q_type == "compare":
        ask = f"Which is {MORE[prop]}, A or B? Rate both from {scale}."
    elif q_type == "rank":
        ask = f"Rank A, B, C from {MORE[prop]} to least. Rate each from {scale}."
    else:
        look = WORDS[prop][apparent[0] - 1]
        ask = f"A looks {look}. By touch, rate its {prop} from {scale}."
    return f"Touch {seen} {ask}"


def reference_trace(q_type: str, prop: str, sensor_names: list[str], levels: list[int], apparent=None) -> str:
    letters = LETTERS[: len(levels)]
    lv = dict(zip(letters, levels, strict=True))
    perceive = " ".join(
        f"{k} ({s}): {CUES[prop][v - 1]}." for k, s, v in zip(letters, sensor_names, levels, strict=True)
    )
    choice = None
    if q_type == "compare":
        more = "A" if lv["A"] > lv["B"] else "B"
        less = "B" if more == "A" else "A"
        compare = f"{more} is {MORE[prop]} than {less}."
        choice = more
    elif q_type == "rank":
        choice = order_of(lv)
        compare = f"{choice.replace('>', ' > ')} in {prop}."
    elif q_type == "conflict":
        look = WORDS[prop][apparent[0] - 1]
        compare = f"A looks {look} but feels {WORDS[prop][levels[0] - 1]}; touch decides."
    else:
        compare = f"A is {WORDS[prop][levels[0] - 1]} on the 1-{LEVELS} scale."
    return (
        f"<perceive>{perceive}</perceive><compare>{compare}</compare><conclude>{conclude_body(lv, choice)}</conclude>"
    )


def make_questions(table: dict[str, np.ndarray], cfg: QuestionConfig | None = None, split: str = "") -> list[Question]:
    """Questions over a split's rows: ``table`` holds at least ``levels`` (N, 4), ``apparent_levels``,
    ``conflict``, ``conflict_property`` and ``sensors`` (the dataset's columns)."""
    cfg = cfg or QuestionConfig()
    levels = np.asarray(table["levels"])
    n = len(levels)
    if n == 0:
        raise ValueError("make_questions needs at least one object")
    sensor_names = str(table["sensors"][0]).split(",")
    n_s = len(sensor_names)
    rng = np.random.default_rng(stable_seed("questions", split, cfg.seed))
    out: list[Question] = []

    def add(q_type, prop, objs, sens, group="", apparent=None):
        p = PROPERTIES.index(prop)
        lv = [int(levels[o, p]) for o in objs]
        names = [sensor_names[s] for s in sens]
        trace = reference_trace(q_type, prop, names, lv, apparent)
        answer = trace.split("<conclude>")[1].split("</conclude>")[0]
        out.append(Question(f"{split}-{len(out):05d}", q_type, prop, tuple(int(o) for o in objs),
                            tuple(int(s) for s in sens), tuple(lv), _prompt(q_type, prop, names, apparent),
                            answer, trace, group, tuple(apparent or ())))  # fmt: skip

    for _ in range(cfg.level):
        add("level", PROPERTIES[rng.integers(4)], [rng.integers(n)], [rng.integers(n_s)])
    for want, size in (("compare", 2), ("rank", 3)):
        made, tries = 0, 0
        target = cfg.compare if want == "compare" else cfg.rank
        while made < target and tries < 50 * target + 100 and n >= size:
            tries += 1
            prop = PROPERTIES[rng.integers(4)]
            objs = rng.choice(n, size=size, replace=False)
            lv = levels[objs, PROPERTIES.index(prop)]
            if len(set(lv.tolist())) < size:
                continue
            add(want, prop, objs, rng.integers(n_s, size=size))
            made += 1
    for g in range(cfg.cross_sensor):
        o, prop = int(rng.integers(n)), PROPERTIES[rng.integers(4)]
        for s in range(n_s):
            add("cross_sensor", prop, [o], [s], group=f"{split}-cs{g:04d}")
    conflict = np.flatnonzero(np.asarray(table["conflict"]).astype(bool))
    rng.shuffle(conflict)
    for o in conflict[: cfg.conflict]:
        prop = str(table["conflict_property"][o])
        app = [int(np.asarray(table["apparent_levels"])[o, PROPERTIES.index(prop)])]
        add("conflict", prop, [o], [rng.integers(n_s)], apparent=app)
    return out


@dataclass
class Parsed:
    """What :func:`parse_answer` read from a completion."""

    format_ok: bool  # the three tags in order, nothing else, and a readable <conclude>
    levels: dict[str, int]  # LETTER -> level (1..5) found in <conclude> (or anywhere, when the format is broken)
    choice: str | None  # the text after '; ' in <conclude>


_LEVEL = re.compile(r"\b([ABC])\s*=\s*([1-9])\b")


def parse_answer(text, letters: str = "A") -> Parsed:
    """Read a completion. Never raises: a non-string or malformed text gives ``format_ok=False``; levels are then
    read leniently from the whole text (for the ordinal score), the first value per letter winning."""
    if not isinstance(text, str):
        return Parsed(False, {}, None)
    m = ANSWER_FORMAT.match(text)
    body = m.group("conclude") if m else text
    found: dict[str, int] = {}
    for k, v in _LEVEL.findall(body):
        if k not in found and 1 <= int(v) <= LEVELS:
            found[k] = int(v)
    choice = None
    if m and "; " in body:
        choice = body.split("; ", 1)[1].strip()
    ok = bool(m) and all(k in found for k in letters)
    return Parsed(ok, found, choice)
