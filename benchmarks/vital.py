"""VITAL's learning pipeline in simulation, with the CPU configs; writes docs/results/vital.md.

Per task (in the order given): the demonstrations (``--demos``, by default configs/vital_demos.yaml, 32 per
task; configs/vital_demos_pushed.yaml: the same with pushed execution, in a --root of its own), BAKU, ViSk and
VITAL-BC trained with configs/vital_{baku,visk,bc}_cpu.yaml, VITAL (residual RL on VITAL-BC) and visual BC +
residual RL (on BAKU) with ``--rl-steps`` env steps, then ``--episodes`` closed-loop episodes of every policy on
the task lists ``paper`` (table 1: green screen, trained position), ``spatial`` (novel target positions) and
``scene`` (cluttered background, random lighting) (table 2) and ``spatial_scene`` (table 3). Every run and
every evaluation is kept under ``--root`` and skipped when finished (a training run left unfinished is resumed),
so the benchmark can be continued across sessions; the tables are rewritten after every step.

RLPD learns from scratch on the frozen encoders of the task's ViSk policy (``taclab.rl.rlpd``). Table 5:
VITAL-BC and VITAL run with the target at new places after the task's keypoint locator (trained once on 240
rendered scenes) or the exact oracle placed the hand above it (``taclab.papers.vital.locate``); with
``--vlm-locator MODEL`` also after a pointing VLM (``VLMLocator``: a Qwen2-VL or Qwen2.5-VL folder or hub id, on
a GPU when there is one), whose row appears once it has been run.

Usage: nice -n 5 python benchmarks/vital.py [--tasks usb,plug,card,key,pick] [--methods BAKU,ViSk,...]
       [--episodes 20] [--rl-steps 16000] [--bc-steps N] [--workers 2] [--root runs/vital] [--jobs 2]
       [--lists paper,spatial,scene,spatial_scene,locate] [--vlm-locator MODEL] [--report-only]
       [--report docs/results/vital.md] [--fresh] [--demos configs/vital_demos.yaml]

``--jobs N`` runs the tasks' two lanes of methods (ViSk, VITAL-BC, VITAL | BAKU, visual BC + RL, RLPD) in N
processes at once; several processes may also share one ``--root`` by hand. Every report is written from the
report's records (``vital.json`` beside it: the cells of earlier work folders, refused when made with another
setting; ``--fresh`` drops them) updated with all the finished runs under ``--root``; every invocation's wall
time is kept in ``ROOT/benchmark_wall.json`` and summed in the report against the 5-hour target. The report
states each of the paper's findings as reproduced or not with the numbers
and the training cost in CPU seconds (``cost.json`` in each run folder) against the targets.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import numpy as np

from taclab.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "vital.md"
BC = {"BAKU": "vital_baku_cpu.yaml", "ViSk": "vital_visk_cpu.yaml", "VITAL-BC": "vital_bc_cpu.yaml"}
RL = {"VITAL": "VITAL-BC", "visual BC + RL": "BAKU"}
RL_CONFIG = ROOT / "configs" / "vital_residual_cpu.yaml"
"""residual RL's CPU setting (batch, UTD, stored views, evaluations, threads), chosen by measurement"""
RLPD_CONFIG = ROOT / "configs" / "vital_rlpd_cpu.yaml"
"""RLPD's CPU setting: the residual's, without replay augmentation (as the paper's RLPD)"""


def _read_yaml(path: Path) -> dict:
    import yaml

    return dict(yaml.safe_load(path.read_text()) or {})


RL_CPU = _read_yaml(RL_CONFIG)
RLPD_CPU = _read_yaml(RLPD_CONFIG)
METHODS = ("BAKU", "ViSk", "RLPD", "VITAL-BC", "VITAL", "visual BC + RL")
METHODS_ORDER = ("BAKU", "ViSk", "VITAL-BC", "VITAL", "visual BC + RL", "RLPD")
"""the order runs are made in, per task"""
TASK_ORDER = ("plug", "usb", "card", "key", "pick")
PAPER_T1 = {  # successes out of 10 (Table 1)
    "BAKU": (4, 4, 1, 5, 10),
    "ViSk": (7, 3, 4, 5, 10),
    "RLPD": (3, 0, 2, 1, 10),
    "VITAL-BC": (7, 4, 5, 5, 10),
    "VITAL": (9, 9, 10, 9, 10),
}
PAPER_T2 = {  # out of 30: spatial (plug, usb, card, key), scene (plug, usb, card, key) (Table 2)
    "BAKU": ((15, 5, 7, 11), (0, 0, 0, 0)),
    "ViSk": ((19, 6, 15, 14), (0, 0, 0, 0)),
    "RLPD": ((5, 0, 3, 2), (0, 0, 0, 0)),
    "VITAL-BC": ((21, 10, 16, 12), (24, 8, 13, 17)),
    "VITAL": ((28, 24, 28, 22), (27, 23, 25, 24)),
}
PAPER_T4 = {"visual BC + RL": (9, 7, 0)}  # plug, usb, card out of 10 (Table 4)


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def demos(root: Path, config: Path) -> Path:
    """The demonstrations of ``root``, generated from ``config`` where missing; a folder generated from another
    config is refused (``generate`` compares each split's config hash), so one work folder holds one dataset."""
    from taclab.data import generate, read_config
    from taclab.data.meta import DatasetError

    out = root / "demos"
    if not (out / "dataset.json").is_file():
        log(f"generating the demonstrations ({config})")
    try:
        generate(read_config(config), out, progress=False)
    except DatasetError as e:
        raise SystemExit(f"error: {e}") from None
    return out


