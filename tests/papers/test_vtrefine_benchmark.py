"""benchmarks/vt_refine.py: a DPPO run made with another config (or by an older DPPO, without today's log
columns) is moved aside with its evaluation before the benchmark fine-tunes again; ``--only`` names cells."""

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from taclab.rl.dppo import LOG_COLUMNS, DPPOConfig

BENCH = Path(__file__).parents[2] / "benchmarks" / "vt_refine.py"


def _args():
    """The benchmark's DPPO options as the command line would give them."""

    class Args:
        pass

    a = Args()
    ap_defaults = {"num_envs": 2, "n_steps": 64, "dppo_env_steps": 1000, "threads": 1, "sampling_std": 0.03,
                   "minibatch_size": 128, "critic_warmup": 2, "actor_lr": 3e-6}  # fmt: skip
    a.__dict__.update(ap_defaults)
    return a


def _fake_run(root: Path, name: str, config: dict, columns) -> None:
    run = root / f"dppo_{name}"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"config": asdict(DPPOConfig.from_dict(config)), "pretrained": "x"}))
    (run / "log.csv").write_text(",".join(columns) + "\n")
    (root / f"eval_ft_{name}").mkdir()
    (root / f"eval_ft_{name}" / "eval.json").write_text("{}")


def test_stale_dppo_runs_are_moved_aside(tmp_path, benchmark):
    mod = benchmark("vt_refine")
    args = _args()
    cfg = mod.dppo_config(args, "round", 0)
    _fake_run(tmp_path, "round_vt", cfg, LOG_COLUMNS)
    assert not mod.retire_stale(tmp_path, "round_vt", cfg)  # same config, current log: kept
    assert not mod.retire_stale(tmp_path, "round_vt", {**cfg, "total_env_steps": 5000})  # a larger budget resumes
    assert (tmp_path / "dppo_round_vt").is_dir()
    assert mod.retire_stale(tmp_path, "round_vt", {**cfg, "actor_lr": 1e-5})
    assert not (tmp_path / "dppo_round_vt").exists() and not (tmp_path / "eval_ft_round_vt").exists()
    moved = list((tmp_path / "stale").glob("*/dppo_round_vt")) + list((tmp_path / "stale").glob("*/eval_ft_round_vt"))
    assert len(moved) == 2
    old_columns = [c for c in LOG_COLUMNS if c != "action_drift"]  # a run of the DPPO before the drift column
    _fake_run(tmp_path, "round_vision", cfg, old_columns)
    assert mod.retire_stale(tmp_path, "round_vision", cfg)
    assert not mod.retire_stale(tmp_path, "round_scratch", cfg)  # nothing there


def test_cell_seeds_do_not_depend_on_the_cells_named(benchmark):
    mod = benchmark("vt_refine")
    seeds = [mod.cell_seed(f"{a}_{m}") for a in ("round", "square") for m in ("vt", "vision", "scratch")]
    assert seeds == [0, 1, 2, 3, 4, 5]


def test_only_rejects_an_unknown_cell(tmp_path):
    r = subprocess.run(
        [sys.executable, str(BENCH), "--root", str(tmp_path), "--only", "round_nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert "error: --only round_nope is not a cell of this benchmark" in r.stderr
    assert not (tmp_path / "benchmark.log").exists()
    r = subprocess.run(
        [sys.executable, str(BENCH), "--root", str(tmp_path), "--stages", "signal", "--signal-group", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "error: --signal-group must be >= 2" in r.stderr


def test_report_of_a_missing_root(tmp_path):
    r = subprocess.run(
        [sys.executable, str(BENCH), "--report", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "r.md")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip() == f"error: --root {tmp_path / 'none'} holds no benchmark runs"
    assert not (tmp_path / "r.md").exists()


def _eval(root: Path, name: str, k: int, n: int = 100) -> None:
    from taclab.papers.vtrefine.pipeline import wilson

    d = root / name
    d.mkdir(parents=True)
    rec = {"successes": k, "episodes": n, "success": k / n, "interval": list(wilson(k, n))}
    (d / "eval.json").write_text(json.dumps(rec))


def test_report_states_the_findings_from_the_runs(tmp_path):
    root = tmp_path / "runs"
    _eval(root, "eval_pre_round_vt", 40)
    _eval(root, "eval_ft_round_vt", 75)  # +35 points, intervals disjoint
    _eval(root, "eval_ft_round_vision", 45)
    _eval(root, "eval_ft_round_scratch", 3)
    (root / "dppo_round_scratch").mkdir()
    summary = {"env_steps": 1234, "train_time_s": 60.0, "env_steps_per_s": 20.6}
    (root / "dppo_round_scratch" / "summary.json").write_text(json.dumps(summary))
    (root / "signal_round_vt.csv").write_text(
        "batch_decisions,batches,mean_decisions,signal,signal_se,cos_mean,half_b,episodes,success\n"
        "64,33,92.0,0.0157,0.004,0.01,5792.0,212,0.42\n256,10,286.0,-0.002,0.01,-0.001,inf,212,0.42\n"
    )
    out = tmp_path / "report.md"
    r = subprocess.run(
        [sys.executable, str(BENCH), "--report", "--assemblies", "round", "--root", str(root), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "by 30 points or more: **reproduced**, 0.40 (0.31-0.50) -> 0.75 (0.66-0.82), +0.35" in text
    assert "beats vision only: **reproduced**, 0.75 (0.66-0.82) against 0.45 (0.36-0.55), +0.30" in text
    assert "RL from scratch fails within the same budget: **not reproduced**, 0.03 (0.01-0.08) after 1234" in text
    assert "| round | vision only | pending | 0.45 (0.36-0.55, n=100) | pending |" in text
    assert "DPPO here updates on 128 decisions per iteration, 2048 in a whole run" in text
    assert "| round_vt | 212 (0.42) | 92 | 33 | 0.0157 +- 0.0040 | 5792 |" in text
    assert "| round_vt | 212 (0.42) | 286 | 10 | -0.0020 +- 0.0100 | - |" in text
