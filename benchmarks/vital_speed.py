"""Speed of the VITAL environments with the wrist camera and the magnetic skins; writes docs/results/vital_speed.md.

Each process runs episodes of the scripted demonstrator (so the steps include approaches, contacts and
insertions, as a residual RL run's do) on taclab/VitalUSB-v0 for ``--steps`` env steps, with

- the default observation: 128 x 128 wrist RGB + its segmentation mask + both skins + proprioception;
- the wrist RGB without the mask;
- no cameras (the physics, the touch sensors and the skins only).

It reports env steps per second on 1 and 2 processes (wall clock), the CPU time per step, the share of time
spent rendering, in touch (MuJoCo's tactile sensors, the contact field and the dipole model) and in the physics
(167 sub-steps of 1 ms per 6 Hz step), and the physics limit: the step rate if nothing but the physics ran. The
target: a residual RL budget of 16,000 env steps (the paper's 45 minutes at 6 Hz) in under 3 minutes of
simulation on 2 cores.

Usage: python benchmarks/vital_speed.py [--steps 600] [--task usb]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

from taclab.envs.vital import ENV_IDS
from taclab.utils import atomic_write_text

MODES = {
    "wrist RGB + mask + skins": {},
    "wrist RGB + skins": {"masks": False},
    "skins only (no cameras)": {"cameras": False, "masks": False},
}
BUDGET = 16_000


def run(job) -> dict:
    """``steps`` env steps of demonstrator episodes; times per part."""
    import taclab  # noqa: F401
    from taclab.envs.base import make
    from taclab.papers.vital.demonstrator import VitalDemonstrator

    task, config, steps, seed = job
    env = make(ENV_IDS[task], **config)
    u = env.unwrapped
    policy = VitalDemonstrator(task=task)
    obs, info = env.reset(seed=seed)  # builds the scene before the clock starts
    policy.reset({}, seed=seed)
    sim = u.sim
    sim.physics_seconds = sim.render_seconds = u.skin_seconds = sim.reader.touch_seconds = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    n, episodes = 0, 0
    while n < steps:
        obs, r, term, trunc, info = env.step(policy.select_action(obs, info))
        n += 1
        if term or trunc:
            episodes += 1
            obs, info = env.reset(seed=seed + episodes)
            policy.reset({}, seed=seed + episodes)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "steps": n,
        "episodes": episodes,
        "wall": wall,
        "cpu": cpu,
        "render": sim.render_seconds,
        "touch": u.touch_seconds(),
        "physics": sim.physics_seconds,
    }
    env.close()
    return out


def measure(task: str, config: dict, steps: int, processes: int) -> dict:
    jobs = [(task, config, steps, 1000 * (i + 1)) for i in range(processes)]
    t0 = time.perf_counter()
    if processes == 1:
        parts = [run(jobs[0])]
    else:
        with mp.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(run, jobs)
    wall = time.perf_counter() - t0
    total = {k: sum(p[k] for p in parts) for k in ("steps", "wall", "cpu", "render", "touch", "physics")}
    return {
        "processes": processes,
        "steps": total["steps"],
        # aggregate rate: each process's steps over its own clock (pool start-up excluded), summed
        "steps_per_s": sum(p["steps"] / p["wall"] for p in parts),
        "wall_with_startup": wall,
        "cpu_ms_per_step": 1000 * total["cpu"] / total["steps"],
        "share_render": total["render"] / total["wall"],
        "share_touch": total["touch"] / total["wall"],
        "share_physics": total["physics"] / total["wall"],
        "physics_limit": total["steps"] / total["physics"],
    }


def write(out: Path, rows: dict, args, elapsed: float) -> None:
    from taclab.sim.vital import VitalSceneConfig

    scene = VitalSceneConfig()
    load = os.getloadavg()
    lines = [
        "# VITAL environment speed",
        "",
        f"Written by `python benchmarks/vital_speed.py --steps {args.steps} --task {args.task}` in {elapsed:.0f} s "
        f"on this project's 2-core machine, which other jobs shared (load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} over 1 / 5 / 15 min at the end): wall-clock rates are lower than on an idle machine; the "
        "CPU time per step is less sensitive to that.",
        "",
        f"One env step is one 6 Hz control period: {scene.substeps} physics sub-steps of {scene.timestep * 1e3:g} ms, "
        "the tactile sensors, the contact field and two skins, and the cameras. Steps come from demonstrator "
        f"episodes on `{ENV_IDS[args.task]}` ({args.steps} steps per process).",
        "",
        "| observation | processes | env steps/s | CPU ms/step | CPU-bound steps/s | rendering | touch | physics | "
        f"physics limit (steps/s) | {BUDGET:,} steps take |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, per in rows.items():
        for r in per:
            lines.append(
                f"| {mode} | {r['processes']} | {r['steps_per_s']:.0f} | {r['cpu_ms_per_step']:.1f} | "
                f"{1000 * r['processes'] / r['cpu_ms_per_step']:.0f} | "
                f"{100 * r['share_render']:.0f} % | {100 * r['share_touch']:.0f} % | "
                f"{100 * r['share_physics']:.0f} % | "
                f"{r['physics_limit']:.0f} | {BUDGET / r['steps_per_s'] / 60:.1f} min |"
            )
    default2 = rows["wrist RGB + mask + skins"][-1]
    rate = default2["steps_per_s"]
    lines += [
        "",
        "Shares are of the wall-clock time of the env steps; the rest is Python: the env's bookkeeping, the "
        "demonstrator and the observation dicts. The physics limit counts the physics alone (same scene, same "
        "sub-steps, with contacts). *CPU-bound steps/s* is the processes' count over the CPU time per step: the "
        "rate on cores of their own, which the wall-clock rates of a shared machine fall short of.",
        "",
        f"Target: {BUDGET:,} steps in under 3 minutes on 2 cores = {BUDGET / 180:.0f} steps/s. With the default "
        f"observation on 2 processes: {rate:.0f} steps/s, {BUDGET / rate / 60:.1f} min: "
        f"**{'met' if BUDGET / rate <= 180 else 'NOT met'}** at this machine load.",
        "",
    ]
    atomic_write_text(out, "\n".join(lines))
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--task", default="usb")
    ap.add_argument("--out", type=Path, default=Path("docs/results/vital_speed.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = {}
    for mode, config in MODES.items():
        rows[mode] = [measure(args.task, config, args.steps, p) for p in (1, 2)]
        for r in rows[mode]:
            print(mode, json.dumps({k: round(v, 3) for k, v in r.items()}), flush=True)
    write(args.out, rows, args, time.perf_counter() - t0)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
