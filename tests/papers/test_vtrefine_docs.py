"""docs/vt_refine.md names every config key of the bimanual scene, env, taxel model, demonstrator and dataset."""

from pathlib import Path

import pytest

from taclab.envs.bimanual import BimanualAssemblyConfig
from taclab.papers.vtrefine.dataset import VTRefineDemoConfig
from taclab.papers.vtrefine.demonstrator import DemoConfig, DemoNoise
from taclab.sim.bimanual import BimanualConfig
from taclab.sim.tactile.taxel import TaxelProfile

DOC = Path(__file__).resolve().parents[2] / "docs" / "vt_refine.md"


@pytest.mark.parametrize(
    "model", [BimanualAssemblyConfig, BimanualConfig, TaxelProfile, DemoConfig, DemoNoise, VTRefineDemoConfig]
)
def test_every_config_key_is_documented(model):
    text = DOC.read_text()
    missing = [k for k in model.model_fields if f"`{k}`" not in text]
    assert not missing, f"docs/vt_refine.md does not document {model.__name__} keys {missing}"
