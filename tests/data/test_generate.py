"""Dataset generation, storage and loading."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from taclab.data.generate import GenerateConfig, generate, read_config, shard_plan
from taclab.papers.tla.labels import tla_label
from taclab.data.storage import DatasetError, load, tactile_array
from taclab.envs.peg_in_hole import PegInHoleEnv

ENV = {"image_size": [32, 32]}
CFG = GenerateConfig(split="train", shapes=("square", "triangle"), samples=14, shard_size=4, seed=3, env=ENV)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    generate(CFG, out, workers=1, progress=False)
    return out


def table(path, split="train"):
    ds = load(path, split)
    return {k: ds[k] for k in ("error", "label", "shape", "episode_seed", "attempt")}, [
        tactile_array(ds[i]) for i in range(len(ds))
    ]


def test_plan_equal_parts_and_counts():
    plan = shard_plan(CFG)
    per = {}
    for s in plan:
        per[s["shape"]] = per.get(s["shape"], 0) + s["samples"]
    assert per == {"square": 7, "triangle": 7} and max(s["samples"] for s in plan) == 4


def test_labels_are_equations_1_to_3_of_the_stored_errors(dataset):
    ds = load(dataset, "train")
    assert len(ds) == 14
    err, lab = np.array(ds["error"]), np.array(ds["label"])
    np.testing.assert_allclose(lab, tla_label(err, 2.0), atol=1e-5)
    # the random policy wanders: errors of both signs on every axis
    assert (err > 0).any(axis=0).all() and (err < 0).any(axis=0).all()


def test_stored_seed_reproduces_the_sample(dataset):
    ds = load(dataset, "train")
    env = PegInHoleEnv(**ENV)
    first = [i for i in range(len(ds)) if ds[i]["attempt"] == 1][:3]
    for i in first:
        ex = ds[i]
        obs, info = env.reset(seed=ex["episode_seed"], options={"shape": ex["shape"]})
        np.testing.assert_array_equal(tactile_array(ex), obs["tactile"])  # lossless
        np.testing.assert_allclose(ex["error"], info["error"])


def test_workers_do_not_change_the_result(dataset, tmp_path):
    generate(CFG, tmp_path, workers=2, progress=False)
    a, ta = table(dataset)
    b, tb = table(tmp_path)
    assert a == b
    for x, y in zip(ta, tb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_interrupted_run_resumes_to_the_same_dataset(dataset, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    files = sorted((out / "data").glob("*.parquet"))
    files[0].unlink()  # never written
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2])  # truncated
    (out / "data" / f".{files[2].name}.tmp123").write_bytes(b"partial")  # a killed writer's temp file
    with pytest.raises(DatasetError, match="missing"):
        load(out, "train")
    generate(CFG, out, workers=1, progress=False)
    assert table(out)[0] == table(dataset)[0]


def test_plain_datasets_reads_it(dataset):
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(dataset / "data"), split="train")
    assert len(ds) == 14 and set(ds.column_names) >= {"tactile", "error", "label"}


def test_load_errors_name_the_problem(dataset, tmp_path):
    with pytest.raises(DatasetError, match=r"no split 'test'.*\['train'\]"):
        load(dataset, "test")
    with pytest.raises(DatasetError, match="not a taclab dataset"):
        load(tmp_path, "train")
    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    shard = sorted((out / "data").glob("*.parquet"))[0]
    shard.write_bytes(b"PAR1 garbage")
    with pytest.raises(DatasetError, match=rf"{shard.name} is corrupt"):
        load(out, "train")
    shutil.rmtree(out)
    shutil.copytree(dataset, out)
    shard = sorted((out / "data").glob("*.parquet"))[0]
    t = pq.read_table(shard).drop(["label"])
    pq.write_table(t, shard)
    with pytest.raises(DatasetError, match=r"lacks the key\(s\) \['label'\]"):
        load(out, "train")


def test_config_files(tmp_path):
    splits = read_config("configs/tla_multi_peg.yaml")
    assert [s.split for s in splits] == ["train", "test_id", "test_ood"]
    assert splits[0].samples == 16000 and splits[0].shapes == ("square", "triangle")
    assert splits[2].shapes == ("round", "hexagon")
    sp = read_config("configs/tla_single_peg.yaml", {"samples": 10})
    assert [s.samples for s in sp] == [10, 10]
    bad = tmp_path / "bad.yaml"
    bad.write_text("splits:\n  - {split: train, shape: [square]}\n")
    with pytest.raises(ValueError, match="shape"):
        read_config(bad)


def test_cli_generate_info_show_export(tmp_path):
    import json

    from typer.testing import CliRunner

    from taclab.cli import app

    runner = CliRunner()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "splits:\n  - {split: test, shapes: [hexagon], samples: 5, shard_size: 3, env: {image_size: [32, 32]}}\n"
    )
    out = tmp_path / "ds"
    r = runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["dataset", "info", str(out)])
    assert r.exit_code == 0 and "split test: 5 samples, checked" in r.output
    r = runner.invoke(app, ["dataset", "show", str(out), "--split", "test", "--index", "4"])
    assert r.exit_code == 0 and (out / "sample-test-4.png").stat().st_size > 2000
    r = runner.invoke(app, ["dataset", "show", str(out), "--split", "test", "--index", "5"])
    assert r.exit_code != 0 and "out of range" in r.output
    r = runner.invoke(
        app, ["dataset", "export-jsonl", str(out), "--split", "test", "--out", str(tmp_path / "j"), "--size", "96"]
    )
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "j" / "test.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 5 and (tmp_path / "j" / first["images"][0]).is_file()
    assert "hexagonal peg" in first["messages"][0]["content"][1]["text"]
