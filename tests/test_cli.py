"""The taclab command line, run in-process."""

import json

from typer.testing import CliRunner

from taclab.cli import app

runner = CliRunner()


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for name in ("info", "demo", "render"):
        assert name in r.output


def test_info_reports_versions_and_backend():
    r = runner.invoke(app, ["info"])
    assert r.exit_code == 0, r.output
    assert "mujoco: 4." in r.output and "render backend" in r.output and "offscreen rendering works" in r.output


def test_render_writes_pngs(tmp_path):
    r = runner.invoke(app, ["render", "--out", str(tmp_path), "--set", "shape=hexagon"])
    assert r.exit_code == 0, r.output
    for name in ("scene.png", "tactile_sequences.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_demo_small(tmp_path):
    args = ["demo", "tla", "--out", str(tmp_path.parent / tmp_path.name), "--workers", "1"]
    for kv in ("train_samples=48", "test_samples=24", "epochs=1", "episodes=1", "env.image_size=[32,32]"):
        args += ["--set", f"tla.{kv}"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    tmp_path = tmp_path / "tla"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["success_rate"]["oracle"]["square 1.0"] == 100.0
    assert summary["success_rate"]["zero"]["square 2.0"] == 0.0
    assert set(summary["success_rate"]) == {"BC", "oracle", "random", "zero"}
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| BC | taclab |" in report and "Table III" in report
    for f in ("bc/learning_curve.png", "bc/policy/model.safetensors", "report/success_shapes.png"):
        assert (tmp_path / f).is_file(), f
    assert (tmp_path / "examples" / "tactile_sequences.png").exists()
    r = runner.invoke(app, args)  # a rerun reuses the dataset and the finished training run
    assert r.exit_code == 0, r.output


def test_demo_rejects_bad_override(tmp_path):
    r = runner.invoke(app, ["demo", "tla", "--out", str(tmp_path), "--set", "tla.episodez=3"])
    assert r.exit_code == 2 and "'episodez'" in r.output
    r = runner.invoke(app, ["demo", "tla", "--out", str(tmp_path), "--set", "max_attempts=3"])
    assert r.exit_code == 2 and "max_attempts" in r.output
    r = runner.invoke(app, ["demo", "tla", "--out", str(tmp_path), "--set", "tla.env.clearance_mm=1.0"])
    assert r.exit_code == 2 and "tla.env.clearance_mm is not allowed" in r.output


def test_train_and_eval_reject_bad_input(tmp_path, tiny_dataset):
    r = runner.invoke(
        app, ["train", "--policy", "bc", "--data", str(tiny_dataset), "--out", str(tmp_path), "--set", "train.lrr=1"]
    )
    assert r.exit_code == 2 and "unknown config key 'train.lrr'" in r.output
    r = runner.invoke(app, ["train", "--policy", "bcc", "--data", str(tiny_dataset), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "'bcc' cannot be trained" in r.output
    r = runner.invoke(app, ["train", "--policy", "bc", "--data", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "not a taclab dataset" in r.output
    r = runner.invoke(app, ["eval", "offline", "--policy", "nope", "--data", str(tiny_dataset), "--out", str(tmp_path)])
    assert r.exit_code == 2 and "'nope'" in r.output
    r = runner.invoke(app, ["eval", "closed-loop", "--policy", "zero", "--out", str(tmp_path), "--tasks", "oval:2"])
    assert r.exit_code == 2 and "'oval'" in r.output
    args = ["eval", "closed-loop", "--policy", "zero", "--out", str(tmp_path), "--set", "clearance_mm=1.0"]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "--set clearance_mm is not allowed here: the task comes from --tasks" in r.output
    r = runner.invoke(app, ["eval", "closed-loop", "--policy", "zero", "--out", str(tmp_path), "--set", "scene.nope=1"])
    assert r.exit_code == 2 and "scene.nope" in r.output


def test_train_eval_report_commands(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    cfg = tmp_path / "bc.yaml"
    cfg.write_text("policy: bc\ntrain: {epochs: 1, batch_size: 32}\nmodel: {hidden: 32}\n")
    r = runner.invoke(app, ["train", "--config", str(cfg), "--data", str(tiny_dataset), "--out", str(run)])
    assert r.exit_code == 0, r.output
    assert json.loads((run / "run.json").read_text())["run"]["model"]["hidden"] == 32
    ev = tmp_path / "eval"
    r = runner.invoke(
        app, ["eval", "offline", "--policy", str(run), "--data", str(tiny_dataset), "--out", str(ev), "--name", "BC"]
    )
    assert r.exit_code == 0 and "gcr" in r.output, r.output
    args = ["eval", "closed-loop", "--policy", str(run), "--out", str(ev), "--name", "BC", "--tasks", "round:2.0"]
    r = runner.invoke(app, [*args, "--episodes", "2", "--workers", "1", "--set", "image_size=[32,32]"])
    assert r.exit_code == 0 and "shape=round clearance_mm=2.0" in r.output, r.output
    r = runner.invoke(app, ["report", str(ev), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    assert "| BC | taclab |" in (tmp_path / "report" / "report.md").read_text()
    # BC has no inference settings: --policy-set is refused with one line, and the record written before stays
    before = (ev / "offline_test.json").read_text()
    for cmd in (["offline", "--data", str(tiny_dataset)], ["closed-loop", "--tasks", "round:2.0", "--episodes", "1"]):
        r = runner.invoke(app, ["eval", *cmd, "--policy", str(run), "--out", str(ev), "--policy-set", "hidden=8"])
        assert r.exit_code == 2 and "'hidden' cannot be changed at evaluation for a 'bc' policy; allowed: none" in (
            r.output
        ), r.output
    assert (ev / "offline_test.json").read_text() == before


def test_tla_commands_reject_bad_input(tmp_path):
    r = runner.invoke(app, ["tla", "init-tiny", str(tmp_path / "m"), "--set", "hidden=64"])
    assert r.exit_code == 2 and "unknown tiny model setting(s) ['hidden']" in r.output
    assert not (tmp_path / "m").exists()
    r = runner.invoke(app, ["tla", "merge", str(tmp_path / "none"), str(tmp_path / "out")])
    assert r.exit_code == 2 and "not a TLA model checkpoint" in r.output
