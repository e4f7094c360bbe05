"""The docs name every config key and CLI command a user needs."""

from pathlib import Path

import pytest

from taclab.cli import app
from taclab.envs.peg_in_hole import PegInHoleConfig
from taclab.papers.tla.model import TLAConfig
from taclab.policies.bc import BCConfig
from taclab.policies.dp import DPConfig
from taclab.policies.tactile_input import TactileInputConfig
from taclab.sim.config import SceneConfig
from taclab.sim.tactile.optical import OpticalProfile
from taclab.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "model, doc",
    [
        (SceneConfig, "docs/simulator.md"),
        (PegInHoleConfig, "docs/environment.md"),
        (OpticalProfile, "docs/tactile.md"),
        (TrainConfig, "docs/training.md"),
        (BCConfig, "docs/training.md"),
        (DPConfig, "docs/training.md"),
        (TactileInputConfig, "docs/training.md"),
        (TLAConfig, "docs/tla.md"),
    ],
)
def test_every_config_key_is_documented(model, doc):
    text = (ROOT / doc).read_text()
    missing = [k for k in model.model_fields if f"`{k}`" not in text]
    assert not missing, f"{doc} does not document {missing}"


def test_every_cli_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert names
    for group in app.registered_groups:
        names += [f"{group.name} {c.name or c.callback.__name__}" for c in group.typer_instance.registered_commands]
    missing = [n for n in names if f"taclab {n}" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_readme_opens_with_the_two_commands():
    first = (ROOT / "README.md").read_text().split("```")[1]
    assert "bash scripts/demo.sh" in first and "bash scripts/test.sh" in first
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
