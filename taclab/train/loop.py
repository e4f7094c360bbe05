"""The shared training loop of every learned taclab policy.

AdamW with linear warm-up and cosine decay, EMA weights, gradient clipping, periodic validation with the
offline metrics, resumable atomic checkpoints, CSV/JSONL (and TensorBoard) logs, a progress bar and a
learning-curve PNG. It runs through ``accelerate``: ``accelerate launch -m taclab.cli train ...`` trains on
several GPUs or nodes without code changes.

Randomness is derived from ``(seed, epoch)`` for the data order and ``(seed, step)`` for everything drawn
inside a step (dropout, diffusion noise), so a run resumed from a checkpoint ends with the same weights as an
uninterrupted run.

Output folder::

    run.json            the resolved configuration (policy, model, train) and the dataset
    checkpoints/last/   resumable state: weights, EMA weights, optimizer, scheduler, counters
    policy/             the final policy (EMA weights), loadable with taclab.policies.load_policy
    train.csv val.csv   the logs (also log.jsonl, train.log, and tensorboard/ when TensorBoard is installed)
    learning_curve.png
    summary.json        time, samples/s and the final validation metrics
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taclab.train.config import RunConfig, TrainConfig
from taclab.utils import atomic_write_text

TRAIN_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "elapsed_s")
VAL_COLUMNS = (
    "step",
    "epoch",
    "val_loss",
    "gcr",
    "l1_x",
    "l1_y",
    "l1_rz",
    "l1_all_x",
    "l1_all_y",
    "l1_all_rz",
    "direction_x",
    "direction_y",
    "direction_rz",
    "malformed",
)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an output folder that holds another run, ...)."""


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) % (2**32) for p in parts]).generate_state(1)[0])


def lr_lambda(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate: linear warm-up over ``warmup`` steps, then cosine decay to
    ``min_ratio`` at ``total`` steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class EMA:
    """Exponential moving average of a model's trainable parameters and floating-point buffers (e.g. BatchNorm
    statistics; integer buffers are copied), with the usual warm-up of the decay: ``min(decay, (1 + n) / (10 + n))``
    after ``n`` updates. Only the trained weights are shadowed, so a LoRA-tuned model costs little more memory.
    :meth:`applied` puts the averaged weights into the model for a ``with`` block and restores them after."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        self.shadow.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
        self.updates = 0

    def _pairs(self, model: torch.nn.Module):
        for n, p in model.named_parameters():
            if n in self.shadow:
                yield self.shadow[n], p
        for n, b in model.named_buffers():
            if f"buffer:{n}" in self.shadow:
                yield self.shadow[f"buffer:{n}"], b

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for e, p in self._pairs(model):
            if e.is_floating_point():
                e.mul_(d).add_(p.detach(), alpha=1 - d)
            else:
                e.copy_(p)
        self.updates += 1

    @contextmanager
    def applied(self, model: torch.nn.Module):
        with torch.no_grad():
            backup = [(p, p.detach().clone()) for _, p in self._pairs(model)]
            for e, p in self._pairs(model):
                p.copy_(e)
        try:
            yield model
        finally:
            with torch.no_grad():
                for p, b in backup:
                    p.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise TrainingError(f"the EMA state lacks {missing[:5]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters and all buffers of a model: what a checkpoint must hold to resume."""
    out = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    out.update({f"buffer:{n}": b.detach().cpu().contiguous() for n, b in model.named_buffers()})
    return out


def load_trained_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = trained_state(model).keys()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise TrainingError(f"the checkpoint lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for k, v in state.items():
            target = buffers[k[len("buffer:") :]] if k.startswith("buffer:") else params[k]
            target.copy_(v)


class _Logs:
    """Append-only CSV/JSONL/text logs; on resume, rows after the resumed step are dropped."""

    def __init__(self, out: Path, resume_step: int | None, tensorboard: bool):
        self.out = out
        self.files = {"train": out / "train.csv", "val": out / "val.csv"}
        self.columns = {"train": TRAIN_COLUMNS, "val": VAL_COLUMNS}
        for kind, f in self.files.items():
            rows = _read_csv(f) if resume_step is not None else []
            rows = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
            with open(f, "w", newline="") as fh:
                w = csv.DictWriter(fh, self.columns[kind])
                w.writeheader()
                w.writerows(rows)
        jl = out / "log.jsonl"
        kept = []
        if resume_step is not None and jl.is_file():
            kept = [ln for ln in jl.read_text().splitlines() if ln and json.loads(ln)["step"] <= resume_step]
        jl.write_text("".join(ln + "\n" for ln in kept))
        self.text = open(out / "train.log", "a")
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                self.tb = None

    def write(self, kind: str, row: dict[str, Any]) -> None:
        row = {k: row.get(k) for k in self.columns[kind]}
        with open(self.files[kind], "a", newline="") as fh:
            csv.DictWriter(fh, self.columns[kind]).writerow(row)
        with open(self.out / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"kind": kind, **row}) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, int | float):
                    self.tb.add_scalar(f"{kind}/{k}", v, row["step"])

    def say(self, msg: str) -> None:
        self.text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        self.text.flush()

    def close(self) -> None:
        self.text.close()
        if self.tb is not None:
            self.tb.close()


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _comparable(run: dict) -> dict:
    """The parts of a run config that must not change on resume (max_steps may)."""
    r = json.loads(json.dumps(run))
    r["train"].pop("max_steps", None)
    return r


