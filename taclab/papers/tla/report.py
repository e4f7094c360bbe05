"""Tables I to IV of the TLA paper from taclab's evaluation records, with the paper's numbers beside them.

Inputs are the JSON records written by ``taclab eval offline`` (``offline_<split>.json``) and ``taclab eval
closed-loop`` (``closed_loop.json``); each record carries the row name it is reported under (``--name``).

- Table I: offline metrics on the split ``test`` (the single-peg test set);
- Table II: offline metrics on ``test_id`` (seen shapes) and ``test_ood`` (unseen shapes);
- Table III: closed loop, the square peg at 2.0, 1.6 and 1.0 mm, and the total over the three;
- Table IV: closed loop at 2.0 mm, square and triangle (seen by multi-peg training) and round and hexagon.

The paper prints the OOD GCR of table II as fractions (0.152); they are shown here as percentages (15.2).
Every table is written as markdown (report.md), CSV and JSON; figures are the action arrows of the paper's
figure 4 and success-rate bars.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.eval.report import ReportSpec, register_report
from taclab.utils import save_png

PAPER = {
    "table1": {
        "BC": (10.4, 0.803, 0.302, 0.205),
        "DP": (8.5, 0.370, 0.382, 0.568),
        "SP-TLA": (12.5, 0.079, 0.122, 0.173),
    },
    "table2": {
        "BC": ((18.4, 0.260, 0.655, 0.186), (15.2, 0.286, 0.722, 0.246)),
        "DP": ((7.4, 0.371, 0.348, 0.480), (8.0, 0.386, 0.369, 0.544)),
        "MP-TLA": ((18.4, 0.102, 0.114, 0.135), (16.5, 0.121, 0.102, 0.184)),
    },
    "table3": {  # (success %, steps) at 2.0, 1.6, 1.0 mm and in total
        "BC": ((44, 2.60), (32, 4.00), (18, 4.44), (31, 3.68)),
        "DP": ((58, 2.45), (43, 4.35), (20, 4.70), (40, 3.83)),
        "SP-TLA": ((96, 3.15), (94, 3.77), (74, 4.37), (88, 3.76)),
        "MP-TLA": ((94, 3.04), (86, 3.30), (90, 4.35), (90, 3.56)),
    },
    "table4": {  # (success %, steps) for square, triangle, round, hexagon at 2.0 mm
        "BC": ((60, 3.37), (84, 2.67), (62, 2.84), (66, 2.30)),
        "DP": ((60, 3.60), (60, 3.40), (56, 2.89), (54, 2.37)),
        "SP-TLA": ((96, 3.15), (76, 2.82), (92, 2.80), (90, 2.78)),
        "MP-TLA": ((94, 3.04), (92, 1.80), (94, 2.66), (96, 3.00)),
    },
}
"""The numbers of the paper's tables I to IV, as printed."""

CLEARANCES = (2.0, 1.6, 1.0)
SHAPES = ("square", "triangle", "round", "hexagon")
OFFLINE_COLS = ("GCR (%)", "L1 x (mm)", "L1 y (mm)", "L1 rz (deg)")
OFFLINE_KEYS = ("gcr", "l1_x", "l1_y", "l1_rz")


def _offline_row(rec: dict | None) -> list:
    if rec is None:
        return [None] * 4
    return [rec["metrics"].get(k) for k in OFFLINE_KEYS]


def _pool(task_rows: list[dict]) -> tuple[float | None, float | None]:
    eps = [e for t in task_rows for e in t["episode_results"]]
    if not eps:
        return None, None
    ok = [e for e in eps if e["success"]]
    return 100.0 * len(ok) / len(eps), (float(np.mean([e["steps"] for e in ok])) if ok else None)


def _success_steps(cells: list[dict | None]) -> list:
    """(success %, steps) of each task's record, None for a task that was not run."""
    return [v for t in cells for v in ((t["success_rate"], t["mean_steps"]) if t else (None, None))]


