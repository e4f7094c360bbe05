"""A rerun of `taclab generate` resumes only the same config: another clearance, image size or seed is
refused with a message naming what changed, and the dataset (shards and card) is left as it was."""

import pytest
from typer.testing import CliRunner

from taclab.cli import app

runner = CliRunner()
CONFIG = "generator: tla\nsplits:\n  - {split: train, samples: 4, shard_size: 2, seed: 7, env: {image_size: [8, 8]}}\n"


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    out = tmp_path / "ds"
    r = runner.invoke(app, ["generate", "--config", str(tmp_path / "c.yaml"), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    return tmp_path / "c.yaml", out


def state(out):
    files = [p for p in out.rglob("*") if p.is_file()]
    return {p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


@pytest.mark.parametrize(
    "override, change",
    [
        ("clearance_mm=1.0", "clearance_mm 2.0 -> 1.0"),
        ("env.image_size=[16,16]", "env.image_size [8, 8] -> [16, 16]"),
        ("seed=8", "seed 7 -> 8"),
        ("samples=6", "samples 4 -> 6"),
    ],
)
def test_rerun_with_another_config_is_refused(dataset, override, change):
    cfg, out = dataset
    before = state(out)
    r = runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1", "--set", override])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "split 'train'" in r.output and f"another config ({change})" in r.output
    assert state(out) == before


def test_rerun_with_the_same_config_writes_nothing(dataset):
    cfg, out = dataset
    shards = {k: v for k, v in state(out).items() if k.startswith("data/")}
    r = runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert {k: v for k, v in state(out).items() if k.startswith("data/")} == shards
