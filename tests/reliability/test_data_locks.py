"""One writer per dataset folder: a second `taclab generate` into a folder being written exits 2 naming the
holder (pid, host, command); a lock left by a killed writer is taken over. `FolderLock` is the mechanism."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from taclab.cli import app
from taclab.utils import FolderLock, FolderLockedError

runner = CliRunner()
CONFIG = "generator: tla\nsplits: [{split: train, samples: 5000, shard_size: 10, seed: 1, env: {image_size: [8, 8]}}]\n"


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_releases(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    args = ["generate", "--config", str(cfg), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    first = subprocess.Popen([sys.executable, "-m", "taclab.cli", *args], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((out / "data").glob("*.parquet")) if (out / "data").is_dir() else True:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first writer wrote no shard in 120 s"
            time.sleep(0.05)
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
        assert f"is locked by pid {first.pid} on host {socket.gethostname()}" in r.output
        assert f"generate --config {cfg}" in r.output and "dataset generation" in r.output
        assert first.poll() is None  # the first writer goes on, untouched
        first.send_signal(signal.SIGKILL)  # dies holding the lock: its lock file stays behind
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    holder = FolderLock.holder(out)
    assert holder["pid"] == first.pid
    with FolderLock(out, "test") as lock:  # the kernel released the dead writer's lock: taken over
        assert lock.took_over["pid"] == first.pid
        assert FolderLock.holder(out)["pid"] == os.getpid()
    assert not (out / ".taclab.lock").exists()


def test_folder_lock_in_one_process(tmp_path):
    folder = tmp_path / "a" / "b"
    with FolderLock(folder, "training run"):
        with pytest.raises(FolderLockedError, match=rf"{folder} is locked by pid {os.getpid()} on host .*training run"):
            FolderLock(folder, "another run").acquire()
    assert not tmp_path.joinpath("a").exists()  # it created the folders and they stayed empty: removed again
    folder.mkdir(parents=True)
    (folder / ".taclab.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": "elsewhere"}))  # stale
    with FolderLock(folder) as lock:
        assert lock.took_over["host"] == "elsewhere"
    assert folder.is_dir()  # it existed before: kept
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        FolderLock(tmp_path / "file").acquire()