def _step(state: Path) -> int:
    return int(json.loads(state.read_text())["step"]) if state.is_file() else 0


@contextlib.contextmanager
def _cost(out: Path, state: Path, threads: int = 1):
    """Adds this process's CPU seconds, the steps it made (read from the checkpoint's ``state`` file) and the load
    average to ``out/cost.json``, summed over resumed parts: with one torch thread, CPU seconds per step are what
    a step costs on a core, whatever the machine's load. ``threads``: the run's torch threads (the last part's)."""
    c0, w0, s0 = time.process_time(), time.perf_counter(), _step(state)
    try:
        yield
    finally:
        f = out / "cost.json"
        old = json.loads(f.read_text()) if f.is_file() else {"cpu_s": 0.0, "wall_s": 0.0, "parts": 0}
        new = {
            "cpu_s": old["cpu_s"] + time.process_time() - c0,
            "wall_s": old["wall_s"] + time.perf_counter() - w0,
            "steps_metered": old.get("steps_metered", 0) + _step(state) - s0,
            "parts": old["parts"] + 1,
            "load_average_at_end": os.getloadavg()[0],
            "threads": threads,
        }
        if out.is_dir():
            f.write_text(json.dumps(new, indent=2))


def train_bc(
    name: str, task: str, data: Path, root: Path, steps: int | None = None, threads: int = 1
) -> tuple[Path, float]:
    from taclab.train import load_run_config, train

    out = root / "bc" / f"{_slug(name)}_{task}"
    if (out / "summary.json").is_file():
        return out / "policy", json.loads((out / "summary.json").read_text())["train_time_s"]
    resume = (out / "checkpoints" / "last" / "state.json").is_file()
    log(f"training {name} on {task}{' (resuming)' if resume else ''}")
    overrides = {"train.split": task, "train.threads": threads}
    if steps is not None:
        overrides["train.max_steps"] = steps
    run = load_run_config(ROOT / "configs" / BC[name], overrides=overrides)
    with _cost(out, out / "checkpoints" / "last" / "state.json", threads):
        train(run, data, out, resume=resume, progress=False)
    s = json.loads((out / "summary.json").read_text())
    log(f"{name} on {task}: {s['steps']} steps in {s['train_time_s']:.0f} s; val {s['final_val']}")
    return out / "policy", s["train_time_s"]


def train_rl(name: str, task: str, base: Path, data: Path, root: Path, steps: int) -> tuple[Path, float]:
    from taclab.rl.residual import ResidualConfig, train_residual

    out = root / "rl" / f"{_slug(name)}_{task}"
    if (out / "summary.json").is_file():
        return out / "policy", json.loads((out / "summary.json").read_text())["train_time_s"]
    resume = (out / "checkpoint" / "state.json").is_file()
    log(f"residual RL {name} on {task}{' (resuming)' if resume else ''}")
    cfg = ResidualConfig(base=str(base), demos=str(data), task=task, total_steps=steps, **RL_CPU)
    with _cost(out, out / "checkpoint" / "state.json"):
        s = train_residual(cfg, out, resume=resume, progress=False)
    log(f"{name} on {task}: {s['env_steps']} env steps in {s['train_time_s']:.0f} s, eval {s['final_eval_success']}")
    return out / "policy", s["train_time_s"]


def train_rlpd(task: str, encoder: Path, data: Path, root: Path, steps: int) -> tuple[Path, float]:
    from taclab.rl.rlpd import RLPDConfig, train_rlpd

    out = root / "rl" / f"rlpd_{task}"
    if (out / "summary.json").is_file():
        return out / "policy", json.loads((out / "summary.json").read_text())["train_time_s"]
    resume = (out / "checkpoint" / "state.json").is_file()
    log(f"RLPD on {task}{' (resuming)' if resume else ''}")
    cfg = RLPDConfig(encoder=str(encoder), demos=str(data), task=task, total_steps=steps, **RLPD_CPU)
    with _cost(out, out / "checkpoint" / "state.json"):
        s = train_rlpd(cfg, out, resume=resume, progress=False)
    log(f"RLPD on {task}: {s['env_steps']} env steps in {s['train_time_s']:.0f} s, eval {s['final_eval_success']}")
    return out / "policy", s["train_time_s"]


def evaluate_on(policy: Path, task: str, task_list: str, episodes: int, workers: int, cache: Path) -> dict:
    from taclab.envs.vital import ENV_CLASSES, ENV_IDS
    from taclab.eval.rollout import evaluate
    from taclab.policies import load_policy

    run = policy.parent / "summary.json"  # the run that made the policy: a newer run makes the cache stale
    if cache.is_file() and (not run.is_file() or cache.stat().st_mtime >= run.stat().st_mtime):
        return json.loads(cache.read_text())
    p = load_policy(policy)
    frozen = getattr(p, "base", None) or getattr(p, "enc", None)  # residual / RLPD: the frozen visk or baku
    io = (frozen.policy if frozen is not None else p).io
    h, w = io.inputs["observation.wrist_rgb"].shape[:2]
    tasks = list(ENV_CLASSES[task].TASK_LISTS[task_list])
    t0 = time.perf_counter()
    res = evaluate(
        str(policy),
        ENV_IDS[task],
        tasks,
        episodes,
        seed=1,
        workers=workers,
        env_config={"image_size": [h, w]},
        progress=False,
    )
    eps = [r for rs in res.values() for r in rs]
    out = {
        "success": int(sum(r.success for r in eps)),
        "episodes": len(eps),
        "seconds": time.perf_counter() - t0,
        "failures": {
            k: sum(1 for r in eps if r.fields.get("failure") == k) for k in ("skin_limit", "dropped", "timeout")
        },
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, indent=2))
    log(f"{policy.parent.name} {task_list}: {out['success']}/{out['episodes']}")
    return out


