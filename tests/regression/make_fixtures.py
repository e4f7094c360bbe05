"""Builds the stored checkpoints and actions of ``test_stored_actions.py`` (run once, when a change of the
actions is intended): a tiny TLA dataset, a BC, a DP and a TLA policy trained a few steps with the shared loop,
and each policy's actions on the first test samples.

    python tests/regression/make_fixtures.py tests/regression/fixtures
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import taclab.papers  # noqa: F401 - registers the TLA generator, learning spec and policy
from taclab.data import generate, load_arrays
from taclab.papers.tla.dataset import TLADatasetConfig
from taclab.papers.tla.tiny import init_tiny
from taclab.policies import load_policy
from taclab.train import load_run_config, train

ENV = {"image_size": [16, 16]}
SAMPLES = 6
TINY_TLA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vision_depth": 1,
    "vision_embed_dim": 32,
    "vision_num_heads": 2,
}
RUNS = {
    "bc": {"model.hidden": 16},
    "dp": {"model.hidden": 16, "model.blocks": 1, "model.inference_steps": 3},
    "tla": {
        "model.image_size": 56,
        "model.finetune": "full",
        "model.freeze_vision": False,
        "train.lr": 3e-3,
        "train.max_steps": 60,
    },
}


def inputs(data: Path) -> dict[str, np.ndarray]:
    a = load_arrays(data, "test", progress=False)
    return {"tactile": a["tactile"][:SAMPLES], "shape": np.asarray(a["shape"][:SAMPLES]).astype(str)}


def main(out: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        generate(
            [
                TLADatasetConfig(split="train", samples=48, seed=3, shard_size=48, env=ENV),
                TLADatasetConfig(split="test", samples=SAMPLES, seed=4, shard_size=SAMPLES, env=ENV),
            ],
            data,
            workers=1,
            progress=False,
        )
        batch = inputs(data)
        np.savez_compressed(out / "inputs.npz", **batch)
        base = init_tiny(tmp / "tiny", image_size=56, **TINY_TLA)
        expected = {}
        for name, sets in RUNS.items():
            overrides = {
                "train.max_steps": 6,
                "train.warmup_fraction": 0.0,
                "train.batch_size": 8,
                "train.threads": 1,
                "train.tensorboard": False,
            }
            if name == "tla":
                overrides["model.model"] = str(base)
            run_config = load_run_config(policy=name, overrides={**overrides, **sets})
            folder = train(run_config, data, tmp / name, progress=False)  # the final policy's folder
            target = out / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder, target)
            policy = load_policy(target)
            pred = policy.predict(batch)
            expected[name] = {"actions": pred.actions.tolist(), "malformed": pred.malformed.tolist()}
            if name == "tla":
                expected[name]["texts"] = list(policy.last_texts)
        (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