def validate(policy, val, seed: int, max_samples: int) -> dict[str, Any]:
    """Validation loss and offline metrics of ``policy`` on (up to ``max_samples`` of) the arrays ``val``."""
    from taclab.eval.metrics import action_metrics

    n = min(len(val), max_samples)
    v = val.subset(np.arange(n))
    policy.model.eval()
    losses, actions, malformed = [], [], []
    g = torch.Generator().manual_seed(_seed_of(seed, 999_983))
    with torch.no_grad():
        for i in range(0, n, 256):
            sl = slice(i, min(n, i + 256))
            inputs = policy.prepare(v.tactile[sl], list(v.shape[sl]))
            y = torch.as_tensor(v.label[sl], dtype=torch.float32, device=policy.device)
            losses.append(float(policy.loss(inputs, y, g)) * (sl.stop - sl.start))
            pred = policy.predict(v.tactile[sl], list(v.shape[sl]), seed=seed)
            actions.append(pred.actions)
            malformed.append(pred.malformed)
    m = action_metrics(v.error, v.label, np.concatenate(actions), v.clearance_mm)
    m["val_loss"] = sum(losses) / n
    m["malformed"] = 100.0 * float(np.concatenate(malformed).mean())
    return m


def _temp_dir(target: Path) -> Path:
    """An empty folder beside ``target`` to write into before :func:`_swap_in`."""
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace ``target`` by the complete folder ``tmp``; until the swap ends, ``target`` or ``target.old`` holds
    the previous complete version."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    if old.exists():
        shutil.rmtree(old)


