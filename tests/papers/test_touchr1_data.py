"""Touch-R1 data: the properties change the physics as documented, splits do not leak, questions are right."""

import dataclasses

import numpy as np
import pytest

from taclab.papers.touchr1.objects import PROPERTIES, TouchObject, draw_group
from taclab.papers.touchr1.physics import SENSORS, PressSim
from taclab.papers.touchr1.questions import QTYPES, QuestionConfig, make_questions, parse_answer


@pytest.fixture(scope="module")
def sim():
    return PressSim()


def _obj(**levels) -> TouchObject:
    base = dict(hardness=3, roughness=1, bumpiness=1, friction=3)
    base.update(levels)
    return TouchObject("t-g0-o0", "t-g0", tuple(base[p] for p in PROPERTIES), 0.015, 123, (0.1, 0.3))


def _width_mm(depth: np.ndarray) -> float:
    """Width of the imprint along x through its widest row (mm)."""
    return float((depth > 1e-7).sum(axis=1).max() * 0.5)


def test_softer_objects_leave_wider_shallower_imprints(sim):
    widths, peaks, forces = [], [], []
    for h in range(1, 6):
        it = sim.run(_obj(hardness=h), SENSORS["gelsight"], force=1.0)
        d = it.field.depth[1]  # full press, before the slide
        widths.append(_width_mm(d))
        peaks.append(float(d.max()))
        forces.append(float(it.normal_force[1]))
    assert np.allclose(forces, 1.0, atol=0.1)  # the same set force each time
    assert all(a >= b for a, b in zip(widths, widths[1:], strict=False)) and widths[0] >= widths[-1] + 1.5
    assert all(a < b for a, b in zip(peaks, peaks[1:], strict=False))  # harder: deeper gel indentation
    assert peaks[-1] > 3 * peaks[0]


def _relief_amplitude(sim, **levels) -> float:
    """RMS of the imprint about a fitted quadratic (the dome's smooth imprint), where the gel is pressed to over
    30 % of its peak."""
    d = sim.run(_obj(**levels), SENSORS["gelsight"]).field.depth[1]
    r, c = np.nonzero(d > 0.3 * d.max())
    x, y = c.astype(float), r.astype(float)
    basis = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    coef, *_ = np.linalg.lstsq(basis, d[r, c], rcond=None)
    return float(np.sqrt(np.mean((d[r, c] - basis @ coef) ** 2)))


def test_relief_grows_with_roughness_and_bumpiness(sim):
    rough = [_relief_amplitude(sim, hardness=5, roughness=r) for r in range(1, 6)]
    assert rough[0] < 1e-7 and all(a < b for a, b in zip(rough, rough[1:], strict=False))
    bumps = [_relief_amplitude(sim, hardness=5, bumpiness=b) for b in range(1, 6)]
    assert bumps[0] < 1e-7 and all(a < b for a, b in zip(bumps, bumps[1:], strict=False))
    # a softer object flattens its relief in the gel
    assert _relief_amplitude(sim, hardness=1, bumpiness=5) < 0.5 * bumps[-1]


def test_slipperier_objects_slip_earlier(sim):
    onsets = [sim.run(_obj(friction=f), SENSORS["gelsight"]).slip_onset for f in range(1, 6)]
    assert all(a < b for a, b in zip(onsets, onsets[1:], strict=False))
    assert onsets[0] < 0.3e-3 and onsets[-1] > 0.7e-3


def test_sensors_see_the_same_object_differently(sim):
    depths = {s: sim.run(_obj(hardness=2), spec).field.depth[1].max() for s, spec in SENSORS.items()}
    assert depths["gelsight_mini"] > depths["digit"]  # the softer gel takes more of the indentation


def _rows(split, groups=2, seed=0):
    from taclab.data.generate import make_rows
    from taclab.papers.touchr1.dataset import TouchR1DatasetConfig

    cfg = TouchR1DatasetConfig(split=split, groups=groups, objects_per_group=2, sensors=("gelsight", "digit"),
                               seed=seed, conflict_fraction=0.5)  # fmt: skip
    return make_rows(cfg)


