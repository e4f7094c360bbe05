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
import csv
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
    ap.add_argument("--data", required=True, help="the vtrefine demonstration dataset")
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
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a DPPOConfig field")
    args = ap.parse_args(argv)
    try:
        if args.iterations < 1 or args.probe < 1:
            raise ValueError(f"--iterations and --probe must be >= 1, got {args.iterations} and {args.probe}")
        for key in ("policy", "data"):
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
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, ["iteration", "env_steps", "action_drift"])
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
