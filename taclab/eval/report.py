"""Reports from evaluation records: tables (markdown, CSV, JSON) and figures, built from a per-paper report
specification (:class:`ReportSpec`, registered by paper packages with :func:`register_report`).

Inputs are the JSON records written by ``taclab eval offline`` (``offline_<split>.json``) and ``taclab eval
closed-loop`` (``closed_loop.json``). A JSON file that cannot be read, or a record of another kind, is never
skipped silently: :func:`collect` fails naming every such file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taclab.utils import atomic_write_bytes, atomic_write_text

RECORD_KINDS = ("offline", "closed_loop")


@dataclass(frozen=True)
class ReportSpec:
    """How a paper's report is built from evaluation records."""

    title: str
    """default title of report.md"""
    intro: str
    """the paragraph under the title"""
    tables: Callable[[list[dict]], dict[str, dict]]
    """records -> {key: {"title", "columns", "rows": [[name, source, *values]], "split_col"?}}"""
    figures: Callable[[list[dict], Path], list[Path]] | None = None
    """records, output folder -> PNG paths"""


REPORTS: dict[str, ReportSpec] = {}


def register_report(name: str, spec: ReportSpec) -> None:
    REPORTS[name] = spec


def collect(paths: list[str | Path]) -> list[dict]:
    """Every evaluation record (JSON with ``kind`` offline or closed_loop) in the given files and folders.

    JSON files under a folder that hold no record (e.g. a run's summary) are left out; a file that cannot be
    parsed (truncated, not UTF-8) raises ``ValueError`` naming it, as does a record file given by name."""
    records, broken = [], []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        files = [p] if p.is_file() else sorted(p.rglob("*.json"))
        for f in files:
            try:
                rec = json.loads(f.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                broken.append(f"{f} ({type(e).__name__}: {e})")
                continue
            if isinstance(rec, dict) and rec.get("kind") in RECORD_KINDS:
                rec["_file"] = str(f)
                records.append(rec)
            elif p.is_file():
                broken.append(f"{f} (not an evaluation record: no 'kind' in {list(RECORD_KINDS)})")
    if broken:
        raise ValueError("cannot read evaluation record(s): " + "; ".join(broken))
    return records


def fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _digits(col: str) -> int:
    if col.startswith("L1") or " L1" in col:
        return 3
    if "Step" in col or "ms/" in col:
        return 2
    if col in ("episodes", "samples", "inference failures", "malformed"):
        return 0
    return 1


def to_markdown(table: dict) -> str:
    second = "split" if table.get("split_col") else "source"
    head = ["Method", second, *table["columns"]]
    lines = [f"### {table['title']}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["rows"]:
        cells = [str(row[0]), str(row[1])] + [
            fmt(v, _digits(c)) for v, c in zip(row[2:], table["columns"], strict=True)
        ]
        if row[1] == "paper":
            cells = [f"*{c}*" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "split" if table.get("split_col") else "source", *table["columns"]])
    w.writerows(table["rows"])
    return buf.getvalue()


def overrides_note(records: list[dict]) -> list[str]:
    """Markdown lines naming the rows evaluated with changed inference settings (``policy_overrides``, from
    ``--policy-set``); none when no record has any."""
    changed: dict[tuple[str, str], list[str]] = {}
    for r in records:
        o = r.get("policy_overrides") or {}
        if o:
            what = ", ".join(f"{k}={v}" for k, v in sorted(o.items()))
            changed.setdefault((str(r.get("name")), what), []).append(
                "closed loop" if r["kind"] == "closed_loop" else f"offline {r.get('split')}"
            )
    if not changed:
        return []
    lines = ["Rows evaluated with inference settings other than the ones their checkpoint was trained with:", ""]
    lines += [f"- {name} ({', '.join(sorted(kinds))}): {what}" for (name, what), kinds in sorted(changed.items())]
    return [*lines, ""]


def make_report(paths: list[str | Path], out: str | Path, report: str = "tla", title: str | None = None) -> Path:
    """Write report.md, table CSVs, report.json and the report's figures into ``out``; returns report.md's path."""
    if report not in REPORTS:
        raise ValueError(f"unknown report {report!r}; allowed: {sorted(REPORTS)}")
    spec = REPORTS[report]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the report")
    records = collect(paths)
    if not records:
        raise ValueError(
            f"no evaluation records (offline_*.json / closed_loop.json) found in {[str(p) for p in paths]}"
        )
    tables = spec.tables(records)
    md = [f"# {title or spec.title}", "", spec.intro, ""]
    md += overrides_note(records)
    for key, t in tables.items():
        if not t["rows"]:
            continue
        md.append(to_markdown(t))
        atomic_write_text(out / f"{key}.csv", to_csv(t))
    figures = spec.figures(records, out) if spec.figures else []
    if figures:
        md.append("## Figures\n")
        md += [f"![{f.stem}]({f.name})\n" for f in figures]
    path = atomic_write_text(out / "report.md", "\n".join(md))
    clean = [{k: v for k, v in r.items() if k != "_file"} for r in records]
    for r in clean:
        for t in r.get("tasks", []):
            t.pop("episode_results", None)
    atomic_write_bytes(out / "report.json", json.dumps({"tables": tables, "records": clean}, indent=2).encode())
    return path
