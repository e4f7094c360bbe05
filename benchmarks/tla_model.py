"""The tiny TLA model trained and evaluated like the baselines, its rows added to docs/results/tla_baselines.md.

Builds the tiny randomly initialized Qwen2-VL (`taclab tla init-tiny`), trains SP-TLA on the single-peg data
(configs/tla_sp_tiny.yaml, 20 epochs, the paper's) and MP-TLA on the multi-peg data (configs/tla_mp_tiny.yaml,
4 epochs; the paper's 10 with `--only "MP-TLA (tiny)" --epochs 10`, as --epochs sets every selected run), scores
both offline (GCR, L1, malformed-answer rate) and in closed loop on the tasks of tables III and IV, and
rewrites the report with every evaluation under the work folder (the baselines' included). The evaluations use
the inference settings of the configs (`decoding`, `num_beams`, `max_new_tokens`), also for a run trained
before they changed; an evaluation made with other settings is made again.

    python benchmarks/tla_model.py [--root runs/tla_baselines] [--data-root DIR] [--episodes 50] [--quick]
                                   [--only NAME ...] [--threads N] [--epochs N]
                                   [--max-steps N]

Run benchmarks/tla_baselines.py first (or with the same --root) to have BC, DP, the oracle and the zero action
in the same tables. Completed steps are skipped when the script is run again.
"""

from __future__ import annotations

import json
import time

from tla_baselines import (
    ROOT,
    SPLITS,
    arguments,
    closed,
    datasets,
    offline,
    selected,
    slug,
    train_run,
    write_results,
)

from taclab.papers.tla import init_tiny
from taclab.papers.tla.policy import TLAPolicy
from taclab.train import load_run_config

RUNS = {"SP-TLA (tiny)": ("tla_sp_tiny.yaml", "sp"), "MP-TLA (tiny)": ("tla_mp_tiny.yaml", "mp")}


def main() -> None:
    args = arguments(__doc__)
    root = args.root
    timings: dict[str, dict] = {}
    t_all = time.perf_counter()
    data = datasets(args.data_root or root / "data", args.workers, args.quick, {})
    tiny = root / "tla-tiny"
    if not (tiny / "config.json").is_file():
        init_tiny(tiny, image_size=168, seed=0)
    ev = root / "eval"
    runs = selected(RUNS, args.only)
    inference = {}
    for name, (cfg, key) in runs.items():
        sets = {"model.model": str(tiny)} | ({"train.epochs": 1} if args.quick else {})
        sets |= {"train.epochs": args.epochs} if args.epochs and not args.quick else {}
        sets |= {"train.threads": args.threads} if args.threads else {}
        sets |= {"train.max_steps": args.max_steps} if args.max_steps else {}
        run = load_run_config(ROOT / "configs" / cfg, overrides=sets)
        train_run(root / slug(name), run, data[key], name, timings)
        # evaluated with the config's inference settings, whatever the run was trained with (a run trained before
        # a config changed its decoding is scored with the new one; an evaluation made with other settings is redone)
        inference[name] = {k: run.model[k] for k in TLAPolicy.INFERENCE_KEYS if k in run.model}
    for name, (_, key) in runs.items():
        offline(ev, root / slug(name), name, data[key], SPLITS[key], inference[name])
        closed(ev, root / slug(name), name, args.episodes, args.workers, timings, inference[name])
    timings["TLA total"] = {"seconds": round(time.perf_counter() - t_all, 1)}
    old = root / "timings_tla.json"
    previous = json.loads(old.read_text()) if old.is_file() else {}
    old.write_text(json.dumps(previous | timings, indent=2))
    print(write_results(root, args.out, quick=args.quick))


if __name__ == "__main__":
    main()
