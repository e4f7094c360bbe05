"""Residual RL on a frozen behaviour-cloning policy (VITAL, section 3.3).

The BC policy (``visk`` or ``baku``, :mod:`taclab.policies.visk`) is frozen: its encoders give the image (and
skin) features of every observation and its chunks, blended by the temporal ensemble, give the base action
``b``. A deterministic residual actor reads (features, standardized ``b``) and outputs ``u`` in [-1, 1] per
offset dimension; the executed action is ``b + u * bound``, clipped into the action box, with ``bound`` =
``offset_fraction`` (20 %) of the largest absolute demonstration action of each dimension. Exploration adds
Gaussian noise to ``u`` with a standard deviation that falls linearly from ``noise_start`` to ``noise_end`` over
``noise_steps`` env steps. A critic ensemble of ``critics`` MLPs with LayerNorm regresses n-step returns against
the minimum of the target critics at the n-th next state (DDPG targets with target networks); ``utd`` critic
updates per env step, one actor update (maximize the ensemble's mean Q, minus ``actor_l2`` times the mean
squared ``u``). The reward is the paper's: ``-distance_weight`` times the L1 distance of the part to its goal
(mm) every step, plus ``success_reward`` when the episode ends in success (``failure_reward`` when it fails).
The demonstrations seed the replay buffer (their residual is the demonstrator's action minus the base action).

Replay augmentation: each stored observation is encoded under ``aug_views`` random augmentations (semantic by
default) when it enters the buffer, and a replayed transition draws one of them; the frozen encoder thus runs
once per stored image instead of once per replay (a finite sample of the augmentation; 0 views: none).

Run folder: ``config.json``, ``episodes.csv`` (per training episode: env step, return, success, noise),
``eval.csv`` (deterministic evaluations), ``curves.png``, ``checkpoint/`` (resumable at episode ends: networks,
optimizers, buffer, counters, random states), ``policy/`` (the final ``vital_residual`` policy, loadable with
:func:`taclab.policies.load_policy`) and ``summary.json``.

Command line: ``python -m taclab.rl.residual --base RUN_OR_CHECKPOINT --demos DATASET --out RUN [--set key=value]
[--resume]``.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taclab.policies.base import Policy, load_policy, read_meta, register
from taclab.policies.chunking import TemporalEnsemble
from taclab.policies.learned import Prediction
from taclab.utils import FolderLock, FolderLockedError


@dataclass
class ResidualConfig:
    base: str = ""
    """checkpoint (or training run) folder of the frozen BC policy (visk or baku)"""
    demos: str = ""
    """dataset folder of demonstrations (generator vital) that seed the replay buffer; empty: none"""
    task: str = "usb"
    """VITAL task (plug, usb, card, key, pick); also the demonstrations' split"""
    env: dict = field(default_factory=dict)
    """Vital env config overrides (the wrist image size follows the base policy)"""
    total_steps: int = 16_000
    """env steps of training"""
    offset_fraction: float = 0.2
    """offset bound per dimension: this share of the largest absolute demonstration action"""
    offset_dims: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    """action dimensions the residual acts on (the released code: (0, 1, 2), translation only)"""
    noise_start: float = 0.25
    """exploration noise std on u at step 0 (in units of the bound)"""
    noise_end: float = 0.1
    """exploration noise std after noise_steps"""
    noise_steps: int = 5000
    """env steps of the linear noise schedule"""
    n_step: int = 3
    """n of the n-step returns (the released code: 1)"""
    gamma: float = 0.99
    """discount per env step"""
    utd: int = 16
    """critic updates per env step"""
    batch_size: int = 256
    """transitions per update"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of the actor and of each critic"""
    critics: int = 2
    """critic ensemble size (min target)"""
    lr: float = 1e-4
    """Adam learning rate of actor and critics"""
    tau: float = 0.01
    """soft target update rate per critic update (the released code: 0.1)"""
    actor_l2: float = 1e-3
    """weight of the mean squared residual u in the actor loss"""
    distance_weight: float = 0.01
    """reward per mm of L1 goal distance, subtracted every step"""
    success_reward: float = 5.0
    """reward added at the step the episode succeeds"""
    failure_reward: float = 0.0
    """reward added when the episode ends without success (the released code: -5)"""
    aug_views: int = 4
    """augmented feature views stored per observation for replay (0: no replay augmentation)"""
    augment: str = "semantic"
    """replay augmentation: semantic or shift_jitter (the base policy's augmentation code)"""
    buffer_size: int = 100_000
    """replay capacity in transitions (observations as many)"""
    learning_starts: int = 256
    """updates begin once the buffer holds this many transitions"""
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
            "offset_fraction": 0 < self.offset_fraction <= 1,
            "n_step": self.n_step >= 1,
            "gamma": 0 < self.gamma <= 1,
            "utd": self.utd >= 0,
            "batch_size": self.batch_size >= 1,
            "critics": self.critics >= 1,
            "noise_steps": self.noise_steps >= 1,
            "aug_views": self.aug_views >= 0,
            "augment": self.augment in ("semantic", "shift_jitter"),
            "offset_dims": len(self.offset_dims) >= 1 and all(0 <= d < 7 for d in self.offset_dims),
            "eval_episodes": self.eval_episodes >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid residual RL config value {bad[0]}={getattr(self, bad[0])!r}")
        self.offset_dims = tuple(int(d) for d in self.offset_dims)
        self.hidden = tuple(int(h) for h in self.hidden)

    @classmethod
    def from_dict(cls, d: dict) -> ResidualConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown residual RL config key(s) {unknown}; allowed: {sorted(known)}")
        return cls(**d)


