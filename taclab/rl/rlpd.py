"""RLPD (the VITAL paper's RL baseline): reinforcement learning from scratch with every batch drawn half from the
demonstrations and half from the online replay, LayerNorm critics and a high update-to-data ratio.

The actor outputs the whole action (``tanh`` scaled to the action box); no BC policy gives a base action. The
observations are encoded by the frozen encoders of a trained ``visk`` / ``baku`` checkpoint (``encoder``):
training image encoders online is out of a CPU budget, so the baseline isolates what the BC policy's *actions*
add (the residual's prior), not what its features add. The update is the deterministic actor-critic of
:mod:`taclab.rl.residual` (n-step targets, min over a LayerNorm critic ensemble, actor L2), with RLPD's
symmetric sampling; RLPD's entropy-regularized (SAC) actor is replaced by Gaussian exploration noise on the
schedule ``linear(noise_start, noise_end, noise_steps)``, so that the two algorithms differ only in the BC prior.
The demonstrations' actions are the targets of the demo half (scaled into [-1, 1]). The paper found replay
augmentation to hurt RLPD and used none: ``aug_views`` is 0 by default. The reward is the paper's, as for the
residual.

Building blocks (networks, replay, reward, curves, the frozen encoders) come from :mod:`taclab.rl.residual`.

Run folder as the residual's (``policy/`` holds a ``vital_rlpd`` policy). Command line:
``python -m taclab.rl.rlpd --encoder BC_RUN --demos DATASET --out RUN [--set key=value] [--resume]``.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taclab.policies.base import Policy, read_meta, register
from taclab.policies.learned import Prediction
from taclab.rl.residual import (
    EPISODE_COLUMNS,
    EVAL_COLUMNS,
    Actor,
    Critics,
    FrozenBase,
    Replay,
    _append_row,
    _write_rows,
    demo_episodes,
    linear_schedule,
    plot_curves,
    reward_of,
)
from taclab.utils import FolderLock, FolderLockedError


@dataclass
class RLPDConfig:
    encoder: str = ""
    """checkpoint (or training run) folder of a visk/baku policy whose frozen encoders read the observations"""
    demos: str = ""
    """dataset folder of demonstrations (generator vital): half of every batch"""
    task: str = "usb"
    """VITAL task; also the demonstrations' split"""
    env: dict = field(default_factory=dict)
    """Vital env config overrides"""
    total_steps: int = 16_000
    """env steps of training"""
    noise_start: float = 0.25
    """exploration noise std on the tanh output at step 0"""
    noise_end: float = 0.1
    """exploration noise std after noise_steps"""
    noise_steps: int = 5000
    """env steps of the linear noise schedule"""
    n_step: int = 3
    """n of the n-step returns"""
    gamma: float = 0.99
    """discount per env step"""
    utd: int = 16
    """critic updates per env step"""
    batch_size: int = 256
    """transitions per update, half demonstrations and half online"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of the actor and of each critic"""
    critics: int = 2
    """critic ensemble size (min target)"""
    lr: float = 1e-4
    """Adam learning rate"""
    tau: float = 0.01
    """soft target update rate per critic update"""
    actor_l2: float = 1e-3
    """weight of the mean squared tanh output in the actor loss (RLPD's released code: 1e-3)"""
    distance_weight: float = 0.01
    """reward per mm of L1 goal distance, subtracted every step"""
    success_reward: float = 5.0
    """reward added at the step the episode succeeds"""
    failure_reward: float = 0.0
    """reward added when the episode ends without success"""
    aug_views: int = 0
    """augmented feature views stored per observation (the paper used no augmentation for RLPD)"""
    augment: str = "semantic"
    """replay augmentation when aug_views > 0: semantic or shift_jitter"""
    buffer_size: int = 100_000
    """online replay capacity"""
    learning_starts: int = 256
    """updates begin once the online buffer holds this many transitions"""
    eval_every: int = 2000
    """env steps between deterministic evaluations (0: only at the end)"""
    eval_episodes: int = 10
    """episodes per evaluation (0: no evaluation)"""
    eval_workers: int = 1
    """worker processes of the evaluation"""
    checkpoint_every: int = 1000
    """env steps between resumable checkpoints (taken at the next episode end)"""
    seed: int = 0
    """seed of env resets, networks, noise and replay"""
    threads: int | None = None
    """torch CPU threads (None: torch's default)"""

    def __post_init__(self):
        checks = {
            "total_steps": self.total_steps >= 1,
            "n_step": self.n_step >= 1,
            "gamma": 0 < self.gamma <= 1,
            "utd": self.utd >= 0,
            "batch_size": self.batch_size >= 2,
            "critics": self.critics >= 1,
            "noise_steps": self.noise_steps >= 1,
            "aug_views": self.aug_views >= 0,
            "augment": self.augment in ("semantic", "shift_jitter"),
            "eval_episodes": self.eval_episodes >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid RLPD config value {bad[0]}={getattr(self, bad[0])!r}")
        self.hidden = tuple(int(h) for h in self.hidden)

    @classmethod
    def from_dict(cls, d: dict) -> RLPDConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown RLPD config key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**d)


