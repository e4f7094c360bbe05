"""Datasets written by taclab 0.1 (format 1) keep loading, and `taclab dataset migrate` rewrites them once.

The fixture was written by taclab 0.1; the expected hashes are those of the arrays its loader returned.
"""

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from taclab.data import DatasetError, fingerprint, generate, load, load_arrays, migrate, read_meta, verify
from taclab.papers.tla.dataset import TLADatasetConfig

FIXTURE = Path(__file__).parent / "fixtures" / "v1_dataset"
EXPECTED = {  # (rows, sha256 of tactile, error, label, clearance_mm, then the shapes joined by '|')
    "train": (6, "14597bae53491f1d470a25cd3c98b1acd4433e40b1050368156d784c60b79191"),
    "test": (3, "047bd8e62175be270e5c6cf90c7f5799511aa7ee904d522fbdceeacafe183110"),
}


def arrays_hash(path, split):
    """The hash of what taclab 0.1's loader returned: tactile uint8, the float columns as float64, the shapes."""
    a = load_arrays(path, split, progress=False)
    h = hashlib.sha256()
    h.update(a["tactile"].tobytes())
    for k in ("error", "label", "clearance_mm"):
        h.update(a[k].astype(np.float64).tobytes())
    h.update("|".join(a["shape"].tolist()).encode())
    return len(a["tactile"]), h.hexdigest()


@pytest.fixture
def v1(tmp_path):
    out = tmp_path / "v1"
    shutil.copytree(FIXTURE, out)
    return out


@pytest.mark.parametrize("split", list(EXPECTED))
def test_format_1_loads_as_it_did(v1, split):
    meta = read_meta(v1)
    assert meta["source_format_version"] == 1 and meta["splits"][split]["generator"] == "tla"
    assert arrays_hash(v1, split) == EXPECTED[split]
    assert len(load(v1, split)) == EXPECTED[split][0]
    assert verify(v1, split) == {"rows": EXPECTED[split][0], "shards": 4 if split == "train" else 1, "verified": False}


def test_migrate_records_checksums_and_keeps_the_data(v1):
    before = {s: fingerprint(v1, s) for s in EXPECTED}
    r = CliRunner().invoke(_app(), ["dataset", "migrate", str(v1)])
    assert r.exit_code == 0 and "migrated" in r.output and "5 shards checksummed" in r.output, r.output
    meta = read_meta(v1)
    assert meta["format_version"] == 2 and "source_format_version" not in meta
    assert all(len(rec["sha256"]) == 64 for sp in meta["splits"].values() for rec in sp["shards"])
    for s in EXPECTED:
        assert fingerprint(v1, s) == before[s] and arrays_hash(v1, s) == EXPECTED[s]
        assert verify(v1, s)["verified"]
    assert "format version 2" in (v1 / "README.md").read_text()
    r = CliRunner().invoke(_app(), ["dataset", "migrate", str(v1)])
    assert r.exit_code == 0 and "nothing to do" in r.output
    # the same config resumes (every shard verified, none rewritten); another config is refused
    cfg = TLADatasetConfig(**read_meta(v1)["splits"]["test"]["config"])
    stamp = {p.name: p.stat().st_mtime_ns for p in (v1 / "data").iterdir()}
    generate(cfg, v1, progress=False)
    assert stamp == {p.name: p.stat().st_mtime_ns for p in (v1 / "data").iterdir()}
    with pytest.raises(DatasetError, match=r"split 'test' .* another config \(seed 10 -> 11\)"):
        generate(cfg.model_copy(update={"seed": 11}), v1, progress=False)


def test_generate_into_format_1_asks_for_the_migration(v1):
    cfg = TLADatasetConfig(**read_meta(v1)["splits"]["test"]["config"])
    with pytest.raises(DatasetError, match=r"format version 1: run `taclab dataset migrate .*` once"):
        generate(cfg, v1, progress=False)


def test_migrate_refuses_a_damaged_dataset(v1):
    next((v1 / "data").glob("train-*.parquet")).unlink()
    with pytest.raises(DatasetError, match="is missing: this dataset cannot be migrated"):
        migrate(v1)
    assert read_meta(v1)["source_format_version"] == 1  # left as it was


def _app():
    from taclab.cli import app

    return app
