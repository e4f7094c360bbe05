"""A byte flipped inside a shard's image data is caught: `taclab dataset info` fails naming the shard (SHA-256),
loading fails naming the shard (parquet page checksums), and rerunning `taclab generate` rebuilds the shard."""

import shutil

import pytest
from typer.testing import CliRunner

from taclab.cli import app
from taclab.data import DatasetError, fingerprint, load, load_arrays, read_meta

runner = CliRunner()
CONFIG = "generator: tla\nsplits: [{split: train, samples: 6, shard_size: 3, seed: 4, env: {image_size: [16, 16]}}]\n"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("sums")
    (root / "c.yaml").write_text(CONFIG)
    r = runner.invoke(app, ["generate", "--config", str(root / "c.yaml"), "--out", str(root / "ds"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    return root / "c.yaml", root / "ds"


def flip_image_byte(shard):
    """Flip one byte in the middle of the second PNG stored in the shard (its compressed pixel data)."""
    data = bytearray(shard.read_bytes())
    first = data.index(b"\x89PNG")
    second = data.index(b"\x89PNG", first + 8)
    end = data.index(b"IEND", second)
    at = (second + end) // 2
    data[at] ^= 0x5A
    shard.write_bytes(bytes(data))  # same size: only a checksum can tell


def test_flipped_image_bytes_are_found_and_rebuilt(clean, tmp_path):
    cfg, ds = clean
    out = tmp_path / "ds"
    shutil.copytree(ds, out)
    shard = out / read_meta(out)["splits"]["train"]["shards"][1]["file"]
    flip_image_byte(shard)

    r = runner.invoke(app, ["dataset", "info", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    err = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and shard.name in err[0] and "SHA-256" in err[0], r.output
    with pytest.raises(DatasetError, match=rf"shard .*{shard.name} is damaged"):
        load(out, "train")
    with pytest.raises(DatasetError, match=rf"shard .*{shard.name} is damaged"):
        load_arrays(out, "train", progress=False)

    r = runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert fingerprint(out, "train") == fingerprint(ds, "train")
    r = runner.invoke(app, ["dataset", "info", str(out)])
    assert r.exit_code == 0 and "split train: 6 rows in 2 shards, SHA-256 verified" in r.output


def test_truncated_and_replaced_shards_are_named(clean, tmp_path):
    _, ds = clean
    out = tmp_path / "ds"
    shutil.copytree(ds, out)
    shard = out / read_meta(out)["splits"]["train"]["shards"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=rf"{shard.name} has \d+ bytes, dataset.json records \d+"):
        load(out, "train")
    r = runner.invoke(app, ["dataset", "info", str(out)])
    assert r.exit_code == 2 and shard.name in r.output and r.output.count("error:") == 1