def test_rows_and_no_test_object_in_training():
    train, test = _rows("train"), _rows("test")
    r = train[0]
    assert r["tactile"].shape == (2, 5, 48, 48, 3) and r["tactile"].dtype == np.uint8
    assert r["depth"].shape == (2, 5, 24, 24) and r["shear"].shape == (2, 5, 24, 24, 2)
    assert r["object_image"].shape == (64, 64, 3) and r["sensors"] == "gelsight,digit"
    assert float(r["depth"][:, 1].max()) > 0.02  # mm: the full press indents the gel
    assert all(1 <= v <= 5 for v in r["levels"])
    for key in ("object_id", "group"):
        assert not {x[key] for x in train} & {x[key] for x in test}
    assert {x["group"] for x in train} == {"train-g0000", "train-g0001"}
    for x in train + test:
        if x["conflict"]:
            p = PROPERTIES.index(x["conflict_property"])
            assert abs(int(x["apparent_levels"][p]) - int(x["levels"][p])) >= 2
        else:
            assert list(x["apparent_levels"]) == list(x["levels"])
    # the same config gives the same rows
    again = _rows("train")
    np.testing.assert_array_equal(again[1]["tactile"], train[1]["tactile"])


def test_relief_patterns_differ_between_groups():
    a = draw_group("train", 0, 3, np.random.default_rng(0))
    b = draw_group("test", 0, 3, np.random.default_rng(0))
    assert len({o.relief_seed for o in a}) == 1  # shared within a group
    assert a[0].relief_seed != b[0].relief_seed


def test_bad_sensor_is_named():
    from taclab.papers.touchr1.dataset import TouchR1DatasetConfig

    with pytest.raises(ValueError, match=r"unknown sensor 'biotac'.*gelsight"):
        TouchR1DatasetConfig(sensors=("biotac",))


def _table(n=30, seed=0):
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 6, size=(n, 4))
    conflict = rng.uniform(size=n) < 0.3
    props = np.array([PROPERTIES[i % 4] if c else "" for i, c in enumerate(conflict)])
    apparent = levels.copy()
    for i in np.flatnonzero(conflict):
        p = PROPERTIES.index(props[i])
        apparent[i, p] = 6 - levels[i, p] if abs(6 - 2 * levels[i, p]) >= 2 else (levels[i, p] + 2 - 1) % 5 + 1
    return {"levels": levels, "apparent_levels": apparent, "conflict": conflict, "conflict_property": props,
            "sensors": np.array(["gelsight,gelstereo,digit,gelsight_mini"] * n)}  # fmt: skip


def test_questions_have_correct_reference_answers():
    t = _table()
    qs = make_questions(t, QuestionConfig(level=20, compare=10, rank=10, cross_sensor=5, conflict=5), split="s")
    assert {q.qtype for q in qs} == set(QTYPES)
    for q in qs:
        p = parse_answer(q.trace, q.letters)
        assert p.format_ok, q.trace
        prop = PROPERTIES.index(q.prop)
        assert [p.levels[k] for k in q.letters] == [int(t["levels"][o, prop]) for o in q.objects]
        if q.qtype == "compare":
            more = max(q.letters, key=lambda k: p.levels[k])
            assert p.choice == more
        if q.qtype == "rank":
            assert p.choice == ">".join(sorted(q.letters, key=lambda k: -p.levels[k]))
    groups = {}
    for q in qs:
        if q.qtype == "cross_sensor":
            groups.setdefault(q.group, []).append(q)
    assert len(groups) == 5 and all(sorted(q.sensors[0] for q in g) == [0, 1, 2, 3] for g in groups.values())
    assert all(len({q.objects for q in g}) == 1 for g in groups.values())
    # deterministic
    again = make_questions(t, QuestionConfig(level=20, compare=10, rank=10, cross_sensor=5, conflict=5), split="s")
    assert [q.trace for q in again] == [q.trace for q in qs]


@pytest.mark.parametrize("text", [None, 3, "", "A=3", "<perceive>x</perceive><conclude>A=3</conclude>",
                                  "<perceive>x</perceive><compare>y</compare><conclude>A=9</conclude>"])  # fmt: skip
def test_malformed_answers_parse_without_error(text):
    assert not parse_answer(text).format_ok


def test_lenient_levels_from_broken_format():
    p = parse_answer("I think A=4 and B=2", "AB")
    assert not p.format_ok and p.levels == {"A": 4, "B": 2}
    assert dataclasses.asdict(parse_answer("<perceive>x</perceive><compare>y</compare><conclude>A=2</conclude>"))[
        "format_ok"
    ]
