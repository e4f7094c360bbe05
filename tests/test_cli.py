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
    r = runner.invoke(app, ["render", "--out", str(tmp_path), "--shape", "hexagon"])
    assert r.exit_code == 0, r.output
    for name in ("scene.png", "tactile_sequences.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_demo_small(tmp_path):
    r = runner.invoke(app, ["demo", "--out", str(tmp_path), "--episodes", "2", "--set", "image_size=[32,32]"])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["results"]["square"]["oracle"]["success_rate"] == 100.0
    assert summary["results"]["square"]["zero"]["success_rate"] == 0.0
    assert (tmp_path / "success.png").exists() and (tmp_path / "examples" / "tactile_sequences.png").exists()


def test_demo_rejects_bad_override(tmp_path):
    r = runner.invoke(app, ["demo", "--out", str(tmp_path), "--set", "max_atempts=3"])
    assert r.exit_code != 0
    assert "max_atempts" in str(r.exception) + r.output
