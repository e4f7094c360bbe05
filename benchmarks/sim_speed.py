"""Speed of the tactile peg-in-hole simulator; writes docs/results/sim_speed.md.

Measured in one run, on the default configuration (64x64 images, 32x32 taxels, noise on):
- attempts per second through the Gymnasium env with tactile rendering, random corrective actions (the data
  generator's workload), in one process and in one process per core;
- the share of an attempt's time spent on touch (sensor evaluation, field and optical rendering);
- tactile frames per second (one frame = both pads): the field alone, and field + optical images;
- physics steps per second of the same scene with the sensors off (the limit).

Usage: python benchmarks/sim_speed.py [--attempts N] [--workers W] [--out docs/results/sim_speed.md]
"""

from __future__ import annotations

import os

# one BLAS thread per process: the workers run one per core
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import math
import multiprocessing as mp
import platform
import time
from pathlib import Path

import mujoco
import numpy as np

from taclab.envs.peg_in_hole import PegInHoleEnv
from taclab.sim.peg_in_hole import PegInHoleSim
from taclab.utils import atomic_write_text


def env_attempts(n: int, seed: int = 0, shape: str = "square") -> tuple[int, float, float]:
    """Run ``n`` attempts through the env with random actions; return (attempts, seconds, touch seconds)."""
    env = PegInHoleEnv(shape=shape)
    env.reset(seed=seed)  # compile and settle the grasp outside the timing
    touch0 = env.touch_seconds()
    env.action_space.seed(seed)
    done = 0
    ep = 0
    t0 = time.perf_counter()
    while done < n:
        obs, info = env.reset(seed=seed * 1_000_003 + ep)
        ep += 1
        done += 1
        while done < n:
            obs, _, term, trunc, info = env.step(env.action_space.sample())
            done += 1
            if term or trunc:
                break
    return done, time.perf_counter() - t0, env.touch_seconds() - touch0


def _worker(args):
    n, seed = args
    return env_attempts(n, seed)


def attempts_without_touch(sim: PegInHoleSim, errors: np.ndarray) -> float:
    """Seconds for the same attempts with no sensor evaluation and no image."""
    t0 = time.perf_counter()
    for e in errors:
        sim.restore_grasp()
        sim.attempt(*sim.hand_pose_for_error(e[0] / 1e3, e[1] / 1e3, math.radians(e[2])), record=False)
    return time.perf_counter() - t0


def attempts_with_touch(env: PegInHoleEnv, sim: PegInHoleSim, errors: np.ndarray) -> float:
    t0 = time.perf_counter()
    for e in errors:
        sim.restore_grasp()
        r = sim.attempt(*sim.hand_pose_for_error(e[0] / 1e3, e[1] / 1e3, math.radians(e[2])), record=True)
        if r.field is not None:
            env._observe(r.field)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=3000, help="attempts per worker in the env measurement")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("docs/results/sim_speed.md"))
    args = ap.parse_args()

    # warm up (scene compile, grasp settle) outside the timings
    env = PegInHoleEnv()
    env.reset(seed=0)
    sim = env._sim
    cfg = env.config

    n1, t1, touch1 = env_attempts(args.attempts, seed=1)
    single = n1 / t1
    share_env = touch1 / t1
    # a section without an exact primitive: the pads' sensors read the peg mesh's signed-distance octree
    nh, th, touch_h = env_attempts(max(300, args.attempts // 3), seed=2, shape="hexagon")
    with mp.get_context("spawn").Pool(args.workers) as pool:
        pool.map(_worker, [(20, 100 + i) for i in range(args.workers)])  # start-up outside the timing
        t0 = time.perf_counter()
        res = pool.map(_worker, [(args.attempts, 10 + i) for i in range(args.workers)])
        tpar = time.perf_counter() - t0
    npar = sum(r[0] for r in res)
    parallel = npar / tpar

    # touch share: the same failing attempts with and without sensing + rendering
    rng = np.random.default_rng(0)
    errors = []
    while len(errors) < 600:
        e = rng.uniform([-5, -5, -6], [5, 5, 6])
        tip = sim.scene.section.offset(-cfg.scene.peg_chamfer)
        if tip.protrusion(sim.scene.hole, e[0] / 1e3, e[1] / 1e3, math.radians(e[2])) > 3e-4:
            errors.append(e)
    errors = np.array(errors)
    t_plain = attempts_without_touch(sim, errors)
    t_touch = attempts_with_touch(env, sim, errors)
    share = (t_touch - t_plain) / t_touch

    # tactile frames: field alone, field + optical images, in a pressed state
    sim.restore_grasp()
    sim.attempt(*sim.hand_pose_for_error(3e-3, 0.0, 0.0), record=False)
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        f = sim.read_field()
    field_fps = reps / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(reps):
        f = sim.read_field()
        env._renderer.render(f, rng=rng)
    optical_fps = reps / (time.perf_counter() - t0)

    # physics limit: the same scene, sensors off, stepping through a press
    m, d = sim.model, sim.data
    nsteps = 20000
    t0 = time.perf_counter()
    mujoco.mj_step(m, d, nstep=nsteps)
    steps_ps = nsteps / (time.perf_counter() - t0)
    attempts_steps = np.mean(
        [
            sim.attempt(*sim.hand_pose_for_error(e[0] / 1e3, e[1] / 1e3, math.radians(e[2])), record=False).steps
            for e in errors[:100]
        ]
    )

    h, w = cfg.image_size
    lines = [
        "# Simulator speed",
        "",
        "Written by `python benchmarks/sim_speed.py` "
        f"(`--attempts {args.attempts} --workers {args.workers}`), all figures from one run.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"MuJoCo {mujoco.__version__}. Scene: square peg, 2.0 mm clearance, timestep {cfg.scene.timestep * 1e3:g} ms, "
        f"{cfg.scene.taxels[0]}x{cfg.scene.taxels[1]} taxels per pad, {h}x{w} RGB images, "
        f"sensor '{cfg.sensor}' with noise.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| attempts/s, env with tactile rendering, 1 process | {single:.0f} |",
        f"| attempts/s, env with tactile rendering, {args.workers} processes (total) | {parallel:.0f} |",
        f"| time for 24,000 attempts at that rate | {24000 / parallel:.0f} s |",
        f"| share of the env's time spent on touch (sensors, fields, images), random-policy workload | "
        f"{100 * share_env:.0f} % |",
        f"| share of a failing attempt's time spent on touch | {100 * share:.0f} % |",
        f"| hexagonal peg (mesh sensing): attempts/s, 1 process / share of time on touch | "
        f"{nh / th:.0f} / {100 * touch_h / th:.0f} % |",
        f"| tactile frames/s (2 pads), field alone | {field_fps:.0f} |",
        f"| tactile frames/s (2 pads), field + optical images | {optical_fps:.0f} |",
        f"| physics steps/s, same scene, sensors off (the limit) | {steps_ps:.0f} |",
        f"| physics steps per failing attempt (mean) | {attempts_steps:.0f} |",
        "",
        f"Target: at least 135 attempts/s over both cores (24,000 attempts in 3 minutes): "
        f"{'met' if parallel >= 135 else 'NOT met'}; touch under half of an attempt's time: "
        f"{'met' if share_env < 0.5 else 'NOT met'}.",
        "",
        "A failing attempt records 4 frames: each frame evaluates MuJoCo's tactile sensor on both pads, builds "
        "the field and renders two optical images. The attempt/s figures include env resets (each reset makes "
        "the episode's first attempt) and the random policy's successful attempts, which record nothing.",
        "",
    ]
    atomic_write_text(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