def cell(r: dict | None) -> str:
    if r is None:
        return "not run"
    return f"{100 * r['success'] / r['episodes']:.0f} % ({r['success']}/{r['episodes']})"


def locator_for(task: str, root: Path):
    """The task's keypoint locator, trained once on rendered scenes (240 views, 60 x 80) and kept."""
    from taclab.papers.vital.locate import KeypointLocator, render_scenes, train_keypoint_locator

    folder = root / "locator" / task
    if (folder / "locator.json").is_file():
        return KeypointLocator.load(folder)
    log(f"training the keypoint locator of {task}")
    t0 = time.perf_counter()
    loc = train_keypoint_locator(task, render_scenes(task, 240, seed=0), steps=1000)
    test = render_scenes(task, 60, seed=1)
    err = np.linalg.norm(loc.predict(test["rgb"]) - test["uv"], axis=1)
    loc.save(folder)
    info = {"seconds": time.perf_counter() - t0, "test_px_median": float(np.median(err)),
            "test_px_p90": float(np.percentile(err, 90))}  # fmt: skip
    (folder / "test.json").write_text(json.dumps(info, indent=2))
    log(f"locator {task}: median error {info['test_px_median']:.1f} px on 60 new scenes")
    return loc


LOCATORS = ("keypoint", "oracle", "vlm")
"""table 5's locators; ``vlm`` only with ``--vlm-locator``"""


def table5(name: str, policy: Path, task: str, root: Path, episodes: int, vlm: str | None = None) -> None:
    """Localize-then-execute with the keypoint locator, the exact oracle and, given ``vlm`` (a Qwen2-VL or
    Qwen2.5-VL folder or hub id), the pointing VLM, target at new places (Table 5)."""
    from taclab.envs.base import make
    from taclab.envs.vital import ENV_IDS
    from taclab.papers.vital.locate import NoisyOracleLocator, VLMLocator, localize_then_execute
    from taclab.policies import load_policy

    p = load_policy(policy)
    locators = [("keypoint", lambda: locator_for(task, root)), ("oracle", lambda: NoisyOracleLocator(0.0))]
    if vlm:
        locators.append(("vlm", lambda: VLMLocator(vlm, device="auto")))
    frozen = getattr(p, "base", None)
    h, w = (frozen.policy if frozen is not None else p).io.inputs["observation.wrist_rgb"].shape[:2]
    for lname, make_locator in locators:
        cache = root / "eval" / f"{name}_{task}_locate-{lname}_{episodes}.json"
        if cache.is_file():
            continue
        loc = make_locator()
        env = make(ENV_IDS[task], image_size=(h, w), third_person=True, third_person_size=(60, 80))
        rs = [localize_then_execute(env, p, loc, seed=10_000 + i) for i in range(episodes)]
        env.close()
        out = {"success": sum(r["success"] for r in rs), "episodes": len(rs),
               "error_mm_median": float(np.median([r["error_mm"] for r in rs]))}  # fmt: skip
        cache.write_text(json.dumps(out, indent=2))
        log(f"{name} {task} localize-then-execute ({lname}): {out['success']}/{out['episodes']}")


def _slug(name: str) -> str:
    return name.lower().replace("-", "_").replace(" ", "_").replace("+", "plus")


def collect(root: Path, args) -> tuple[dict, dict]:
    """Every finished evaluation and training time under ``root`` (also those of other benchmark processes)."""
    results, times = {}, {}
    for m in METHODS:
        for t in TASK_ORDER:
            for lst in ("paper", "spatial", "scene", "spatial_scene", *(f"locate-{x}" for x in LOCATORS)):
                f = root / "eval" / f"{m}_{t}_{lst}_{args.episodes}.json"
                if f.is_file():
                    results[(m, t, lst)] = json.loads(f.read_text())
            run = root / ("bc" if m in BC else "rl") / (f"{_slug(m)}_{t}" if m != "RLPD" else f"rlpd_{t}")
            if (run / "summary.json").is_file():
                s = json.loads((run / "summary.json").read_text())
                cost = json.loads((run / "cost.json").read_text()) if (run / "cost.json").is_file() else {}
                steps = s.get("steps", s.get("env_steps"))
                metered = cost.get("steps_metered", steps)
                per = cost["cpu_s"] / metered if metered and "cpu_s" in cost else None
                wall_per = cost["wall_s"] / metered if metered and "wall_s" in cost else None
                times[(m, t)] = {"wall_s": s["train_time_s"], "cpu_per_step": per, "steps": steps,
                                 "threads": cost.get("threads", 1), "wall_per_step": wall_per,
                                 "load": cost.get("load_average_at_end")}  # fmt: skip
                if (run / "config.json").is_file() and m not in BC:  # the RL run's own setting
                    c = json.loads((run / "config.json").read_text())
                    times[(m, t)]["setting"] = f"UTD {c['utd']}, batch {c['batch_size']}, {_views(c['aug_views'])}"
    return results, times


