"""Which fidelity setting of the optical tactile sensor lets the rotation error be read from the images;
writes docs/results/rotation_fidelity.md and rotation_fidelity.png.

For each setting (a set of ``taclab/PegInHole-v0`` config overrides: ``sensor_overrides`` of the optical
profile, ``image_size``, ``sensor_noise``) the small single-peg split of the TLA data (square peg, 2.0 mm
clearance, train 2000 samples seed 100, test 300 samples seed 101) is made again with the ``tla`` generator's
own rows and the driver's seeding, the samples ``taclab generate`` writes for these splits, so every setting sees
the same episodes. Measured per setting:

- a linear probe: ridge regression on the sign of each label (dx, dy, drz) from frames 1-3 average-pooled to
  16x16 and 32x32 cells per pad and colour, features standardized; the ridge penalty of each axis is chosen on
  the last 400 training samples (fitted on the first 1600), then refitted on all 2000; direction accuracy on the
  300 test samples (samples with a zero label left out);
- the size of each axis's change in the images: the mean image (frames 1-3, every pixel and colour) of the
  training samples with a positive label minus that of the samples with a negative label, and the same change
  with the signs of the other two labels held (a least squares fit of every value on the three signs); the
  largest absolute value, 99.9th percentile and the number of values above one grey level of each.

The ``fields`` row probes the raw contact fields the renderer starts from (depth and shear, pooled to 8x8 taxel
cells), and reports how much the mean shear under the pads changes with the sign of each label, in particular
the opposite slide of the two pads along x that a yaw of the peg in the grasp would make, and how far the peg
turns about the vertical in the hand during an attempt.

With ``--bc NAME[,NAME]`` the named settings are also written as datasets (``taclab generate``) and a BC policy
(``configs/train_bc.yaml``, ``--bc-epochs`` epochs, one thread) is trained and scored offline on the test split.

Results are cached in ``<root>/results.json`` per setting (and its overrides and sizes): a setting already
measured is skipped; ``--force`` measures again.

Usage: python benchmarks/rotation_fidelity.py [--root runs/rotation_fidelity] [--only NAME,...]
       [--bc default,NAME] [--bc-epochs 6] [--force] [--no-report]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT_MD = REPO / "docs" / "results" / "rotation_fidelity.md"
OUT_PNG = REPO / "docs" / "results" / "rotation_fidelity.png"
AXES = ("x", "y", "rz")
SPLITS = {"train": (2000, 100), "test": (300, 101)}  # samples, seed
N_VAL = 400  # last training samples that choose the ridge penalty
LAMBDAS = tuple(10.0**k for k in range(-2, 7))  # 0.01 to 1e6
GRIDS = (16, 32)  # pooled cells per pad side for the image probe
FIELD_GRID = 8  # pooled cells per pad side for the field probe
FIELDS_VERSION = 4  # of what the fields row measures (cached entries of another version are measured again)
SETTINGS_VERSION = 2  # likewise for the settings

SETTINGS: dict[str, dict] = {
    "default": {},
    "noise-free": {"sensor_noise": False},
    "noise_std 1.0": {"sensor_overrides": {"noise_std": 1.0}},
    "noise_std 0.5": {"sensor_overrides": {"noise_std": 0.5}},
    "noise_std 0.25": {"sensor_overrides": {"noise_std": 0.25}},
    "noise_std 0.1": {"sensor_overrides": {"noise_std": 0.1}},
    "marker_gain 2": {"sensor_overrides": {"marker_gain": 2.0}},
    "marker_gain 4": {"sensor_overrides": {"marker_gain": 4.0}},
    "marker_gain 8": {"sensor_overrides": {"marker_gain": 8.0}},
    "depth_gain 4": {"sensor_overrides": {"depth_gain": 4.0}},
    "depth_gain 8": {"sensor_overrides": {"depth_gain": 8.0}},
    "image 128x128": {"image_size": [128, 128]},
    "marker_gain 8 + noise_std 0.5": {"sensor_overrides": {"marker_gain": 8.0, "noise_std": 0.5}},
    "depth_gain 8 + noise_std 0.5": {"sensor_overrides": {"depth_gain": 8.0, "noise_std": 0.5}},
    "hole chamfer 1 mm": {"scene": {"hole_chamfer": 0.001}},
    "hole chamfer 2 mm": {"scene": {"hole_chamfer": 0.002}},
}
"""Every measured setting: its name and the PegInHole-v0 config overrides it makes (empty: the defaults)."""

FIELDS = "fields"
PHYSICS = ("default", "hole chamfer 1 mm", "hole chamfer 2 mm")
"""The settings whose raw contact fields the fields row measures too (the others change only the rendering)."""


# ---------------------------------------------------------------------------------------------------------------
# data


def split_config(split: str, env: dict, samples: int | None = None):
    from taclab.papers.tla.dataset import TLADatasetConfig

    n, seed = SPLITS[split]
    return TLADatasetConfig(
        split=split, shapes=("square",), clearance_mm=2.0, samples=samples or n, seed=seed, env=dict(env)
    )


def generator_rows(cfg, on_env=None):
    """The rows the ``tla`` generator makes for every shard of ``cfg``, in order, with the driver's seeding
    (:func:`taclab.data.generate.write_shard`). ``on_env``, when given, wraps the env the generator makes."""
    from unittest import mock

    import taclab.envs.base as envs_base
    from taclab.papers.tla.dataset import TLAGenerator

    g = TLAGenerator()
    make = envs_base.make

    def patched(env_id, **config):
        env = make(env_id, **config)
        return on_env(env) if on_env is not None else env

    for shard in g.shards(cfg):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, *shard.key]))
        with mock.patch.object(envs_base, "make", patched):
            yield from g.rows(cfg, shard, rng)


def pool(x: np.ndarray, cells: int) -> np.ndarray:
    """(n, 3 frames, 2 pads, H, W, ...) -> (n, features): mean over square blocks to cells x cells per pad."""
    n, f, p, h, w = x.shape[:5]
    rest = x.shape[5:]
    bh, bw = h // cells, w // cells
    x = x[:, :, :, : cells * bh, : cells * bw].reshape(n, f, p, cells, bh, cells, bw, *rest).mean(axis=(4, 6))
    return x.reshape(n, -1)


class SignStats:
    """Running sums of the images of the samples with a positive and a negative label per axis, and of the least
    squares fit of every pixel on the three label signs together."""

    def __init__(self):
        self.sums = None
        self.counts = np.zeros((3, 2))
        self.dtd = np.zeros((4, 4))
        self.dtx = None

    def add(self, x: np.ndarray, labels: np.ndarray) -> None:
        x = x.astype(np.float64)
        if self.sums is None:
            self.sums = np.zeros((3, 2, *x.shape[1:]))
            self.dtx = np.zeros((4, *x.shape[1:]))
        for j in range(3):
            for k, m in enumerate((labels[:, j] > 0, labels[:, j] < 0)):
                self.sums[j, k] += x[m].sum(axis=0)
                self.counts[j, k] += m.sum()
        d = np.concatenate([np.ones((len(x), 1)), np.sign(labels)], axis=1)  # (n, 4): 1, sign x, y, rz
        self.dtd += d.T @ d
        self.dtx += np.tensordot(d.T, x, axes=1)

    def diff(self, j: int) -> np.ndarray:
        """Mean of the positive-label samples minus the mean of the negative ones, for axis ``j``."""
        return self.sums[j, 0] / self.counts[j, 0] - self.sums[j, 1] / self.counts[j, 1]

    def effect(self, j: int) -> np.ndarray:
        """The change of the image from a negative to a positive label of axis ``j`` with the signs of the other
        two axes held: twice the coefficient of the sign of axis ``j`` in the least squares fit of every pixel on
        the three signs. (:meth:`diff` also carries the other axes' changes as far as the labels correlate.)"""
        beta = np.linalg.solve(self.dtd, self.dtx.reshape(4, -1))
        return 2 * beta[1 + j].reshape(self.dtx.shape[1:])


def collect_images(env: dict, split: str, stats: SignStats | None, chunk: int = 250):
    """Pooled probe features {grid: (n, f)} and labels (n, 3) of one split made with the env overrides; the
    image sign statistics (frames 1-3) go to ``stats``."""
    feats: dict[int, list] = {g: [] for g in GRIDS}
    labels, buf, buf_lab = [], [], []

    def flush():
        if not buf:
            return
        t = np.stack(buf)[:, 1:].astype(np.float32)  # frames 1-3: frame 0 is taken at first touch
        lab = np.stack(buf_lab)
        for g in GRIDS:
            feats[g].append(pool(t, g))
        if stats is not None:
            stats.add(t, lab)
        buf.clear()
        buf_lab.clear()

    for row in generator_rows(split_config(split, env)):
        buf.append(row["tactile"])
        buf_lab.append(np.asarray(row["label"], dtype=np.float64))
        labels.append(buf_lab[-1])
        if len(buf) >= chunk:
            flush()
    flush()
    return {g: np.concatenate(v) for g, v in feats.items()}, np.stack(labels)


class _Recorder:
    """Wraps an env and keeps its last observation (the generator's rows drop the raw fields)."""

    def __init__(self, env):
        self.env, self.last = env, None

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.last = obs
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.last = out[0]
        return out

    def close(self):
        self.env.close()


def collect_fields(split: str, env: dict | None = None):
    """Raw contact fields of one split (the episodes of the setting with the env overrides ``env``): pooled depth
    and shear features, the labels, and per-sample shear summaries (mean over touching taxels of frame 3, per pad
    and component, m)."""
    holder: list[_Recorder] = []

    def wrap(env):
        holder.append(_Recorder(env))
        return holder[-1]

    depth, shear, labels, mean_shear, yaw, twist = [], [], [], [], [], []
    for row in generator_rows(split_config(split, {**(env or {}), "raw_fields": True}), on_env=wrap):
        obs = holder[-1].last
        if not np.array_equal(obs["tactile"], row["tactile"]):
            raise RuntimeError("the recorded observation is not the generator's row")
        yaw.append(_peg_yaw_in_hand(holder[-1].env))
        sim = holder[-1].env.unwrapped._sim
        twist.append(sim.data.qpos[sim._pad_joint_q][:, 2] * sim._twist_sign)  # (2,) rad, about each pad's normal
        d, s = obs["depth"][1:], obs["shear"][1:]  # (3, 2, R, C), (3, 2, R, C, 2)
        depth.append(d)
        shear.append(s)
        labels.append(np.asarray(row["label"], dtype=np.float64))
        touch = d[-1] > 0  # (2, R, C)
        n = np.maximum(touch.sum(axis=(1, 2)), 1)[:, None]
        mean_shear.append((s[-1] * touch[..., None]).sum(axis=(1, 2)) / n)  # (2 pads, 2 components)
    depth, shear = np.stack(depth), np.stack(shear)
    feats = {"depth": pool(depth, FIELD_GRID) * 1e3, "shear": pool(shear, FIELD_GRID) * 1e3}
    feats["depth + shear"] = np.concatenate([feats["depth"], feats["shear"]], axis=1)
    return feats, np.stack(labels), np.stack(mean_shear), np.array(yaw), np.stack(twist)


def _peg_yaw_in_hand(env) -> float:
    """How far (deg) the peg has turned about the vertical in the hand at the end of the last attempt, from the
    settled grasp: the yaw that would twist the gel under the pads."""
    import math

    from taclab.sim.peg_in_hole import _rot

    sim = env.unwrapped._sim
    r0, r1 = _rot(sim.nominal_grasp.peg_quat), _rot(sim._grasp_from_data().peg_quat)
    return math.degrees(math.atan2(r1[1, 0], r1[0, 0]) - math.atan2(r0[1, 0], r0[0, 0]))


# ---------------------------------------------------------------------------------------------------------------
# probe


def _ridge_predictions(a: np.ndarray, b: np.ndarray, ys: np.ndarray, lambdas) -> np.ndarray:
    """Kernel ridge (linear kernel) on standardized features: predictions on ``b`` of the targets ``ys`` (n, k)
    for every penalty, (len(lambdas), len(b), k)."""
    mu, sd = a.mean(axis=0), a.std(axis=0) + 1e-6
    a = (a - mu) / sd
    b = (b - mu) / sd
    k = a @ a.T
    kb = b @ a.T
    evals, evecs = np.linalg.eigh(k)
    uy = evecs.T @ ys
    out = []
    for lam in lambdas:
        alpha = evecs @ (uy / (evals + lam)[:, None])
        out.append(kb @ alpha)
    return np.stack(out)


def _direction(pred: np.ndarray, label: np.ndarray) -> float:
    m = label != 0
    return float(100 * np.mean(np.sign(pred[m]) == np.sign(label[m])))


def probe(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> dict:
    """Direction accuracy (%) per axis on the test split, with the penalty chosen on held-out training samples."""
    train, test = train.astype(np.float64), test.astype(np.float64)
    s_train = np.sign(y_train)
    fit = len(train) - N_VAL
    val = _ridge_predictions(train[:fit], train[fit:], s_train[:fit], LAMBDAS)
    best = [
        LAMBDAS[int(np.argmax([_direction(val[i, :, j], y_train[fit:, j]) for i in range(len(LAMBDAS))]))]
        for j in range(3)
    ]
    out = {}
    for j, axis in enumerate(AXES):
        pred = _ridge_predictions(train, test, s_train[:, j : j + 1], [best[j]])[0, :, 0]
        out[axis] = round(_direction(pred, y_test[:, j]), 1)
        out[f"lambda_{axis}"] = best[j]
    return out


# ---------------------------------------------------------------------------------------------------------------
# measurements


def change_stats(d: np.ndarray) -> dict:
    a = np.abs(d).ravel()
    return {
        "max": round(float(a.max()), 2),
        "p999": round(float(np.percentile(a, 99.9)), 2),
        "p99": round(float(np.percentile(a, 99)), 2),
        "above_1": int((a > 1.0).sum()),
        "values": int(a.size),
    }


def measure_setting(name: str, env: dict, root: Path) -> dict:
    t0 = time.perf_counter()
    stats = SignStats()
    f_train, y_train = collect_images(env, "train", stats)
    f_test, y_test = collect_images(env, "test", None)
    t_data = time.perf_counter() - t0
    res = {"probe": {str(g): probe(f_train[g], y_train, f_test[g], y_test) for g in GRIDS}}
    res["change"] = {axis: change_stats(stats.diff(j)) for j, axis in enumerate(AXES)}
    res["effect"] = {axis: change_stats(stats.effect(j)) for j, axis in enumerate(AXES)}
    corr = np.corrcoef(np.sign(y_train).T)
    res["sign_correlation"] = {"x,y": corr[0, 1], "x,rz": corr[0, 2], "y,rz": corr[1, 2]}
    # figure data: frame 3 (the last), both pads, mean over colours, per axis, with the other axes held
    diffs = np.stack([stats.effect(j)[-1].mean(axis=-1) for j in range(3)])  # (3 axes, 2 pads, H, W)
    (root / "diffs").mkdir(parents=True, exist_ok=True)
    np.save(root / "diffs" / f"{_slug(name)}.npy", diffs.astype(np.float32))
    res["data_s"] = round(t_data, 1)
    res["total_s"] = round(time.perf_counter() - t0, 1)
    res["samples"] = [len(y_train), len(y_test)]
    return res


def measure_fields(env: dict | None = None) -> dict:
    t0 = time.perf_counter()
    f_train, y_train, ms, yaw, twist = collect_fields("train", env)
    f_test, y_test, *_ = collect_fields("test", env)
    res = {"probe": {k: probe(f_train[k], y_train, f_test[k], y_test) for k in f_train}}
    # mean shear (um) of frame 3 over the touching taxels: positive-label mean minus negative-label mean
    ms = ms * 1e6  # (n, 2 pads, 2 components) um
    summaries = {
        "pad 0 along x": ms[:, 0, 0],
        "pad 1 along x": ms[:, 1, 0],
        "pad 0 down the rows": ms[:, 0, 1],
        "pads 0 - 1 along x (yaw in the grasp)": ms[:, 0, 0] - ms[:, 1, 0],
        "pads 0 - 1 down the rows": ms[:, 0, 1] - ms[:, 1, 1],
        "pad 0 twist about its normal (urad)": twist[:, 0] * 1e6,
    }
    design = np.concatenate([np.ones((len(y_train), 1)), np.sign(y_train)], axis=1)  # 1, sign x, y, rz
    shear = {}
    for k, v in summaries.items():
        beta = np.linalg.lstsq(design, v, rcond=None)[0]
        row = {"std": round(float(v.std()), 2)}
        for j, axis in enumerate(AXES):
            pos, neg = y_train[:, j] > 0, y_train[:, j] < 0
            row[axis] = round(float(v[pos].mean() - v[neg].mean()), 2)
            row[f"effect_{axis}"] = round(float(2 * beta[1 + j]), 2)
        shear[k] = row
    res["shear_um"] = shear
    pos, neg = y_train[:, 2] > 0, y_train[:, 2] < 0
    res["peg_yaw_in_hand_deg"] = {
        "max_abs": round(float(np.abs(yaw).max()), 4),
        "std": round(float(yaw.std()), 4),
        "rz": round(float(yaw[pos].mean() - yaw[neg].mean()), 4),
    }
    res["total_s"] = round(time.perf_counter() - t0, 1)
    res["samples"] = [len(y_train), len(y_test)]
    return res


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def split_yaml(env: dict) -> str:
    lines = ["generator: tla", "splits:"]
    for split, (n, seed) in SPLITS.items():
        e = f", env: {json.dumps(env)}" if env else ""
        lines.append(f"  - {{split: {split}, shapes: [square], clearance_mm: 2.0, samples: {n}, seed: {seed}{e}}}")
    return "\n".join(lines) + "\n"


def run_bc(name: str, env: dict, root: Path, epochs: int) -> dict:
    """Write the setting's splits as a dataset, train BC on it and score it offline on the test split."""
    slug = _slug(name)
    data, run = root / "data" / slug, root / "bc" / f"{slug}_e{epochs}"
    cfg_path = root / "data" / f"{slug}.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(split_yaml(env))
    taclab = [sys.executable, "-m", "taclab.cli"]
    t0 = time.perf_counter()
    subprocess.run([*taclab, "generate", "--config", str(cfg_path), "--out", str(data), "--workers", "1"], check=True)
    t_gen = time.perf_counter() - t0
    summary = run / "summary.json"
    if not (summary.exists() and json.loads(summary.read_text()).get("epochs_done") == epochs):
        subprocess.run(
            [
                *taclab, "train", "--config", str(REPO / "configs" / "train_bc.yaml"), "--data", str(data),
                "--out", str(run), "--set", f"train.epochs={epochs}", "--set", "train.threads=1",
            ],
            check=True,
        )  # fmt: skip
    t_train = json.loads(summary.read_text())["train_time_s"]
    subprocess.run(
        [
            *taclab, "eval", "offline", "--policy", str(run), "--data", str(data), "--split", "test",
            "--out", str(run / "eval"),
        ],
        check=True,
    )  # fmt: skip
    m = json.loads((run / "eval" / "offline_test.json").read_text())["metrics"]
    return {
        "epochs": epochs,
        **{axis: round(m[f"direction_{axis}"], 1) for axis in AXES},
        "gcr": round(m["gcr"], 1),
        "generate_s": round(t_gen, 1),
        "train_s": round(t_train, 1),
    }


# ---------------------------------------------------------------------------------------------------------------
# report


def _figure(root: Path, names: list[str], columns: int = 4):
    """One panel per setting: the rz effect image (frame 3, mean of the colours), pad 0 | pad 1, all on one
    colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = [(n, root / "diffs" / f"{_slug(n)}.npy") for n in names]
    rows = [(n, np.load(f)[2]) for n, f in files if f.exists()]  # (2 pads, H, W) per setting
    if not rows:
        return None
    lim = max(float(np.abs(d).max()) for _, d in rows)
    nr = -(-len(rows) // columns)
    fig, axes = plt.subplots(nr, columns, figsize=(3.0 * columns, 1.75 * nr + 0.9), squeeze=False)
    im = None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (name, d) in zip(axes.ravel(), rows, strict=False):
        gap = np.full((d.shape[1], max(1, d.shape[2] // 16)), np.nan)
        im = ax.imshow(np.concatenate([d[0], gap, d[1]], axis=1), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(name, fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.7, label="grey levels")
    fig.suptitle(
        "rz effect in the images with the signs of x and y held (training samples)\n"
        "(frame 3, mean of the colours; pad 0 left, pad 1 right; one scale for all)",
        fontsize=9,
    )
    return fig


def _rz(r: dict) -> float:
    """The probe's rz accuracy of a setting, the mean over the two poolings."""
    return (r["probe"]["16"]["rz"] + r["probe"]["32"]["rz"]) / 2


def _reading(cache: dict, names: list[str]) -> list[str]:
    """A few sentences computed from the results: where each setting leaves rz against the default."""
    s = cache["settings"]
    if "default" not in s:
        return []
    base = s["default"]
    out = ["", "## Reading", ""]
    noisy = [n for n in names if n != "default" and SETTINGS[n].get("sensor_noise", True) is not False]
    if noisy:
        best = max(noisy, key=lambda n: _rz(s[n]))
        b = s[best]
        out.append(
            f"- rz, mean of the two poolings: {_rz(base):.1f} % by default; the best setting with pixel noise is "
            f"`{best}` at {_rz(b):.1f} % (x {b['probe']['32']['x']}, y {b['probe']['32']['y']} at 32x32, against "
            f"{base['probe']['32']['x']} / {base['probe']['32']['y']} by default)."
        )
    noise = [(2.0, "default")] + [(float(n.split()[1]), n) for n in names if n.startswith("noise_std ")]
    if "noise-free" in s:
        noise.append((0.0, "noise-free"))
    if len(noise) > 1:
        out.append(
            "- rz against the pixel noise (`noise_std`): "
            + ", ".join(f"{v:g}: {_rz(s[n]):.1f} %" for v, n in sorted(noise, reverse=True))
            + "."
        )
    gains = [(1.0, "default")] + [
        (float(n.split()[1]), n) for n in names if n.startswith("marker_gain ") and "+" not in n
    ]
    if len(gains) > 1:
        out.append(
            "- `marker_gain` against the rz effect in the images (x and y held, largest value in grey levels) and "
            "the probe's rz: "
            + ", ".join(f"{v:g}: {s[n]['effect']['rz']['max']} and {_rz(s[n]):.1f} %" for v, n in gains)
            + "."
        )
    bc = list(cache.get("bc", {}).values())
    if bc:
        lo, hi = min(bc, key=lambda r: r["rz"]), max(bc, key=lambda r: r["rz"])
        out.append(
            f"- BC reads rz at {lo['rz']} to {hi['rz']} % over the settings it was run on "
            f"(`{lo['setting']}` to `{hi['setting']}`); y at "
            + ", ".join(f"{r['y']} % (`{r['setting']}`)" for r in bc)
            + "."
        )
    return out


def _command(cache: dict) -> str:
    """The command line that makes everything the report shows (the BC runs it holds included)."""
    cmd = "python benchmarks/rotation_fidelity.py"
    bc = cache.get("bc", {})
    for epochs in sorted({r["epochs"] for r in bc.values()}):
        names = ",".join(r["setting"] for r in bc.values() if r["epochs"] == epochs)
        cmd += f" --bc '{names}' --bc-epochs {epochs}"
    return cmd


def _correlations(cache: dict) -> str:
    c = cache["settings"].get("default", next(iter(cache["settings"].values())))["sign_correlation"]
    return ", ".join(f"{k} {v:+.2f}" for k, v in c.items())


def report(cache: dict, root: Path) -> None:
    from taclab.utils import atomic_write_text, save_png

    names = [n for n in SETTINGS if n in cache.get("settings", {})]
    lines = [
        "# Recovering the rotation signal of the optical tactile sensor",
        "",
        f"Written by `{_command(cache)}`.",
        "",
        "Data: the small single-peg split of the TLA data (square peg, 2.0 mm clearance; train 2000 samples seed "
        "100, test 300 seed 101), made again by the `tla` generator for every setting from the same episodes; a "
        "setting is a set of `taclab/PegInHole-v0` overrides (`sensor_overrides` of the `gelstereo` profile, "
        "`image_size`, `sensor_noise`; `scene` for the physics).",
        "",
        "Probe: ridge regression on the sign of each label from frames 1-3 average-pooled to 16x16 or 32x32 cells "
        f"per pad and colour (standardized), the penalty of each axis chosen from {LAMBDAS[0]:g} to "
        f"{LAMBDAS[-1]:g} on the last {N_VAL} training samples, then refitted on all of them; direction accuracy "
        "(%) on the 300 test samples with a non-zero label. About 280 test samples per axis: 5 points is about "
        "one standard error of a difference.",
        "",
        "| setting | overrides | probe 16x16: x / y / rz | probe 32x32: x / y / rz | make both splits (s) |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        r = cache["settings"][n]
        p16, p32 = r["probe"]["16"], r["probe"]["32"]
        ov = json.dumps(SETTINGS[n]) if SETTINGS[n] else "(none)"
        lines.append(
            f"| {n} | `{ov}` | {p16['x']} / {p16['y']} / **{p16['rz']}** | {p32['x']} / {p32['y']} / "
            f"**{p32['rz']}** | {r['data_s']} |"
        )
    lines += [
        "",
        "Times are wall clock on a shared 2-core machine (other jobs running), one thread; compare them only within "
        "this page.",
        "",
        "## How large the rotation change is in the images",
        "",
        "Change: the mean image (frames 1-3, every pixel and colour) of the training samples with a positive label "
        "minus that of the samples with a negative one, in grey levels. Because the signs of the labels correlate "
        "a little (over the training samples: "
        + _correlations(cache)
        + "), this difference also carries part of the other axes' changes; the effect with x and y held is twice "
        "the coefficient of the sign of rz when every value is fitted (least squares) on the signs of all three "
        "labels. Each: its largest absolute value, its 99.9th percentile, and how many of its values exceed one "
        "grey level.",
        "",
        "| setting | rz change: max / p99.9 / values > 1 | rz effect, x and y held: max / p99.9 / values > 1 "
        "| x effect: max | y effect: max |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        r = cache["settings"][n]
        c, e = r["change"]["rz"], r["effect"]
        lines.append(
            f"| {n} | {c['max']} / {c['p999']} / {c['above_1']} of {c['values']} | **{e['rz']['max']}** / "
            f"{e['rz']['p999']} / {e['rz']['above_1']} | {e['x']['max']} | {e['y']['max']} |"
        )
    f = cache.get(FIELDS)
    if f:
        lines += [
            "",
            "## The contact fields the renderer starts from",
            "",
            f"The same probe on the raw fields of the default setting's episodes (frames 1-3, pooled to "
            f"{FIELD_GRID}x{FIELD_GRID} taxel cells per pad; depth and shear in mm):",
            "",
            "| fields | x | y | rz |",
            "|---|---|---|---|",
        ]
        for k, p in f["probe"].items():
            lines.append(f"| {k} | {p['x']} | {p['y']} | **{p['rz']}** |")
        lines += [
            "",
            "Mean shear of the gel surface over the touching taxels (frame 3, um), and the twist of pad 0's "
            "surface about the pad's normal at the end of the attempt (the rotation the markers show, urad): "
            "positive-label mean minus negative-label mean per axis, the same with the other two axes' signs held "
            "(least squares on the three signs, as for the images), and the spread over the training samples:",
            "",
            "| quantity | x | y | rz | x, others held | y, others held | rz, others held | std over samples |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k, v in f["shear_um"].items():
            lines.append(
                f"| {k} | {v['x']} | {v['y']} | {v['rz']} | {v['effect_x']} | {v['effect_y']} | "
                f"**{v['effect_rz']}** | {v['std']} |"
            )
        yx = f["shear_um"].get("pads 0 - 1 along x (yaw in the grasp)")
        if yx:
            lines += [
                "",
                "A turn of the peg about the vertical in the hand would slide the surfaces of the two pads along x "
                f"in opposite directions (pads 0 - 1 along x): that slide differs by {yx['effect_rz']} um between "
                f"the samples with a positive and a negative rz label (others held), and spreads by {yx['std']} um "
                "over all samples, "
                f"where the common slide along x (pad 0) differs by {f['shear_um']['pad 0 along x']['x']} um with "
                "the sign of x.",
            ]
        yaw = f.get("peg_yaw_in_hand_deg")
        if yaw:
            lines += [
                "",
                f"The peg's turn about the vertical in the hand at the end of an attempt (from the settled grasp): "
                f"at most {yaw['max_abs']} deg over the training samples (std {yaw['std']} deg), positive-rz minus "
                f"negative-rz mean {yaw['rz']} deg.",
            ]
        phys = {k: v for k, v in f.get("physics", {}).items() if k != "default"}
        if phys:
            lines += [
                "",
                "## A change of the physics: a chamfered hole",
                "",
                "A 45-degree chamfer around the hole's top edge (`scene.hole_chamfer`, default 0: the paper's sharp "
                "edge) turns part of the press into a sideways push, and a push on one corner of a turned peg into a "
                "torque about the vertical. The same probes on each setting's own episodes (the same initial errors): "
                "the raw fields (depth + shear), the images (16x16), and the peg's turn in the hand:",
                "",
                "| setting | fields: x / y / rz | images 16x16: x / y / rz | peg turn in the hand: max (deg) | "
                "its rz effect (deg) | pads' opposite slide along x: rz effect, others held / std (um) |",
                "|---|---|---|---|---|---|",
            ]
            for k in PHYSICS:
                v = f["physics"].get(k)
                img = cache.get("settings", {}).get(k, {}).get("probe", {}).get("16")
                if v is None:
                    continue
                pf = v["probe"]["depth + shear"]
                im = f"{img['x']} / {img['y']} / **{img['rz']}**" if img else "not measured"
                yx = v["shear_um"]["pads 0 - 1 along x (yaw in the grasp)"]
                yaw = v["peg_yaw_in_hand_deg"]
                lines.append(
                    f"| {k} | {pf['x']} / {pf['y']} / **{pf['rz']}** | {im} | {yaw['max_abs']} | {yaw['rz']} | "
                    f"{yx['effect_rz']} / {yx['std']} |"
                )
    bc = cache.get("bc", {})
    if bc:
        lines += [
            "",
            "## BC on the same data",
            "",
            "`taclab train --config configs/train_bc.yaml` (the difference from the no-contact image, standardized "
            "per channel) with `train.epochs` as given and `train.threads=1`, then `taclab eval offline` on the test "
            "split; direction accuracy (%) and GCR:",
            "",
            "| setting | epochs | dir x | dir y | dir rz | GCR | train time (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in bc.values():
            lines.append(
                f"| {r['setting']} | {r['epochs']} | {r['x']} | {r['y']} | **{r['rz']}** | {r['gcr']} | "
                f"{r['train_s']} |"
            )
    lines += _reading(cache, names)
    lines += ["", "![mean image differences](rotation_fidelity.png)", ""]
    atomic_write_text(OUT_MD, "\n".join(lines))
    fig = _figure(root, names)
    if fig is not None:
        import matplotlib.pyplot as plt

        save_png(OUT_PNG, fig)
        plt.close(fig)
    print(f"wrote {OUT_MD}")


# ---------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="runs/rotation_fidelity", help="work folder (cache, datasets, BC runs)")
    ap.add_argument("--only", default="", help="comma-separated setting names (and/or 'fields') to measure")
    ap.add_argument("--bc", default="", help="comma-separated setting names to check with a BC run")
    ap.add_argument("--bc-epochs", type=int, default=6)
    ap.add_argument("--force", action="store_true", help="measure again what the cache holds")
    ap.add_argument("--no-report", action="store_true", help="do not write the docs/results files")
    args = ap.parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")

    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    cache_path = root / "results.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    cache.setdefault("settings", {})

    def save():
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(cache_path)

    wanted = [s.strip() for s in args.only.split(",") if s.strip()] or [*SETTINGS, FIELDS]
    unknown = [w for w in wanted if w not in SETTINGS and w != FIELDS]
    bc_names = [s.strip() for s in args.bc.split(",") if s.strip()]
    unknown += [w for w in bc_names if w not in SETTINGS]
    if unknown:
        sys.exit(f"unknown setting(s) {unknown}; known: {[*SETTINGS, FIELDS]}")
    key_of = {
        n: {"overrides": SETTINGS[n], "splits": SPLITS, "grids": GRIDS, "lambdas": LAMBDAS, "version": SETTINGS_VERSION}
        for n in SETTINGS
    }
    for n in wanted:
        if n == FIELDS:
            if cache.get(FIELDS, {}).get("version") == FIELDS_VERSION and not args.force:
                print(f"{n}: cached")
                continue
            print(f"{n}: measuring", flush=True)
            rows = {p: measure_fields(SETTINGS[p]) for p in PHYSICS}
            cache[FIELDS] = {"version": FIELDS_VERSION, **rows["default"], "physics": rows}
            save()
            print(f"{n}: {json.dumps({p: r['probe'] for p, r in rows.items()})}", flush=True)
            continue
        key = json.loads(json.dumps(key_of[n]))
        old = cache["settings"].get(n)
        if old is not None and old.get("key") == key and not args.force:
            print(f"{n}: cached")
            continue
        print(f"{n}: measuring", flush=True)
        res = measure_setting(n, SETTINGS[n], root)
        cache["settings"][n] = {"key": key, **res}
        save()
        print(f"{n}: {json.dumps(res['probe'])} rz change {res['change']['rz']} ({res['total_s']} s)", flush=True)
    cache.setdefault("bc", {})
    for n in bc_names:
        bkey = f"{n} / {args.bc_epochs} epochs"
        old = cache["bc"].get(bkey)
        if old is not None and old.get("overrides") == json.loads(json.dumps(SETTINGS[n])) and not args.force:
            print(f"BC {bkey}: cached")
            continue
        print(f"BC {bkey}: training", flush=True)
        r = run_bc(n, SETTINGS[n], root, args.bc_epochs)
        cache["bc"][bkey] = {"setting": n, "overrides": SETTINGS[n], **r}
        save()
        print(f"BC {bkey}: {r}", flush=True)
    if not args.no_report:
        report(cache, root)


if __name__ == "__main__":
    main()
