"""DPPO: fine-tuning a diffusion policy with PPO on its denoising chain (Ren et al., 2024), as VT-Refine uses it.

The two-level MDP. Every decision (one env observation) the policy denoises an action chunk in ``ddim_steps``
DDIM steps; the last ``ft_denoising_steps`` (K) of them are stochastic transitions of an inner MDP,

    x_{k+1} ~ N(mu_theta(x_k, t_k, obs), sigma^2 I),   sigma = min_sampling_std,

``mu_theta`` the deterministic DDIM step of the fine-tuned denoiser (:meth:`PointCloudDiffusionPolicy.ddim_mean`);
the earlier steps are the deterministic DDIM steps of the frozen pre-trained denoiser. The final x (clipped to
[-1, 1], un-scaled) is the chunk; its first ``act_steps`` actions run in the env (:class:`ChunkSteps`), and the
decision's reward is the sum of their rewards (1 on success, else 0).

The log-probability of transition k is the Gaussian log-density of x_{k+1} around mu_theta(x_k) with the std
floored at ``min_logprob_std``, averaged over the executed actions (the first ``act_steps`` of the chunk) and
the action dimensions, as DPPO does (:func:`chain_logprobs`).
Advantages come from GAE over decisions (``gamma`` 0.999, ``gae_lambda`` 0.95) with a critic on the privileged
state of ``info`` (``info["privileged"]``: part poses, insertion depth, hands' poses): an asymmetric critic. The
advantage of denoising step k is the decision's advantage times ``gamma_denoising ** (K - 1 - k)``. The actor
loss is PPO's clipped surrogate on the ratio of each transition's probability; the critic regresses the
returns (:func:`ppo_update`); the first ``critic_warmup_iters`` iterations train only the critic. After every
update ``action_drift`` (logged) measures how far the executed actions of the deterministic policy have moved
from the pre-trained policy's. A truncated episode bootstraps with the critic's value of its last state.

Rollouts run over Gymnasium vector envs (``async``: one subprocess per env) with same-step autoreset. A run
folder holds ``run.json`` (the config and the pre-trained checkpoint), ``checkpoint/`` (resumable after every
iteration: the fine-tuned denoiser, the critic, both optimizers, counters), ``log.csv`` (per iteration: env
steps, episodes finished and their success rate, losses, KL, clip fraction, action drift, env steps/s), ``train.log``,
``success_curve.png`` / ``success_curve.csv`` (success of the training episodes against env steps) and
``policy/``: the fine-tuned policy, an ordinary ``pointcloud_dp`` checkpoint (loadable by
``taclab.policies.load_policy``; with K < ddim_steps it also holds the frozen denoiser). A resumed run continues
after its last finished iteration; its envs start new episodes.

Run: ``python -m taclab.rl.dppo --pretrained RUN_OR_CHECKPOINT --out runs/dppo --set num_envs=4 --set
env.assembly=square``; every field of :class:`DPPOConfig` is a ``--set`` key.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from taclab.policies.pointcloud_dp import CLOUD, STATE, ddim_timesteps


# ---------------------------------------------------------------------------------------------------- the config
@dataclass
class DPPOConfig:
    """Hyper-parameters of a DPPO fine-tuning run (every one a ``--set`` key)."""

    env_id: str = "taclab/BimanualAssembly-v0"
    """the environment (its ``info`` must hold ``privileged``, a flat float vector, for the critic)"""
    env: dict = field(default_factory=dict)
    """env config overrides (e.g. ``assembly: square``); must match what the policy was trained on"""
    num_envs: int = 2
    """parallel envs"""
    vectorization: str = "async"
    """Gymnasium vector env: ``async`` (one subprocess per env) or ``sync`` (all in this process)"""
    n_steps: int = 16
    """decisions per env per iteration (each runs act_steps env steps)"""
    total_env_steps: int = 50_000
    """stop once this many env steps have run"""
    act_steps: int = 8
    """actions of each chunk executed (the policy's n_action_steps)"""
    ddim_steps: int = 5
    """DDIM steps of the denoising chain"""
    ft_denoising_steps: int = 5
    """K: the last K DDIM steps are fine-tuned (stochastic); the earlier ones use the frozen denoiser"""
    min_sampling_std: float = 0.1
    """std of the Gaussian noise of each fine-tuned denoising step (in the [-1, 1] action scale)"""
    min_logprob_std: float = 0.1
    """floor of the std in the log-probabilities of the denoising transitions"""
    gamma: float = 0.999
    """discount per decision"""
    gae_lambda: float = 0.95
    """GAE lambda over decisions"""
    gamma_denoising: float = 0.99
    """discount of the advantage along the denoising chain: step k of K gets gamma_denoising ** (K - 1 - k)"""
    clip_coef: float = 0.01
    """PPO clip range of the probability ratio"""
    actor_lr: float = 1e-5
    """Adam learning rate of the fine-tuned denoiser"""
    critic_lr: float = 1e-3
    """Adam learning rate of the critic"""
    update_epochs: int = 5
    """passes over each iteration's rollout"""
    minibatch_size: int = 16
    """decisions per minibatch (each with its K transitions)"""
    max_grad_norm: float = 1.0
    """gradient-norm clip of both optimizers"""
    target_kl: float | None = 1.0
    """stop an iteration's update once the approximate KL exceeds this (None: never)"""
    norm_adv: bool = True
    """standardize the advantages of each iteration's rollout"""
    reward_scale: float = 1.0
    """multiplies the env rewards"""
    drift_probe: int = 32
    """decisions of each rollout on which ``action_drift`` (logged) compares the fine-tuned and pre-trained actions"""
    critic_hidden: tuple[int, ...] = (256, 256)
    """hidden widths of the critic MLP"""
    train_actor: bool = True
    """false: only the critic learns"""
    critic_warmup_iters: int = 0
    """the first this many iterations train only the critic (the actor waits for advantages worth following)"""
    seed: int = 0
    """seed of the env resets and of all sampling"""
    threads: int | None = None
    """torch CPU threads (None: torch's default)"""
    device: str = "cpu"
    """torch device of the policy and the critic"""

    def __post_init__(self):
        checks = {
            "num_envs": self.num_envs >= 1,
            "n_steps": self.n_steps >= 1,
            "total_env_steps": self.total_env_steps >= 1,
            "act_steps": self.act_steps >= 1,
            "ddim_steps": self.ddim_steps >= 1,
            "ft_denoising_steps": 1 <= self.ft_denoising_steps <= self.ddim_steps,
            "min_sampling_std": self.min_sampling_std > 0,
            "min_logprob_std": self.min_logprob_std > 0,
            "gamma": 0 < self.gamma <= 1,
            "gae_lambda": 0 <= self.gae_lambda <= 1,
            "gamma_denoising": 0 < self.gamma_denoising <= 1,
            "clip_coef": self.clip_coef > 0,
            "actor_lr": self.actor_lr >= 0,
            "critic_lr": self.critic_lr > 0,
            "update_epochs": self.update_epochs >= 1,
            "minibatch_size": self.minibatch_size >= 1,
            "critic_warmup_iters": self.critic_warmup_iters >= 0,
            "drift_probe": self.drift_probe >= 1,
            "max_grad_norm": self.max_grad_norm > 0,
            "vectorization": self.vectorization in ("async", "sync"),
        }
        allowed = {
            "ft_denoising_steps": f"1 to ddim_steps ({self.ddim_steps})",
            "vectorization": "'async' or 'sync'",
            "critic_warmup_iters": ">= 0",
            "gamma": "in (0, 1]",
            "gae_lambda": "in [0, 1]",
            "gamma_denoising": "in (0, 1]",
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"DPPO config {key}={getattr(self, key)!r} is invalid; allowed: {allowed.get(key, '> 0')}"
                )
        self.critic_hidden = tuple(int(v) for v in self.critic_hidden)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DPPOConfig:
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown DPPO config key {bad[0]!r}; allowed: {sorted(known)}")
        d = dict(d)
        for f in fields(cls):  # "3e-6" from a --set is a string to YAML; a float field takes it as a number
            if f.name in d and isinstance(d[f.name], str) and f.type in ("float", "float | None"):
                try:
                    d[f.name] = float(d[f.name])
                except ValueError:
                    raise ValueError(f"DPPO config {f.name}={d[f.name]!r} is not a number") from None
        return cls(**d)


# ------------------------------------------------------------------------------------------- env-side chunking
class ChunkSteps(gym.Wrapper):
    """One env step runs a chunk of ``steps`` actions (``(steps, action_dim)``), stopping early when the episode
    ends; the reward is their sum, ``info["chunk_steps"]`` how many actions ran."""

    def __init__(self, env: gym.Env, steps: int):
        super().__init__(env)
        self.steps = int(steps)
        box = env.action_space
        self.action_space = gym.spaces.Box(
            np.repeat(box.low[None], steps, 0), np.repeat(box.high[None], steps, 0), dtype=box.dtype
        )

    def step(self, actions):
        total, ran = 0.0, 0
        for a in np.asarray(actions)[: self.steps]:
            obs, r, term, trunc, info = self.env.step(a)
            total += float(r)
            ran += 1
            if term or trunc:
                break
        info = dict(info)
        info["chunk_steps"] = ran
        return obs, total, term, trunc, info


def make_envs(cfg: DPPOConfig):
    from gymnasium.vector import AutoresetMode

    import taclab  # noqa: F401 - registers the envs

    return gym.make_vec(
        cfg.env_id,
        num_envs=cfg.num_envs,
        vectorization_mode=cfg.vectorization,
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        wrappers=[functools.partial(ChunkSteps, steps=cfg.act_steps)],
        **cfg.env,
    )


# -------------------------------------------------------------------------------------------------- the critic
class Critic(nn.Module):
    """MLP on the privileged state, standardized by statistics fixed from the first rollout."""

    def __init__(self, dim: int, hidden: tuple[int, ...]):
        super().__init__()
        layers, c = [], dim
        for h in hidden:
            layers += [nn.Linear(c, h), nn.Tanh()]
            c = h
        self.mlp = nn.Sequential(*layers, nn.Linear(c, 1))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.mlp((s - self.mean) / self.std).squeeze(-1)


# --------------------------------------------------------------------------------------- the denoising chain
def chain_steps(policy, cfg: DPPOConfig) -> list[tuple[int, int]]:
    """(t, t_prev) of the chain's DDIM steps."""
    return ddim_timesteps(policy.cfg.train_timesteps, cfg.ddim_steps)


def gaussian_logprob(x: torch.Tensor, mean: torch.Tensor, std: float, steps: int | None = None) -> torch.Tensor:
    """Elementwise log N(x; mean, std^2), averaged over the first ``steps`` actions of the chunk (all with None)
    and the action dimensions: ``x`` and ``mean`` are (..., horizon, action_dim)."""
    x, mean = x[..., :steps, :], mean[..., :steps, :]
    return (-((x - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)).mean((-2, -1))


@torch.no_grad()
def sample_chain(policy, frozen, inputs, cfg: DPPOConfig, generator: torch.Generator, stochastic: bool = True):
    """Denoise one chunk per observation. Returns the chain (B, K + 1, horizon, action_dim) of the fine-tuned
    steps' inputs and outputs, their log-probabilities (B, K) and the chunk (B, horizon, action_dim) in the
    [-1, 1] scale. ``stochastic=False`` gives the deterministic DDIM chunk (log-probabilities of the means)."""
    ft = policy.model.net
    steps = chain_steps(policy, cfg)
    first_ft = cfg.ddim_steps - cfg.ft_denoising_steps
    b = len(inputs["state"])
    conds = {"ft": ft.encode(inputs["points"], inputs["state"])}
    if first_ft:
        conds["frozen"] = frozen.encode(inputs["points"], inputs["state"])
    x = torch.randn((b, policy.cfg.horizon, policy.io.action_dim), generator=generator).to(policy.device)
    chain, logps = [], []
    for i, (t, tp) in enumerate(steps):
        if i < first_ft:
            x = policy.ddim_mean(frozen, x, t, tp, conds["frozen"])
            continue
        chain.append(x)
        mean = policy.ddim_mean(ft, x, t, tp, conds["ft"])
        if stochastic:
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = mean + cfg.min_sampling_std * noise
        else:
            x = mean
        logps.append(gaussian_logprob(x, mean, max(cfg.min_sampling_std, cfg.min_logprob_std), cfg.act_steps))
    chain.append(x)
    return torch.stack(chain, 1), torch.stack(logps, 1), x.clamp(-1, 1)


def chain_logprobs(policy, inputs, chain: torch.Tensor, cfg: DPPOConfig) -> torch.Tensor:
    """Log-probabilities (B, K) of the recorded transitions ``chain[:, k] -> chain[:, k + 1]`` under the current
    fine-tuned denoiser (with gradients)."""
    ft = policy.model.net
    steps = chain_steps(policy, cfg)[cfg.ddim_steps - cfg.ft_denoising_steps :]
    cond = ft.encode(inputs["points"], inputs["state"])
    std = max(cfg.min_sampling_std, cfg.min_logprob_std)
    out = [
        gaussian_logprob(chain[:, k + 1], policy.ddim_mean(ft, chain[:, k], t, tp, cond), std, cfg.act_steps)
        for k, (t, tp) in enumerate(steps)
    ]
    return torch.stack(out, 1)


def ppo_update(
    policy,
    opt_a,
    batch: dict[str, np.ndarray],
    chains: torch.Tensor,
    old_logp: torch.Tensor,
    adv: np.ndarray,
    cfg: DPPOConfig,
    gen: torch.Generator,
    train_actor: bool = True,
    critic: tuple | None = None,
) -> dict[str, list[float]]:
    """PPO on one rollout's denoising transitions: ``update_epochs`` passes in minibatches of ``minibatch_size``
    decisions (``batch``: their observations, ``chains`` (B, K + 1, H, A), ``old_logp`` (B, K), ``adv`` (B,)
    the decisions' advantages, standardized here with ``norm_adv``). ``critic``: (critic, optimizer, privileged
    states (B, P), returns (B,)), regressed on the same minibatches. Returns the per-minibatch losses, approximate
    KL and clip fractions."""
    adv_t = torch.as_tensor(np.asarray(adv), dtype=torch.float32, device=cfg.device)
    if cfg.norm_adv and len(adv_t) > 1:
        adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8)
    k_idx = torch.arange(cfg.ft_denoising_steps, device=cfg.device)
    weight = cfg.gamma_denoising ** (cfg.ft_denoising_steps - 1 - k_idx).float()
    if critic is not None:
        net_c, opt_c, priv, ret = critic
        priv_t = torch.as_tensor(np.asarray(priv, np.float32), device=cfg.device)
        ret_t = torch.as_tensor(np.asarray(ret), dtype=torch.float32, device=cfg.device)
    n = len(chains)
    out: dict[str, list[float]] = {"policy_loss": [], "value_loss": [], "approx_kl": [], "clipfrac": []}
    policy.model.train()
    for _epoch in range(cfg.update_epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, cfg.minibatch_size):
            mb = order[s : s + cfg.minibatch_size].numpy()
            if critic is not None:
                v_loss = 0.5 * ((net_c(priv_t[mb]) - ret_t[mb]) ** 2).mean()
                opt_c.zero_grad()
                v_loss.backward()
                nn.utils.clip_grad_norm_(net_c.parameters(), cfg.max_grad_norm)
                opt_c.step()
                out["value_loss"].append(float(v_loss.detach()))
            if not train_actor:
                continue
            inputs = policy.prepare({k: v[mb] for k, v in batch.items()})
            new_logp = chain_logprobs(policy, inputs, chains[mb], cfg)
            log_ratio = new_logp - old_logp[mb]
            ratio = log_ratio.exp()
            a = adv_t[mb][:, None] * weight[None]
            pg = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
            opt_a.zero_grad()
            pg.backward()
            nn.utils.clip_grad_norm_(policy.model.net.parameters(), cfg.max_grad_norm)
            opt_a.step()
            with torch.no_grad():
                out["approx_kl"].append(float(((ratio - 1) - log_ratio).mean()))
                out["clipfrac"].append(float(((ratio - 1).abs() > cfg.clip_coef).float().mean()))
            out["policy_loss"].append(float(pg.detach()))
            if cfg.target_kl is not None and out["approx_kl"][-1] > cfg.target_kl:
                policy.model.eval()
                return out
    policy.model.eval()
    return out


@torch.no_grad()
def action_drift(policy, frozen, inputs, cfg: DPPOConfig, seed: int = 0) -> float:
    """RMS difference, in the [-1, 1] action scale, between the executed actions (the first ``act_steps`` of the
    chunk) of the fine-tuned policy and of the pre-trained one, both denoised deterministically from the same
    initial noise: how far fine-tuning has moved the policy that is evaluated."""
    first_ft = cfg.ddim_steps - cfg.ft_denoising_steps
    b = len(inputs["state"])
    x0 = torch.randn((b, policy.cfg.horizon, policy.io.action_dim), generator=torch.Generator().manual_seed(seed))
    conds = {id(n): n.encode(inputs["points"], inputs["state"]) for n in (policy.model.net, frozen)}
    out = []
    for tuned in (True, False):
        x = x0.to(policy.device)
        for i, (t, tp) in enumerate(chain_steps(policy, cfg)):
            net = policy.model.net if tuned and i >= first_ft else frozen
            x = policy.ddim_mean(net, x, t, tp, conds[id(net)])
        out.append(x.clamp(-1, 1)[:, : cfg.act_steps])
    return float(((out[0] - out[1]) ** 2).mean().sqrt())


def gae(rewards, values, dones, last_value, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and returns (T, N) from rewards, values and dones (T, N) (``dones[t]``: the episode ended at
    decision t, so decision t + 1 starts a new one) and the value after the last decision (N,)."""
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        nxt = last_value if t == len(rewards) - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * nxt * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


# ----------------------------------------------------------------------------------------------- the run folder
LOG_COLUMNS = (
    "iteration", "env_steps", "episodes", "success_rate", "mean_return", "policy_loss", "value_loss",
    "approx_kl", "clipfrac", "action_drift", "env_steps_per_s", "elapsed_s",
)  # fmt: skip


def _fine_tuned_policy(policy, frozen, cfg: DPPOConfig):
    """The fine-tuned policy as an ordinary ``pointcloud_dp`` (with the frozen denoiser of the first steps)."""
    from taclab.policies import make_policy

    first_ft = cfg.ddim_steps - cfg.ft_denoising_steps
    conf = {**policy.cfg.model_dump(), "inference_steps": cfg.ddim_steps, "frozen_steps": first_ft}
    conf["n_action_steps"] = cfg.act_steps
    out = make_policy("pointcloud_dp", config=conf, io=policy.io)
    out.model.net.load_state_dict(policy.model.net.state_dict())
    if first_ft:
        out.model.frozen.load_state_dict(frozen.state_dict())
    out.stats = {k: v.detach().cpu() for k, v in policy.stats.items()}
    return out


def _save_checkpoint(out: Path, policy, critic, opt_a, opt_c, state: dict) -> None:
    from safetensors.torch import save_file

    tmp = out / "checkpoint.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in policy.model.net.state_dict().items()},
        str(tmp / "ft.safetensors"),
    )
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in critic.state_dict().items()}, str(tmp / "critic.safetensors")
    )
    torch.save({"actor": opt_a.state_dict(), "critic": opt_c.state_dict()}, tmp / "optimizers.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    final, old = out / "checkpoint", out / "checkpoint.old"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        import shutil

        shutil.rmtree(old)


def success_curve(out: str | Path, window: int = 5) -> Path | None:
    """Plot log.csv's success rate of the training episodes against env steps (and its running mean over
    ``window`` iterations) into success_curve.png; the same numbers into success_curve.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.utils import save_png

    out = Path(out)
    rows = list(csv.DictReader(open(out / "log.csv"))) if (out / "log.csv").is_file() else []
    if not rows:
        return None
    steps = np.array([int(r["env_steps"]) for r in rows])
    eps = np.array([int(r["episodes"]) for r in rows], float)
    succ = np.array([float(r["success_rate"]) if r["success_rate"] not in ("", "nan") else np.nan for r in rows])
    wins = np.nan_to_num(succ) * eps
    k = np.ones(window)
    running = np.convolve(wins, k)[: len(wins)] / np.maximum(np.convolve(eps, k)[: len(eps)], 1)
    with open(out / "success_curve.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["env_steps", "episodes", "success_rate", f"success_rate_running_{window}"])
        w.writerows(zip(steps, eps.astype(int), succ, running, strict=True))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, succ, ".", color="0.6", label="per iteration")
    ax.plot(steps, running, "-", color="C0", label=f"running ({window} iterations)")
    ax.set_xlabel("env steps")
    ax.set_ylabel("success of training episodes")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title(out.name)
    fig.tight_layout()
    p = save_png(out / "success_curve.png", fig)
    plt.close(fig)
    return p


# ------------------------------------------------------------------------------------------------- the algorithm
def train(
    cfg: DPPOConfig, pretrained: str | Path, out: str | Path, resume: bool = False, progress: bool = True
) -> Path:
    """Fine-tune the ``pointcloud_dp`` policy of ``pretrained`` (a checkpoint or training run folder, or for
    RL from scratch a policy saved untrained) into the run folder ``out``; returns the fine-tuned policy's
    folder. ``resume`` continues the run in ``out`` (same config and pre-trained policy)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from safetensors.torch import load_file

    from taclab.policies import load_policy
    from taclab.policies.base import checkpoint_dir
    from taclab.utils import atomic_write_text

    out = Path(out)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    record = {
        "config": json.loads(json.dumps(asdict(cfg))),
        "pretrained": str(Path(checkpoint_dir(pretrained)).resolve()),
    }
    if (out / "run.json").is_file():
        prev = json.loads((out / "run.json").read_text())
        if not resume:
            raise ValueError(f"{out} already holds a DPPO run: pass resume=True (--resume) or pick a new out folder")
        a, b = dict(prev["config"]), dict(record["config"])
        a.pop("total_env_steps"), b.pop("total_env_steps")
        if a != b or prev["pretrained"] != record["pretrained"]:
            raise ValueError(f"resume: {out} was run with another config or pre-trained policy; pick a new out folder")
    elif resume:
        raise ValueError(f"resume: {out} holds no DPPO run")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.json", json.dumps(record, indent=2))

    # -- the actor: the pre-trained policy's denoiser (fine-tuned) and a frozen copy; the critic --------------
    policy = load_policy(pretrained, device=cfg.device)
    if policy.name != "pointcloud_dp":
        raise ValueError(f"DPPO fine-tunes a pointcloud_dp policy, {pretrained} holds {policy.name!r}")
    if policy.cfg.frozen_steps:
        raise ValueError(f"{pretrained} is already fine-tuned with frozen steps; start from the pre-trained policy")
    if cfg.act_steps > policy.cfg.horizon:
        raise ValueError(f"act_steps ({cfg.act_steps}) exceeds the policy's horizon ({policy.cfg.horizon})")
    frozen = copy.deepcopy(policy.model.net).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    envs = make_envs(cfg)
    try:
        obs, info = envs.reset(seed=[cfg.seed * 10_000 + i for i in range(cfg.num_envs)])
        priv_dim = int(np.asarray(info["privileged"]).shape[1])
        critic = Critic(priv_dim, cfg.critic_hidden).to(cfg.device)
        opt_a = torch.optim.Adam(policy.model.net.parameters(), lr=cfg.actor_lr)
        opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
        state = {"iteration": 0, "env_steps": 0, "episodes": 0, "elapsed_s": 0.0, "critic_stats": False}
        if resume and (out / "checkpoint" / "state.json").is_file():
            ck = out / "checkpoint"
            policy.model.net.load_state_dict(load_file(str(ck / "ft.safetensors")))
            critic.load_state_dict(load_file(str(ck / "critic.safetensors")))
            o = torch.load(ck / "optimizers.pt", weights_only=False)
            opt_a.load_state_dict(o["actor"])
            opt_c.load_state_dict(o["critic"])
            state = json.loads((ck / "state.json").read_text())
            obs, info = envs.reset(
                seed=[cfg.seed * 10_000 + 7919 * state["iteration"] + i for i in range(cfg.num_envs)]
            )
        if not resume or not (out / "log.csv").is_file():
            with open(out / "log.csv", "w", newline="") as fh:
                csv.writer(fh).writerow(LOG_COLUMNS)
        else:  # drop rows past the checkpoint
            rows = [r for r in csv.DictReader(open(out / "log.csv")) if int(r["iteration"]) <= state["iteration"]]
            with open(out / "log.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, LOG_COLUMNS)
                w.writeheader()
                w.writerows(rows)
        text = open(out / "train.log", "a")

        def say(msg: str) -> None:
            text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
            text.flush()

        say(f"{'resuming' if resume else 'starting'} DPPO from {record['pretrained']} at iteration "
            f"{state['iteration']}, {state['env_steps']} env steps; config {record['config']}")  # fmt: skip
        t0 = time.perf_counter() - state["elapsed_s"]
        columns = [TextColumn("[bold]DPPO"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[msg]}")]
        bar = Progress(*columns, TimeRemainingColumn(), disable=not progress)
        with bar:
            task = bar.add_task("dppo", total=cfg.total_env_steps, completed=state["env_steps"], msg="")
            while state["env_steps"] < cfg.total_env_steps:
                it = state["iteration"]
                gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)
                t_it = time.perf_counter()
                # -- 1. rollout: n_steps decisions in every env ------------------------------------------
                buf: dict[str, list] = {k: [] for k in ("cloud", "state", "priv", "chain", "logp", "rew", "done")}
                ep_success, ep_return, steps_run = [], [], 0
                running = np.zeros(cfg.num_envs)
                for _ in range(cfg.n_steps):
                    batch = {CLOUD: np.asarray(obs["point_cloud"]), STATE: np.asarray(obs["state"])}
                    inputs = policy.prepare(batch)
                    chain, logp, x = sample_chain(policy, frozen, inputs, cfg, gen)
                    chunk = policy.unscale(x).double().cpu().numpy()[:, : cfg.act_steps]
                    lo, hi = np.asarray(policy.io.action_low), np.asarray(policy.io.action_high)
                    chunk = np.clip(chunk, lo, hi).astype(np.float32)
                    priv = np.asarray(info["privileged"], np.float32)
                    obs, rew, term, trunc, info = envs.step(chunk)
                    done = term | trunc
                    fin = info.get("final_info", {})
                    zero = np.zeros(cfg.num_envs, int)
                    n_run = np.where(done, fin.get("chunk_steps", zero), info.get("chunk_steps", zero))
                    steps_run += int(np.sum(n_run))
                    r = rew.astype(np.float64) * cfg.reward_scale
                    running += r
                    if trunc.any():  # bootstrap a truncated episode from its last state
                        with torch.no_grad():
                            fv = critic(torch.as_tensor(np.asarray(fin["privileged"], np.float32), device=cfg.device))
                        r = r + cfg.gamma * np.where(trunc & ~term, fv.cpu().numpy(), 0.0)
                    for i in np.flatnonzero(done):
                        ep_success.append(bool(np.asarray(fin["is_success"])[i]))
                        ep_return.append(running[i])
                        running[i] = 0.0
                    for k, v in (("cloud", batch[CLOUD]), ("state", batch[STATE]),
                                 ("priv", priv), ("chain", chain.cpu()), ("logp", logp.cpu()), ("rew", r),
                                 ("done", done.astype(np.float64))):  # fmt: skip
                        buf[k].append(v)
                cloud = np.concatenate(buf["cloud"])  # (T * N, ...) decision-major
                st = np.concatenate(buf["state"])
                priv_all = np.stack(buf["priv"])  # (T, N, P)
                if not state["critic_stats"]:
                    flat = priv_all.reshape(-1, priv_all.shape[-1])
                    critic.mean.copy_(torch.as_tensor(flat.mean(0)))
                    critic.std.copy_(torch.as_tensor(np.maximum(flat.std(0), 1e-3)))
                    state["critic_stats"] = True
                with torch.no_grad():
                    values = critic(torch.as_tensor(priv_all, device=cfg.device)).cpu().numpy().astype(np.float64)
                    last_v = critic(torch.as_tensor(np.asarray(info["privileged"], np.float32), device=cfg.device))
                adv, ret = gae(np.stack(buf["rew"]), values, np.stack(buf["done"]), last_v.cpu().numpy(),
                               cfg.gamma, cfg.gae_lambda)  # fmt: skip
                t_roll = time.perf_counter() - t_it
                # -- 2. PPO on the denoising transitions -------------------------------------------------
                chains = torch.cat(buf["chain"]).to(cfg.device)  # (T * N, K + 1, H, A)
                old_logp = torch.cat(buf["logp"]).to(cfg.device)  # (T * N, K)
                stats = ppo_update(
                    policy, opt_a, {CLOUD: cloud, STATE: st}, chains, old_logp, adv.reshape(-1), cfg, gen,
                    train_actor=cfg.train_actor and it >= cfg.critic_warmup_iters,
                    critic=(critic, opt_c, priv_all.reshape(-1, priv_all.shape[-1]), ret.reshape(-1)),
                )  # fmt: skip
                pg_l, v_l, kls, clips = stats["policy_loss"], stats["value_loss"], stats["approx_kl"], stats["clipfrac"]
                policy.model.eval()
                probe = policy.prepare({CLOUD: cloud[: cfg.drift_probe], STATE: st[: cfg.drift_probe]})
                drift = action_drift(policy, frozen, probe, cfg, seed=cfg.seed)
                # -- 3. log and checkpoint --------------------------------------------------------------
                state["iteration"] = it + 1
                state["env_steps"] += steps_run
                state["episodes"] += len(ep_success)
                state["elapsed_s"] = time.perf_counter() - t0
                row = {
                    "iteration": it + 1,
                    "env_steps": state["env_steps"],
                    "episodes": len(ep_success),
                    "success_rate": float(np.mean(ep_success)) if ep_success else float("nan"),
                    "mean_return": float(np.mean(ep_return)) if ep_return else float("nan"),
                    "policy_loss": float(np.mean(pg_l)) if pg_l else float("nan"),
                    "value_loss": float(np.mean(v_l)),
                    "approx_kl": float(np.mean(kls)) if kls else float("nan"),
                    "clipfrac": float(np.mean(clips)) if clips else float("nan"),
                    "action_drift": drift,
                    "env_steps_per_s": steps_run / max(t_roll, 1e-9),
                    "elapsed_s": state["elapsed_s"],
                }
                with open(out / "log.csv", "a", newline="") as fh:
                    csv.DictWriter(fh, LOG_COLUMNS).writerow(row)
                say(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
                _save_checkpoint(out, policy, critic, opt_a, opt_c, state)
                msg = f"success {row['success_rate']:.2f} of {len(ep_success)}, {row['env_steps_per_s']:.0f} steps/s"
                bar.update(task, completed=min(state["env_steps"], cfg.total_env_steps), msg=msg)
        final = out / "policy"
        _fine_tuned_policy(policy, frozen, cfg).save(final)
        success_curve(out)
        summary = {
            "iterations": state["iteration"],
            "env_steps": state["env_steps"],
            "episodes": state["episodes"],
            "train_time_s": round(state["elapsed_s"], 1),
            "env_steps_per_s": round(state["env_steps"] / max(state["elapsed_s"], 1e-9), 1),
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
        say(f"done: {summary}; policy saved to {final}")
        text.close()
        return final
    finally:
        envs.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m taclab.rl.dppo --pretrained PATH --out DIR [--resume] [--set key=value ...]``."""
    import argparse
    import sys

    from taclab.overrides import apply_sets

    ap = argparse.ArgumentParser(prog="python -m taclab.rl.dppo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pretrained", required=True, help="pointcloud_dp checkpoint or training run folder")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a DPPOConfig field")
    args = ap.parse_args(argv)
    try:
        cfg = DPPOConfig.from_dict(apply_sets({}, args.set))
        if not Path(args.pretrained).exists():
            raise ValueError(f"--pretrained {args.pretrained} does not exist; give a pointcloud_dp checkpoint folder")
        train(cfg, args.pretrained, args.out, resume=args.resume)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
