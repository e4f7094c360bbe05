"""The ``taclab`` command line. Every subcommand is a thin wrapper over a library function."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

app = typer.Typer(
    help="taclab: tactile simulation, datasets, policies and evaluation for contact-rich manipulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _parse_sets(items: list[str] | None) -> dict:
    from taclab.utils import parse_sets

    try:
        return parse_sets(items)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


@contextmanager
def _clear_errors():
    """Bad input ends the command with its message (no traceback) and exit code 2."""
    from taclab.train.loop import TrainingError

    try:
        yield
    except (ValueError, FileNotFoundError, TrainingError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def info() -> None:
    """Print versions and the MuJoCo rendering backend in use."""
    from taclab.utils import system_info

    for k, v in system_info().items():
        typer.echo(f"{k:>18}: {v}")


@app.command()
def render(
    out: Path = typer.Option(Path("outputs/render"), help="folder for the PNGs"),
    shape: str = typer.Option("square", help="peg shape"),
    clearance_mm: float = typer.Option(2.0, help="clearance (mm)"),
    magnitude_mm: float = typer.Option(2.5, help="size of the translation errors shown (mm)"),
    rotation_deg: float = typer.Option(4.5, help="size of the rotation errors shown (deg)"),
) -> None:
    """Save PNGs of the scene and of tactile sequences for errors of each sign."""
    from taclab.viz import render_examples

    paths = render_examples(
        out, shape=shape, clearance_mm=clearance_mm, magnitude_mm=magnitude_mm, rotation_deg=rotation_deg
    )
    for p in paths:
        typer.echo(str(p))


@app.command()
def demo(
    out: Path = typer.Option(Path("outputs/demo"), help="output folder"),
    train_samples: int = typer.Option(1200, min=1, help="samples of the demo's training split"),
    test_samples: int = typer.Option(300, min=1, help="samples of the demo's test split"),
    epochs: int = typer.Option(10, min=1, help="BC training epochs"),
    episodes: int = typer.Option(20, min=1, help="closed-loop episodes per policy and task"),
    seed: int = typer.Option(0, help="random seed"),
    workers: int = typer.Option(0, help="worker processes (0: one per core)"),
    set_: list[str] = typer.Option(None, "--set", help="env config override key=value (repeatable)"),
) -> None:
    """The pipeline in miniature: generate a dataset, train BC, evaluate offline and in closed loop, report."""
    from taclab.demo import run_demo

    with _clear_errors():
        summary = run_demo(
            out, train_samples=train_samples, test_samples=test_samples, epochs=epochs, episodes=episodes,
            seed=seed, workers=workers or None, env_overrides=_parse_sets(set_),
        )  # fmt: skip
    typer.echo(f"demo finished in {summary['seconds']} s; report: {summary['report']}")


@app.command()
def generate(
    config: Path = typer.Option(..., "--config", help="dataset config (YAML), e.g. configs/tla_single_peg.yaml"),
    out: Path = typer.Option(..., help="dataset folder; an interrupted run resumes there"),
    workers: int = typer.Option(0, help="worker processes (0: one per core)"),
    split: list[str] = typer.Option(None, help="only these splits of the config (repeatable)"),
    set_: list[str] = typer.Option(None, "--set", help="override for every split, key=value (repeatable)"),
) -> None:
    """Generate a tactile-action dataset with the random insertion policy (parquet shards + card)."""
    import os

    from taclab.data.generate import generate as run
    from taclab.data.generate import read_config

    splits = read_config(config, _parse_sets(set_))
    if split:
        known = [s.split for s in splits]
        bad = sorted(set(split) - set(known))
        if bad:
            raise typer.BadParameter(f"unknown split(s) {bad}; the config has {known}")
        splits = [s for s in splits if s.split in split]
    for cfg in splits:
        run(cfg, out, workers=workers or os.cpu_count() or 1)
    typer.echo(f"wrote {out} ({', '.join(s.split for s in splits)})")


dataset_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("info")
def dataset_info(path: Path = typer.Argument(..., help="dataset folder")) -> None:
    """Print the dataset card and check every split (shards, counts, schema)."""
    from taclab.data.storage import load, read_meta

    meta = read_meta(path)
    typer.echo((path / "README.md").read_text())
    for name in meta["splits"]:
        ds = load(path, name)
        typer.echo(f"split {name}: {len(ds)} samples, checked")


@dataset_app.command("show")
def dataset_show(
    path: Path = typer.Argument(..., help="dataset folder"),
    index: int = typer.Option(0, help="sample index"),
    split: str = typer.Option("train", help="split"),
    out: Path = typer.Option(None, help="PNG to write (default: PATH/sample-SPLIT-INDEX.png)"),
) -> None:
    """Save a PNG of one sample: its 8 tiles, its error and its label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from taclab.data.storage import load, tactile_array
    from taclab.utils import save_png
    from taclab.viz import tactile_figure

    ds = load(path, split)
    if not 0 <= index < len(ds):
        raise typer.BadParameter(f"index {index} out of range: split {split!r} has {len(ds)} samples")
    ex = ds[index]
    err = [round(v, 2) for v in ex["error"]]
    lab = [round(v, 2) for v in ex["label"]]
    title = f"{split}[{index}] {ex['shape']} c={ex['clearance_mm']:g} mm: error {err} -> label {lab}"
    fig = tactile_figure([tactile_array(ex)], [title])
    target = out or path / f"sample-{split}-{index}.png"
    save_png(target, fig)
    plt.close(fig)
    typer.echo(str(target))