def _setting() -> str:
    """The CPU setting every run of a report was made with (BC, residual RL, RLPD), as the report states it."""
    return f"{_config_summary()}; {_rl_summary()}"


def records_path(args) -> Path:
    """The report's records: every cell and cost row it shows, beside the report (``vital.md`` -> ``vital.json``)."""
    return Path(args.report).with_suffix(".json")


def load_records(path: Path, args) -> tuple[dict, dict, dict]:
    """The cells and cost rows of an earlier report (:func:`save_records`), refused when they were made with
    another setting, episode count or RL budget: merged silently they would be compared with runs they do not
    match."""
    doc = json.loads(path.read_text())
    for key, mine, what in (
        ("setting", _setting(), "CPU setting"),
        ("episodes", args.episodes, "--episodes"),
        ("rl_steps", args.rl_steps, "--rl-steps"),
    ):
        if doc.get(key) != mine:
            raise SystemExit(
                f"error: the records {path} were made with another {what} ({doc.get(key)!r}, now {mine!r}); "
                "write the report elsewhere (--report) or start it anew (--fresh)"
            )
    results = {(r["method"], r["task"], r["list"]): {k: v for k, v in r.items() if k not in ("method", "task", "list")}
               for r in doc["results"]}  # fmt: skip
    times = {
        (c["method"], c["task"]): {k: v for k, v in c.items() if k not in ("method", "task")} for c in doc["times"]
    }
    return results, times, dict(doc.get("whole", {}))


def save_records(results: dict, times: dict, whole: dict, args) -> None:
    """Writes the records of the report (atomically: a reader never sees half a file)."""
    doc = {
        "setting": _setting(),
        "episodes": args.episodes,
        "rl_steps": args.rl_steps,
        "results": [{"method": m, "task": t, "list": lst, **r} for (m, t, lst), r in sorted(results.items())],
        "times": [{"method": m, "task": t, **c} for (m, t), c in sorted(times.items())],
        "whole": whole,
    }
    atomic_write_text(records_path(args), json.dumps(doc, indent=1) + "\n")


WALL = "benchmark_wall.json"
"""in a work folder: the wall time of every invocation of the benchmark that ran there"""


def record_wall(root: Path, wall_s: float, args, methods: list[str], lists: list[str], completed: bool) -> None:
    """Appends one invocation's wall time (and what it ran, with how many --jobs) to ``root``'s wall record."""
    f = root / WALL
    parts = json.loads(f.read_text()) if f.is_file() else []
    parts.append({"wall_s": round(wall_s, 1), "jobs": args.jobs, "tasks": args.tasks, "methods": methods,
                  "lists": lists, "completed": completed, "ended": time.strftime("%Y-%m-%dT%H:%M:%S")})  # fmt: skip
    atomic_write_text(f, json.dumps(parts, indent=1) + "\n")


def gather(root: Path, args) -> tuple[dict, dict, dict]:
    """The report's cells and cost rows: the records of the report so far (unless ``--fresh``), updated with every
    finished run under ``root`` (each marked with the folder it was made in). The runs of earlier work folders,
    which need not exist any more, so stay in the report."""
    results, times, whole = {}, {}, {}
    if not args.fresh and records_path(args).is_file():
        results, times, whole = load_records(records_path(args), args)
    new_results, new_times = collect(root, args) if root.is_dir() else ({}, {})
    for d in (*new_results.values(), *new_times.values()):
        d["root"] = str(args.root)
    if (root / WALL).is_file():
        whole = {**whole, str(args.root): json.loads((root / WALL).read_text())}
    return {**results, **new_results}, {**times, **new_times}, whole


def _fisher_greater(a: int, n: int, b: int, m: int) -> float:
    """One-sided p-value of Fisher's exact test that a/n successes beat b/m."""
    k, total = a + b, n + m
    denom = math.comb(total, k)
    return sum(math.comb(n, i) * math.comb(m, k - i) for i in range(a, min(n, k) + 1)) / denom


def _pooled(results: dict, left: tuple[str, str], right: tuple[str, str], tasks: list[str]):
    """Successes and episodes of ``left`` and ``right`` (method, task list) summed over the tasks where both were
    evaluated: ``(a, n, b, m, per-task text)``, or None when no task has both."""
    pairs = [(t, results.get((left[0], t, left[1])), results.get((right[0], t, right[1]))) for t in tasks]
    pairs = [(t, x, y) for t, x, y in pairs if x is not None and y is not None]
    if not pairs:
        return None
    a = sum(x["success"] for _, x, _ in pairs)
    n = sum(x["episodes"] for _, x, _ in pairs)
    b = sum(y["success"] for _, _, y in pairs)
    m = sum(y["episodes"] for _, _, y in pairs)
    per = "; ".join(f"{t}: {x['success']}/{x['episodes']} vs {y['success']}/{y['episodes']}" for t, x, y in pairs)
    return a, n, b, m, per


