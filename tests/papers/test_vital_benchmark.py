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
    assert "| BAKU | pick | 2000 | 2500 | 0.23 | 450 | 450 (2000 steps) | 600 | yes |" in text
    assert "| ViSk | pick | 2000 | 2600 | 0.35 | 700 | 700 (2000 steps) | 600 | no |" in text
    assert "| BAKU | plug | 2000 | 2000 | 0.30 | 600 | 600 (2000 steps) | 600 | no |" in text


def test_bad_input_is_named(tmp_path):
    for args, msg in (
        (["--tasks", "lock"], "error: unknown task 'lock'"),
        (["--lists", "paper,moon", "--report-only"], "error: unknown task list 'moon'"),
        (["--bc-steps", "0", "--report-only"], "error: --bc-steps must be at least 1, got 0"),
        (["--report-only", "--root", str(tmp_path / "none")], "error: no benchmark runs under"),
        (["--vlm-locator", "nowhere", "--report-only"], "error: --vlm-locator 'nowhere' is neither a folder"),
    ):
        r = _run(*args)
        assert r.returncode != 0 and msg in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