def linear_schedule(start: float, end: float, steps: int, t: int) -> float:
    """linear(start, end, steps) at step t: start at 0, end from ``steps`` on."""
    return start + (end - start) * min(1.0, t / steps)


def offset_bound(demo_actions: np.ndarray, fraction: float, dims: tuple[int, ...]) -> np.ndarray:
    """Per offset dimension: ``fraction`` of the largest absolute demonstration action of that dimension."""
    a = np.asarray(demo_actions, np.float64).reshape(-1, np.asarray(demo_actions).shape[-1])
    return fraction * np.abs(a[:, list(dims)]).max(0)


def compose(base: np.ndarray, u: np.ndarray, bound: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """The executed action before clipping: ``base`` plus ``clip(u, -1, 1) * bound`` on the offset dimensions."""
    a = np.array(base, np.float64, copy=True)
    a[..., list(dims)] += np.clip(u, -1, 1) * bound
    return a


def reward_of(info: dict, ended: bool, cfg: ResidualConfig) -> float:
    """The paper's reward: dense L1 goal distance (mm) every step, success (or failure) reward at the end."""
    r = -cfg.distance_weight * float(np.abs(info["goal_error_mm"]).sum())
    if info["is_success"]:
        r += cfg.success_reward
    elif ended:
        r += cfg.failure_reward
    return r


# ------------------------------------------------------------------------------------------------ networks
def mlp(sizes: list[int], layer_norm: bool) -> nn.Sequential:
    mods: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        mods += [nn.Linear(a, b)] + ([nn.LayerNorm(b)] if layer_norm else []) + [nn.ReLU()]
    return nn.Sequential(*mods, nn.Linear(sizes[-2], sizes[-1]))


class Actor(nn.Module):
    def __init__(self, obs_dim: int, out_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.net = mlp([obs_dim, *hidden, out_dim], layer_norm=False)
        nn.init.zeros_(self.net[-1].weight)  # starts as the base policy: u = 0
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(s))


class Critics(nn.Module):
    """An ensemble of ``n`` Q networks (Linear, LayerNorm, ReLU per hidden layer); returns (n, B).

    The ensemble runs as one batched network: layer ``i`` of critic ``k`` is slice ``k`` of stacked weights
    (n, in, out), so a forward pass is one ``baddbmm`` per layer for all critics instead of one small matmul per
    critic. Each critic is initialized as the separate MLP it replaces (same random draws)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], n: int):
        super().__init__()
        qs = [mlp([obs_dim + act_dim, *hidden, 1], layer_norm=True) for _ in range(n)]
        lins = [[m for m in q if isinstance(m, nn.Linear)] for q in qs]
        norms = [[m for m in q if isinstance(m, nn.LayerNorm)] for q in qs]
        stack = lambda ts: nn.Parameter(torch.stack(ts).contiguous())
        self.w = nn.ParameterList(stack([q[i].weight.T for q in lins]) for i in range(len(lins[0])))
        self.b = nn.ParameterList(stack([q[i].bias[None] for q in lins]) for i in range(len(lins[0])))
        self.g = nn.ParameterList(stack([q[i].weight[None] for q in norms]) for i in range(len(norms[0])))
        self.beta = nn.ParameterList(stack([q[i].bias[None] for q in norms]) for i in range(len(norms[0])))

    def forward(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        x = torch.cat([s, u], -1).expand(len(self.w[0]), -1, -1)
        for w, b, g, beta in zip(self.w[:-1], self.b[:-1], self.g, self.beta, strict=True):
            x = torch.baddbmm(b, x, w)
            x = F.relu(F.layer_norm(x, x.shape[-1:]) * g + beta)
        return torch.baddbmm(self.b[-1], x, self.w[-1])[..., 0]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if any(k.startswith("qs.") for k in state_dict):
            raise ValueError("a checkpoint from before the batched critic ensemble (keys qs.*): start a new run")
        return super().load_state_dict(state_dict, strict, assign)


# --------------------------------------------------------------------------------------- the frozen base
class FrozenBase:
    """Features and temporally ensembled base actions of a frozen visk/baku policy."""

    def __init__(self, base: str | Path):
        self.policy = load_policy(base)
        if not hasattr(self.policy, "chunk") or not hasattr(self.policy.model, "features"):
            raise ValueError(f"residual RL needs a visk or baku base policy, {base} holds {self.policy.name!r}")
        self.policy.model.eval()
        for p in self.policy.model.parameters():
            p.requires_grad_(False)
        s = self.policy.stats
        self.action_mean, self.action_std = s["action_mean"].double().numpy(), s["action_std"].double().numpy()
        self.ensemble = TemporalEnsemble(self.policy.cfg.ensemble_m)
        self.feature_dim = self.policy.cfg.width * (2 if self.policy.cfg.use_skin else 1)

    def reset(self) -> None:
        self.ensemble = TemporalEnsemble(self.policy.cfg.ensemble_m)

    @torch.no_grad()
    def encode(self, batch: dict, views: int = 0, augment: str = "semantic", gen=None):
        """(features (B, 1 + views, F), chunks (B, horizon, action_dim)) of a batch of observations: the plain
        features first, then ``views`` augmented ones."""
        p = self.policy
        inp = p.prepare(batch)
        rgb, skin = inp["rgb"], inp["skin"]
        b = len(rgb)
        if views:  # the augmented copies go through the encoders in the same pass as the plain images
            saved = p.cfg
            p.cfg = saved.model_copy(update={"augment": augment})
            try:
                aug = p.augment(rgb.repeat_interleave(views, 0), inp["mask"].repeat_interleave(views, 0), gen)
            finally:
                p.cfg = saved
            rgb = torch.cat([rgb, aug])
            skin = None if skin is None else torch.cat([skin, skin.repeat_interleave(views, 0)])
        toks = p.model.features(p.normalize_images(rgb), skin)
        chunks = p.model.head([t[:b] for t in toks]) * p.stats["action_std"] + p.stats["action_mean"]
        feats = torch.cat(toks, -1)
        plain_then_views = torch.cat([feats[:b, None], feats[b:].reshape(b, views, feats.shape[-1])], 1)
        return plain_then_views.numpy(), chunks.double().numpy()

    def step(self, obs: dict, views: int = 0, augment: str = "semantic", gen=None):
        """(features (1 + views, F), base action (action_dim,)) of one env observation; advances the ensemble."""
        f, chunk = self.encode(self.policy.observation_batch(obs), views, augment, gen)
        return f[0], self.ensemble.update(chunk[0])

    def state(self, feat: np.ndarray, base_action: np.ndarray) -> np.ndarray:
        """The actor's and critic's input: features and the standardized base action."""
        b = np.broadcast_to((base_action - self.action_mean) / self.action_std, (*feat.shape[:-1], len(base_action)))
        return np.concatenate([feat, b], -1).astype(np.float32)


# ----------------------------------------------------------------------------------------------- the policy
class ResidualPolicy(Policy):
    """The frozen base policy plus a trained residual actor (deterministic). Checkpoint: ``policy.json``
    (the config and the bound), ``actor.safetensors``; the base policy is loaded from its recorded folder."""

    def __init__(self, cfg: ResidualConfig | dict, bound, actor: Actor | None = None):
        self.cfg = cfg if isinstance(cfg, ResidualConfig) else ResidualConfig.from_dict(cfg)
        self.bound = np.asarray(bound, np.float64)
        self.base = FrozenBase(self.cfg.base)
        obs_dim = self.base.feature_dim + len(self.base.action_mean)
        self.actor = actor if actor is not None else Actor(obs_dim, len(self.cfg.offset_dims), self.cfg.hidden)
        self.last_malformed = False

    def config(self) -> dict:
        return {**asdict(self.cfg), "bound": self.bound.tolist()}

    def reset(self, task=None, seed=None) -> None:
        self.base.reset()

    def bind(self, action_space) -> None:
        super().bind(action_space)
        self.base.policy.bind(action_space)

    def select_action(self, obs, info=None) -> np.ndarray:
        feat, b = self.base.step(obs)
        with torch.no_grad():
            u = self.actor(torch.as_tensor(self.base.state(feat[0], b))[None])[0].double().numpy()
        a = compose(b, u, self.bound, self.cfg.offset_dims)
        pred = self.base.policy._finish(Prediction(a[None], np.zeros(1, bool)))  # the one clipping place
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
    def load(cls, directory) -> ResidualPolicy:
        from safetensors.torch import load_file

        c = dict(read_meta(directory, cls.name)["config"])
        bound = c.pop("bound")
        p = cls(c, bound)
        p.actor.load_state_dict(load_file(str(Path(directory) / "actor.safetensors")))
        return p


if __name__ != "__main__":  # run with python -m, the module registers when taclab.rl.residual is imported
    register("vital_residual")(ResidualPolicy)


# ------------------------------------------------------------------------------------------------ replay
class Replay:
    """Observations (features of 1 + aug_views views, fp16) and n-step transitions between them."""

    def __init__(self, capacity: int, views: int, state_dim: int, act_dim: int):
        self.feats = np.zeros((capacity, views, state_dim), np.float16)
        self.s, self.s2 = np.zeros(capacity, np.int64), np.zeros(capacity, np.int64)
        self.u = np.zeros((capacity, act_dim), np.float32)
        self.ret, self.disc = np.zeros(capacity, np.float32), np.zeros(capacity, np.float32)
        self.n_obs = self.n = 0
        self.capacity = capacity

    def add_episode(self, states: np.ndarray, us: np.ndarray, rewards: np.ndarray, terminal: bool, cfg) -> None:
        """``states`` (T + 1, views, D), ``us`` (T, A), ``rewards`` (T,); n-step transitions from every step."""
        t_len = len(us)
        base = self.n_obs
        for i, s in enumerate(states):
            self.feats[(base + i) % self.capacity] = s
        self.n_obs += len(states)
        for t in range(t_len):
            m = min(cfg.n_step, t_len - t)
            ret = sum(cfg.gamma**k * rewards[t + k] for k in range(m))
            end = t + m == t_len and terminal
            k = self.n % self.capacity
            self.s[k], self.s2[k] = (base + t) % self.capacity, (base + t + m) % self.capacity
            self.u[k], self.ret[k], self.disc[k] = us[t], ret, 0.0 if end else cfg.gamma**m
            self.n += 1

    def sample(self, rng: np.random.Generator, batch: int):
        idx = rng.integers(0, min(self.n, self.capacity), batch)
        v = self.feats.shape[1]
        pick = lambda rows: self.feats[rows, rng.integers(1 if v > 1 else 0, v, batch)]  # augmented views if any
        t = lambda x: torch.as_tensor(np.asarray(x, np.float32))
        return t(pick(self.s[idx])), t(self.u[idx]), t(self.ret[idx]), t(self.disc[idx]), t(pick(self.s2[idx]))

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("feats", "s", "s2", "u", "ret", "disc")} | {
            "counts": np.array([self.n_obs, self.n])
        }

    def load(self, d) -> None:
        for k in ("feats", "s", "s2", "u", "ret", "disc"):
            getattr(self, k)[...] = d[k]
        self.n_obs, self.n = (int(x) for x in d["counts"])


# ---------------------------------------------------------------------------------------- the algorithm
def demo_episodes(cfg: ResidualConfig):
    """(actions, goal errors, successes) per demonstration episode, with the frames' observations."""
    from taclab.data import load_arrays

    cols = ["observation.wrist_rgb", "observation.wrist_mask", "observation.skin", "action"]
    cols += ["next.goal_error_mm", "next.success", "episode_index"]
    a = load_arrays(cfg.demos, cfg.task, columns=cols, progress=False)
    ep = a["episode_index"]
    for e in np.unique(ep):
        rows = np.flatnonzero(ep == e)
        yield {k: v[rows] for k, v in a.items()}


def seed_with_demos(cfg, base: FrozenBase, replay: Replay, bound, gen) -> int:
    """Put every demonstration into the buffer; returns the transitions added."""
    added = 0
    for d in demo_episodes(cfg):
        base.reset()
        states, us, rewards = [], [], []
        for i in range(len(d["action"])):
            obs = {"wrist_rgb": d["observation.wrist_rgb"][i], "wrist_mask": d["observation.wrist_mask"][i, ..., 0]}
            obs["skin"] = d["observation.skin"][i]
            f, b = base.step(obs, cfg.aug_views, cfg.augment, gen)
            states.append(base.state(f, b))
            u = (d["action"][i, list(cfg.offset_dims)] - b[list(cfg.offset_dims)]) / np.maximum(bound, 1e-9)
            us.append(np.where(bound > 0, np.clip(u, -1, 1), 0.0))  # a dimension the demos never move has no offset
            info = {"goal_error_mm": d["next.goal_error_mm"][i], "is_success": bool(d["next.success"][i])}
            rewards.append(reward_of(info, i == len(d["action"]) - 1, cfg))
        states.append(states[-1])  # the last demonstration step is terminal: its next state is never used
        replay.add_episode(np.stack(states), np.stack(us), np.asarray(rewards), True, cfg)
        added += len(us)
    return added


def _write_rows(path: Path, columns: list[str], rows: list[dict], keep_until: int | None = None) -> None:
    old = []
    if keep_until is not None and path.is_file():
        with open(path, newline="") as fh:
            old = [r for r in csv.DictReader(fh) if int(r["env_step"]) <= keep_until]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(old + rows)


def _append_row(path: Path, columns: list[str], row: dict) -> None:
    with open(path, "a", newline="") as fh:
        csv.DictWriter(fh, columns).writerow(row)


EPISODE_COLUMNS = ["env_step", "episode", "return", "success", "length", "noise_std", "elapsed_s"]
EVAL_COLUMNS = ["env_step", "success", "episodes", "elapsed_s"]


def plot_curves(out: Path) -> Path | None:
    """curves.png: success and return against env steps (training episodes smoothed, evaluations as points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.utils import save_png

    def read(p):
        if not p.is_file():
            return []
        with open(p, newline="") as fh:
            return list(csv.DictReader(fh))

    ep, ev = read(out / "episodes.csv"), read(out / "eval.csv")
    if not ep and not ev:
        return None
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    if ep:
        x = np.array([int(r["env_step"]) for r in ep])
        for i, (key, scale) in enumerate((("success", 100.0), ("return", 1.0))):
            y = np.array([float(r[key]) for r in ep]) * scale
            k = max(1, min(20, len(y) // 5))
            sm = np.convolve(y, np.ones(k) / k, mode="valid")
            ax[i].plot(x[k - 1 :], sm, color="C0", label=f"training episodes (mean of {k})")
    if ev:
        x = [int(r["env_step"]) for r in ev]
        ax[0].plot(x, [100 * float(r["success"]) for r in ev], "o-", color="C3", label="evaluation")
    ax[0].set_ylabel("success (%)")
    ax[0].set_ylim(-2, 102)
    ax[1].set_ylabel("return (training episodes)")
    for a in ax:
        a.set_xlabel("env steps")
        a.legend(fontsize=8)
    fig.suptitle(f"residual RL: {out.name}")
    fig.tight_layout()
    p = save_png(out / "curves.png", fig)
    plt.close(fig)
    return p


def evaluate_policy(policy: ResidualPolicy, cfg: ResidualConfig, env_cfg: dict, folder: Path, episodes: int) -> dict:
    """Deterministic closed-loop episodes of the residual policy saved in ``folder``."""
    from taclab.envs.vital import ENV_IDS
    from taclab.eval.rollout import evaluate

    policy.save(folder)
    res = evaluate(
        str(folder),
        ENV_IDS[cfg.task],
        [{}],
        episodes,
        seed=cfg.seed + 17,
        workers=cfg.eval_workers,
        env_config=env_cfg,
        progress=False,
    )[0]
    return {"success": float(np.mean([r.success for r in res])), "episodes": len(res)}


def train_residual(cfg: ResidualConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train the residual actor of ``cfg`` into the run folder ``out``; returns the summary."""
    with FolderLock(out, "residual RL run"):  # a second writer fails naming the holder
        return _train_residual(cfg, Path(out), resume, progress)


def _train_residual(cfg: ResidualConfig, out: Path, resume: bool, progress: bool) -> dict:
    from rich.progress import Progress

    from taclab.envs.base import make
    from taclab.envs.vital import ENV_IDS
    from taclab.utils import atomic_write_text

    ckpt = out / "checkpoint"
    if resume and not (ckpt / "state.json").is_file():
        raise ValueError(f"--resume: no checkpoint in {ckpt}")
    if not resume and (out / "config.json").is_file():
        raise ValueError(f"{out} already holds a residual RL run: pass --resume or pick a new --out")
    if resume:
        prev, now = json.loads((out / "config.json").read_text()), json.loads(json.dumps(asdict(cfg)))
        diff = sorted(k for k in set(prev) | set(now) if k != "total_steps" and prev.get(k) != now.get(k))
        if diff:
            raise ValueError(
                f"--resume with a different config than the run in {out}: {diff} (only total_steps may change)"
            )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))

    # 1. the frozen base, the env (its wrist image as the base was trained on), the bound
    base = FrozenBase(cfg.base)
    h, w = base.policy.io.inputs["observation.wrist_rgb"].shape[:2]
    env_cfg = {**cfg.env, "image_size": [h, w], "masks": True}
    env = make(ENV_IDS[cfg.task], **env_cfg)
    base.policy.bind(env.action_space)
    if cfg.demos:
        demo_actions = np.concatenate([d["action"] for d in demo_episodes(cfg)])
    else:
        demo_actions = base.policy.stats["action_absmax"].double().numpy()[None]
    bound = offset_bound(demo_actions, cfg.offset_fraction, cfg.offset_dims)

    # 2. networks, optimizers, buffer
    torch.manual_seed(cfg.seed)
    obs_dim, act_dim = base.feature_dim + len(base.action_mean), len(cfg.offset_dims)
    actor = Actor(obs_dim, act_dim, cfg.hidden)
    critics = Critics(obs_dim, act_dim, cfg.hidden, cfg.critics)
    actor_t, critics_t = copy.deepcopy(actor), copy.deepcopy(critics)
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.lr, fused=True)  # fused: one kernel for all parameters
    opt_c = torch.optim.Adam(critics.parameters(), lr=cfg.lr, fused=True)
    online, target_nets = [*critics.parameters(), *actor.parameters()], [*critics_t.parameters(), *actor_t.parameters()]
    views = 1 + cfg.aug_views
    replay = Replay(cfg.buffer_size, views, obs_dim, act_dim)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    state = {"step": 0, "episode": 0, "elapsed_s": 0.0, "demo_transitions": 0, "updates": 0}
    policy = ResidualPolicy(cfg, bound, actor)
    policy.base = base

    if resume:
        nets = torch.load(ckpt / "nets.pt", weights_only=False)
        for m, k in ((actor, "actor"), (critics, "critics"), (actor_t, "actor_t"), (critics_t, "critics_t")):
            m.load_state_dict(nets[k])
        opt_a.load_state_dict(nets["opt_a"])
        opt_c.load_state_dict(nets["opt_c"])
        torch.set_rng_state(nets["torch_rng"])
        gen.set_state(nets["gen"])
        replay.load(np.load(ckpt / "replay.npz"))
        state = json.loads((ckpt / "state.json").read_text())
        rng.bit_generator.state = state.pop("rng")
        _write_rows(out / "episodes.csv", EPISODE_COLUMNS, [], keep_until=state["step"])
        _write_rows(out / "eval.csv", EVAL_COLUMNS, [], keep_until=state["step"])
    else:
        _write_rows(out / "episodes.csv", EPISODE_COLUMNS, [])
        _write_rows(out / "eval.csv", EVAL_COLUMNS, [])
        if cfg.demos:
            state["demo_transitions"] = seed_with_demos(cfg, base, replay, bound, gen)

    def save_checkpoint():
        tmp = ckpt.with_name("checkpoint.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        nets = {"actor": actor.state_dict(), "critics": critics.state_dict(), "actor_t": actor_t.state_dict()}
        nets |= {"critics_t": critics_t.state_dict(), "opt_a": opt_a.state_dict(), "opt_c": opt_c.state_dict()}
        nets |= {"torch_rng": torch.get_rng_state(), "gen": gen.get_state()}
        torch.save(nets, tmp / "nets.pt")
        np.savez(tmp / "replay.npz", **replay.state_dict())
        (tmp / "state.json").write_text(json.dumps({**state, "rng": rng.bit_generator.state}))
        old = ckpt.with_name("checkpoint.old")
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        if old.exists():
            import shutil

            shutil.rmtree(old)

    def update():
        s, u, ret, disc, s2 = replay.sample(rng, cfg.batch_size)
        with torch.no_grad():
            target = ret + disc * critics_t(s2, actor_t(s2)).min(0).values
        loss_c = F.mse_loss(critics(s, u), target.expand(cfg.critics, -1))
        opt_c.zero_grad()
        loss_c.backward()
        opt_c.step()
        with torch.no_grad():  # soft target update of critics and actor: target += tau * (online - target)
            torch._foreach_lerp_(target_nets, online, cfg.tau)
        return s

    # 3. the loop: one episode at a time; checkpoints at episode ends
    t0 = time.perf_counter() - state["elapsed_s"]
    last_ckpt, next_eval = (
        state["step"],
        (state["step"] // cfg.eval_every + 1) * cfg.eval_every if cfg.eval_every else None,
    )
    bar = Progress(disable=not progress, transient=False)
    with bar:
        task = bar.add_task(f"residual RL {cfg.task}", total=cfg.total_steps, completed=state["step"])
        while state["step"] < cfg.total_steps:
            seed = int(np.random.SeedSequence([cfg.seed, 5, state["episode"]]).generate_state(1)[0] % 2**31)
            obs, info = env.reset(seed=seed)
            base.reset()
            f, b = base.step(obs, cfg.aug_views, cfg.augment, gen)
            states, us, rewards, ret, terminal = [base.state(f, b)], [], [], 0.0, False
            while True:
                noise = linear_schedule(cfg.noise_start, cfg.noise_end, cfg.noise_steps, state["step"])
                with torch.no_grad():
                    u = actor(torch.as_tensor(states[-1][0])[None])[0].numpy()
                u = np.clip(u + rng.normal(0, noise, u.shape), -1, 1)
                a = base.policy._finish(Prediction(compose(b, u, bound, cfg.offset_dims)[None], np.zeros(1, bool)))
                obs, _, term, trunc, info = env.step(a.actions[0].astype(np.float32))
                r = reward_of(info, term or trunc, cfg)
                f, b = base.step(obs, cfg.aug_views, cfg.augment, gen)
                states.append(base.state(f, b))
                us.append(u.astype(np.float32))
                rewards.append(r)
                ret += r
                state["step"] += 1
                if replay.n + len(us) >= cfg.learning_starts:
                    for _ in range(cfg.utd):
                        s = update()
                        state["updates"] += 1
                    if cfg.utd:
                        u_pi = actor(s)
                        critics.requires_grad_(False)  # the actor's gradient only: no critic weight gradients
                        loss_a = -critics(s, u_pi).mean() + cfg.actor_l2 * (u_pi**2).mean()
                        opt_a.zero_grad()
                        loss_a.backward()
                        opt_a.step()
                        critics.requires_grad_(True)
                bar.update(task, completed=state["step"])
                if term or trunc:
                    terminal = term
                    break
            replay.add_episode(np.stack(states), np.stack(us), np.asarray(rewards), terminal, cfg)
            state["episode"] += 1
            state["elapsed_s"] = time.perf_counter() - t0
            row = {
                "env_step": state["step"],
                "episode": state["episode"],
                "return": round(ret, 4),
                "success": int(bool(info["is_success"])),
                "length": len(us),
                "noise_std": round(noise, 4),
                "elapsed_s": round(state["elapsed_s"], 1),
            }
            _append_row(out / "episodes.csv", EPISODE_COLUMNS, row)
            done = state["step"] >= cfg.total_steps
            if next_eval is not None and cfg.eval_episodes and (state["step"] >= next_eval or done):
                ev = evaluate_policy(policy, cfg, env_cfg, out / "eval_policy", cfg.eval_episodes)
                _append_row(
                    out / "eval.csv",
                    EVAL_COLUMNS,
                    {
                        "env_step": state["step"],
                        "success": ev["success"],
                        "episodes": ev["episodes"],
                        "elapsed_s": round(state["elapsed_s"], 1),
                    },
                )
                next_eval = (state["step"] // cfg.eval_every + 1) * cfg.eval_every
            if state["step"] - last_ckpt >= cfg.checkpoint_every or done:
                save_checkpoint()
                last_ckpt = state["step"]
    env.close()

    # 4. the final policy, its evaluation, the curves
    policy.save(out / "policy")
    final = None
    if cfg.eval_episodes and not cfg.eval_every:
        final = evaluate_policy(policy, cfg, env_cfg, out / "eval_policy", cfg.eval_episodes)
    plot_curves(out)
    summary = {
        "task": cfg.task,
        "env_steps": state["step"],
        "episodes": state["episode"],
        "updates": state["updates"],
        "demo_transitions": state["demo_transitions"],
        "train_time_s": round(time.perf_counter() - t0, 1),
        "bound": bound.tolist(),
        "final_eval_success": final["success"] if final else _last_eval(out),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _last_eval(out: Path) -> float | None:
    with open(out / "eval.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return float(rows[-1]["success"]) if rows else None


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    import yaml

    from taclab.overrides import merge, nest

    ap = argparse.ArgumentParser(prog="python -m taclab.rl.residual", description=__doc__.split("\n")[0])
    ap.add_argument("--base", help="frozen BC policy: checkpoint or training run folder")
    ap.add_argument("--demos", default="", help="demonstration dataset folder (generator vital)")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--config", help="YAML file of ResidualConfig keys")
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
        if args.base:
            d["base"] = args.base
        if args.demos:
            d["demos"] = args.demos
        cfg = ResidualConfig.from_dict(d)
        summary = train_residual(cfg, args.out, resume=args.resume)
    except (ValueError, FileNotFoundError, FolderLockedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    from taclab.rl.residual import main as _main  # the registered module, not this script's copy

    raise SystemExit(_main())