def compare(results: dict, better: str, worse: str, lst_better: str, lst_worse: str, tasks: list[str]) -> str:
    """The verdict on 'better beats worse' over the tasks where both were evaluated, with the numbers."""
    pooled = _pooled(results, (better, lst_better), (worse, lst_worse), tasks)
    if pooled is None:
        return "**not run**"
    a, n, b, m, per = pooled
    p = _fisher_greater(a, n, b, m)
    verdict = "**reproduced**" if a / n > b / m and p < 0.05 else "**not reproduced**"
    return f"{verdict}: {a}/{n} vs {b}/{m} (one-sided Fisher p = {p:.2g}; {per})"


def keeps(results: dict, name: str, lst: str, reference: str, tasks: list[str]) -> str:
    """The verdict on 'name on ``lst`` keeps the success of name on ``reference``': reproduced when the success is
    not significantly lower (one-sided Fisher p of a loss at or above 0.05); with 20 episodes a side this rules
    out only a large loss, which the line says."""
    pooled = _pooled(results, (name, lst), (name, reference), tasks)
    if pooled is None:
        return "**not run**"
    a, n, b, m, per = pooled
    p = _fisher_greater(b, m, a, n)
    verdict = "**reproduced**" if p >= 0.05 else "**not reproduced**"
    note = "a test that detects large losses only"
    return f"{verdict}: {a}/{n} vs {b}/{m} (one-sided Fisher p of a loss = {p:.2g}, {note}; {per})"


def _config_steps() -> int:
    import yaml

    return int(yaml.safe_load((ROOT / "configs" / BC["ViSk"]).read_text())["train"]["max_steps"])


def _config_summary() -> str:
    import yaml

    c = yaml.safe_load((ROOT / "configs" / BC["ViSk"]).read_text())
    m, t = c["model"], c["train"]
    return (f"{m['image_size']} x {m['image_size']} images, {m['resnet_stages']} ResNet-18 stages, batch "
            f"{t['batch_size']}, Adam {t['lr']:g}, {t['max_steps']} steps")  # fmt: skip


def _views(n: int) -> str:
    return "no replay augmentation" if not n else f"{n} stored augmented view{'s' if n > 1 else ''} per image"


def _rl_summary() -> str:
    """The CPU settings of residual RL and RLPD as the benchmark runs them (configs/vital_{residual,rlpd}_cpu.yaml)."""
    r, p = _residual_cfg(RL_CPU), _rlpd_cfg(RLPD_CPU)
    every = lambda c: f"evaluated every {c.eval_every} env steps on {c.eval_episodes} episodes"  # noqa: E731
    return (
        f"residual RL with UTD {r.utd}, batch {r.batch_size}, {_views(r.aug_views)}, {every(r)} "
        f"(`configs/vital_residual_cpu.yaml`; the paper's UTD 16, batch 256 in `configs/vital_residual.yaml`); RLPD "
        f"with UTD {p.utd}, batch {p.batch_size} (half demonstrations), {_views(p.aug_views)} "
        f"(`configs/vital_rlpd_cpu.yaml`)"
    )


def _residual_cfg(d: dict):
    from taclab.rl.residual import ResidualConfig

    return ResidualConfig.from_dict(d)


def _rlpd_cfg(d: dict):
    from taclab.rl.rlpd import RLPDConfig

    return RLPDConfig.from_dict(d)


