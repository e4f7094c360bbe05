"""Loading a dataset copies nothing into the Hugging Face cache: the Arrow tables come from the shards."""

import datasets
import numpy as np
import pytest

from taclab.data import DatasetError, generate, load, load_arrays
from taclab.data.schema import tile
from taclab.papers.tla.dataset import TLADatasetConfig


def test_load_writes_nothing_to_the_cache(tmp_path, monkeypatch):
    data, cache = tmp_path / "ds", tmp_path / "hf_cache"
    cache.mkdir()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    generate(TLADatasetConfig(split="train", samples=5, env={"image_size": [8, 8]}), data, progress=False)
    ds = load(data, "train")
    assert ds.cache_files == [] and len(ds) == 5
    ds = ds.map(lambda ex: {"n": len(ex["shape"])})  # a transform stays in memory too
    assert ds.cache_files == [] and ds["n"] == [6] * 5
    a = load_arrays(data, "train", progress=False)
    assert a["tactile"].shape == (5, 4, 2, 8, 8, 3)
    np.testing.assert_array_equal(np.asarray(ds[2]["tactile"]), tile(a["tactile"][2]))
    assert list(cache.rglob("*")) == []


def test_a_split_larger_than_memory_is_refused_with_the_alternative(tmp_path, monkeypatch):
    import taclab.utils

    generate(TLADatasetConfig(split="train", samples=3, env={"image_size": [8, 8]}), tmp_path, progress=False)
    monkeypatch.setattr(taclab.utils, "available_memory_bytes", lambda: 1000)
    with pytest.raises(DatasetError, match=r"more than the memory available .*taclab.data.iter_batches"):
        load(tmp_path, "train")
