import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def benchmark():
    """``benchmark("vital")``: the module of ``benchmarks/vital.py``, loaded from its file (the benchmarks are
    scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): the tiny models gain
    nothing from more, and it keeps timings steady on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A small dataset (train 96, test 48, 32x32 tiles) shared by the training and evaluation tests."""
    from taclab.data.generate import generate
    from taclab.papers.tla.dataset import TLADatasetConfig as GenerateConfig

    out = tmp_path_factory.mktemp("tiny_dataset")
    env = {"image_size": [32, 32]}
    generate(GenerateConfig(split="train", samples=96, seed=11, shard_size=96, env=env), out, progress=False)
    generate(GenerateConfig(split="test", samples=48, seed=12, shard_size=48, env=env), out, progress=False)
    return out
