"""Dataset generation speed; writes docs/results/generate_speed.md.

Generates the paper's single-peg and multi-peg datasets from configs/ (32k samples: 6k + 2k single-peg, 16k +
4k + 4k multi-peg) with one worker per core and reports samples per second and the total time.

Usage: python benchmarks/generate_speed.py [--out DIR] [--scale 1.0] [--workers 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import taclab.papers.tla.dataset  # noqa: F401 - registers the tla generator
from taclab.data.generate import generate, read_config
from taclab.utils import atomic_write_text

CONFIGS = ("configs/tla_single_peg.yaml", "configs/tla_multi_peg.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="where to write the datasets (default: a temp dir)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the paper's sample counts")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--results", type=Path, default=Path("docs/results/generate_speed.md"))
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="taclab-gen-"))
    rows = []
    total_n, total_t = 0, 0.0
    for cfg_path in CONFIGS:  # all splits of a config in one run: one worker pool, as `taclab generate` does
        cfgs = [c.model_copy(update={"samples": max(1, round(c.samples * args.scale))}) for c in read_config(cfg_path)]
        n = sum(c.samples for c in cfgs)
        t0 = time.perf_counter()
        generate(cfgs, root / Path(cfg_path).stem, workers=args.workers)
        dt = time.perf_counter() - t0
        splits = ", ".join(f"{c.split} ({'+'.join(c.shapes)}, {c.samples})" for c in cfgs)
        rows.append(f"| {Path(cfg_path).name} | {splits} | {n} | {dt:.0f} | {n / dt:.0f} |")
        total_n += n
        total_t += dt
        print(rows[-1], flush=True)
    size = sum(f.stat().st_size for f in root.rglob("*.parquet")) / 2**20
    lines = [
        "# Dataset generation speed",
        "",
        f"Written by `python benchmarks/generate_speed.py --scale {args.scale} --workers {args.workers}`: the "
        "paper's splits generated from scratch with one worker process per core (started once per config), "
        "64x64 tactile images stored as lossless PNG in parquet shards with SHA-256 and page checksums.",
        "",
        "| config | splits (shapes, samples) | samples | seconds | samples/s |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"All {total_n} samples in {total_t:.0f} s ({total_n / total_t:.0f} samples/s), {size:.0f} MiB on disk. "
        f"Target: 32,000 samples in under 5 minutes on 2 cores: {'met' if total_t < 300 else 'NOT met'}"
        + ("" if args.scale == 1.0 else " (scaled run: the target applies to --scale 1.0)")
        + ".",
        "",
    ]
    atomic_write_text(args.results, "\n".join(lines))
    print("\n".join(lines))
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