def write_report(results: dict, times: dict, whole: dict, args) -> None:
    done = {k[1] for k in results} | {k[1] for k in times}
    tasks = [t for t in TASK_ORDER if t in args.tasks or t in done]
    lines = [
        "# VITAL's learning pipeline in simulation",
        "",
        f"`nice -n 5 python benchmarks/vital.py --episodes {args.episodes} --rl-steps {args.rl_steps}` (with "
        "`--tasks`, `--methods` and `--lists` choosing what to run, and `--bc-steps` and `--rl-steps` the steps, "
        "each run's in the cost table) on the shared 2-core CPU machine with the CPU "
        f"configs (`configs/vital_*_cpu.yaml`: {_config_summary()}; {_rl_summary()}). "
        "Each cell: successes over closed-loop episodes with the evaluation runner's seeds. The paper's numbers are "
        "real-robot trials (10 per cell in table 1, 30 in table 2). 'not run' marks runs the benchmark has not "
        "reached yet (it continues where it stopped); RLPD reads the frozen encoders of ViSk.",
        "",
        "## Table 1: in domain (green screen, trained position)",
        "",
        "| method | " + " | ".join(f"{t} (taclab)" + (" | paper" if True else "") for t in tasks) + " |",
        "|---|" + "---|---|" * len(tasks),
    ]
    for m in METHODS:
        row = [m]
        for t in tasks:
            row.append(cell(results.get((m, t, "paper"))))
            pv = PAPER_T1.get(m)
            row.append(f"{pv[TASK_ORDER.index(t)]}/10" if pv else "-")
        lines.append("| " + " | ".join(row) + " |")
    for title, lst, paper in (
        ("Table 2: spatial generalization (novel target positions, green screen)", "spatial", 0),
        ("Table 2: scene generalization (cluttered background, random lighting, trained position)", "scene", 1),
        ("Table 3: novel positions and scenes together", "spatial_scene", None),
    ):
        lines += ["", f"## {title}", "", "| method | " + " | ".join(f"{t} (taclab) | paper" for t in tasks) + " |"]
        lines.append("|---|" + "---|---|" * len(tasks))
        for m in METHODS:
            row = [m]
            for t in tasks:
                row.append(cell(results.get((m, t, lst))))
                pv = PAPER_T2.get(m) if paper is not None else None
                i = TASK_ORDER.index(t)
                row.append(f"{pv[paper][i]}/30" if pv and i < 4 else "-")
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "## Table 4: touch and residual RL (in domain)",
        "",
        "| method | " + " | ".join(f"{t} (taclab) | paper" for t in tasks) + " |",
        "|---|" + "---|---|" * len(tasks),
    ]
    for m, paper_name in (
        ("BAKU", "visual BC"),
        ("ViSk", "visuotactile BC"),
        ("visual BC + RL", None),
        ("VITAL", None),
    ):
        row = [paper_name or m]
        for t in tasks:
            i = TASK_ORDER.index(t)
            row.append(cell(results.get((m, t, "paper"))))
            pv = {"BAKU": PAPER_T1["BAKU"], "ViSk": PAPER_T1["ViSk"], "VITAL": PAPER_T1["VITAL"], **PAPER_T4}.get(m)
            row.append(f"{pv[i]}/10" if pv and i < len(pv) else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## How the episodes ended", ""]
    lines += ["| method | task | list | success | skin limit | dropped | timeout |", "|---|---|---|---|---|---|---|"]
    for (m, t, lst), r in sorted(results.items()):
        if "failures" in r:
            f = r["failures"]
            lines.append(
                f"| {m} | {t} | {lst} | {r['success']} | {f['skin_limit']} | {f['dropped']} | {f['timeout']} |"
            )
    lines += ["", "## Table 5: localize-then-execute (target at new places; the hand starts above the located point)",
              "", "| method | locator | " + " | ".join(f"{t} (taclab)" for t in tasks) + " |",
              "|---|---|" + "---|" * len(tasks)]  # fmt: skip
    for m in ("VITAL-BC", "VITAL"):
        for lname in LOCATORS:
            if lname == "vlm" and not any(k[2] == "locate-vlm" for k in results):
                continue  # the pointing-VLM row only once it has been run (--vlm-locator)
            cells = [cell(results.get((m, t, f"locate-{lname}"))) for t in tasks]
            lines.append(f"| {m} | {lname} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The paper's findings",
        "",
        "Successes summed over the tasks where both sides were evaluated; 'reproduced' needs the paper's side ahead "
        "with a one-sided Fisher p below 0.05.",
        "",
        "- Touch adds success (ViSk > BAKU, in domain): " + compare(results, "ViSk", "BAKU", "paper", "paper", tasks),
        "- Touch adds success under residual RL (VITAL > visual BC + RL): "
        + compare(results, "VITAL", "visual BC + RL", "paper", "paper", tasks),
        "- Residual RL lifts BC within the step budget (VITAL > VITAL-BC, in domain): "
        + compare(results, "VITAL", "VITAL-BC", "paper", "paper", tasks),
        "- Residual RL lifts visual BC too (visual BC + RL > BAKU, in domain): "
        + compare(results, "visual BC + RL", "BAKU", "paper", "paper", tasks),
        "- Semantic augmentation makes scene generalization work (VITAL-BC > ViSk, new scenes): "
        + compare(results, "VITAL-BC", "ViSk", "scene", "scene", tasks),
        "- Localize-then-execute keeps success at new positions (VITAL after the keypoint locator not below VITAL "
        "started near the target at new positions, the paper's table 2 protocol): "
        + keeps(results, "VITAL", "locate-keypoint", "spatial", tasks),
        "",
        "## Cost",
        "",
        "Wall seconds on the shared machine (its other jobs included) and seconds per step of the training "
        "process (the steps a resumed run made before it was metered are not counted), times the steps of the run "
        "and times the full budget (the BC config's steps, `--rl-steps` env steps for RL). A run with one torch "
        "thread is costed in CPU seconds per step (what a step costs on one core, whatever else the machine runs; a "
        "core shared with other jobs is still slower per step than an idle one); a BC run with more threads "
        "(`--threads`) in wall seconds per step (meaningful only on an otherwise idle machine; its load average at "
        "the end is given). Targets: BC under 600 s per policy and task, residual RL under 1200 s per task.",
        "",
        "| run | task | steps | threads | wall s | s per step | s for the run | s for the full budget | target s "
        "| target met (full budget) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    budget_bc = _config_steps()
    for (m, t), c in sorted(times.items()):
        target, budget = (600, budget_bc) if m in BC else (1200, args.rl_steps)
        threads = c.get("threads", 1)
        if threads > 1 and c.get("load") is not None:
            threads = f"{threads} (load {c['load']:.1f})"
        per, kind = (c["cpu_per_step"], "CPU") if c.get("threads", 1) == 1 else (c.get("wall_per_step"), "wall")
        if per is None:
            lines.append(f"| {m} | {t} | {c['steps']} | {threads} | {c['wall_s']:.0f} | - | - | - | {target} | - |")
            continue
        full = per * budget
        met = "yes" if full < target else "no"
        lines.append(
            f"| {m} | {t} | {c['steps']} | {threads} | {c['wall_s']:.0f} | {per:.2f} ({kind}) | "
            f"{per * c['steps']:.0f} | {full:.0f} ({budget} steps) | {target} | {met} |"
        )
    settings = [f"{m} on {t}: {c['setting']}" for (m, t), c in sorted(times.items()) if "setting" in c]
    if settings:
        lines += ["", "RL runs' settings: " + "; ".join(settings) + "."]
    lines += _whole_section(whole)
    roots = sorted({d.get("root", "?") for d in (*results.values(), *times.values())})
    lines += [
        "",
        f"Work folders of these runs: {', '.join(f'`{r}`' for r in roots) or '-'} (each cell's in "
        f"`{records_path(args).name}`, the records beside this report, which keep the cells of folders that no "
        "longer exist). Curves: `FOLDER/bc/*/learning_curve.png` (BC) and `FOLDER/rl/*/curves.png` (residual RL, "
        "with `episodes.csv` and `eval.csv`).",
        "",
    ]
    save_records(results, times, whole, args)
    atomic_write_text(args.report, "\n".join(lines))


def _whole_section(whole: dict) -> list[str]:
    """The whole benchmark's wall time per work folder: every invocation there, summed, against the 5-hour target."""
    if not whole:
        return []
    lines = [
        "",
        "### The whole benchmark",
        "",
        "Wall seconds of every invocation of the benchmark in a work folder (demonstrations, training, evaluation "
        "and reports; `--jobs` processes at once), summed. Target: the whole benchmark (every task, method and "
        "list) under 5 hours (18000 s).",
        "",
        "| work folder | invocations | jobs | tasks | wall s | complete (every task, method and list) | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for root, parts in sorted(whole.items()):
        wall = sum(p["wall_s"] for p in parts)
        tasks = sorted({t for p in parts for t in p["tasks"]}, key=TASK_ORDER.index)
        full = any(
            p["completed"] and set(p["tasks"]) == set(TASK_ORDER) and set(p["methods"]) == set(METHODS)
            and set(p["lists"]) >= {"paper", "spatial", "scene", "spatial_scene", "locate"}
            for p in parts
        )  # fmt: skip
        jobs = ", ".join(str(j) for j in sorted({p["jobs"] for p in parts}))
        met = ("yes" if wall < 18000 else "no") if full else ("no" if wall >= 18000 else "-")
        lines.append(f"| `{root}` | {len(parts)} | {jobs} | {', '.join(tasks)} | {wall:.0f} | "
                     f"{'yes' if full else 'no'} | {met} |")  # fmt: skip
    return lines


LANES = (("ViSk", "VITAL-BC", "VITAL"), ("BAKU", "visual BC + RL", "RLPD"))
"""--jobs: the methods of a lane depend on each other and run in order in one process; RLPD reads the task's
ViSk from the other lane and waits for it when another process is training it."""


def run_jobs(args, root: Path, methods: list[str], lists: list[str]) -> bool:
    """``--jobs N``: the (task, lane) units of the run shared among N child processes of this script, each running
    its units one after the other (``--jobs 1``, the same options); their logs in ``root/logs/job{i}.log``.
    Returns whether every unit finished. An interrupt (Ctrl-C, SIGTERM) is passed on to the children, which
    checkpoint and stop."""
    import subprocess
    import sys
    import threading

    units = [(t, [m for m in lane if m in methods]) for t in args.tasks for lane in LANES]
    units = [(t, ms) for t, ms in units if ms]
    shares = [units[i :: args.jobs] for i in range(args.jobs)]
    # every option as given, so a new option reaches the children without being listed here; the unit's own
    # --tasks and --methods, one job each, and no wall record of their own (the parent books the whole)
    keep = [*_without(sys.argv[1:], ("--jobs", "--tasks", "--methods")), "--jobs", "1", "--no-wall-record"]
    (root / "logs").mkdir(parents=True, exist_ok=True)
    procs: list = []
    ok = [True] * args.jobs

    def lane(i: int) -> None:
        with open(root / "logs" / f"job{i}.log", "a") as fh:
            for task, ms in shares[i]:
                if not ok[i]:
                    return
                log(f"job {i}: {task}: {', '.join(ms)}")
                cmd = [sys.executable, __file__, *keep, "--tasks", task, "--methods", ",".join(ms)]
                p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
                procs.append(p)
                ok[i] = p.wait() == 0
                if not ok[i]:
                    log(f"job {i}: {task} ended with exit code {p.returncode}; see {root / 'logs' / f'job{i}.log'}")

    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(args.jobs)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=1.0)
    except KeyboardInterrupt:
        ok[:] = [False] * args.jobs
        for p in procs:
            if p.poll() is None:
                p.terminate()  # the child checkpoints its run and books its cost (SIGTERM)
        for p in procs:
            p.wait()
        raise
    return all(ok)


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` without ``options`` and their values (``--opt value`` or ``--opt=value``; the parser takes no
    abbreviations, so these are the only spellings)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif a.split("=", 1)[0] not in options:
            out.append(a)
    return out


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _interrupt)  # a terminated run checkpoints and books its cost as Ctrl-C does
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    ap.add_argument("--tasks", default="usb,plug,key,card,pick")
    ap.add_argument("--episodes", type=int, default=20, help="episodes per task of a task list")
    ap.add_argument("--rl-steps", type=int, default=16_000)
    ap.add_argument("--bc-steps", type=int, help="BC optimizer steps instead of the configs' max_steps")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each BC training run (1: the cost is CPU time per step; more: wall time per step)",
    )
    ap.add_argument("--root", default="runs/vital")
    ap.add_argument(
        "--lists",
        default="paper,spatial,scene,spatial_scene,locate",
        help="task lists to evaluate on; 'locate': table 5 (localize-then-execute, VITAL-BC and VITAL)",
    )
    ap.add_argument(
        "--vlm-locator",
        default=None,
        metavar="MODEL",
        help="table 5 also with the pointing VLM (a Qwen2-VL / Qwen2.5-VL folder or hub id; VLMLocator)",
    )
    ap.add_argument("--methods", default=",".join(METHODS), help="methods to run (their BC bases are trained too)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from finished runs; run nothing")
    ap.add_argument(
        "--report",
        default=str(RESULTS),
        help="where the report is written; its records (the .json beside it) keep the cells of earlier work folders",
    )
    ap.add_argument("--fresh", action="store_true", help="start the report anew: drop the records of earlier runs")
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="processes at once, sharing the tasks' lanes (ViSk, VITAL-BC, VITAL | BAKU, visual BC + RL, RLPD)",
    )
    ap.add_argument("--no-wall-record", action="store_true", help=argparse.SUPPRESS)  # the children of --jobs
    ap.add_argument(
        "--demos",
        default=str(ROOT / "configs" / "vital_demos.yaml"),
        metavar="CONFIG",
        help="the demonstrations' dataset config (e.g. configs/vital_demos_pushed.yaml); one per --root",
    )
    args = ap.parse_args()
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in args.tasks if t not in TASK_ORDER]
    if bad:
        raise SystemExit(f"error: unknown task {bad[0]!r}; allowed: {', '.join(TASK_ORDER)}")
    if args.threads < 1:
        raise SystemExit(f"error: --threads must be at least 1, got {args.threads}")
    if args.jobs < 1:
        raise SystemExit(f"error: --jobs must be at least 1, got {args.jobs}")
    if args.bc_steps is not None and args.bc_steps < 1:
        raise SystemExit(f"error: --bc-steps must be at least 1, got {args.bc_steps}")
    lists = [x.strip() for x in args.lists.split(",") if x.strip()]
    bad = [x for x in lists if x not in ("paper", "spatial", "scene", "spatial_scene", "locate")]
    if bad:
        raise SystemExit(f"error: unknown task list {bad[0]!r}; allowed: paper, spatial, scene, spatial_scene, locate")
    if args.vlm_locator is not None and not Path(args.vlm_locator).exists() and "/" not in args.vlm_locator:
        raise SystemExit(f"error: --vlm-locator {args.vlm_locator!r} is neither a folder nor a hub id (owner/name)")
    root = Path(args.root)
    if args.report_only:
        if not root.is_dir() and (args.fresh or not records_path(args).is_file()):
            raise SystemExit(f"error: no benchmark runs under {root} and no records {records_path(args)}")
        write_report(*gather(root, args), args)
        log(f"wrote {args.report}")
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise SystemExit(f"error: unknown method {bad[0]!r}; allowed: {', '.join(METHODS)}")
    if not Path(args.demos).is_file():
        raise SystemExit(f"error: --demos {args.demos!r}: no such dataset config file")
    if not args.fresh and records_path(args).is_file():
        load_records(records_path(args), args)  # records of another setting are refused before any work
    import taclab.papers  # noqa: F401 - generators, learning specs, policies

    t0 = time.perf_counter()
    data = demos(root, Path(args.demos))  # a refused dataset ends here: nothing recorded, no report written
    completed = False
    try:
        if args.jobs > 1:
            completed = run_jobs(args, root, methods, lists)
        else:
            run_all(args, root, data, methods, lists)
            completed = True
    finally:
        if not args.no_wall_record:
            record_wall(root, time.perf_counter() - t0, args, methods, lists, completed)
        write_report(*gather(root, args), args)
    log(f"done: {args.report}" if completed else f"stopped; the report so far: {args.report}")
    if not completed:
        raise SystemExit(1)


def _when_free(train, *a):
    """``train(*a)``, waiting while another process of the benchmark holds the run's folder (``--jobs``)."""
    from taclab.utils import FolderLockedError

    said = False
    while True:
        try:
            return train(*a)
        except FolderLockedError as e:
            if not said:
                log(f"waiting: {e}")
                said = True
            time.sleep(15)


def run_all(args, root: Path, data: Path, methods: list[str], lists: list[str]) -> None:
    """The benchmark in this process: per task, every method's run (its base first) and evaluations."""

    def policy_of(name: str, task: str) -> Path:
        """The trained policy of a method (trained first when missing, its base included)."""
        if name in BC:
            return _when_free(train_bc, name, task, data, root, args.bc_steps, args.threads)[0]
        if name in RL:
            return _when_free(train_rl, name, task, policy_of(RL[name], task), data, root, args.rl_steps)[0]
        return _when_free(train_rlpd, task, policy_of("ViSk", task), data, root, args.rl_steps)[0]

    for task in args.tasks:
        for name in [m for m in METHODS_ORDER if m in methods]:
            policy = policy_of(name, task)
            for lst in [x for x in lists if x != "locate"]:
                cache = root / "eval" / f"{name}_{task}_{lst}_{args.episodes}.json"
                evaluate_on(policy, task, lst, args.episodes, args.workers, cache)
                write_report(*gather(root, args), args)
            if name in ("VITAL-BC", "VITAL") and "locate" in lists:
                table5(name, policy, task, root, args.episodes, args.vlm_locator)
                write_report(*gather(root, args), args)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
