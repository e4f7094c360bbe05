"""Touch-R1 metrics and rewards on hand-computed cases."""

import pytest

from taclab.papers.touchr1.metrics import benchmark, completion_from_levels, score_question, tactile_reliance
from taclab.papers.touchr1.questions import Question
from taclab.papers.touchr1.rewards import (
    ConsistencyReward,
    RewardConfig,
    counterfactual_reward,
    format_reward,
    ordinal_reward,
)


def q_level(level=3, qtype="level", group="", sensor=0):
    return Question("q", qtype, "hardness", (0,), (sensor,), (level,), "p", f"A={level}", "", group)


def q_compare():
    return Question("c", "compare", "roughness", (0, 1), (0, 1), (2, 5), "p", "A=2 B=5; B", "")


def ans(body):
    return f"<perceive>x</perceive><compare>y</compare><conclude>{body}</conclude>"


def test_score_question_by_hand():
    s = score_question(q_level(3), ans("A=5"))
    assert s == {"format_ok": True, "omae": 2.0, "exact": False, "pred": {"A": 5}}
    assert score_question(q_level(3), ans("A=3"))["exact"]
    s = score_question(q_compare(), ans("A=2 B=4; B"))
    assert s["omae"] == 0.5 and not s["exact"]
    assert score_question(q_compare(), ans("A=2 B=5; A"))["exact"] is False  # levels right, choice wrong
    assert score_question(q_compare(), ans("A=2 B=5; B"))["exact"]
    s = score_question(q_compare(), "garbage")  # no levels: the largest error for both objects
    assert s == {"format_ok": False, "omae": 4.0, "exact": False, "pred": {"A": None, "B": None}}


def test_benchmark_and_csc_by_hand():
    qs = [q_level(2, "cross_sensor", "g1", s) for s in range(4)] + [
        q_level(4, "cross_sensor", "g2", s) for s in range(4)
    ]
    qs.append(q_level(1))
    comps = [ans("A=2")] * 4 + [ans("A=3")] * 3 + ["A=3 (no tags)"] + [ans("A=1")]
    r = benchmark(qs, comps)
    o = r["overall"]
    assert o["n"] == 9
    assert o["omae"] == pytest.approx(4 / 9)  # four answers one level off
    assert o["exact_match"] == pytest.approx(100 * 5 / 9)
    assert o["format_error"] == pytest.approx(100 / 9)
    assert o["csc"] == 100.0  # both groups agree (the lenient parse reads the untagged A=3)
    assert o["csc_correct"] == 50.0  # only g1 agrees on the right level
    assert r["by_type"]["level"]["exact_match"] == 100.0 and r["by_type"]["rank"]["n"] == 0
    rel = tactile_reliance(r, {"removed": {"overall": {"exact_match": 20.0}}})
    assert rel["removed"] == pytest.approx(100 * 5 / 9 - 20) and rel["mean"] == rel["removed"]
    with pytest.raises(ValueError, match="counts must match"):
        benchmark(qs, comps[:-1])


def test_completion_from_levels_is_well_formed():
    c = completion_from_levels(q_compare(), {"A": 2, "B": 5})
    assert score_question(q_compare(), c)["exact"] and format_reward(q_compare(), c) == 1.0


@pytest.mark.parametrize(
    "bad",
    [None, 17, b"bytes", "", "A=3", "<perceive></perceive><compare>y</compare><conclude>A=3</conclude>",
     ans("A=3") + " trailing", ans("B=3"), ans("A=7"), "<perceive>x<compare>y</compare><conclude>A=3</conclude>"],
)  # fmt: skip
def test_malformed_answer_scores_zero_on_format_and_never_raises(bad):
    assert format_reward(q_level(), bad) == 0.0
    r = ordinal_reward(q_level(), bad)
    assert 0.0 <= r <= 1.0


def test_ordinal_reward_by_hand():
    assert ordinal_reward(q_level(3), ans("A=3")) == 1.0
    assert ordinal_reward(q_level(3), ans("A=1")) == 0.5
    assert ordinal_reward(q_level(1), ans("A=5")) == 0.0
    assert ordinal_reward(q_level(3), "nothing") == 0.0
    # compare: half levels (OMAE 0.5 -> 0.875), half choice
    assert ordinal_reward(q_compare(), ans("A=2 B=4; B")) == pytest.approx(0.5 * 0.875 + 0.5)
    assert ordinal_reward(q_compare(), ans("A=2 B=4; A")) == pytest.approx(0.5 * 0.875)


def test_counterfactual_reward_zero_when_touch_does_not_help():
    assert counterfactual_reward(0.75, [0.75, 0.5, 0.25]) == 0.0  # one counterfactual as good as the real touch
    assert counterfactual_reward(0.5, [0.75, 0.0, 0.0]) == 0.0
    assert counterfactual_reward(1.0, [0.25, 0.5, 0.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        counterfactual_reward(1.0, [])


def test_consistency_reward_by_hand():
    r = ConsistencyReward(memory=4)
    qs = [q_level(3, "cross_sensor", "g", 0), q_level(3, "cross_sensor", "g", 1), q_level(3)]
    out = r(qs, [ans("A=2"), ans("A=4"), ans("A=3")])
    assert out == [pytest.approx(0.5), pytest.approx(0.5), None]  # each 2 levels from the other
    # the next batch has only sensor 2: compared with the remembered answers of sensors 0 and 1 (mean 3)
    out = r([q_level(3, "cross_sensor", "g", 2)], [ans("A=3")])
    assert out == [1.0]
    assert r([q_level(3, "cross_sensor", "new", 0)], [ans("A=3")]) == [None]  # no reference yet
    assert r([q_level(3, "cross_sensor", "g", 3)], ["junk"]) == [0.0]


def test_reward_config():
    c = RewardConfig(counterfactual=0.0)
    assert c.weights() == [1.0, 0.5, 0.5, 0.0]
    with pytest.raises(ValueError, match="unknown counterfactual 'blurred'"):
        RewardConfig(counterfactuals=("blurred",))
    with pytest.raises(ValueError):
        RewardConfig(ordinal=-1)


def test_every_touchr1_config_key_is_documented():
    from pathlib import Path

    from taclab.papers.touchr1.baselines import CNNConfig
    from taclab.papers.touchr1.dataset import TouchR1DatasetConfig
    from taclab.papers.touchr1.demo import DemoConfig
    from taclab.papers.touchr1.grpo import GRPOStageConfig
    from taclab.papers.touchr1.model import ModelConfig
    from taclab.papers.touchr1.pretrain import PretrainConfig
    from taclab.papers.touchr1.questions import QuestionConfig
    from taclab.papers.touchr1.sft import SFTConfig

    text = (Path(__file__).resolve().parents[2] / "docs" / "touch_r1.md").read_text()
    models = (CNNConfig, TouchR1DatasetConfig, DemoConfig, GRPOStageConfig, ModelConfig, PretrainConfig,
              QuestionConfig, SFTConfig, RewardConfig)  # fmt: skip
    missing = [f"{m.__name__}.{k}" for m in models for k in m.model_fields if f"`{k}`" not in text]
    assert not missing, f"docs/touch_r1.md does not document {missing}"
