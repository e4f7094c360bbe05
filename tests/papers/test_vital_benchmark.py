"""benchmarks/vital.py: the report rewritten from finished runs states each of the paper's findings with its
numbers (Fisher's exact test computed by hand below), the cost against the targets, and bad input gets one
``error:`` line."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "benchmarks" / "vital.py"


def _run(*args):
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120)


def _eval(root: Path, method: str, task: str, lst: str, success: int, episodes: int = 20):
    f = root / "eval" / f"{method}_{task}_{lst}_{episodes}.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    failures = {"skin_limit": episodes - success, "dropped": 0, "timeout": 0}
    f.write_text(json.dumps({"success": success, "episodes": episodes, "seconds": 1.0, "failures": failures}))


def test_report_states_findings_and_costs(tmp_path):
    root = tmp_path / "runs"
    _eval(root, "ViSk", "pick", "paper", 6)
    _eval(root, "BAKU", "pick", "paper", 0)
    _eval(root, "VITAL-BC", "pick", "paper", 5)
    _eval(root, "VITAL", "pick", "paper", 5)
    run = root / "bc" / "baku_pick"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"steps": 2000, "train_time_s": 2500.0}))
    (run / "cost.json").write_text(json.dumps({"cpu_s": 450.0, "wall_s": 2500.0, "parts": 1}))
    run = root / "bc" / "visk_pick"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"steps": 2000, "train_time_s": 2600.0}))
    (run / "cost.json").write_text(json.dumps({"cpu_s": 700.0, "wall_s": 2600.0, "parts": 1}))
    run = root / "bc" / "baku_plug"  # resumed: 500 of its 2000 steps metered, 0.3 s each
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"steps": 2000, "train_time_s": 2000.0}))
    (run / "cost.json").write_text(json.dumps({"cpu_s": 150.0, "wall_s": 900.0, "steps_metered": 500, "parts": 1}))
    run = root / "bc" / "visk_plug"  # two threads on an idle machine: costed in wall seconds per step
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"steps": 2000, "train_time_s": 420.0}))
    cost = {
        "cpu_s": 800.0,
        "wall_s": 420.0,
        "steps_metered": 2000,
        "parts": 1,
        "threads": 2,
        "load_average_at_end": 1.9,
    }
    (run / "cost.json").write_text(json.dumps(cost))
    report = tmp_path / "vital.md"
    r = _run("--report-only", "--root", str(root), "--report", str(report), "--tasks", "usb")
    assert r.returncode == 0, r.stderr
    assert "| VITAL | vlm |" not in report.read_text()  # the pointing-VLM row only once it has been run
    _eval(root, "VITAL", "pick", "locate-vlm", 3)
    r = _run("--report-only", "--root", str(root), "--report", str(report), "--tasks", "usb")
    text = report.read_text()
    assert "| VITAL | vlm |" in text and "| VITAL | keypoint |" in text
    # 6/20 vs 0/20: p = C(20,6) C(20,0) / C(40,6) = 38760 / 3838380 = 0.0101
    expected = "ViSk > BAKU, in domain): **reproduced**: 6/20 vs 0/20 (one-sided Fisher p = 0.01; pick: 6/20 vs 0/20)"
    assert expected in text
    # 5/20 vs 5/20: no lift
    assert "(VITAL > VITAL-BC, in domain): **not reproduced**: 5/20 vs 5/20" in text
    assert "(VITAL-BC > ViSk, new scenes): **not run**" in text
    assert "| 30 % (6/20) | 10/10 |" in text  # ViSk on pick beside the paper's number (pick shown: it has runs)
    # CPU s per step = CPU s / steps (the whole run metered), times the config's 2000 steps
    assert "| BAKU | pick | 2000 | 1 | 2500 | 0.23 (CPU) | 450 | 450 (2000 steps) | 600 | yes |" in text
    assert "| ViSk | pick | 2000 | 1 | 2600 | 0.35 (CPU) | 700 | 700 (2000 steps) | 600 | no |" in text
    assert "| BAKU | plug | 2000 | 1 | 2000 | 0.30 (CPU) | 600 | 600 (2000 steps) | 600 | no |" in text
    # more threads: wall seconds per step (420 / 2000), with the load the run ended at
    assert "| ViSk | plug | 2000 | 2 (load 1.9) | 420 | 0.21 (wall) | 420 | 420 (2000 steps) | 600 | yes |" in text


def test_bad_input_is_named(tmp_path):
    for args, msg in (
        (["--tasks", "lock"], "error: unknown task 'lock'"),
        (["--lists", "paper,moon", "--report-only"], "error: unknown task list 'moon'"),
        (["--bc-steps", "0", "--report-only"], "error: --bc-steps must be at least 1, got 0"),
        (["--threads", "0", "--report-only"], "error: --threads must be at least 1, got 0"),
        (["--jobs", "0", "--report-only"], "error: --jobs must be at least 1, got 0"),
        (["--report-only", "--root", str(tmp_path / "none"), "--fresh"], "error: no benchmark runs under"),
        (["--report-only", "--root", str(tmp_path / "none"), "--report", str(tmp_path / "x.md")], "and no records"),
        (["--vlm-locator", "nowhere", "--report-only"], "error: --vlm-locator 'nowhere' is neither a folder"),
        (["--demos", "nowhere.yaml", "--root", str(tmp_path / "r")], "error: --demos 'nowhere.yaml': no such"),
    ):
        r = _run(*args)
        assert r.returncode != 0 and msg in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_a_work_folder_holds_one_demonstration_dataset(tmp_path):
    """Demonstrations already in --root that another config generated are refused, not mixed or reused."""
    import taclab.papers.vital  # noqa: F401 - registers the generator
    from taclab.data import generate
    from taclab.papers.vital.dataset import VitalDemoConfig

    cfg = VitalDemoConfig(split="plug", task="plug", episodes=1, seed=400, env={"image_size": [32, 32]})
    generate([cfg], tmp_path / "demos", progress=False)
    r = _run("--root", str(tmp_path), "--tasks", "plug", "--methods", "BAKU")
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "error: split 'plug'" in r.stderr and "generated from another config" in r.stderr


def test_rl_settings_come_from_the_configs_and_are_stated(tmp_path, benchmark):
    import yaml

    from taclab.rl.residual import ResidualConfig
    from taclab.rl.rlpd import RLPDConfig

    configs = BENCH.parents[1] / "configs"
    cpu = yaml.safe_load((configs / "vital_residual_cpu.yaml").read_text())
    rlpd = yaml.safe_load((configs / "vital_rlpd_cpu.yaml").read_text())
    paper = yaml.safe_load((configs / "vital_residual.yaml").read_text())
    mod = benchmark("vital")
    assert mod.RL_CPU == cpu and mod.RLPD_CPU == rlpd
    ResidualConfig.from_dict(cpu), RLPDConfig.from_dict(rlpd)  # every key known, every value valid
    d = ResidualConfig()  # the paper-size file writes out the defaults
    assert (paper["utd"], paper["batch_size"], paper["aug_views"]) == (d.utd, d.batch_size, d.aug_views) == (16, 256, 4)
    assert cpu["utd"] < d.utd and rlpd["aug_views"] == 0

    root = tmp_path / "runs"
    _eval(root, "VITAL", "pick", "paper", 4)
    run = root / "rl" / "vital_pick"  # an older run made with another setting: the report names its own
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"env_steps": 1509, "train_time_s": 367.0}))
    (run / "cost.json").write_text(json.dumps({"cpu_s": 336.0, "wall_s": 445.0, "steps_metered": 1509, "parts": 1}))
    (run / "config.json").write_text(json.dumps({"utd": 16, "batch_size": 64, "aug_views": 2}))
    report = tmp_path / "vital.md"
    r = _run("--report-only", "--root", str(root), "--report", str(report), "--tasks", "pick")
    assert r.returncode == 0, r.stderr
    text = report.read_text()
    views = "no replay augmentation" if not cpu["aug_views"] else f"{cpu['aug_views']} stored augmented view"
    assert f"residual RL with UTD {cpu['utd']}, batch {cpu['batch_size']}, {views}" in text
    assert f"RLPD with UTD {rlpd['utd']}, batch {rlpd['batch_size']} (half demonstrations)" in text
    assert "RL runs' settings: VITAL on pick: UTD 16, batch 64, 2 stored augmented views per image." in text
    # 336 CPU s / 1509 steps = 0.22 s per step; times 16000 = 3563 s, over the 1200 s target
    assert "| VITAL | pick | 1509 | 1 | 367 | 0.22 (CPU) | 336 | 3563 (16000 steps) | 1200 | no |" in text


def test_an_evaluation_older_than_its_run_is_not_reused(tmp_path, benchmark):
    import os

    mod = benchmark("vital")
    run = tmp_path / "rl" / "vital_pick"
    (run / "policy").mkdir(parents=True)  # an empty policy folder: evaluating it fails
    (run / "summary.json").write_text("{}")
    cache = tmp_path / "eval" / "VITAL_pick_paper_20.json"
    _eval(tmp_path, "VITAL", "pick", "paper", 4)
    t = run.joinpath("summary.json").stat().st_mtime
    os.utime(cache, (t + 10, t + 10))  # evaluated after the run finished: reused
    assert mod.evaluate_on(run / "policy", "pick", "paper", 20, 1, cache)["success"] == 4
    os.utime(cache, (t - 10, t - 10))  # evaluated before the run was redone: evaluated again
    try:
        mod.evaluate_on(run / "policy", "pick", "paper", 20, 1, cache)
    except Exception as e:  # noqa: BLE001 - any failure to load the empty policy shows it was not reused
        assert not isinstance(e, AssertionError)
    else:
        raise AssertionError("a stale evaluation was reused")


def test_the_records_keep_cells_of_earlier_work_folders(tmp_path):
    """The report's records (vital.json beside it) carry the cells of a work folder that no longer exists into the
    next report; a newer run of the same cell replaces it; records made with another setting are refused, and
    --fresh starts anew."""
    import shutil

    report, first, second = tmp_path / "vital.md", tmp_path / "first", tmp_path / "second"
    _eval(first, "ViSk", "pick", "paper", 6)
    _eval(first, "BAKU", "pick", "paper", 2)
    r = _run("--report-only", "--root", str(first), "--report", str(report), "--tasks", "pick")
    assert r.returncode == 0, r.stderr
    shutil.rmtree(first)  # the first folder is gone; its cells stay in the records
    _eval(second, "BAKU", "pick", "paper", 0)  # a newer run of BAKU's cell
    _eval(second, "BAKU", "usb", "paper", 3)
    r = _run("--report-only", "--root", str(second), "--report", str(report), "--tasks", "pick")
    assert r.returncode == 0, r.stderr
    text = report.read_text()
    assert "6/20 vs 0/20" in text and "usb: 3/20" not in text  # ViSk from the first folder, BAKU from the second
    assert "| 15 % (3/20) | 4/10 |" in text  # BAKU on usb
    assert f"`{first}`" in text and f"`{second}`" in text
    rec = json.loads((tmp_path / "vital.json").read_text())
    baku = [c for c in rec["results"] if c["method"] == "BAKU" and c["task"] == "pick"]
    assert len(baku) == 1 and baku[0]["success"] == 0 and baku[0]["root"] == str(second)
    assert _run("--report-only", "--root", str(first), "--report", str(report)).returncode == 0  # records alone
    text = report.read_text()
    setting, rec["setting"] = rec["setting"], "another setting"
    (tmp_path / "vital.json").write_text(json.dumps(rec))
    r = _run("--report-only", "--root", str(second), "--report", str(report))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "error: the records" in r.stderr, r.stderr
    assert "another CPU setting" in r.stderr and report.read_text() == text  # nothing overwritten
    rec["setting"], rec["episodes"] = setting, 10
    (tmp_path / "vital.json").write_text(json.dumps(rec))
    r = _run("--report-only", "--root", str(second), "--report", str(report))
    assert r.returncode != 0 and "another --episodes" in r.stderr
    r = _run("--report-only", "--root", str(second), "--report", str(report), "--fresh")
    assert r.returncode == 0, r.stderr
    assert "6/20" not in report.read_text() and f"`{first}`" not in report.read_text()


def test_jobs_share_the_lanes_and_the_wall_time_is_recorded(tmp_path):
    """--jobs 2: the two lanes of a task run in two processes at once (their own logs), every cell lands in one
    report, and the invocation's wall time is recorded in the work folder and shown against the 5-hour target.
    The children get every option as given (--bc-steps 1 here: else they would train the configs' steps), their own
    --tasks and --methods in place of the parent's, also where those were written --opt=value."""
    demos = tmp_path / "demos.yaml"
    demos.write_text("generator: vital\nsplits:\n  - {split: pick, task: pick, episodes: 1, seed: 404}\n")
    root, report = tmp_path / "root", tmp_path / "vital.md"
    r = subprocess.run(
        [sys.executable, str(BENCH), "--root", str(root), "--report", str(report), "--demos", str(demos), "--tasks",
         "pick", "--methods=BAKU,ViSk", "--jobs=2", "--bc-steps", "1", "--lists", "paper", "--episodes", "1",
         "--workers", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    assert "job 0: pick: ViSk" in r.stdout and "job 1: pick: BAKU" in r.stdout
    assert "training ViSk on pick" in (root / "logs" / "job0.log").read_text()
    assert "training BAKU on pick" in (root / "logs" / "job1.log").read_text()
    assert (root / "eval" / "ViSk_pick_paper_1.json").is_file() and (root / "eval" / "BAKU_pick_paper_1.json").is_file()
    (wall,) = json.loads((root / "benchmark_wall.json").read_text())
    assert wall["jobs"] == 2 and wall["completed"] and wall["tasks"] == ["pick"] and wall["wall_s"] > 0
    text = report.read_text()
    assert f"| `{root}` | 1 | 2 | pick | {wall['wall_s']:.0f} | no | - |" in text  # not every task: no verdict
    rec = json.loads((tmp_path / "vital.json").read_text())
    assert {(c["method"], c["list"]) for c in rec["results"]} == {("BAKU", "paper"), ("ViSk", "paper")}
    assert rec["whole"][str(root)] == [wall]


def test_a_run_held_by_another_process_is_waited_for(tmp_path, benchmark, monkeypatch):
    """With --jobs, a run another process is training (its folder locked) is waited for, then read, not redone."""
    from taclab.utils import FolderLock

    mod = benchmark("vital")
    lock = FolderLock(tmp_path / "run", "training run").acquire()
    calls, sleeps = [], []

    def train():
        calls.append(1)
        with FolderLock(tmp_path / "run", "training run"):
            return "trained"

    def sleep(s):
        sleeps.append(s)
        if len(sleeps) == 2:
            lock.release()  # the other process finishes

    monkeypatch.setattr(mod.time, "sleep", sleep)
    assert mod._when_free(train) == "trained" and len(calls) == 3 and len(sleeps) == 2