def _save_checkpoint(ckpt: Path, model, stats, ema: EMA | None, optimizer, scheduler, state: dict) -> None:
    """Write the resumable state to a temp folder, then swap it in: ``last`` is always complete."""
    from safetensors.torch import save_file

    tmp = _temp_dir(ckpt)
    save_file(trained_state(model), str(tmp / "trained.safetensors"))
    if stats:
        save_file({k: v.detach().cpu().contiguous() for k, v in stats.items()}, str(tmp / "normalization.safetensors"))
    if ema is not None:
        save_file(ema.state_dict(), str(tmp / "ema.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    _swap_in(tmp, ckpt)


def _find_checkpoint(ckpt: Path) -> Path | None:
    for c in (ckpt, ckpt.with_name(ckpt.name + ".old")):
        if (c / "state.json").is_file():
            return c
    return None


def train(run: RunConfig, data: str | Path, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train ``run.policy`` on the dataset folder ``data``; returns the folder of the final policy."""
    from accelerate import Accelerator
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from safetensors.torch import load_file

    from taclab.data.storage import load_arrays, read_meta
    from taclab.policies import make_policy

    tc: TrainConfig = run.train
    out = Path(out)
    data = Path(data)
    meta = read_meta(data)  # fails clearly when data is not a dataset
    ckpt_dir = out / "checkpoints" / "last"
    run_dict = {"policy": run.policy, "model": run.model, "train": tc.model_dump(mode="json")}
    found = _find_checkpoint(ckpt_dir)
    if (out / "run.json").is_file() and not resume and (found or (out / "policy").exists()):
        raise TrainingError(f"{out} already holds a training run: pass --resume to continue it or pick a new --out")
    if resume:
        if found is None:
            raise TrainingError(f"--resume: no checkpoint in {out / 'checkpoints'} to resume from")
        prev = json.loads((out / "run.json").read_text())
        if _comparable(prev["run"]) != _comparable(run_dict):
            diff = _diff(_comparable(prev["run"]), _comparable(run_dict))
            raise TrainingError(f"--resume with a different config than the run in {out}: {diff}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "run.json",
        json.dumps({"run": run_dict, "data": str(data), "dataset_splits": meta["splits"].get(tc.split)}, indent=2),
    )

    if tc.threads:
        torch.set_num_threads(tc.threads)
    accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process

    arrays = load_arrays(data, tc.split, limit=tc.limit, progress=progress and main)
    perm = np.random.default_rng(_seed_of(tc.seed, 1)).permutation(len(arrays))
    n_val = int(round(len(arrays) * tc.val_fraction))
    val = arrays.subset(np.sort(perm[:n_val])) if n_val else None
    tr = arrays.subset(np.sort(perm[n_val:]))
    if len(tr) == 0:
        raise TrainingError(f"no training samples left after holding out {n_val} for validation")

    policy = make_policy(run.policy, config=run.model)
    policy.fit_stats(tr.tactile, tr.label)
    policy.to(accelerator.device)
    steps_per_epoch = max(1, len(tr) // tc.batch_size)
    total = steps_per_epoch * tc.epochs
    warmup = int(round(tc.warmup_fraction * total))
    optimizer = torch.optim.AdamW(
        policy.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=tuple(tc.betas)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_lambda(s, total, warmup, tc.min_lr_ratio))
    state = {"step": 0, "epoch": 0, "batch": 0, "elapsed_s": 0.0}
    ema = EMA(policy.model, tc.ema_decay) if tc.ema_decay > 0 else None
    if resume:
        load_trained_state(policy.model, load_file(str(found / "trained.safetensors")))
        if (found / "normalization.safetensors").is_file():
            stats = load_file(str(found / "normalization.safetensors"))
            policy.stats = {k: v.to(accelerator.device) for k, v in stats.items()}
        opt = torch.load(found / "optimizer.pt", weights_only=False)
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        state = json.loads((found / "state.json").read_text())
        if ema is not None:
            ema.load_state_dict(load_file(str(found / "ema.safetensors")))
            ema.updates = state["step"]
    model, optimizer = accelerator.prepare(policy.model, optimizer)
    raw_model = policy.model
    policy.model = model

    def averaged():
        """The EMA weights in the model for validation and the final policy (the raw weights without EMA)."""
        return ema.applied(raw_model) if ema is not None else nullcontext()

    logs = _Logs(out, state["step"] if resume else None, tc.tensorboard and main) if main else None
    if main:
        logs.say(
            f"{'resuming' if resume else 'starting'} {run.policy} on {data}:{tc.split}: {len(tr)} train / "
            f"{n_val} val samples, {steps_per_epoch} steps x {tc.epochs} epochs, batch {tc.batch_size}, "
            f"at step {state['step']}"
        )
    world, rank = accelerator.num_processes, accelerator.process_index
    t0 = time.perf_counter() - state["elapsed_s"]
    t_log, n_log = time.perf_counter(), 0
    last_val: dict[str, Any] = {}
    stop = tc.max_steps if tc.max_steps is not None else total

    saved_at = (state["step"], state["epoch"]) if resume else None

    def checkpoint():
        nonlocal saved_at
        if saved_at == (state["step"], state["epoch"]):
            return  # this state is on disk already (an epoch's end that is also a checkpoint_every step)
        state["elapsed_s"] = time.perf_counter() - t0
        accelerator.wait_for_everyone()
        if main:
            _save_checkpoint(ckpt_dir, raw_model, policy.stats, ema, optimizer, scheduler, state)
        saved_at = (state["step"], state["epoch"])

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn()]
    bar = Progress(*columns, disable=not (progress and main), transient=False)
    try:
        with bar:
            task = bar.add_task(f"train {run.policy}", total=stop, completed=state["step"], loss=float("nan"))
            while state["step"] < stop and state["epoch"] < tc.epochs:
                epoch = state["epoch"]
                order = np.random.default_rng(_seed_of(tc.seed, 2, epoch)).permutation(len(tr))
                model.train()
                while state["batch"] < steps_per_epoch and state["step"] < stop:
                    b, step = state["batch"], state["step"]
                    idx = np.sort(order[b * tc.batch_size : (b + 1) * tc.batch_size])[rank::world]
                    s = _seed_of(tc.seed, 3, step, rank)
                    torch.manual_seed(s)
                    gen = torch.Generator().manual_seed(s)
                    inputs = policy.prepare(tr.tactile[idx], list(tr.shape[idx]))
                    y = torch.as_tensor(tr.label[idx], dtype=torch.float32, device=accelerator.device)
                    with accelerator.autocast():
                        loss = policy.loss(inputs, y, gen)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"the loss is {float(loss)} at step {step} (epoch {epoch}); the last good checkpoint "
                            f"is in {ckpt_dir}. Lower train.lr (now {tc.lr}) or check the data."
                        )
                    accelerator.backward(loss)
                    if tc.grad_clip is not None:
                        gn = accelerator.clip_grad_norm_(model.parameters(), tc.grad_clip)
                    else:
                        gn = torch.norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    if ema is not None:
                        ema.update(raw_model)
                    state["batch"] += 1
                    state["step"] += 1
                    n_log += len(idx) * world
                    lv = float(loss.detach())
                    bar.update(task, completed=state["step"], loss=lv)
                    if main and (state["step"] % tc.log_every == 0 or state["step"] == stop):
                        now = time.perf_counter()
                        row = {
                            "step": state["step"],
                            "epoch": epoch,
                            "loss": lv,
                            "lr": scheduler.get_last_lr()[0],
                            "grad_norm": float(gn),
                            "samples_per_s": n_log / max(now - t_log, 1e-9),
                            "elapsed_s": now - t0,
                        }
                        logs.write("train", row)
                        logs.say(
                            ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
                        )
                        t_log, n_log = now, 0
                    if state["step"] % tc.checkpoint_every == 0:
                        checkpoint()
                if state["batch"] >= steps_per_epoch:
                    state["epoch"] += 1
                    state["batch"] = 0
                    if main and val is not None and (state["epoch"] % tc.val_every == 0 or state["epoch"] == tc.epochs):
                        last_val = _validate_and_log(policy, averaged, val, tc, state, logs)
                    checkpoint()
            if main and val is not None and not last_val:
                last_val = _validate_and_log(policy, averaged, val, tc, state, logs)
            checkpoint()
    except KeyboardInterrupt:
        if main:
            logs.say(f"interrupted at step {state['step']}; the last checkpoint is in {ckpt_dir}")
        raise
    finally:
        policy.model = raw_model

    elapsed = time.perf_counter() - t0
    final = out / "policy"
    if main:
        tmp = _temp_dir(final)
        with averaged():
            policy.save(tmp)
        _swap_in(tmp, final)
        summary = {
            "policy": run.policy,
            "steps": state["step"],
            "epochs_done": state["epoch"],
            "train_samples": len(tr),
            "val_samples": n_val,
            "train_time_s": round(elapsed, 2),
            "samples_per_s": round(state["step"] * tc.batch_size / max(elapsed, 1e-9), 1),
            "parameters": sum(p.numel() for p in raw_model.parameters()),
            "final_val": last_val,
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
        learning_curve(out)
        logs.say(f"done: {state['step']} steps in {elapsed:.1f} s; policy saved to {final}")
        logs.close()
    accelerator.wait_for_everyone()
    return final


def _validate_and_log(policy, averaged, val, tc: TrainConfig, state: dict, logs: _Logs) -> dict:
    model = policy.model
    policy.model = getattr(model, "module", model)  # unwrapped for inference
    try:
        with averaged():
            m = validate(policy, val, tc.seed, tc.val_max_samples)
    finally:
        policy.model = model
    logs.write("val", {"step": state["step"], "epoch": state["epoch"], **m})
    logs.say(
        f"validation at step {state['step']}: loss {m['val_loss']:.4g}, GCR {m['gcr']:.1f} %, direction x/y/rz "
        f"{m['direction_x']:.1f}/{m['direction_y']:.1f}/{m['direction_rz']:.1f} %"
    )
    return m


def _diff(a: dict, b: dict, prefix: str = "") -> str:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _diff(va, vb, f"{prefix}{k}.")
            if d:
                out.append(d)
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return "; ".join(out)


def learning_curve(out: str | Path) -> Path | None:
    """Plot train.csv / val.csv of a run folder into learning_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.utils import save_png

    out = Path(out)
    tr, va = _read_csv(out / "train.csv"), _read_csv(out / "val.csv")
    if not tr:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = np.array([int(r["step"]) for r in tr])
    loss = np.array([float(r["loss"]) for r in tr])
    axes[0].plot(steps, loss, color="0.6", lw=0.8, label="train (per log step)")
    if len(loss) >= 5:
        k = max(1, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        axes[0].plot(steps[k - 1 :], smooth, color="C0", label=f"train (mean of {k})")
    if va:
        axes[0].plot([int(r["step"]) for r in va], [float(r["val_loss"]) for r in va], "o-", color="C3", label="val")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    if va:
        vs = [int(r["step"]) for r in va]
        axes[1].plot(vs, [float(r["gcr"]) for r in va], "o-", label="GCR")
        for d in ("x", "y", "rz"):
            vals = [float(r[f"direction_{d}"]) if r[f"direction_{d}"] not in ("", None) else np.nan for r in va]
            axes[1].plot(vs, vals, ".--", label=f"direction {d}")
        axes[1].set_ylim(0, 100)
        axes[1].set_ylabel("% (validation)")
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("step")
    fig.suptitle(out.name)
    fig.tight_layout()
    p = save_png(out / "learning_curve.png", fig)
    plt.close(fig)
    return p
