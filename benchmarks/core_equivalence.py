"""The reference job of docs/results/core_equivalence.md on this core, compared with the record of taclab 0.1.

    python benchmarks/core_equivalence.py OUT small|full BASE_OUT

BASE_OUT holds ``result.json`` of ``benchmarks/core_equivalence_base.py`` run on taclab 0.1 (commit ed5dba4).
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

out = Path(sys.argv[1])
size = sys.argv[2]
S = dict(
    small=dict(train=96, test=32, steps=12, eps=3, img=[32, 32]),
    full=dict(train=1200, test=300, steps=150, eps=20, img=[64, 64]),
)[size]
torch.set_num_threads(1)
import taclab.papers  # noqa
from taclab.data import generate, load_arrays
from taclab.papers.tla.dataset import TLADatasetConfig
from taclab.papers.tla.learning import ENV_ID
from taclab.train import load_run_config, train
from taclab.eval.closed_loop import evaluate_closed_loop

env = {"image_size": S["img"]}
data = out / "data"
cfgs = [
    TLADatasetConfig(split=split, samples=n, seed=seed, shard_size=64, shapes=("square", "round"), env=env)
    for split, n, seed in (("train", S["train"], 0), ("test", S["test"], 1))
]
generate(cfgs, data, workers=1, progress=False)
h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
res = {"data": {}}
for split in ("train", "test"):
    a = load_arrays(data, split, progress=False)
    res["data"][split] = {
        k: h(a[k].astype(str) if k == "shape" else (a[k].astype(np.float64) if k != "tactile" else a[k]))
        for k in ("tactile", "error", "label", "shape", "clearance_mm")
    }
from safetensors.torch import load_file

res["weights"] = {}
res["closed_loop"] = {}
for pol in ("bc", "dp"):
    run = load_run_config(
        policy=pol,
        overrides={
            "train.max_steps": S["steps"],
            "train.batch_size": 16,
            "train.threads": 1,
            "train.val_fraction": 0.1,
            "train.tensorboard": False,
        },
    )
    d = train(run, data, out / pol, progress=False)
    w = load_file(str(d / "model.safetensors"))
    n = load_file(str(d / "normalization.safetensors"))
    res["weights"][pol] = (
        h(np.concatenate([w[k].numpy().ravel() for k in sorted(w)]))
        + "/"
        + h(np.concatenate([n[k].numpy().ravel() for k in sorted(n)]))
    )
tasks = [{"shape": "square", "clearance_mm": 2.0}, {"shape": "round", "clearance_mm": 1.6}]
for name, spec in (
    ("bc", out / "bc"),
    ("dp", out / "dp"),
    ("oracle", "oracle"),
    ("random", "random"),
    ("zero", "zero"),
):
    rec = evaluate_closed_loop(str(spec), ENV_ID, tasks, S["eps"], seed=3, workers=1, env_config=env, progress=False)
    res["closed_loop"][name] = [
        [(e["success"], e["attempt"], e["initial_error"]) for e in t["episode_results"]] for t in rec["tasks"]
    ]
(out / "result.json").write_text(json.dumps(res, indent=1))
base = json.loads((Path(sys.argv[3]) / "result.json").read_text())
for k in ("data", "weights"):
    print(k, "identical" if base[k] == res[k] else f"DIFFERENT {base[k]} vs {res[k]}")
for name in res["closed_loop"]:
    same = json.loads(json.dumps(res["closed_loop"][name])) == base["closed_loop"][name]
    print(
        "closed loop",
        name,
        "identical" if same else "DIFFERENT",
        [sum(e[0] for e in t) for t in res["closed_loop"][name]],
        "successes (base:",
        [sum(e[0] for e in t) for t in base["closed_loop"][name]],
        ")",
    )