def _task(rec: dict, shape: str, clearance: float) -> dict | None:
    for t in rec["tasks"]:
        if t["shape"] == shape and abs(t["clearance_mm"] - clearance) < 1e-9:
            return t
    return None


def _order(name: str) -> tuple:
    """Rows in the paper's order: the oracle (upper bound), BC, DP, TLA models, others, random, zero."""
    n = name.lower()
    rank = 0 if n == "oracle" else 1 if n.startswith("bc") else 2 if n.startswith("dp") else 3 if "tla" in n else 5
    rank = 6 if n == "random" else 7 if n == "zero" else rank
    return (rank, n)


def build_tables(records: list[dict]) -> dict[str, dict]:
    """The four tables as ``{"columns": [...], "rows": [[name, source, values...], ...]}``; source is
    "taclab" or "paper"."""
    records = sorted(records, key=lambda r: _order(r["name"]))
    by_split: dict[str, dict[str, dict]] = {}
    loops: dict[str, dict] = {}
    for r in records:
        if r["kind"] == "offline":
            by_split.setdefault(r["split"], {})[r["name"]] = r
        else:
            loops[r["name"]] = r
    tables: dict[str, dict] = {}

    rows = [[n, "taclab", *_offline_row(r)] for n, r in by_split.get("test", {}).items()]
    rows += [[n, "paper", *v] for n, v in PAPER["table1"].items()]
    tables["table1"] = {"title": "Table I: single-peg test set", "columns": list(OFFLINE_COLS), "rows": rows}

    names = list(dict.fromkeys([*by_split.get("test_id", {}), *by_split.get("test_ood", {})]))
    rows = [
        [
            n,
            "taclab",
            *_offline_row(by_split.get("test_id", {}).get(n)),
            *_offline_row(by_split.get("test_ood", {}).get(n)),
        ]
        for n in names
    ]
    rows += [[n, "paper", *v[0], *v[1]] for n, v in PAPER["table2"].items()]
    cols = [f"ID {c}" for c in OFFLINE_COLS] + [f"OOD {c}" for c in OFFLINE_COLS]
    tables["table2"] = {
        "title": "Table II: multi-peg test sets (ID: seen shapes, OOD: unseen)",
        "columns": cols,
        "rows": rows,
    }

    rows = []
    for n, r in loops.items():
        cells = [_task(r, "square", c) for c in CLEARANCES]
        if any(cells):
            rows.append([n, "taclab", *_success_steps(cells), *_pool([t for t in cells if t])])
    rows += [[n, "paper", *(x for pair in v for x in pair)] for n, v in PAPER["table3"].items()]
    cols = [f"{h} {c}" for c in ("2.0 mm", "1.6 mm", "1.0 mm", "Total") for h in ("Suc (%)", "Step")]
    tables["table3"] = {"title": "Table III: square peg, clearances 2.0 / 1.6 / 1.0 mm", "columns": cols, "rows": rows}

    rows = []
    for n, r in loops.items():
        cells = [_task(r, s, 2.0) for s in SHAPES]
        if any(cells):
            rows.append([n, "taclab", *_success_steps(cells)])
    rows += [[n, "paper", *(x for pair in v for x in pair)] for n, v in PAPER["table4"].items()]
    cols = [f"{h} {s}" for s in SHAPES for h in ("Suc (%)", "Step")]
    tables["table4"] = {
        "title": "Table IV: peg shapes at 2.0 mm (square, triangle: ID; round, hexagon: OOD)",
        "columns": cols,
        "rows": rows,
    }

    rows = []
    for split, recs in sorted(by_split.items()):
        for n, r in recs.items():
            m = r["metrics"]
            rows.append(
                [n, split, m["samples"], m["gcr"], *(m[f"direction_{d}"] for d in ("x", "y", "rz"))]
                + [*(m[f"l1_all_{d}"] for d in ("x", "y", "rz")), m.get("malformed_rate"), m.get("ms_per_sample")]
            )
    cols = ["samples", "GCR (%)", "dir x (%)", "dir y (%)", "dir rz (%)", "L1all x", "L1all y", "L1all rz"]
    cols += ["malformed (%)", "ms/sample"]
    tables["offline_extra"] = {
        "title": "Offline metrics in full (per split)",
        "columns": cols,
        "rows": rows,
        "split_col": True,
    }

    rows = []
    for n, r in loops.items():
        o = r["overall"]
        rows.append(
            [
                n,
                "taclab",
                o["episodes"],
                o["success_rate"],
                o["mean_steps"],
                o["failures"],
                o["malformed"],
                o["ms_per_action"],
            ]
        )
    cols = ["episodes", "Suc (%)", "Step", "inference failures", "malformed", "ms/action"]
    tables["closed_loop_extra"] = {
        "title": "Closed loop over all tasks: failures and inference latency",
        "columns": cols,
        "rows": rows,
    }
    return tables


