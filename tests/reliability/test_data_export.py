"""`taclab dataset export-jsonl` never mixes runs: a folder holds one export (one dataset, one setting); a
rerun of the same export rewrites its split whole."""

import json

import pytest
from typer.testing import CliRunner

from taclab.cli import app
from taclab.data import generate
from taclab.papers.tla.dataset import TLADatasetConfig

runner = CliRunner()


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    env = {"image_size": [8, 8]}
    for name, seed in (("a", 1), ("b", 2)):
        generate(TLADatasetConfig(split="test", samples=4, seed=seed, env=env), root / name, progress=False)
    return root / "a", root / "b"


def export(data, out, *extra):
    return runner.invoke(app, ["dataset", "export-jsonl", str(data), "--split", "test", "--out", str(out), *extra])


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_another_size_or_dataset_is_refused_and_nothing_changes(two_datasets, tmp_path):
    a, b = two_datasets
    out = tmp_path / "d"
    assert export(a, out, "--size", "24").exit_code == 0
    before = snapshot(out)
    r = export(a, out, "--size", "48")
    assert r.exit_code == 2 and "holds another export (size 24 -> 48)" in r.output, r.output
    r = export(b, out, "--size", "24")
    assert r.exit_code == 2 and "holds another export (dataset" in r.output and str(b) in r.output, r.output
    r = export(a, out, "--size", "24", "--vary-template")
    assert r.exit_code == 2 and "vary_template False -> True" in r.output
    assert snapshot(out) == before


def test_a_rerun_rewrites_the_split_whole(two_datasets, tmp_path):
    a, _ = two_datasets
    out = tmp_path / "d"
    assert export(a, out, "--size", "24").exit_code == 0
    before = snapshot(out)
    (out / "images" / "test-000001.png").write_bytes(b"stale")  # damaged by hand
    (out / "images" / "test-000099.png").write_bytes(b"stale")  # left by something else
    assert export(a, out, "--size", "24").exit_code == 0
    assert snapshot(out) == before
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["settings"]["size"] == 24 and manifest["splits"]["test"]["samples"] == 4


def test_a_folder_of_other_files_is_refused(two_datasets, tmp_path):
    a, _ = two_datasets
    out = tmp_path / "d"
    (out / "images").mkdir(parents=True)
    (out / "images" / "test-000000.png").write_bytes(b"from elsewhere")
    r = export(a, out, "--size", "24")
    assert r.exit_code == 2 and "holds no taclab export" in r.output
    assert snapshot(out) == {"images/test-000000.png": b"from elsewhere"}
