"""docs/vital.md names every config key of VITAL's policies, residual RL and demo."""

from dataclasses import fields
from pathlib import Path

import pytest

from taclab.papers.vital.demo import DemoConfig
from taclab.policies.visk import VisuoSkinConfig
from taclab.rl.residual import ResidualConfig
from taclab.rl.rlpd import RLPDConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "vital.md"


@pytest.mark.parametrize(
    "keys",
    [
        list(VisuoSkinConfig.model_fields),
        [f.name for f in fields(ResidualConfig)],
        [f.name for f in fields(RLPDConfig)],
        list(DemoConfig.model_fields),
    ],
)
def test_every_key_is_documented(keys):
    text = DOC.read_text()
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"docs/vital.md does not document {missing}"
