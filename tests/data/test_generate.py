"""Generation with the TLA generator through the generic driver, loading and the load-time checks."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taclab.data import DatasetError, fingerprint, generate, load, load_arrays, read_config, read_meta
from taclab.data.generate import ConfigError
from taclab.data.schema import tile
from taclab.papers.tla.dataset import TLADatasetConfig, TLAGenerator
from taclab.papers.tla.labels import tla_label

ENV = {"image_size": [16, 16]}
CFG = TLADatasetConfig(split="train", shapes=("square", "triangle"), samples=14, shard_size=4, seed=3, env=ENV)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    generate(CFG, out, workers=1, progress=False)
    return out


def test_plan_equal_parts_and_counts():
    plan = TLAGenerator().shards(CFG)
    per = {}
    for s in plan:
        per[s.params["shape"]] = per.get(s.params["shape"], 0) + s.size
    assert per == {"square": 7, "triangle": 7} and max(s.size for s in plan) == 4
    assert [s.key for s in plan] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_dataset_json_declares_features_and_checksums(dataset):
    meta = read_meta(dataset)
    assert meta["format_version"] == 2 and meta["layout"] == "sample"
    feats = {f["name"]: f for f in meta["features"]}
    assert feats["tactile"]["kind"] == "image_sequence" and feats["tactile"]["shape"] == [4, 2, 16, 16, 3]
    assert feats["label"] == {**feats["label"], "kind": "vector", "dtype": "float32", "shape": [3]}
    sp = meta["splits"]["train"]
    assert sp["generator"] == "tla" and sp["complete"] and sp["rows"] == 14 and sp["seed"] == 3
    assert len(sp["config_hash"]) == 64 and sp["config"]["env"] == ENV
    assert [r["rows"] for r in sp["shards"]] == [4, 3, 4, 3]
    assert all(len(r["sha256"]) == 64 and r["bytes"] == (dataset / r["file"]).stat().st_size for r in sp["shards"])
    card = (dataset / "README.md").read_text()
    assert "| `tactile` | image_sequence | uint8 | (4, 2, 16, 16, 3) |" in card and "random insertion" in card


def test_labels_are_equations_1_to_3_of_the_stored_errors(dataset):
    a = load_arrays(dataset, "train", progress=False)
    assert a["tactile"].shape == (14, 4, 2, 16, 16, 3) and a["tactile"].dtype == np.uint8
    assert a["shape"].tolist() == ["square"] * 7 + ["triangle"] * 7
    np.testing.assert_allclose(a["label"], tla_label(a["error"], 2.0), atol=1e-5)
    # the random policy wanders: errors of both signs on every axis
    assert (a["error"] > 0).any(axis=0).all() and (a["error"] < 0).any(axis=0).all()


def test_stored_seed_reproduces_the_sample(dataset):
    import gymnasium as gym

    a = load_arrays(dataset, "train", progress=False)
    env = gym.make("taclab/PegInHole-v0", **ENV)
    for i in np.flatnonzero(a["attempt"] == 1)[:3]:
        obs, info = env.reset(seed=int(a["episode_seed"][i]), options={"shape": str(a["shape"][i])})
        np.testing.assert_array_equal(a["tactile"][i], obs["tactile"])  # lossless
        np.testing.assert_allclose(a["error"][i], info["error"])


def test_interrupted_or_damaged_run_resumes_to_the_same_dataset(dataset, tmp_path):
    out = tmp_path / "ds"
    shutil.copytree(dataset, out)
    meta = read_meta(out)
    files = [out / r["file"] for r in meta["splits"]["train"]["shards"]]
    files[0].unlink()  # never written
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2])  # truncated
    data = bytearray(files[2].read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped byte
    files[2].write_bytes(bytes(data))
    (out / "data" / f".{files[3].name}.tmp123").write_bytes(b"partial")  # a killed writer's temp file
    with pytest.raises(DatasetError, match="missing"):
        load(out, "train")
    generate(CFG, out, workers=1, progress=False)
    assert fingerprint(out, "train") == fingerprint(dataset, "train")
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(f.name for f in files)


def test_load_is_a_datasets_dataset_with_images(dataset):
    ds = load(dataset, "train")
    assert len(ds) == 14 and ds.column_names[:3] == ["tactile", "error", "label"]
    assert ds.cache_files == []  # read from the shards, nothing copied to a cache
    img = np.asarray(ds[0]["tactile"])
    assert img.shape == (64, 32, 3)  # 4 frames x 2 pads of 16x16 tiles
    seq = load_arrays(dataset, "train", ["tactile"], limit=1, progress=False)["tactile"][0]
    np.testing.assert_array_equal(img, tile(seq))


def test_load_arrays_columns_and_limit(dataset):
    a = load_arrays(dataset, "train", columns=["label", "shape"], limit=5, progress=False)
    assert list(a) == ["label", "shape"] and a["label"].shape == (5, 3) and a["label"].dtype == np.float32
    with pytest.raises(DatasetError, match=r"no key\(s\) \['nope'\]; its features: \['tactile'"):
        load_arrays(dataset, "train", columns=["nope"], progress=False)
    with pytest.raises(DatasetError, match="limit must be a whole number >= 1"):
        load_arrays(dataset, "train", limit=0, progress=False)


def test_batches_stop_at_the_limit_inside_a_shard(dataset):
    from taclab.data.reader import iter_batches

    full = load_arrays(dataset, "train", columns=["label"], progress=False)["label"]
    for batch_size, limit in [(2, 3), (2, 7), (3, 10), (5, 5), (2, 13)]:
        parts = [b["label"] for b in iter_batches(dataset, "train", ["label"], batch_size=batch_size, limit=limit)]
        assert all(len(p) <= batch_size for p in parts)
        np.testing.assert_array_equal(np.concatenate(parts), full[:limit])
        got = load_arrays(dataset, "train", columns=["label"], limit=limit, progress=False)["label"]
        np.testing.assert_array_equal(got, full[:limit])


def test_plain_datasets_reads_it(dataset, tmp_path):
    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(dataset / "data"), split="train", cache_dir=str(tmp_path))
    assert len(ds) == 14 and set(ds.column_names) >= {"tactile", "error", "label"}
    assert ds.features["tactile"] == datasets.Image()


def test_load_errors_name_the_file_and_key(dataset, tmp_path):
    with pytest.raises(DatasetError, match=r"no split 'test'.*\['train'\]"):
        load(dataset, "test")
    with pytest.raises(DatasetError, match="not a taclab dataset"):
        load(tmp_path, "train")

    def fresh():
        out = tmp_path / "ds"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(dataset, out)
        return out, out / read_meta(out)["splits"]["train"]["shards"][0]["file"]

    out, shard = fresh()
    shard.write_bytes(b"PAR1 garbage")
    with pytest.raises(DatasetError, match=rf"{shard.name} has 12 bytes, dataset.json records"):
        load(out, "train")

    def rewrite(table):  # a shard rewritten with the same size is found by its schema
        pq.write_table(table, shard)
        meta = json.loads((out / "dataset.json").read_text())
        meta["splits"]["train"]["shards"][0]["bytes"] = shard.stat().st_size
        (out / "dataset.json").write_text(json.dumps(meta))

    out, shard = fresh()
    rewrite(pq.read_table(shard).drop(["label"]))
    with pytest.raises(DatasetError, match=rf"shard .*{shard.name} lacks the key\(s\) \['label'\]"):
        load(out, "train")
    out, shard = fresh()
    t = pq.read_table(shard)
    rewrite(t.set_column(t.schema.get_field_index("label"), "label", pa.array([[1.0, 2.0]] * len(t))))
    with pytest.raises(DatasetError, match=rf"{shard.name}: key 'label' is stored as list<\w+: double>"):
        load_arrays(out, "train", progress=False)
    out, shard = fresh()
    rewrite(pq.read_table(shard).append_column("extra", pa.array([1] * 4)))
    with pytest.raises(DatasetError, match=r"undeclared key\(s\) \['extra'\]"):
        load(out, "train")


def test_config_files(tmp_path):
    splits = read_config("configs/tla_multi_peg.yaml")
    assert [s.split for s in splits] == ["train", "test_id", "test_ood"]
    assert splits[0].samples == 16000 and splits[0].shapes == ("square", "triangle")
    assert splits[2].shapes == ("round", "hexagon")
    sp = read_config("configs/tla_single_peg.yaml", {"samples": 10, "env.image_size": [32, 32]})
    assert [s.samples for s in sp] == [10, 10] and sp[0].env == {"image_size": [32, 32]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("generator: tla\nsplits:\n  - {split: train, shape: [square]}\n")
    with pytest.raises(ConfigError, match=r"split 'train': unknown key 'shape'; allowed: clearance_mm, env"):
        read_config(bad)
    bad.write_text("splits:\n  - {split: train}\n")
    with pytest.raises(ConfigError, match=r"does not name its generator.*registered generators: .*tla"):
        read_config(bad)
    bad.write_text("generator: nope\nsplits:\n  - {split: train}\n")
    with pytest.raises(ConfigError, match=r"unknown generator 'nope'; registered generators: .*tla"):
        read_config(bad)
    bad.write_text("generator: tla\nsplits:\n  - {split: train, env: {shape: round}}\n")
    with pytest.raises(ConfigError, match="env.shape is set per shard by the split's 'shapes'"):
        read_config(bad)
    bad.write_text("generator: tla\nsplits:\n  - {split: train, env: {image_sise: [8, 8]}}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'image_sise'; allowed: .*image_size"):
        read_config(bad)


def test_cli_generate_info_show_export(tmp_path):
    from typer.testing import CliRunner

    from taclab.cli import app

    runner = CliRunner()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "generator: tla\n"
        "splits:\n  - {split: test, shapes: [hexagon], samples: 5, shard_size: 3, env: {image_size: [16, 16]}}\n"
    )
    out = tmp_path / "ds"
    r = runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["dataset", "info", str(out)])
    assert r.exit_code == 0 and "split test: 5 rows in 2 shards, SHA-256 verified" in r.output
    r = runner.invoke(app, ["dataset", "show", str(out), "--split", "test", "--index", "4"])
    assert r.exit_code == 0 and (out / "sample-test-4.png").stat().st_size > 2000, r.output
    r = runner.invoke(app, ["dataset", "show", str(out), "--split", "test", "--index", "5"])
    assert r.exit_code == 2 and "index 5 out of range: split 'test' has 5 rows" in r.output
    r = runner.invoke(
        app, ["dataset", "export-jsonl", str(out), "--split", "test", "--out", str(tmp_path / "j"), "--size", "96"]
    )
    assert r.exit_code == 0, r.output
    lines = (tmp_path / "j" / "test.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 5 and (tmp_path / "j" / first["images"][0]).is_file()
    assert "hexagonal peg" in first["messages"][0]["content"][1]["text"]
