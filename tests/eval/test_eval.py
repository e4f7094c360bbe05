import json

import numpy as np
import pytest

import taclab.papers  # noqa: F401 - registers the TLA paper's specs, task list and report
from taclab.eval.closed_loop import evaluate_closed_loop
from taclab.eval.offline import evaluate_offline
from taclab.eval.report import collect, make_report
from taclab.eval.rollout import evaluate
from taclab.eval.tasks import parse_tasks
from taclab.papers.tla.learning import ENV_ID, PAPER_TASKS
from taclab.papers.tla.report import PAPER, build_tables
from taclab.policies.base import Policy, register

ENV = {"image_size": (32, 32)}


@register("test_garbage")
class GarbagePolicy(Policy):
    """Cycles through the ways a policy can fail: raise, NaN, wrong shape, a flagged malformed answer."""

    def reset(self, task=None, seed=None):
        self.calls = 0
        self.last_malformed = False

    def select_action(self, obs, info=None):
        self.calls += 1
        self.last_malformed = self.calls % 4 == 0
        kind = self.calls % 4
        if kind == 1:
            raise RuntimeError("model crashed")
        if kind == 2:
            return np.array([np.nan, 0.0, 0.0])
        if kind == 3:
            return np.zeros(2)
        return np.zeros(3)  # a malformed answer replaced by the fallback, as a text policy would


def test_failures_are_counted_named_and_episodes_go_on():
    rec = evaluate_closed_loop(
        "test_garbage", ENV_ID, [{"shape": "square", "clearance_mm": 2.0}], episodes=2, workers=1, env_config=ENV,
        progress=False,
    )  # fmt: skip
    t = rec["tasks"][0]
    assert t["success_rate"] == 0.0 and t["episodes"] == 2
    assert t["actions"] == 2 * 14  # 15 attempts: the first plus 14 actions, none of them fatal
    assert t["failures"] == 2 * (4 + 4 + 3)  # calls 1,2,3 mod 4 over 14 calls: 4 raise, 4 NaN, 3 bad shape
    assert t["malformed"] == 2 * 3
    assert all(e["attempt"] == 15 and e["error"] == "RuntimeError: model crashed" for e in t["episode_results"])
    assert rec["overall"]["errors"] == {"RuntimeError: model crashed": 2}


def test_parse_tasks():
    assert parse_tasks(ENV_ID, "paper") == [dict(t) for t in PAPER_TASKS]
    assert parse_tasks(ENV_ID, "round:1.6, hexagon") == [{"shape": "round", "clearance_mm": 1.6}, {"shape": "hexagon"}]
    assert parse_tasks(ENV_ID, "shape=round,clearance_mm=1.0") == [{"shape": "round", "clearance_mm": 1.0}]
    assert len(parse_tasks(ENV_ID, "shapes")) == 4  # a task list the env declares itself
    with pytest.raises(ValueError, match="'oval'"):
        parse_tasks(ENV_ID, "oval:2.0")
    with pytest.raises(ValueError, match="clearance_mm must be a number > 0, got 'wide'"):
        parse_tasks(ENV_ID, "square:wide")
    with pytest.raises(ValueError, match=r"unknown task key\(s\) \['color'\]"):
        parse_tasks(ENV_ID, "color=red")


def test_results_do_not_depend_on_backend_or_workers():
    tasks = [{"shape": "square", "clearance_mm": 2.0}]
    runs = [
        evaluate("random", ENV_ID, tasks, 3, seed=4, workers=1, env_config=ENV, progress=False),
        evaluate("random", ENV_ID, tasks, 3, seed=4, workers=2, env_config=ENV, backend="sync", progress=False),
    ]
    a, b = ([r.to_dict() for r in run[0]] for run in runs)
    for r in (*a, *b):
        r.pop("act_seconds")
    assert a == b and len({r["seed"] for r in a}) == 3


def test_offline_closed_loop_and_report(tiny_dataset, tmp_path):
    ev = tmp_path / "eval"
    o = evaluate_offline("oracle", tiny_dataset, "test", name="oracle", out=ev / "oracle", progress=False)
    z = evaluate_offline("zero", tiny_dataset, "test", name="zero", out=ev / "zero", progress=False)
    assert o["metrics"]["gcr"] == 100.0 and o["metrics"]["l1_x"] < 1e-6 and o["samples"] == 48
    assert z["metrics"]["gcr"] == 0.0
    saved = np.load(ev / "oracle" / "offline_test_predictions.npz")
    np.testing.assert_allclose(saved["action"], saved["label"], atol=1e-6)
    tasks = [{"shape": "square", "clearance_mm": 2.0}, {"shape": "square", "clearance_mm": 1.0}]
    for name in ("oracle", "zero"):
        evaluate_closed_loop(
            name, ENV_ID, tasks, episodes=2, workers=1, name=name, out=ev / name, env_config=ENV, progress=False
        )
    loop = json.loads((ev / "oracle" / "closed_loop.json").read_text())
    assert [t["success_rate"] for t in loop["tasks"]] == [100.0, 100.0]

    tables = build_tables(collect([ev]))
    t1 = {r[0]: r for r in tables["table1"]["rows"] if r[1] == "taclab"}
    assert t1["oracle"][2] == 100.0 and t1["zero"][2] == 0.0 and t1["zero"][3] is None
    assert [r[0] for r in tables["table1"]["rows"] if r[1] == "paper"] == list(PAPER["table1"])
    t3 = {r[0]: r for r in tables["table3"]["rows"] if r[1] == "taclab"}
    assert t3["oracle"][2] == 100.0 and t3["oracle"][4] is None  # no 1.6 mm task was run
    assert t3["oracle"][8] == 100.0  # total over the clearances that were run
    assert t3["zero"][2] == 0.0 and t3["zero"][3] is None  # no successful episode: no step count
    assert not [r for r in tables["table2"]["rows"] if r[1] == "taclab"]

    report = make_report([ev], tmp_path / "report")
    text = report.read_text()
    assert "Table I" in text and "| oracle | taclab | 100.0 |" in text and "*paper*" in text
    assert "inference settings other than" not in text  # no record was evaluated with --policy-set
    rec = json.loads((ev / "zero" / "closed_loop.json").read_text())
    (ev / "zero" / "closed_loop.json").write_text(json.dumps({**rec, "policy_overrides": {"num_beams": 16}}))
    text = make_report([ev], tmp_path / "report_o").read_text()
    assert "- zero (closed loop): num_beams=16" in text
    (ev / "zero" / "closed_loop.json").write_text(json.dumps(rec))
    for f in ("table1.csv", "table3.csv", "table4.csv", "report.json", "actions_oracle.png", "success_clearance.png"):
        assert (tmp_path / "report" / f).is_file(), f
    with pytest.raises(ValueError, match="not an evaluation record"):
        make_report([tmp_path / "report" / "report.json"], tmp_path / "r2")
    (ev / "zero" / "closed_loop.json").write_text('{"kind": "closed_lo')  # truncated
    with pytest.raises(ValueError, match="cannot read evaluation record.*closed_loop.json"):
        make_report([ev], tmp_path / "r3")
