"""benchmarks/vital_corrections.py: the correction gain per height band is the least-squares slope of the
commanded sideways move on minus the sideways error (checked on hand-made traces), and bad input gets one
``error:`` line."""

import subprocess
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).parents[2] / "benchmarks" / "vital_corrections.py"


def test_gain_per_band_by_hand(benchmark):
    bands = benchmark("vital_corrections").bands
    # high: the move cancels half the error; middle: ignores it; low: cancels all of it
    errors = np.array([[4.0, -2.0, 80.0], [2.0, 0.0, 60.0], [3.0, 1.0, 30.0], [-1.0, 2.0, 25.0], [1.0, -1.0, 5.0]])
    moves = np.array([[-2.0, 1.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [-1.0, 1.0]])
    high, mid, low = bands({"errors": errors, "moves": moves})
    assert (high["steps"], mid["steps"], low["steps"]) == (2, 2, 1)
    assert np.isclose(high["gain"], 0.5) and mid["gain"] == 0.0 and np.isclose(low["gain"], 1.0)
    assert np.isclose(high["mean_abs_error_mm"], 2.0) and np.isclose(high["mean_abs_move_mm"], 1.0)
    # a move against the error has a negative gain
    (flip, *_) = bands({"errors": errors[:2], "moves": -moves[:2]})
    assert np.isclose(flip["gain"], -0.5)


def test_bad_input_one_error_line(tmp_path):
    for args, word in (
        (["--task", "card"], "'card'"),
        (["--policy", f"BAKU={tmp_path}"], "policy.json"),
        (["--policy", "nonsense"], "NAME=PATH"),
    ):
        r = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2
        last = r.stderr.strip().splitlines()[-1]
        assert "error:" in last and word in last


FIT = Path(__file__).parents[2] / "benchmarks" / "vital_fit.py"


def test_fit_r2_and_readout_by_hand(benchmark):
    fit = benchmark("vital_fit")
    target = np.array([1.0, 2.0, 3.0, 4.0])
    assert fit.r2(target, target) == 1.0
    assert fit.r2(np.full(4, 2.5), target) == 0.0  # the mean explains nothing
    assert np.isclose(fit.r2(target + 1.0, target), 1 - 1.0 / 1.25)  # variance 1.25, squared error 1
    assert fit.r2(target, np.ones(4)) is None  # a constant component has no R^2
    rng = np.random.default_rng(0)
    episodes = np.repeat(np.arange(20), 30)
    x = rng.normal(size=(600, 8))
    linear = x @ np.arange(1.0, 9.0)
    r = fit.readout(x, linear + 0.1 * rng.normal(size=600), episodes)
    assert r["held_out_r2"] > 0.99 and r["penalty"] in fit.PENALTIES
    noise = fit.readout(x, rng.normal(size=600), episodes)
    assert noise["held_out_r2"] < 0.05  # features that say nothing read nothing on held-out episodes


def test_adam_readout_recovers_linear_targets(benchmark):
    """Trained by Adam on standardized features, the linear readout recovers targets that are linear in the
    features, whatever their raw scale (one carried by a large feature, one by a tiny one), on held-out episodes;
    untrained it does not."""
    fit = benchmark("vital_fit")
    rng = np.random.default_rng(1)
    episodes = np.repeat(np.arange(20), 30)
    x = rng.normal(size=(600, 4)) * np.array([10.0, 1.0, 1.0, 0.01])
    y = np.c_[x[:, 0] / 10.0, x[:, 3] / 0.01] + 0.05 * rng.normal(size=(600, 2))
    r = fit.adam_readout(x, y, episodes, steps=3000, lr=1e-3)
    assert min(r["fit_r2"]) > 0.95 and min(r["held_out_r2"]) > 0.95
    untrained = fit.adam_readout(x, y, episodes, steps=0)  # starts at zero: predicts the fitting episodes' mean
    assert max(untrained["fit_r2"]) == 0.0 and max(untrained["held_out_r2"]) < 0.05
    slow = fit.adam_readout(x, y, episodes, steps=300)  # the default 1e-4 moves a weight by at most 0.03 in 300
    assert max(slow["fit_r2"]) < 0.5


def test_fit_bad_input_one_error_line(tmp_path):
    for args, word in (
        (["--demos", str(tmp_path), "--policy", "nonsense"], "NAME=PATH"),
        (["--demos", str(tmp_path), "--policy", f"BAKU={tmp_path}"], "policy.json"),
    ):
        r = subprocess.run([sys.executable, str(FIT), *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2
        last = r.stderr.strip().splitlines()[-1]
        assert "error:" in last and word in last
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "policy.json").write_text("{}")
    r = subprocess.run(
        [sys.executable, str(FIT), "--demos", str(tmp_path), "--policy", f"BAKU={tmp_path / 'p'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "not a dataset folder" in r.stderr.strip().splitlines()[-1]
