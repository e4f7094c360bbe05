"""Training runs, policies and evaluations refuse what would make them silently wrong, and clean up after
themselves: resuming with other data (item 3), a model without weights or a truncated result (6), actions
outside the box scored as they are (7), input of another size (8), negative workers, fp16 on a CPU, failed
starts (10), two writers of one run folder (12), evaluation workers outliving a killed parent (13)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import taclab.papers  # noqa: F401 - registers the TLA learning spec and policies
from taclab.cli import app
from taclab.data.generate import generate
from taclab.papers.tla.dataset import TLADatasetConfig
from taclab.policies import load_policy
from taclab.train import TrainingError, load_run_config, train
from taclab.utils import FolderLock

runner = CliRunner()
TINY = {"train.epochs": 1, "train.batch_size": 16, "train.val_fraction": 0.2}


def _train(data, out, **kw):
    return train(load_run_config(policy="bc", overrides=TINY), data, out, progress=False, **kw)


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("reliability_run")
    _train(tiny_dataset, out)
    return out


def test_resume_with_other_data_is_refused(run, tiny_dataset, tmp_path):
    other = tmp_path / "other"
    generate(TLADatasetConfig(split="train", samples=24, seed=99, env={"image_size": [32, 32]}), other, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    with pytest.raises(TrainingError, match="fingerprint"):
        _train(other, run, resume=True)
    assert {p.name: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == before  # nothing touched
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    r = runner.invoke(app, ["train", "--policy", "bc", "--data", str(other), "--out", str(run), "--resume", *sets])
    assert r.exit_code == 2 and "fingerprint" in r.output and "Traceback" not in r.output


def test_a_second_writer_of_a_run_folder_is_refused(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    with FolderLock(out, "training run"):
        with pytest.raises(RuntimeError, match=rf"{out} is locked by pid {os.getpid()}"):
            _train(tiny_dataset, out)
    assert not out.exists()  # the refused start left nothing behind


def test_a_checkpoint_refuses_input_of_another_size(run, tiny_dataset):
    p = load_policy(run / "policy")
    assert p.io.inputs["tactile"].shape[-3:] == (32, 32, 3)
    with pytest.raises(ValueError, match=r"\(4, 2, 32, 32, 3\).*\(4, 2, 16, 16, 3\)"):
        p.select_action({"tactile": np.zeros((4, 2, 16, 16, 3), np.uint8)})


def test_actions_leave_the_policy_clipped_and_offline_metrics_score_them(run, tiny_dataset, tmp_path):
    from taclab.eval.offline import evaluate_offline

    p = load_policy(run / "policy")
    head = [m for m in p.model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.bias.fill_(100.0)  # every output far above the action box
    rec = evaluate_offline(p, tiny_dataset, "test", out=tmp_path, progress=False)
    scored = np.load(tmp_path / "offline_test_predictions.npz")["action"]
    hi = np.asarray(p.io.action_high)
    np.testing.assert_allclose(scored, np.tile(hi, (len(scored), 1)))
    assert rec["samples"] == len(scored)


def test_an_untrained_policy_is_refused_and_a_truncated_result_is_not_reported(tmp_path):
    r = runner.invoke(app, ["eval", "closed-loop", "--policy", "bc", "--out", str(tmp_path / "e"), "--episodes", "1"])
    assert r.exit_code == 2 and "no declared inputs" in r.output and not (tmp_path / "e").exists()
    r = runner.invoke(
        app, ["eval", "closed-loop", "--policy", "zero", "--out", str(tmp_path / "z"), "--episodes", "1",
              "--tasks", "square:2", "--workers", "1", "--set", "image_size=[16, 16]"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    record = tmp_path / "z" / "closed_loop.json"
    text = record.read_text()
    assert json.loads(text)["kind"] == "closed_loop"
    record.write_text(text[: len(text) // 2])  # truncated
    r = runner.invoke(app, ["report", str(tmp_path / "z"), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 2 and "closed_loop.json" in r.output and "cannot read" in r.output


def test_negative_workers_and_fp16_on_cpu_are_refused(tiny_dataset, tmp_path):
    r = runner.invoke(app, ["eval", "closed-loop", "--policy", "zero", "--out", str(tmp_path / "e"), "--workers", "-1"])
    assert r.exit_code == 2 and "--workers" in r.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("generator: tla\nsplits: [{split: train, samples: 4}]\n")
    r = runner.invoke(app, ["generate", "--config", str(cfg), "--out", str(tmp_path / "d"), "--workers", "-2"])
    assert r.exit_code == 2 and "-2" in r.output
    with pytest.raises(TrainingError, match="fp16"):
        train(load_run_config(policy="bc", overrides={**TINY, "train.mixed_precision": "fp16"}), tiny_dataset,
              tmp_path / "fp16", progress=False)  # fmt: skip
    assert not (tmp_path / "e").exists() and not (tmp_path / "d").exists() and not (tmp_path / "fp16").exists()


_EVAL_CHILD = """
import sys
from taclab.eval.rollout import evaluate
evaluate("random", "taclab/PegInHole-v0", [{"shape": "square"}], episodes=400, workers=2,
         env_config={"image_size": [16, 16]}, progress=False)
"""


def _children(pid: int) -> set[int]:
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(d))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_evaluation_workers_exit_with_a_killed_parent():
    parent = subprocess.Popen([sys.executable, "-c", _EVAL_CHILD], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 2:
            assert parent.poll() is None, "the evaluation ended before its workers were seen"
            assert time.monotonic() < deadline, "no worker processes seen in 120 s"
            workers = _children(parent.pid)
            time.sleep(0.1)
        time.sleep(1.0)  # the workers are running episodes
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        alive = workers
        while alive and time.monotonic() < deadline:
            alive = {w for w in alive if os.path.exists(f"/proc/{w}") and _state(w) != "Z"}
            time.sleep(0.1)
        assert not alive, f"workers {sorted(alive)} outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"