@dataset_app.command("export-jsonl")
def dataset_export_jsonl(
    path: Path = typer.Argument(..., help="dataset folder"),
    out: Path = typer.Option(..., help="output folder for SPLIT.jsonl and images/"),
    split: str = typer.Option("train", help="split"),
    size: int = typer.Option(616, help="side of the composite image (pixels)"),
    vary_template: bool = typer.Option(False, help="cycle through the instruction templates"),
) -> None:
    """Export a split in the chat format (messages + image paths) as JSONL."""
    from taclab.data.instruct import export_jsonl

    typer.echo(str(export_jsonl(path, split, out, size=size, vary_template=vary_template)))


@app.command()
def train(
    policy: str = typer.Option(None, help="policy to train (bc, dp, ...); or set policy: in --config"),
    data: Path = typer.Option(..., help="dataset folder (taclab generate)"),
    out: Path = typer.Option(..., help="run folder: logs, checkpoints, policy/"),
    config: Path = typer.Option(None, help="run config YAML with policy/train/model sections"),
    set_: list[str] = typer.Option(None, "--set", help="override train.<key>=value or model.<key>=value"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
) -> None:
    """Train a policy on a dataset with the shared loop (AdamW, warm-up + cosine, EMA, checkpoints)."""
    from taclab.train import load_run_config
    from taclab.train import train as run_train

    with _clear_errors():
        run = load_run_config(config, policy, _parse_sets(set_))
        final = run_train(run, data, out, resume=resume)
    typer.echo(f"policy saved to {final}; logs and learning_curve.png in {out}")


from taclab.papers.tla.cli import tla_app  # noqa: E402 - light: transformers loads when a command runs

app.add_typer(tla_app, name="tla")

eval_app = typer.Typer(help="Evaluate policies offline (dataset metrics) or in closed loop.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("offline")
def eval_offline(
    policy: str = typer.Option(..., help="checkpoint folder, training run folder, or policy name (oracle, zero, ...)"),
    data: Path = typer.Option(..., help="dataset folder"),
    split: str = typer.Option("test", help="split to score"),
    out: Path = typer.Option(..., help="folder for offline_<split>.json and the predictions"),
    name: str = typer.Option(None, help="row name in reports (default: the policy's name)"),
    batch_size: int = typer.Option(64, min=1, help="samples per forward pass"),
    limit: int = typer.Option(None, min=1, help="score only the first N samples"),
) -> None:
    """GCR, L1 over correct actions, direction accuracy and L1 over all samples on a test split."""
    from taclab.eval.offline import evaluate_offline

    with _clear_errors():
        rec = evaluate_offline(policy, data, split, name=name, out=out, batch_size=batch_size, limit=limit)
    m = rec["metrics"]
    typer.echo(
        f"{rec['name']} on {split} ({m['samples']} samples): GCR {m['gcr']:.1f} %, L1 x/y/rz over correct "
        f"{_f(m['l1_x'])}/{_f(m['l1_y'])}/{_f(m['l1_rz'])}; written to {out}"
    )


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


@eval_app.command("closed-loop")
def eval_closed_loop(
    policy: str = typer.Option(..., help="checkpoint folder, training run folder, or policy name (oracle, zero, ...)"),
    out: Path = typer.Option(..., help="folder for closed_loop.json"),
    tasks: str = typer.Option("paper", help="'paper' (tables III and IV) or shape:clearance_mm,... list"),
    episodes: int = typer.Option(50, min=1, help="episodes per task"),
    seed: int = typer.Option(0, help="seed of the episodes"),
    workers: int = typer.Option(0, help="worker processes (0: one per core)"),
    name: str = typer.Option(None, help="row name in reports (default: the policy's name)"),
    set_: list[str] = typer.Option(None, "--set", help="env config override key=value (repeatable)"),
) -> None:
    """Success rate and attempts in taclab/PegInHole-v0, per clearance and shape, in parallel."""
    from taclab.eval.closed_loop import evaluate_closed_loop, parse_tasks

    with _clear_errors():
        rec = evaluate_closed_loop(
            policy, parse_tasks(tasks), episodes, seed=seed, workers=workers or None, name=name, out=out,
            env_overrides=_parse_sets(set_),
        )  # fmt: skip
    for t in rec["tasks"]:
        steps = "-" if t["mean_steps"] is None else f"{t['mean_steps']:.2f}"
        typer.echo(f"{t['shape']:>9} {t['clearance_mm']:.1f} mm: success {t['success_rate']:5.1f} %, steps {steps}")
    o = rec["overall"]
    typer.echo(f"failures {o['failures']}, malformed {o['malformed']}, {_f(o['ms_per_action'])} ms/action; {out}")


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="evaluation folders or JSON records"),
    out: Path = typer.Option(..., help="folder for report.md, the CSV/JSON tables and the figures"),
    title: str = typer.Option("taclab: TLA tables I-IV", help="report title"),
) -> None:
    """Tables I-IV in the paper's layout (markdown, CSV, JSON) beside the paper's numbers, plus figures."""
    from taclab.eval.report import make_report

    with _clear_errors():
        path = make_report(results, out, title)
    typer.echo(str(path))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