def action_arrows(
    pred_file: str | Path, title: str, path: str | Path, max_samples: int = 300, scale: float = 2.0
) -> Path:
    """The paper's figure 4: per pair of dimensions, an arrow from each sample's pose error along the predicted
    action (scaled by ``scale``), blue when correct and orange when wrong (see ``pair_correct``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.papers.tla.metrics import pair_correct

    z = np.load(pred_file)
    e, a = z["error"][:max_samples], z["action"][:max_samples]
    names = ("x (mm)", "y (mm)", "rz (deg)")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (i, j) in zip(axes, ((0, 1), (0, 2), (1, 2)), strict=True):
        ok = pair_correct(e, a, (i, j))
        for mask, color, label in ((ok, "tab:blue", "correct"), (~ok, "tab:orange", "wrong")):
            ax.quiver(
                e[mask, i], e[mask, j], scale * a[mask, i], scale * a[mask, j],
                color=color, angles="xy", scale_units="xy", scale=1, width=0.004,
                label=f"{label} ({100 * mask.mean():.0f} %)",
            )  # fmt: skip
        ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
        ax.set_xlabel(f"error {names[i]}")
        ax.set_ylabel(f"error {names[j]}")
        ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"{title}: arrows start at the pose error and point along the predicted action (x{scale})")
    fig.tight_layout()
    p = save_png(path, fig)
    plt.close(fig)
    return p


def figures(records: list[dict], out: Path) -> list[Path]:
    """The action arrows of figure 4 for every offline record on the single-peg test set, and success bars per
    clearance and per shape."""
    from taclab.viz import success_bars

    figs = []
    for r in records:
        if r["kind"] == "offline" and r["split"] == "test":
            npz = Path(r["_file"]).with_name(f"offline_{r['split']}_predictions.npz")
            if npz.is_file():
                slug = "".join(c if c.isalnum() else "_" for c in r["name"]).strip("_").lower()
                figs.append(action_arrows(npz, f"{r['name']}, single-peg test set", out / f"actions_{slug}.png"))
    loops = {r["name"]: r for r in records if r["kind"] == "closed_loop"}
    for key, group, fig_name in (
        ("clearance", CLEARANCES, "success_clearance.png"),
        ("shape", SHAPES, "success_shapes.png"),
    ):
        stats = {}
        for g in group:
            shape, c = ("square", g) if key == "clearance" else (g, 2.0)
            label = f"{shape} {c} mm" if key == "clearance" else shape
            row = {n: (_task(r, shape, c) or {}).get("success_rate") for n, r in loops.items()}
            if any(v is not None for v in row.values()):
                stats[label] = {n: (v or 0.0) for n, v in row.items()}
        if stats:
            figs.append(success_bars(stats, f"closed-loop success by {key}", out / fig_name))
    return figs


register_report(
    "tla",
    ReportSpec(
        title="taclab: TLA tables I-IV",
        intro="Rows in *italics* are the numbers printed in the TLA paper; the others are measured.",
        tables=build_tables,
        figures=figures,
    ),
)