class RLPDPolicy(Policy):
    """The frozen encoders and the trained actor (deterministic); ``policy.json`` + ``actor.safetensors``."""

    def __init__(self, cfg: RLPDConfig | dict, low, high, actor: Actor | None = None):
        self.cfg = cfg if isinstance(cfg, RLPDConfig) else RLPDConfig.from_dict(cfg)
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.enc = FrozenBase(self.cfg.encoder)
        self.actor = actor if actor is not None else Actor(self.enc.feature_dim, len(self.low), self.cfg.hidden)
        self.last_malformed = False

    def config(self) -> dict:
        return {**asdict(self.cfg), "low": self.low.tolist(), "high": self.high.tolist()}

    def bind(self, action_space) -> None:
        super().bind(action_space)
        self.enc.policy.bind(action_space)

    def to_action(self, y: np.ndarray) -> np.ndarray:
        """tanh output in [-1, 1] -> action in the box."""
        return self.low + (np.clip(y, -1, 1) + 1) * 0.5 * (self.high - self.low)

    def from_action(self, a: np.ndarray) -> np.ndarray:
        return np.clip(2 * (np.asarray(a, np.float64) - self.low) / (self.high - self.low) - 1, -1, 1)

    def select_action(self, obs, info=None) -> np.ndarray:
        f, _ = self.enc.encode(self.enc.policy.observation_batch(obs))
        with torch.no_grad():
            y = self.actor(torch.as_tensor(f[0, 0], dtype=torch.float32)[None])[0].double().numpy()
        pred = self.enc.policy._finish(Prediction(self.to_action(y)[None], np.zeros(1, bool)))
        self.last_malformed = bool(pred.malformed[0])
        return pred.actions[0].astype(np.float32)

    def save(self, directory) -> Path:
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().contiguous() for k, v in self.actor.state_dict().items()}, str(d / "actor.safetensors")
        )
        return super().save(d)

    @classmethod
    def load(cls, directory) -> RLPDPolicy:
        from safetensors.torch import load_file

        c = dict(read_meta(directory, cls.name)["config"])
        low, high = c.pop("low"), c.pop("high")
        p = cls(c, low, high)
        p.actor.load_state_dict(load_file(str(Path(directory) / "actor.safetensors")))
        return p


if __name__ != "__main__":  # run with python -m, the module registers when taclab.rl.rlpd is imported
    register("vital_rlpd")(RLPDPolicy)


