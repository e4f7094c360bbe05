"""`taclab generate` checks its estimated size against the free disk and memory before starting, and Ctrl-C
stops it within about a second, workers included, leaving only complete shards; the same command resumes to
the dataset an uninterrupted single-process run writes (so the number of workers does not change the data)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from taclab.cli import app
from taclab.data import (
    Feature,
    GenerationInterrupted,
    Generator,
    SplitConfig,
    fingerprint,
    generate,
    read_meta,
    register_generator,
    verify,
)

runner = CliRunner()
CONFIG = "generator: tla\nsplits: [{split: train, samples: 400, shard_size: 10, seed: 1, env: {image_size: [8, 8]}}]\n"


def run(tmp_path, *extra):
    (tmp_path / "c.yaml").write_text(CONFIG)
    args = ["generate", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"), "--workers", "1"]
    return runner.invoke(app, [*args, *extra])


def test_a_run_larger_than_the_free_disk_is_refused_before_starting(tmp_path, monkeypatch):
    import taclab.utils

    monkeypatch.setattr(taclab.utils, "free_disk_bytes", lambda path: 10 << 20)
    r = run(tmp_path, "--set", "samples=100000", "--set", "env.image_size=[64,64]")
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "needs about 9.2 GiB" in r.output and "the disk has 10.0 MiB free" in r.output
    assert not (tmp_path / "out").exists()


def test_a_trillion_samples_is_refused_at_once(tmp_path):
    t0 = time.perf_counter()
    r = run(tmp_path, "--set", "samples=1000000000000", "--set", "shard_size=1")
    assert r.exit_code == 2 and "PiB" in r.output and "reduce the samples" in r.output, r.output
    assert time.perf_counter() - t0 < 10 and not (tmp_path / "out").exists()


def test_too_little_memory_for_one_worker_is_refused(tmp_path, monkeypatch):
    import taclab.utils

    monkeypatch.setattr(taclab.utils, "available_memory_bytes", lambda: 100 << 20)
    r = run(tmp_path)
    assert r.exit_code == 2 and "one worker needs about" in r.output and "100.0 MiB is available" in r.output


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _interruptible() -> None:
    """Ctrl-C's default action in the child: a test suite started in the background (``cmd &`` in a script) runs
    with SIGINT ignored, and a child would inherit that, as a background job should."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_workers_at_once_and_the_same_command_resumes(tmp_path):
    (tmp_path / "c.yaml").write_text(CONFIG)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "taclab.cli", "generate", "--config", str(tmp_path / "c.yaml"), "--out", str(out)]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    child = subprocess.Popen([*cmd, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=env, preexec_fn=_interruptible)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((out / "data").glob("*.parquet")) if (out / "data").is_dir() else True:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no shard written in 120 s"
            time.sleep(0.02)
        workers_pids = children(child.pid)
        t0 = time.monotonic()
        assert child.poll() is None, "the run finished before it could be interrupted: give it more shards"
        child.send_signal(signal.SIGINT)
        lines = []
        while not (lines and lines[-1].startswith("interrupted:")):
            line = child.stderr.readline()
            assert line, f"no 'interrupted:' line: {lines}, exit code {child.poll()}"
            lines.append(line)
        stopped = time.monotonic() - t0  # workers stopped, partial files removed, dataset.json written
        rest = child.stderr.read()
        child.wait(timeout=30)
        exited = time.monotonic() - t0
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130 and "Traceback" not in "".join(lines) + rest
    assert lines[-1].startswith("interrupted: split 'train':") and "run the same command again" in lines[-1]
    assert stopped < 1.0, f"Ctrl-C took {stopped:.2f} s to stop the run"
    assert exited < 10.0, f"the process took {exited:.2f} s to exit"
    time.sleep(0.2)
    assert not [p for p in workers_pids if alive(p)], "worker processes outlived the command"
    data = out / "data"
    assert not [p.name for p in data.iterdir() if not p.name.endswith(".parquet")]  # no partial files
    for f in data.glob("*.parquet"):
        assert pq.ParquetFile(f).metadata.num_rows == 10  # every shard on disk is complete
    assert not read_meta(out)["splits"]["train"]["complete"] and not (out / ".taclab.lock").exists()
    with pytest.raises(ValueError, match="is incomplete"):
        verify(out, "train")
    r = runner.invoke(app, ["generate", "--config", str(tmp_path / "c.yaml"), "--out", str(out), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert verify(out, "train") == {"rows": 400, "shards": 40, "verified": True}
    # the same as one uninterrupted run in one process: shards made by two workers, then by one, are identical
    ref = tmp_path / "ref"
    r = runner.invoke(app, ["generate", "--config", str(tmp_path / "c.yaml"), "--out", str(ref), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert fingerprint(out, "train") == fingerprint(ref, "train")


class StopConfig(SplitConfig):
    samples: int = 9
    shard_size: int = 3


@register_generator("test_interrupted")
class StopGenerator(Generator):
    """Raises KeyboardInterrupt (as Ctrl-C does) in the middle of its second shard."""

    Config = StopConfig

    def features(self, cfg):
        return [Feature("x", "float32", (2,), "vector")]

    def rows(self, cfg, shard, rng):
        for i in range(shard.size):
            if shard.key == (1,) and i == 1:
                raise KeyboardInterrupt
            yield {"x": rng.normal(size=2)}


def test_an_interrupt_in_process_keeps_complete_shards_only(tmp_path):
    with pytest.raises(GenerationInterrupted, match=r"split 'train': 1 of 3 shards complete"):
        generate(StopConfig(), tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train-00000.parquet"]
    sp = read_meta(tmp_path)["splits"]["train"]
    assert not sp["complete"] and [r["file"] for r in sp["shards"]] == ["data/train-00000.parquet"]
    assert not (tmp_path / ".taclab.lock").exists()
