"""Bad input to the dataset commands ends with exactly one ``error: ...`` line naming the value and what is
allowed, exit code 2, no traceback, and a failed start leaves no folder behind."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from taclab.cli import app

runner = CliRunner()
GOOD = "generator: tla\nsplits:\n  - {split: train, samples: 3, shard_size: 3, env: {image_size: [8, 8]}}\n"


def one_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def generate(tmp_path, config_text, *extra, out=None):
    cfg = tmp_path / "c.yaml"
    if config_text is not None:
        cfg.write_text(config_text)
    out = out or tmp_path / "out"
    return runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1", *extra]), out


@pytest.mark.parametrize(
    "config_text, extra, needles",
    [
        (None, [], ["dataset config", "c.yaml not found"]),
        ("", [], ["is empty", "'generator: NAME'", "tla"]),
        ("# only a comment\n", [], ["is empty"]),
        ("splits: [a, b\n", [], ["is not valid YAML at line 2", "expected ',' or ']'"]),
        ("- 1\n- 2\n", [], ["expected a mapping with 'generator' and 'splits'"]),
        ("splits: []\n", [], ["does not name its generator", "registered generators:", "tla"]),
        ("generator: nope\nsplits: [{split: a}]\n", [], ["unknown generator 'nope'", "registered generators:"]),
        ("generator: tla\nsplits: {split: a}\n", [], ["'splits' must be a non-empty list of mappings"]),
        ("generator: tla\nseed: 3\nsplits: [{split: a}]\n", [], ["unknown top-level key(s) ['seed']"]),
        (GOOD, ["--set", "foo=1"], ["--set foo", "unknown key 'foo'", "allowed: clearance_mm, env,"]),
        (GOOD, ["--set", "samples=-5"], ["samples = -5", "greater than or equal to 1"]),
        (GOOD, ["--set", "clearance_mm=nan"], ["clearance_mm = 'nan'", "finite number"]),
        (GOOD, ["--set", "clearance_mm=.nan"], ["clearance_mm = nan", "finite number"]),
        (GOOD, ["--set", "clearance_mm=0"], ["clearance_mm = 0", "greater than 0"]),
        (GOOD, ["--set", "shapes=[blob]"], ["unknown peg shape 'blob'", "allowed: square"]),
        (GOOD, ["--set", "env.image_size=[2,2]"], ["image_size must be between 8 and 1024"]),
        (GOOD, ["--set", "env.sensorr=x"], ["unknown key 'sensorr'", "allowed:", "image_size"]),
        (GOOD, ["--set", "split=other"], ["--set split", "not allowed", "--split"]),
        (GOOD, ["--set", "novalue"], ["--set expects key=value, got 'novalue'"]),
        (GOOD, ["--split", "nope"], ["unknown --split ['nope']", "the config has ['train']"]),
        (GOOD, ["--workers", "-2"], ["--workers must be >= 0", "got -2"]),
    ],
)
def test_generate_bad_input(tmp_path, config_text, extra, needles):
    r, out = generate(tmp_path, config_text, *extra)
    one_error(r, *needles)
    assert not out.exists()  # a failed start leaves no folder


def test_generate_out_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    r, _ = generate(tmp_path, GOOD, out=f)
    one_error(r, f"{f} is a file", "folder")
    assert f.read_text() == "x"


def test_generate_into_a_folder_of_other_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    r, _ = generate(tmp_path, GOOD, out=out)
    one_error(r, "holds other files (notes.txt)", "new or empty folder")


def test_dataset_commands_bad_input(tmp_path):
    one_error(runner.invoke(app, ["dataset", "info", str(tmp_path)]), "not a taclab dataset")
    f = tmp_path / "file"
    f.write_text("x")
    one_error(runner.invoke(app, ["dataset", "info", str(f)]), "is a file, not a taclab dataset")
    one_error(runner.invoke(app, ["dataset", "show", str(tmp_path)]), "not a taclab dataset")
    one_error(runner.invoke(app, ["dataset", "migrate", str(tmp_path)]), "not a taclab dataset")
    (tmp_path / "dataset.json").write_text("{not json")
    one_error(runner.invoke(app, ["dataset", "info", str(tmp_path)]), "dataset.json is not valid JSON")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    (root / "c.yaml").write_text(GOOD)
    r = runner.invoke(app, ["generate", "--config", str(root / "c.yaml"), "--out", str(root / "ds"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    return root / "ds"


def test_show_and_export_bad_input(tiny, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    show = ["dataset", "show", str(tiny)]
    one_error(runner.invoke(app, [*show, "--out", str(tmp_path)]), "is a folder; give the path of a .png file")
    one_error(runner.invoke(app, [*show, "--out", str(f / "x.png")]), "is a file, not a folder")
    one_error(runner.invoke(app, [*show, "--out", str(tmp_path / "x.jpg")]), "must end in .png")
    one_error(runner.invoke(app, [*show, "--index", "3"]), "index 3 out of range", "3 rows (0 to 2)")
    one_error(runner.invoke(app, [*show, "--split", "test"]), "no split 'test'; splits: ['train']")
    export = ["dataset", "export-jsonl", str(tiny)]
    one_error(runner.invoke(app, [*export, "--out", str(f)]), f"--out {f} is a file")
    r = runner.invoke(app, [*export, "--out", str(tmp_path / "e"), "--size", "2"])
    one_error(r, "composite size must be a whole number of pixels between 3 and 4096, got 2")
    one_error(runner.invoke(app, [*export, "--out", str(tmp_path / "e"), "--split", "x"]), "no split 'x'")
    assert not (tmp_path / "e").exists()  # a failed start leaves no folder


def test_the_installed_command_prints_one_line(tmp_path):
    """Through the real entry point, in a fresh process: one line on stderr, exit code 2."""
    (tmp_path / "c.yaml").write_text(GOOD)
    p = subprocess.run(
        [sys.executable, "-m", "taclab.cli", "generate", "--config", str(tmp_path / "c.yaml"), "--out",
         str(tmp_path / "o"), "--set", "samples=-5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: ") and "samples = -5" in p.stderr