def _evaluate(policy: RLPDPolicy, cfg: RLPDConfig, env_cfg: dict, folder: Path) -> float:
    from taclab.envs.vital import ENV_IDS
    from taclab.eval.rollout import evaluate

    policy.save(folder)
    res = evaluate(str(folder), ENV_IDS[cfg.task], [{}], cfg.eval_episodes, seed=cfg.seed + 17,
                   workers=cfg.eval_workers, env_config=env_cfg, progress=False)[0]  # fmt: skip
    return float(np.mean([r.success for r in res]))


def train_rlpd(cfg: RLPDConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train RLPD into the run folder ``out``; returns the summary."""
    with FolderLock(out, "RLPD run"):  # a second writer fails naming the holder
        return _train_rlpd(cfg, Path(out), resume, progress)


def _train_rlpd(cfg: RLPDConfig, out: Path, resume: bool, progress: bool) -> dict:
    from rich.progress import Progress

    from taclab.envs.base import make
    from taclab.envs.vital import ENV_IDS
    from taclab.utils import atomic_write_text

    ckpt = out / "checkpoint"
    if not cfg.demos:
        raise ValueError("RLPD needs demonstrations: set demos to a vital dataset folder")
    if resume and not (ckpt / "state.json").is_file():
        raise ValueError(f"--resume: no checkpoint in {ckpt}")
    if not resume and (out / "config.json").is_file():
        raise ValueError(f"{out} already holds an RLPD run: pass --resume or pick a new --out")
    if resume:
        prev, now = json.loads((out / "config.json").read_text()), json.loads(json.dumps(asdict(cfg)))
        diff = sorted(k for k in set(prev) | set(now) if k != "total_steps" and prev.get(k) != now.get(k))
        if diff:
            raise ValueError(f"--resume with a different config than the run in {out}: {diff}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))

    # 1. encoders, env, networks, the two buffers
    enc = FrozenBase(cfg.encoder)
    h, w = enc.policy.io.inputs["observation.wrist_rgb"].shape[:2]
    env_cfg = {**cfg.env, "image_size": [h, w], "masks": True}
    env = make(ENV_IDS[cfg.task], **env_cfg)
    enc.policy.bind(env.action_space)
    torch.manual_seed(cfg.seed)
    obs_dim, act_dim = enc.feature_dim, env.action_space.shape[0]
    actor = Actor(obs_dim, act_dim, cfg.hidden)
    critics = Critics(obs_dim, act_dim, cfg.hidden, cfg.critics)
    actor_t, critics_t = copy.deepcopy(actor), copy.deepcopy(critics)
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.lr)
    opt_c = torch.optim.Adam(critics.parameters(), lr=cfg.lr)
    policy = RLPDPolicy(cfg, env.action_space.low, env.action_space.high, actor)
    policy.enc = enc
    views = 1 + cfg.aug_views
    online = Replay(cfg.buffer_size, views, obs_dim, act_dim)
    rng, gen = np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    demo_n = sum(len(d["action"]) for d in demo_episodes(cfg))
    demos = Replay(demo_n + 16, views, obs_dim, act_dim)
    for d in demo_episodes(cfg):
        enc.reset()
        states, ys, rewards = [], [], []
        for i in range(len(d["action"])):
            obs = {"wrist_rgb": d["observation.wrist_rgb"][i], "wrist_mask": d["observation.wrist_mask"][i, ..., 0]}
            obs["skin"] = d["observation.skin"][i]
            f, _ = enc.encode(enc.policy.observation_batch(obs), cfg.aug_views, cfg.augment, gen)
            states.append(f[0])
            ys.append(policy.from_action(d["action"][i]).astype(np.float32))
            info = {"goal_error_mm": d["next.goal_error_mm"][i], "is_success": bool(d["next.success"][i])}
            rewards.append(reward_of(info, i == len(d["action"]) - 1, cfg))
        states.append(states[-1])
        demos.add_episode(np.stack(states), np.stack(ys), np.asarray(rewards), True, cfg)
    state = {"step": 0, "episode": 0, "elapsed_s": 0.0, "updates": 0, "demo_transitions": demos.n}
    if resume:
        nets = torch.load(ckpt / "nets.pt", weights_only=False)
        for m, k in ((actor, "actor"), (critics, "critics"), (actor_t, "actor_t"), (critics_t, "critics_t")):
            m.load_state_dict(nets[k])
        opt_a.load_state_dict(nets["opt_a"])
        opt_c.load_state_dict(nets["opt_c"])
        torch.set_rng_state(nets["torch_rng"])
        gen.set_state(nets["gen"])
        online.load(np.load(ckpt / "replay.npz"))
        state = json.loads((ckpt / "state.json").read_text())
        rng.bit_generator.state = state.pop("rng")
        _write_rows(out / "episodes.csv", EPISODE_COLUMNS, [], keep_until=state["step"])
        _write_rows(out / "eval.csv", EVAL_COLUMNS, [], keep_until=state["step"])
    else:
        _write_rows(out / "episodes.csv", EPISODE_COLUMNS, [])
        _write_rows(out / "eval.csv", EVAL_COLUMNS, [])

    def save_checkpoint():
        import shutil

        tmp = ckpt.with_name("checkpoint.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        nets = {"actor": actor.state_dict(), "critics": critics.state_dict(), "actor_t": actor_t.state_dict()}
        nets |= {"critics_t": critics_t.state_dict(), "opt_a": opt_a.state_dict(), "opt_c": opt_c.state_dict()}
        nets |= {"torch_rng": torch.get_rng_state(), "gen": gen.get_state()}
        torch.save(nets, tmp / "nets.pt")
        np.savez(tmp / "replay.npz", **online.state_dict())
        (tmp / "state.json").write_text(json.dumps({**state, "rng": rng.bit_generator.state}))
        old = ckpt.with_name("checkpoint.old")
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        if old.exists():
            shutil.rmtree(old)

    def update():
        half = cfg.batch_size // 2
        parts = [demos.sample(rng, half), online.sample(rng, cfg.batch_size - half)]  # RLPD's symmetric sampling
        s, y, ret, disc, s2 = (torch.cat(x) for x in zip(*parts, strict=True))
        with torch.no_grad():
            target = ret + disc * critics_t(s2, actor_t(s2)).min(0).values
        loss_c = F.mse_loss(critics(s, y), target.expand(cfg.critics, -1))
        opt_c.zero_grad()
        loss_c.backward()
        opt_c.step()
        with torch.no_grad():
            for net, tgt in ((critics, critics_t), (actor, actor_t)):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.mul_(1 - cfg.tau).add_(p, alpha=cfg.tau)
        return s

    # 2. the loop
    t0 = time.perf_counter() - state["elapsed_s"]
    last_ckpt = state["step"]
    next_eval = (state["step"] // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"RLPD {cfg.task}", total=cfg.total_steps, completed=state["step"])
        while state["step"] < cfg.total_steps:
            seed = int(np.random.SeedSequence([cfg.seed, 5, state["episode"]]).generate_state(1)[0] % 2**31)
            obs, info = env.reset(seed=seed)
            f, _ = enc.encode(enc.policy.observation_batch(obs), cfg.aug_views, cfg.augment, gen)
            states, ys, rewards, ret = [f[0]], [], [], 0.0
            while True:
                noise = linear_schedule(cfg.noise_start, cfg.noise_end, cfg.noise_steps, state["step"])
                with torch.no_grad():
                    y = actor(torch.as_tensor(states[-1][0])[None])[0].numpy()
                y = np.clip(y + rng.normal(0, noise, y.shape), -1, 1)
                a = enc.policy._finish(Prediction(policy.to_action(y)[None], np.zeros(1, bool))).actions[0]
                obs, _, term, trunc, info = env.step(a.astype(np.float32))
                r = reward_of(info, term or trunc, cfg)
                f, _ = enc.encode(enc.policy.observation_batch(obs), cfg.aug_views, cfg.augment, gen)
                states.append(f[0])
                ys.append(y.astype(np.float32))
                rewards.append(r)
                ret += r
                state["step"] += 1
                if online.n >= cfg.learning_starts:
                    for _ in range(cfg.utd):
                        s = update()
                        state["updates"] += 1
                    if cfg.utd:
                        y_pi = actor(s)
                        loss_a = -critics(s, y_pi).mean() + cfg.actor_l2 * (y_pi**2).mean()
                        opt_a.zero_grad()
                        loss_a.backward()
                        opt_a.step()
                bar.update(task, completed=state["step"])
                if term or trunc:
                    break
            online.add_episode(np.stack(states), np.stack(ys), np.asarray(rewards), term, cfg)
            state["episode"] += 1
            state["elapsed_s"] = time.perf_counter() - t0
            row = {"env_step": state["step"], "episode": state["episode"], "return": round(ret, 4),
                   "success": int(bool(info["is_success"])), "length": len(ys), "noise_std": round(noise, 4),
                   "elapsed_s": round(state["elapsed_s"], 1)}  # fmt: skip
            _append_row(out / "episodes.csv", EPISODE_COLUMNS, row)
            done = state["step"] >= cfg.total_steps
            if next_eval is not None and cfg.eval_episodes and (state["step"] >= next_eval or done):
                sr = _evaluate(policy, cfg, env_cfg, out / "eval_policy")
                _append_row(out / "eval.csv", EVAL_COLUMNS, {"env_step": state["step"], "success": sr,
                            "episodes": cfg.eval_episodes, "elapsed_s": round(state["elapsed_s"], 1)})  # fmt: skip
                next_eval = (state["step"] // cfg.eval_every + 1) * cfg.eval_every
            if state["step"] - last_ckpt >= cfg.checkpoint_every or done:
                save_checkpoint()
                last_ckpt = state["step"]
    env.close()

    # 3. the final policy, the curves, the summary
    policy.save(out / "policy")
    final = None
    if cfg.eval_episodes and not cfg.eval_every:
        final = _evaluate(policy, cfg, env_cfg, out / "eval_policy")
    elif cfg.eval_episodes:
        with open(out / "eval.csv") as fh:
            rows = fh.read().strip().splitlines()[1:]
        final = float(rows[-1].split(",")[1]) if rows else None
    plot_curves(out)
    summary = {
        "task": cfg.task,
        "env_steps": state["step"],
        "episodes": state["episode"],
        "updates": state["updates"],
        "demo_transitions": state["demo_transitions"],
        "train_time_s": round(time.perf_counter() - t0, 1),
        "final_eval_success": final,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    import yaml

    from taclab.overrides import merge, nest

    ap = argparse.ArgumentParser(prog="python -m taclab.rl.rlpd", description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", help="visk/baku checkpoint or training run folder whose encoders are used")
    ap.add_argument("--demos", default="", help="demonstration dataset folder (generator vital)")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--config", help="YAML file of RLPDConfig keys")
    ap.add_argument("--set", action="append", default=[], help="key=value (value parsed as YAML)")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    args = ap.parse_args(argv)
    try:
        d = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
        sets = {}
        for item in args.set:
            if "=" not in item:
                raise ValueError(f"--set {item!r} must be key=value")
            k, v = item.split("=", 1)
            sets[k] = yaml.safe_load(v)
        d = merge(d or {}, nest(sets))  # dotted keys (env.max_steps=30) reach into env
        if args.encoder:
            d["encoder"] = args.encoder
        if args.demos:
            d["demos"] = args.demos
        summary = train_rlpd(RLPDConfig.from_dict(d), args.out, resume=args.resume)
    except (ValueError, FileNotFoundError, FolderLockedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from taclab.rl.rlpd import main as _main  # the registered module, not this script's copy

    raise SystemExit(_main())
