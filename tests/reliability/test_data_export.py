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


def fake_checkpoint(folder, data, layout="pad_colours"):
    """A TLA checkpoint's record and statistics (the weights are not needed to draw its input)."""
    from safetensors.torch import save_file

    from taclab.data import load_arrays
    from taclab.policies.tactile_input import TactileInputConfig, fit_tactile_stats

    cfg = TactileInputConfig(subtract="none", normalize="center", image_gain=128.0)
    tactile = load_arrays(data, "test", ["tactile"], progress=False)["tactile"]
    folder.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in fit_tactile_stats(tactile, cfg).items()},
        str(folder / "normalization.safetensors"),
    )
    record = {"format": "taclab-tla", "weights": "full", "config": {"tactile": cfg.model_dump(), "layout": layout}}
    (folder / "tla_config.json").write_text(json.dumps(record))
    return cfg, tactile


def test_like_a_checkpoint_draws_its_input_and_is_recorded(two_datasets, tmp_path):
    import numpy as np
    from PIL import Image

    from taclab.papers.tla.instruct import checkpoint_representation, composite_image, tactile_composites

    a, _ = two_datasets
    run = tmp_path / "run"
    cfg, tactile = fake_checkpoint(run / "policy", a)
    out = tmp_path / "d"
    r = export(a, out, "--size", "24", "--like", str(run))  # a training run: its policy/ is used
    assert r.exit_code == 0, r.output
    rep = checkpoint_representation(run)
    want = tactile_composites(tactile, cfg, rep["stats"], 24, "pad_colours")
    for i in range(len(tactile)):
        got = np.asarray(Image.open(out / "images" / f"test-{i:06d}.png"))
        assert np.array_equal(got, want[i])
        assert not np.array_equal(got, composite_image(tactile[i], 24))
    settings = json.loads((out / "export.json").read_text())["settings"]
    assert settings["tactile"]["layout"] == "pad_colours" and settings["tactile"]["stats_sha256"]
    before = snapshot(out)
    r = export(a, out, "--size", "24")  # the raw composite into the same folder: another export
    assert r.exit_code == 2 and "holds another export (tactile" in r.output, r.output
    other = tmp_path / "other"
    fake_checkpoint(other, a, layout="composite")
    r = export(a, out, "--size", "24", "--like", str(other))
    assert r.exit_code == 2 and "holds another export (tactile" in r.output, r.output
    assert snapshot(out) == before


def test_like_something_that_is_not_a_checkpoint_is_one_error(two_datasets, tmp_path):
    a, _ = two_datasets
    r = export(a, tmp_path / "d", "--like", str(tmp_path))
    assert r.exit_code == 2 and "error:" in r.output and "is not a TLA checkpoint" in r.output, r.output
    assert not (tmp_path / "d").exists()
