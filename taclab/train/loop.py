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

from taclab.policies.learned import InputSpec, PolicyIO
from taclab.train.config import RunConfig
from taclab.train.spec import DataSpec, data_spec
from taclab.utils import FolderLock, atomic_write_text, config_diff, read_json_record

TRAIN_COLUMNS = ("step", "epoch", "loss", "lr", "grad_norm", "samples_per_s", "elapsed_s")


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an output folder that holds another run, ...)."""


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) % (2**32) for p in parts]).generate_state(1)[0])


def holdout_indices(n: int, seed: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` sorted sample indices of the run's validation hold-out: ``round(n * val_fraction)``
    samples drawn by the run's seed. Pre-training stages that must not train on a later run's validation samples
    draw them with this."""
    perm = np.random.default_rng(_seed_of(seed, 1)).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


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

    def __init__(self, out: Path, resume_step: int | None, tensorboard: bool, val_columns: tuple[str, ...]):
        self.out = out
        self.files = {"train": out / "train.csv", "val": out / "val.csv"}
        self.columns = {"train": TRAIN_COLUMNS, "val": ("step", "epoch", "val_loss", *val_columns, "malformed")}
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


def subset(columns: dict[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    """The rows ``idx`` of every column."""
    return {k: v[idx] for k, v in columns.items()}


def policy_batch(
    columns: dict[str, np.ndarray], spec: DataSpec, idx=slice(None), privileged: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """What a policy reads of some rows: the observation columns and the task keys, and for training the
    ``privileged`` columns its loss reads (:meth:`LearnedPolicy.training_keys`)."""
    return {k: columns[k][idx] for k in dict.fromkeys((*spec.observations, *spec.task_keys, *privileged))}


def validate(policy, val: dict[str, np.ndarray], spec: DataSpec, seed: int, max_samples: int) -> dict[str, Any]:
    """Validation loss, the spec's metrics and the malformed rate of ``policy`` on (up to ``max_samples`` rows
    of) the columns ``val``."""
    n = min(len(val[spec.action]), max_samples)
    v = subset(val, np.arange(n))
    policy.model.eval()
    losses, actions, malformed = [], [], []
    g = torch.Generator().manual_seed(_seed_of(seed, 999_983))
    with torch.no_grad():
        for i in range(0, n, 256):
            sl = slice(i, min(n, i + 256))
            batch = policy_batch(v, spec, sl)
            train_batch = policy_batch(v, spec, sl, policy.training_keys())
            y = torch.as_tensor(v[spec.target_column][sl], dtype=torch.float32, device=policy.device)
            losses.append(float(policy.loss(policy.prepare(train_batch), y, g)) * (sl.stop - sl.start))
            pred = policy.predict(batch, seed=seed)
            actions.append(pred.actions)
            malformed.append(pred.malformed)
    m = spec.score(v, np.concatenate(actions))
    m["val_loss"] = sum(losses) / n
    m["malformed"] = 100.0 * float(np.concatenate(malformed).mean())
    return m


def policy_io(policy_cls, spec: DataSpec, columns: dict[str, np.ndarray]) -> PolicyIO:
    """The inputs and action a policy trained on these columns declares."""
    missing = [k for k in policy_cls.TASK_KEYS if k not in spec.task_keys]
    if missing:
        raise TrainingError(
            f"the {policy_cls.name} policy reads the task key(s) {missing}, which this dataset does not provide "
            f"(its task keys: {list(spec.task_keys)})"
        )
    inputs = {k: InputSpec(shape=columns[k].shape[1:], dtype=str(columns[k].dtype)) for k in spec.observations}
    return PolicyIO(
        inputs=inputs, task_keys=policy_cls.TASK_KEYS, action_low=spec.action_low, action_high=spec.action_high
    )


class _Run:
    """One training run, step by step: :meth:`check` (inputs and the output folder), :meth:`load` (data and the
    train/validation split), :meth:`build` (policy, optimizer, EMA), :meth:`restore` (on ``--resume``),
    :meth:`fit` (the epochs) and :meth:`finish` (the final policy, summary and curve)."""

    def __init__(self, run: RunConfig, data: Path, out: Path, resume: bool, progress: bool):
        self.run, self.tc, self.data, self.out, self.resume, self.progress = run, run.train, data, out, resume, progress
        self.ckpt_dir = out / "checkpoints" / "last"
        self.run_dict = {"policy": run.policy, "model": run.model, "train": run.train.model_dump(mode="json")}

    # -- 1. inputs and the output folder ---------------------------------------------------------------------
    def check(self) -> None:
        from taclab.data import read_meta
        from taclab.policies.base import POLICIES

        tc, out = self.tc, self.out
        if out.exists() and not out.is_dir():
            raise TrainingError(f"--out {out} is a file; give a folder for the training run")
        if tc.mixed_precision == "fp16" and not torch.cuda.is_available():
            raise TrainingError(
                "train.mixed_precision 'fp16' needs a CUDA GPU, none is available; allowed on CPU: no, bf16"
            )
        self.meta = read_meta(self.data)  # fails clearly when data is not a dataset
        if tc.split not in self.meta["splits"]:
            raise TrainingError(f"{self.data} has no split {tc.split!r}; splits: {sorted(self.meta['splits'])}")
        self.spec = data_spec(dataset_generator(self.meta, tc.split))
        self.policy_cls = POLICIES[self.run.policy]
        self.fingerprint = dataset_fingerprint(self.data, tc.split)
        self.found = _find_checkpoint(self.ckpt_dir)
        if (out / "run.json").is_file() and not self.resume and (self.found or (out / "policy").exists()):
            raise TrainingError(f"{out} already holds a training run: pass --resume to continue it or pick a new --out")
        if self.resume:
            if self.found is None:
                raise TrainingError(f"--resume: no checkpoint in {out / 'checkpoints'} to resume from")
            prev = read_json_record(out / "run.json", ("run",), "not a training run", TrainingError)
            if _comparable(prev["run"]) != _comparable(self.run_dict):
                diff = config_diff(_comparable(prev["run"]), _comparable(self.run_dict))
                raise TrainingError(f"--resume with a different config than the run in {out}: {diff}")
            if prev.get("data_fingerprint") != self.fingerprint:
                raise TrainingError(
                    f"--resume with other data: the run in {out} was trained on {prev.get('data')} (split "
                    f"{tc.split!r}, fingerprint {prev.get('data_fingerprint')}), --data {self.data} has fingerprint "
                    f"{self.fingerprint}"
                )

    # -- 2. data ---------------------------------------------------------------------------------------------
    def load(self) -> None:
        tc = self.tc
        columns = load_columns(self.data, tc.split, self.spec.columns(), tc.limit, self.progress and self.main)
        if self.spec.derive is not None:
            columns.update(self.spec.derive(columns))
        n = len(columns[self.spec.action])
        train, val = holdout_indices(n, tc.seed, tc.val_fraction)
        self.n_val = len(val)
        self.val = subset(columns, val) if self.n_val else None
        self.train_cols = subset(columns, train)
        self.n_train = n - self.n_val
        if self.n_train == 0:
            raise TrainingError(f"no training samples left after holding out {self.n_val} for validation")

    # -- 3. policy, optimizer, EMA ---------------------------------------------------------------------------
    def build(self) -> None:
        from taclab.policies import make_policy

        tc, acc = self.tc, self.accelerator
        io = policy_io(self.policy_cls, self.spec, self.train_cols)
        self.policy = make_policy(self.run.policy, config=self.run.model, io=io)
        self.privileged = self.policy.training_keys()
        missing = [k for k in self.privileged if k not in self.train_cols]
        if missing:
            raise TrainingError(
                f"the {self.run.policy} policy's loss reads the column(s) {missing}, which this dataset does not "
                f"provide; it has {sorted(self.train_cols)}"
            )
        batch = policy_batch(self.train_cols, self.spec, privileged=self.privileged)
        self.policy.fit_stats(batch, self.train_cols[self.spec.target_column])
        self.policy.to(acc.device)
        self.steps_per_epoch = max(1, self.n_train // tc.batch_size)
        self.total = self.steps_per_epoch * tc.epochs
        warmup = int(round(tc.warmup_fraction * self.total))
        params = self.policy.model.parameters()
        self.optimizer = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay, betas=tuple(tc.betas))
        total, ratio = self.total, tc.min_lr_ratio
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_lambda(s, total, warmup, ratio))
        self.state = {"step": 0, "epoch": 0, "batch": 0, "elapsed_s": 0.0}
        self.ema = EMA(self.policy.model, tc.ema_decay) if tc.ema_decay > 0 else None

    # -- 4. resume -------------------------------------------------------------------------------------------
    def restore(self) -> None:
        from safetensors.torch import load_file

        found, dev = self.found, self.accelerator.device

        def read(name, fn):
            try:
                return fn(found / name)
            except Exception as e:  # noqa: BLE001 - a corrupt file is named
                raise TrainingError(
                    f"{found / name} cannot be read ({type(e).__name__}: {e}); the checkpoint is corrupt: remove "
                    f"{self.out} (or its checkpoints/ folder) to start the run over"
                ) from None

        load_trained_state(self.policy.model, read("trained.safetensors", lambda p: load_file(str(p))))
        if (found / "normalization.safetensors").is_file():
            stats = read("normalization.safetensors", lambda p: load_file(str(p)))
            self.policy.stats = {k: v.to(dev) for k, v in stats.items()}
        opt = read("optimizer.pt", lambda p: torch.load(p, weights_only=False))
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        self.state = read("state.json", lambda p: json.loads(p.read_text()))
        if self.ema is not None:
            self.ema.load_state_dict(read("ema.safetensors", lambda p: load_file(str(p))))
            self.ema.updates = self.state["step"]

    # -- helpers of the loop ---------------------------------------------------------------------------------
    def averaged(self):
        """The EMA weights in the model for validation and the final policy (the raw weights without EMA)."""
        return self.ema.applied(self.raw_model) if self.ema is not None else nullcontext()

    def checkpoint(self) -> None:
        if self.saved_at == (self.state["step"], self.state["epoch"]):
            return  # this state is on disk already (an epoch's end that is also a checkpoint_every step)
        self.state["elapsed_s"] = time.perf_counter() - self.t0
        self.accelerator.wait_for_everyone()
        if self.main:
            p = self.policy
            _save_checkpoint(
                self.ckpt_dir, self.raw_model, p.stats, self.ema, self.optimizer, self.scheduler, self.state
            )
        self.saved_at = (self.state["step"], self.state["epoch"])

    def validate_and_log(self) -> dict:
        model = self.policy.model
        self.policy.model = getattr(model, "module", model)  # unwrapped for inference
        try:
            with self.averaged():
                m = validate(self.policy, self.val, self.spec, self.tc.seed, self.tc.val_max_samples)
        finally:
            self.policy.model = model
        self.logs.write("val", {"step": self.state["step"], "epoch": self.state["epoch"], **m})
        shown = ", ".join(f"{k} {m[k]:.4g}" for k in ("val_loss", *self.spec.curve_metrics) if m.get(k) is not None)
        self.logs.say(f"validation at step {self.state['step']}: {shown}")
        return m

    def step(self, order: np.ndarray, model, world: int, rank: int) -> float:
        """One optimizer step on the batch ``state['batch']`` of this epoch's ``order``."""
        tc, acc, state = self.tc, self.accelerator, self.state
        b, step = state["batch"], state["step"]
        idx = np.sort(order[b * tc.batch_size : (b + 1) * tc.batch_size])[rank::world]
        s = _seed_of(tc.seed, 3, step, rank)
        torch.manual_seed(s)
        gen = torch.Generator().manual_seed(s)
        inputs = self.policy.prepare(policy_batch(self.train_cols, self.spec, idx, self.privileged))
        y = torch.as_tensor(self.train_cols[self.spec.target_column][idx], dtype=torch.float32, device=acc.device)
        with acc.autocast():
            loss = self.policy.loss(inputs, y, gen)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss is {float(loss)} at step {step} (epoch {state['epoch']}); the last good checkpoint "
                f"is in {self.ckpt_dir}. Lower train.lr (now {tc.lr}) or check the data."
            )
        acc.backward(loss)
        if tc.grad_clip is not None:
            self.grad_norm = acc.clip_grad_norm_(model.parameters(), tc.grad_clip)
        else:
            self.grad_norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.raw_model)
        state["batch"] += 1
        state["step"] += 1
        self.n_log += len(idx) * world
        return float(loss.detach())

    def log_step(self, loss: float, epoch: int) -> None:
        now = time.perf_counter()
        row = {
            "step": self.state["step"],
            "epoch": epoch,
            "loss": loss,
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": float(self.grad_norm),
            "samples_per_s": self.n_log / max(now - self.t_log, 1e-9),
            "elapsed_s": now - self.t0,
        }
        self.logs.write("train", row)
        self.logs.say(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        self.t_log, self.n_log = now, 0

    # -- 5. the epochs ---------------------------------------------------------------------------------------
    def fit(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        tc, acc, state = self.tc, self.accelerator, self.state
        model, self.optimizer = acc.prepare(self.policy.model, self.optimizer)
        self.raw_model = self.policy.model
        self.policy.model = model
        self.last_val: dict[str, Any] = {}
        world, rank = acc.num_processes, acc.process_index
        self.t0 = time.perf_counter() - state["elapsed_s"]
        self.t_log, self.n_log = time.perf_counter(), 0
        stop = tc.max_steps if tc.max_steps is not None else self.total
        self.saved_at = (state["step"], state["epoch"]) if self.resume else None
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
        columns += [TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn()]
        bar = Progress(*columns, disable=not (self.progress and self.main), transient=False)
        try:
            with bar:
                task = bar.add_task(f"train {self.run.policy}", total=stop, completed=state["step"], loss=float("nan"))
                while state["step"] < stop and state["epoch"] < tc.epochs:
                    epoch = state["epoch"]
                    order = np.random.default_rng(_seed_of(tc.seed, 2, epoch)).permutation(self.n_train)
                    model.train()
                    while state["batch"] < self.steps_per_epoch and state["step"] < stop:
                        loss = self.step(order, model, world, rank)
                        bar.update(task, completed=state["step"], loss=loss)
                        if self.main and (state["step"] % tc.log_every == 0 or state["step"] == stop):
                            self.log_step(loss, epoch)
                        if state["step"] % tc.checkpoint_every == 0:
                            self.checkpoint()
                    if state["batch"] >= self.steps_per_epoch:
                        state["epoch"] += 1
                        state["batch"] = 0
                        due = state["epoch"] % tc.val_every == 0 or state["epoch"] == tc.epochs
                        if self.main and self.val is not None and due:
                            self.last_val = self.validate_and_log()
                        self.checkpoint()
                if self.main and self.val is not None and not self.last_val:
                    self.last_val = self.validate_and_log()
                self.checkpoint()
        except KeyboardInterrupt:
            if self.main:
                self.logs.say(f"interrupted at step {state['step']}; the last checkpoint is in {self.ckpt_dir}")
            raise
        finally:
            self.policy.model = self.raw_model

    # -- 6. the final policy ---------------------------------------------------------------------------------
    def finish(self) -> Path:
        elapsed = time.perf_counter() - self.t0
        final = self.out / "policy"
        if self.main:
            tmp = _temp_dir(final)
            with self.averaged():
                self.policy.save(tmp)
            _swap_in(tmp, final)
            summary = {
                "policy": self.run.policy,
                "steps": self.state["step"],
                "epochs_done": self.state["epoch"],
                "train_samples": self.n_train,
                "val_samples": self.n_val,
                "train_time_s": round(elapsed, 2),
                "samples_per_s": round(self.state["step"] * self.tc.batch_size / max(elapsed, 1e-9), 1),
                "parameters": sum(p.numel() for p in self.raw_model.parameters()),
                "final_val": self.last_val,
            }
            atomic_write_text(self.out / "summary.json", json.dumps(summary, indent=2))
            learning_curve(self.out, self.spec.curve_metrics)
            self.logs.say(f"done: {self.state['step']} steps in {elapsed:.1f} s; policy saved to {final}")
        self.accelerator.wait_for_everyone()
        return final

    def execute(self) -> Path:
        from accelerate import Accelerator

        tc, out = self.tc, self.out
        if tc.threads:
            torch.set_num_threads(tc.threads)
        self.accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
        self.main = self.accelerator.is_main_process
        self.load()
        self.build()
        if self.resume:
            self.restore()
        record = {"run": self.run_dict, "data": str(self.data), "data_fingerprint": self.fingerprint}
        record["dataset_split"] = self.meta["splits"].get(tc.split)
        atomic_write_text(out / "run.json", json.dumps(record, indent=2))
        if self.main:
            self.logs = _Logs(out, self.state["step"] if self.resume else None, tc.tensorboard, self.val_columns())
            self.logs.say(
                f"{'resuming' if self.resume else 'starting'} {self.run.policy} on {self.data}:{tc.split}: "
                f"{self.n_train} train / {self.n_val} val samples, {self.steps_per_epoch} steps x {tc.epochs} epochs, "
                f"batch {tc.batch_size}, at step {self.state['step']}"
            )
        try:
            self.fit()
            return self.finish()
        finally:
            if self.main:
                self.logs.close()

    def val_columns(self) -> tuple[str, ...]:
        """The metric columns of val.csv: the spec's metrics on a zero action (their names only)."""
        if self.val is None:
            return ()
        probe = subset(self.val, np.arange(1))
        zero = np.zeros((1, len(self.spec.action_low)))
        return tuple(k for k in self.spec.score(probe, zero) if k not in ("val_loss", "malformed"))


def train(run: RunConfig, data: str | Path, out: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Train ``run.policy`` on the dataset folder ``data`` into the run folder ``out``; returns the folder of the
    final policy. The dataset's generator names the :class:`~taclab.train.spec.DataSpec` (which columns are
    observations, action and task, the action box, the validation metrics)."""
    r = _Run(run, Path(data), Path(out), resume, progress)
    r.check()  # nothing is written before the inputs are known to be good
    with FolderLock(r.out, "training run"):  # a second writer fails naming the holder
        return r.execute()


def dataset_generator(meta: dict, split: str) -> str:
    """The generator that wrote a split (datasets of format 1 were all written by the TLA generator)."""
    sp = meta["splits"][split]
    return sp.get("generator") or meta.get("generator") or "tla"


def dataset_fingerprint(data: Path, split: str) -> str:
    from taclab.data import fingerprint

    return fingerprint(data, split)


def load_columns(data: Path, split: str, columns: list[str], limit: int | None, progress: bool) -> dict:
    """The decoded ``columns`` of a split (the first ``limit`` rows)."""
    from taclab.data import load_arrays

    return load_arrays(data, split, columns=columns, limit=limit, progress=progress)


def learning_curve(out: str | Path, metrics: tuple[str, ...] = ()) -> Path | None:
    """Plot train.csv / val.csv of a run folder into learning_curve.png: the losses, and the validation
    ``metrics`` (percentages) beside them."""
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
    shown = [m for m in metrics if va and m in va[0]]
    if shown:
        vs = [int(r["step"]) for r in va]
        for i, m in enumerate(shown):
            vals = [float(r[m]) if r[m] not in ("", None) else np.nan for r in va]
            axes[1].plot(vs, vals, "o-" if i == 0 else ".--", label=m)
        axes[1].set_ylim(0, 100)
        axes[1].set_ylabel("% (validation)")
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("step")
    fig.suptitle(out.name)
    fig.tight_layout()
    p = save_png(out / "learning_curve.png", fig)
    plt.close(fig)
    return p
