"""How far DPPO's update moves a policy when its advantages carry no information.

DPPO's actor update (:func:`taclab.rl.dppo.ppo_update`, exactly as in a fine-tuning run) is applied to chains
sampled on demonstration observations, with advantages drawn i.i.d. from N(0, 1): a rollout whose returns say
nothing about the actions. Whatever the update then does to the policy is noise; after every iteration the
executed actions of the fine-tuned and the pre-trained policy are compared on held-out demonstration
observations (:func:`taclab.rl.dppo.action_drift`, RMS in the [-1, 1] action scale). An update whose drift per
env step is comparable to what a real fine-tuning run moves the policy (its ``log.csv`` column ``action_drift``)
follows noise, not the reward. No env runs, so it takes minutes.

Run: ``python -m taclab.papers.vtrefine.drift --policy runs/vt_refine/dp_round_vt/policy --data
runs/vt_refine/demos --split round --iterations 20 --set n_steps=16 --set num_envs=2 --set minibatch_size=16``;
every :class:`~taclab.rl.dppo.DPPOConfig` field is a ``--set`` key; one iteration takes ``num_envs * n_steps``
decisions, as a fine-tuning iteration would, and counts ``act_steps`` env steps per decision.

``--compare TUNED`` instead prints, per action dimension, how a fine-tuned policy's executed actions differ from
``--policy``'s on 256 demonstration observations (:func:`compare_actions`: mean shift and RMS, in mm, degrees
and grip units).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch


def signal_free_drift(
    policy,
    cloud: np.ndarray,
    state: np.ndarray,
    iterations: int,
    cfg,
    probe: int = 128,
    seed: int = 0,
    report=print,
) -> list[dict]:
    """Rows (iteration, env steps, action drift) of ``iterations`` signal-free DPPO updates of ``policy`` (a loaded
    ``pointcloud_dp``, changed in place) on observations ``cloud`` (N, P, 6) and ``state`` (N, S): ``probe`` of
    them held out for the drift, the rest sampled ``num_envs * n_steps`` at a time."""
    from taclab.policies.pointcloud_dp import CLOUD, STATE
    from taclab.rl.dppo import action_drift, ppo_update, sample_chain

    if policy.name != "pointcloud_dp":
        raise ValueError(f"DPPO fine-tunes a pointcloud_dp policy, got {policy.name!r}")
    decisions = cfg.num_envs * cfg.n_steps
    if len(state) < probe + decisions:
        raise ValueError(f"{len(state)} observations; needs at least probe + num_envs * n_steps = {probe + decisions}")
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(state))
    held, pool = rows[:probe], rows[probe:]
    probe_inputs = policy.prepare({CLOUD: cloud[held], STATE: state[held]})
    frozen = copy.deepcopy(policy.model.net).eval()
    opt = torch.optim.Adam(policy.model.net.parameters(), lr=cfg.actor_lr)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for it in range(iterations):
        idx = rng.choice(pool, decisions, replace=False)
        batch = {CLOUD: cloud[idx], STATE: state[idx]}
        chains, old_logp, _ = sample_chain(policy, frozen, policy.prepare(batch), cfg, gen)
        ppo_update(policy, opt, batch, chains, old_logp, rng.standard_normal(decisions), cfg, gen)
        row = {
            "iteration": it + 1,
            "env_steps": (it + 1) * decisions * cfg.act_steps,
            "action_drift": action_drift(policy, frozen, probe_inputs, cfg, seed=seed),
        }
        report(f"iteration {row['iteration']}, {row['env_steps']} env steps: action drift {row['action_drift']:.4f}")
        out.append(row)
    return out


def rollout(policy, cfg, decisions: int, seed: int = 0, grouped: bool = False, report=print) -> dict:
    """At least ``decisions`` stochastic DPPO decisions (the chain of :func:`taclab.rl.dppo.sample_chain`) in
    ``cfg.num_envs`` envs; returns the observations, chains and Monte-Carlo returns (``cfg.gamma`` per decision)
    of the decisions whose episode finished, each one's episode number and the episodes' successes.

    ``grouped``: every round resets all envs with the same seed and runs them until each has finished one
    episode, so the ``num_envs`` episodes of a round (``group``) start from the same state and differ only by
    the policy's sampling noise (and the episode's own randomness)."""
    from taclab.policies.pointcloud_dp import CLOUD, STATE
    from taclab.rl.dppo import make_envs, sample_chain

    frozen = copy.deepcopy(policy.model.net).eval()
    gen = torch.Generator().manual_seed(seed)
    envs = make_envs(cfg)
    lo, hi = np.asarray(policy.io.action_low), np.asarray(policy.io.action_high)
    open_eps: list[list] = [[] for _ in range(cfg.num_envs)]  # per env: (cloud, state, chain, reward) of the episode
    done_eps: list[tuple[list, bool, int]] = []  # (steps, success, group)
    taken, rnd = 0, 0
    try:
        obs, _ = envs.reset(seed=[seed * 10_000 + (0 if grouped else i) for i in range(cfg.num_envs)])
        active = np.ones(cfg.num_envs, bool)
        while grouped or taken < decisions:  # a grouped rollout stops at the end of a round
            batch = {CLOUD: np.asarray(obs["point_cloud"]), STATE: np.asarray(obs["state"])}
            chain, _, x = sample_chain(policy, frozen, policy.prepare(batch), cfg, gen)
            chunk = policy.unscale(x).double().cpu().numpy()[:, : cfg.act_steps]
            obs, rew, term, trunc, info = envs.step(np.clip(chunk, lo, hi).astype(np.float32))
            for i in np.flatnonzero(active):
                taken += 1
                open_eps[i].append((batch[CLOUD][i], batch[STATE][i], chain[i], float(rew[i])))
                if term[i] or trunc[i]:
                    done_eps.append((open_eps[i], bool(np.asarray(info["final_info"]["is_success"])[i]), rnd))
                    open_eps[i] = []
                    active[i] = not grouped
            if grouped and not active.any():  # the round is over: the next starts all envs from one new state
                rnd += 1
                if taken >= decisions:
                    break
                obs, _ = envs.reset(seed=[seed * 10_000 + rnd] * cfg.num_envs)
                active[:] = True
                report(f"{taken} decisions, {len(done_eps)} episodes in {rnd} groups")
            elif not grouped and taken % (64 * cfg.num_envs) == 0:
                report(f"{taken} decisions, {len(done_eps)} episodes finished")
    finally:
        envs.close()
    cloud, state, chains, ret, episode = [], [], [], [], []
    for e, (steps_, _, _) in enumerate(done_eps):
        g = 0.0
        rets = []
        for *_, r in reversed(steps_):
            g = r + cfg.gamma * g
            rets.append(g)
        for (c, s, ch, _), r in zip(steps_, reversed(rets), strict=True):
            cloud.append(c), state.append(s), chains.append(ch), ret.append(r), episode.append(e)
    out = {
        CLOUD: np.stack(cloud),
        STATE: np.stack(state),
        "chains": torch.stack(chains),
        "returns": np.array(ret),
        "episode": np.array(episode),
        "success": np.array([s for _, s, _ in done_eps]),
    }
    if grouped:
        out["group"] = np.array([done_eps[e][2] for e in episode])
    return out


def advantages(data: dict) -> np.ndarray:
    """Standardized advantages of every decision of ``data``: the Monte-Carlo return minus the mean return; with
    groups (:func:`rollout` ``grouped``), the episode's return minus the mean return of the other episodes of
    its group (started from the same state: a baseline that knows the initial state, as a perfect critic of the
    first state would)."""
    ret = np.asarray(data["returns"], np.float64)
    if "group" in data:
        ep_ret = {e: ret[data["episode"] == e][0] for e in np.unique(data["episode"])}
        ep_group = {e: data["group"][data["episode"] == e][0] for e in ep_ret}
        base = {}
        for e, g in ep_group.items():
            others = [ep_ret[o] for o, h in ep_group.items() if h == g and o != e]
            base[e] = np.mean(others) if others else ep_ret[e]
        adv = ret - np.array([base[e] for e in data["episode"]])
    else:
        adv = ret - ret.mean()
    if not np.any(adv):
        raise ValueError(f"every one of the {len(ret)} decisions has the advantage 0: the gradient is zero")
    return adv / adv.std()


def policy_gradient(policy, data: dict, rows: np.ndarray, adv: np.ndarray, cfg, chunk: int = 128) -> torch.Tensor:
    """The flattened gradient of DPPO's actor loss at ratio 1, -mean(A_k * log p_k), over the decisions ``rows``
    (advantages ``adv`` of every decision of ``data``, each repeated over the K denoising steps with DPPO's
    denoising discount)."""
    from taclab.policies.pointcloud_dp import CLOUD, STATE
    from taclab.rl.dppo import chain_logprobs

    params = [p for p in policy.model.net.parameters() if p.requires_grad]
    k = torch.arange(cfg.ft_denoising_steps)
    weight = cfg.gamma_denoising ** (cfg.ft_denoising_steps - 1 - k).float()
    total = [torch.zeros_like(p) for p in params]
    for s in range(0, len(rows), chunk):
        mb = rows[s : s + chunk]
        inputs = policy.prepare({CLOUD: data[CLOUD][mb], STATE: data[STATE][mb]})
        logp = chain_logprobs(policy, inputs, data["chains"][mb], cfg)
        a = torch.as_tensor(adv[mb], dtype=torch.float32)[:, None] * weight[None]
        loss = -(a * logp).sum() / (len(rows) * cfg.ft_denoising_steps)
        for acc, g in zip(total, torch.autograd.grad(loss, params), strict=True):
            acc += g
    return torch.cat([g.flatten() for g in total])


def gradient_agreement(policy, data: dict, sizes: list[int], cfg, seed: int = 0, report=print) -> list[dict]:
    """How much of DPPO's policy gradient is signal.

    For each batch size B in ``sizes`` (decisions), the episodes of ``data`` (:func:`rollout`, shuffled) are cut
    into disjoint batches of whole episodes (whole groups with grouped data) of at least B decisions, with the
    advantages of :func:`advantages`, and each batch's gradient g_i is taken. Independent batches share only the
    true gradient g: E<g_i, g_j> = |g|^2 and E|g_i|^2 = |g|^2 + sigma^2 / B. ``signal`` = mean over pairs i != j
    of <g_i, g_j> / mean |g_i|^2 estimates the fraction |g|^2 / (|g|^2 + sigma^2 / B) (the expected cosine of two
    batches' gradients; ``cos_mean`` is their measured mean cosine), and ``half_b`` = B (1 / signal - 1) the
    batch at which the gradient is half signal; ``signal_se`` is the jackknife standard error of ``signal`` over
    the batches (with three or more)."""
    adv = advantages(data)
    unit = data["group"] if "group" in data else data["episode"]  # batches hold whole groups (or episodes)
    rng = np.random.default_rng(seed)
    episodes = rng.permutation(np.unique(unit))
    rows_of = {e: np.flatnonzero(unit == e) for e in episodes}
    out = []
    for size in sizes:
        groups, cur = [], []
        for e in episodes:
            cur.extend(rows_of[e])
            if len(cur) >= size:
                groups.append(np.array(cur))
                cur = []
        if len(groups) < 2:
            report(f"batch {size}: fewer than two batches of whole episodes in {len(adv)} decisions; skipped")
            continue
        g = torch.stack([policy_gradient(policy, data, rows, adv, cfg) for rows in groups]).double()
        gram = g @ g.T
        m = len(groups)
        cross = (gram.sum() - gram.diagonal().sum()) / (m * (m - 1))
        signal = float(cross / gram.diagonal().mean())
        jack = []  # leave-one-batch-out estimates for the jackknife standard error
        for i in range(m if m >= 3 else 0):
            keep = torch.arange(m) != i
            sub = gram[keep][:, keep]
            jack.append(float((sub.sum() - sub.diagonal().sum()) / ((m - 1) * (m - 2)) / sub.diagonal().mean()))
        se = float(np.sqrt((m - 1) / m * np.sum((np.array(jack) - np.mean(jack)) ** 2))) if jack else float("nan")
        norms = gram.diagonal().sqrt()
        cos = (gram / norms[:, None] / norms[None])[~torch.eye(m, dtype=torch.bool)]
        row = {
            "batch_decisions": size,
            "batches": m,
            "mean_decisions": float(np.mean([len(r) for r in groups])),
            "signal": signal,
            "signal_se": se,
            "cos_mean": float(cos.nanmean()),  # a batch whose advantages are all 0 has no direction
            "half_b": float(np.mean([len(r) for r in groups])) * (1 / signal - 1) if signal > 0 else float("inf"),
        }
        report(
            f"batch {size} ({m} batches of {row['mean_decisions']:.0f} decisions on average): signal fraction "
            f"{signal:.4f} (jackknife standard error {se:.4f}), mean cosine {row['cos_mean']:.4f}; "
            f"half-signal batch {row['half_b']:.0f} decisions"
        )
        out.append(row)
    return out


UNITS = ("mm", "mm", "mm", "deg", "deg", "deg", "grip")
_SCALE = (1000.0, 1000.0, 1000.0, 180 / np.pi, 180 / np.pi, 180 / np.pi, 1.0)


def compare_actions(pre, tuned, cloud: np.ndarray, state: np.ndarray, rows: int = 256, seed: int = 0) -> dict:
    """Per action dimension, the mean and the RMS of (tuned - pre) over the executed actions (the first
    ``n_action_steps`` of each chunk) of both policies on ``rows`` observations drawn with ``seed``, both chunks
    denoised deterministically from the same initial noise; in mm, degrees and grip units (14 = 2 hands x 7)."""
    from taclab.policies.pointcloud_dp import CLOUD, STATE

    idx = np.random.default_rng(seed).choice(len(state), min(rows, len(state)), replace=False)
    batch = {CLOUD: cloud[idx], STATE: state[idx]}
    chunks = []
    for p in (pre, tuned):
        with torch.no_grad():
            c = p.chunk(p.prepare(batch), torch.Generator().manual_seed(seed)).double().cpu().numpy()
        chunks.append(c[:, : pre.cfg.n_action_steps])
    d = (chunks[1] - chunks[0]).reshape(-1, chunks[0].shape[-1])
    scale = np.array(_SCALE * (d.shape[1] // len(_SCALE)))
    return {"mean": d.mean(0) * scale, "rms": np.sqrt((d**2).mean(0)) * scale, "rows": len(idx)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from taclab.overrides import apply_sets
    from taclab.rl.dppo import DPPOConfig

    ap = argparse.ArgumentParser(prog="python -m taclab.papers.vtrefine.drift", description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", required=True, help="pre-trained pointcloud_dp checkpoint or training run folder")
    ap.add_argument("--data", default=None, help="the vtrefine demonstration dataset (not with --agreement)")
    ap.add_argument("--split", default="round", help="the dataset split (assembly)")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--probe", type=int, default=128, help="held-out observations the drift is measured on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="CSV of the drift per iteration")
    ap.add_argument(
        "--compare",
        default=None,
        metavar="TUNED",
        help="instead: how a fine-tuned policy's executed actions differ from --policy's, per dimension",
    )
    ap.add_argument(
        "--agreement",
        type=int,
        default=None,
        metavar="DECISIONS",
        help="instead: roll out this many stochastic decisions in the env and measure the policy gradient's "
        "agreement between disjoint batches (--sizes)",
    )
    ap.add_argument(
        "--grouped",
        action="store_true",
        help="with --agreement: all num_envs envs start each round from one state; advantages against the group",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 512], help="batch sizes (decisions)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a DPPOConfig field")
    args = ap.parse_args(argv)
    try:
        if args.agreement is not None and (args.agreement < 2 or min(args.sizes) < 1):
            raise ValueError(f"--agreement must be >= 2 and --sizes >= 1, got {args.agreement} and {args.sizes}")
        if args.iterations < 1 or args.probe < 1:
            raise ValueError(f"--iterations and --probe must be >= 1, got {args.iterations} and {args.probe}")
        if args.agreement is None and args.data is None:
            raise ValueError("--data is required (the demonstration dataset), except with --agreement")
        for key in ("policy", "data") if args.agreement is None else ("policy",):
            if not Path(getattr(args, key)).exists():
                raise ValueError(f"--{key} {getattr(args, key)} does not exist")
        cfg = DPPOConfig.from_dict(apply_sets({}, args.set))
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        from taclab.data import load_arrays
        from taclab.papers.vtrefine.learning import SPEC
        from taclab.policies import load_policy
        from taclab.policies.pointcloud_dp import CLOUD, STATE

        policy = load_policy(args.policy, device=cfg.device)
        if args.compare and not Path(args.compare).exists():
            raise ValueError(f"--compare {args.compare} does not exist")
        if args.agreement is not None:
            data = rollout(policy, cfg, args.agreement, args.seed, grouped=args.grouped)
            print(f"{len(data['success'])} finished episodes, success {data['success'].mean():.2f}, "
                  f"{len(data['returns'])} decisions")  # fmt: skip
            rows = gradient_agreement(policy, data, args.sizes, cfg, args.seed)
            if args.out:
                _write_csv(args.out, rows)
            return 0
        cols = load_arrays(args.data, args.split, columns=list(SPEC.observations), progress=False)
        if args.compare:
            r = compare_actions(policy, load_policy(args.compare, device=cfg.device), cols[CLOUD], cols[STATE])
            print(f"{args.compare} against {args.policy}, executed actions on {r['rows']} observations:")
            for h in range(len(r["mean"]) // len(UNITS)):
                for j, unit in enumerate(UNITS):
                    k = h * len(UNITS) + j
                    print(f"hand {h} dim {j} ({unit}): mean shift {r['mean'][k]:+.3f}, RMS {r['rms'][k]:.3f}")
            return 0
        rows = signal_free_drift(policy, cols[CLOUD], cols[STATE], args.iterations, cfg, args.probe, args.seed)
    except (ValueError, TypeError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.out:
        _write_csv(args.out, rows)
    return 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    from taclab.utils import atomic_write_text

    if rows:
        lines = [",".join(rows[0])] + [",".join(str(v) for v in r.values()) for r in rows]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
