"""The ``taclab`` command line. Every subcommand is a thin wrapper over a library function.

Bad input ends every command with one ``error: ...`` line and exit code 2 (usage errors included, see
:func:`main`). ``--set key=value`` follows one grammar everywhere (:mod:`taclab.overrides`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from taclab.commandline import clear_errors as _clear_errors
from taclab.commandline import sets as _sets

app = typer.Typer(
    help="taclab: tactile simulation, datasets, policies and evaluation for contact-rich manipulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _parse_sets(items: list[str] | None) -> dict:
    """The ``--set`` items as a flat ``{dotted key: value}`` dict (the generator applies them per split)."""
    from taclab.utils import parse_sets

    with _clear_errors():
        return parse_sets(items)


def _papers() -> None:
    import taclab.papers  # noqa: F401 - registers the papers' policies, learning specs, reports, demos


@app.command()
def info() -> None:
    """Print versions and the MuJoCo rendering backend in use."""
    from taclab.utils import system_info

    for k, v in system_info().items():
        typer.echo(f"{k:>18}: {v}")


@app.command()
def render(
    task: str = typer.Option("peg", help="what to render (peg, and the tasks of the other papers; see docs)"),
    out: Path = typer.Option(Path("outputs/render"), help="folder for the PNGs"),
    seed: int = typer.Option(0, help="seed of the rendered episode"),
    set_: list[str] = typer.Option(None, "--set", help="keyword of the task's renderer, key=value (repeatable)"),
) -> None:
    """Save PNGs a person can read of a task's scene and sensors (peg: tactile sequences and shear fields)."""
    from taclab.papers import RENDERERS

    with _clear_errors():
        if task not in RENDERERS:
            raise ValueError(f"unknown --task {task!r}; allowed: {sorted(RENDERERS)}")
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder for the PNGs")
        paths = RENDERERS[task](out, seed=seed, **_sets(set_))
    for p in paths:
        typer.echo(str(p))


@app.command()
def demo(
    papers: list[str] = typer.Argument(None, help="papers whose pipeline runs (default: all)"),
    out: Path = typer.Option(Path("outputs/demo"), help="output folder (one subfolder per paper)"),
    seed: int = typer.Option(0, min=0, help="random seed"),
    workers: int = typer.Option(0, min=0, help="worker processes (0: one per core)"),
    set_: list[str] = typer.Option(None, "--set", help="demo config override <paper>.<key>=value (repeatable)"),
) -> None:
    """Each paper's pipeline in miniature on embedded defaults (dataset, training, evaluation, report)."""
    from taclab.papers import DEMOS

    with _clear_errors():
        names = list(papers or DEMOS)
        bad = sorted(set(names) - set(DEMOS))
        if bad:
            raise ValueError(f"unknown paper(s) {bad}; allowed: {sorted(DEMOS)}")
        config = _sets(set_)
        extra = sorted(set(config) - set(names))
        if extra:
            raise ValueError(f"--set keys must start with a paper that runs ({names}), got {extra}")
        for name in names:
            summary = DEMOS[name](out / name, seed=seed, workers=workers or None, config=config.get(name, {}))
            typer.echo(f"demo {name} finished in {summary['seconds']} s; report: {summary['report']}")


@app.command()
def generate(
    config: Path = typer.Option(..., "--config", help="dataset config (YAML) naming its generator"),
    out: Path = typer.Option(..., help="dataset folder; an interrupted run of the same config resumes there"),
    workers: int = typer.Option(0, help="worker processes (0: one per core)"),
    split: list[str] = typer.Option(None, help="only these splits of the config (repeatable)"),
    set_: list[str] = typer.Option(None, "--set", help="override for every split, key=value (env.image_size=[32,32])"),
) -> None:
    """Generate a dataset with the generator its config names: parquet shards, dataset.json and the card."""
    import os

    from taclab.data.generate import GenerationInterrupted, read_config
    from taclab.data.generate import generate as run

    _papers()  # registers the papers' generators
    sets = _parse_sets(set_)
    try:
        with _clear_errors():
            if workers < 0:
                raise ValueError(f"--workers must be >= 0 (0: one per core), got {workers}")
            splits = read_config(config, sets)
            if split:
                known = [s.split for s in splits]
                bad = sorted(set(split) - set(known))
                if bad:
                    raise ValueError(f"unknown --split {bad}; the config has {known}")
                splits = [s for s in splits if s.split in split]
            run(splits, out, workers=workers or os.cpu_count() or 1)
    except GenerationInterrupted as e:
        typer.echo(f"interrupted: {e}", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"wrote {out} ({', '.join(s.split for s in splits)})")


dataset_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("info")
def dataset_info(path: Path = typer.Argument(..., help="dataset folder")) -> None:
    """Print the dataset card and check every split: shards, schema, row counts and SHA-256 checksums."""
    from taclab.data import read_meta, verify
    from taclab.data.meta import card

    with _clear_errors():
        meta = read_meta(path)
        typer.echo(card(meta))
        for name, sp in meta["splits"].items():
            if not sp.get("complete"):
                planned = sp.get("planned_shards", "?")
                typer.echo(f"split {name}: incomplete ({len(sp['shards'])} of {planned} shards written)")
                continue
            r = verify(path, name)
            how = "SHA-256 verified" if r["verified"] else "format 1, no checksums (`taclab dataset migrate` adds them)"
            typer.echo(f"split {name}: {r['rows']} rows in {r['shards']} shards, {how}")


@dataset_app.command("show")
def dataset_show(
    path: Path = typer.Argument(..., help="dataset folder"),
    index: int = typer.Option(0, help="row index"),
    split: str = typer.Option("train", help="split"),
    out: Path = typer.Option(None, help="PNG to write (default: PATH/sample-SPLIT-INDEX.png)"),
) -> None:
    """Save a PNG of one row: its images (image sequences as tiles) and its other keys as text."""
    import matplotlib.pyplot as plt

    from taclab.data.show import sample_figure
    from taclab.utils import save_png

    with _clear_errors():
        if out is not None:
            if out.is_dir():
                raise ValueError(f"--out {out} is a folder; give the path of a .png file")
            if out.suffix.lower() != ".png":
                raise ValueError(f"--out {out} must end in .png")
            if out.parent.exists() and not out.parent.is_dir():
                raise ValueError(f"--out {out}: {out.parent} is a file, not a folder")
        fig = sample_figure(path, split, index)
        target = out or path / f"sample-{split}-{index}.png"
        save_png(target, fig)
        plt.close(fig)
    typer.echo(str(target))


@dataset_app.command("export-jsonl")
def dataset_export_jsonl(
    path: Path = typer.Argument(..., help="dataset folder"),
    out: Path = typer.Option(..., help="output folder for SPLIT.jsonl, images/ and export.json"),
    split: str = typer.Option("train", help="split"),
    size: int = typer.Option(616, help="side of the composite image (pixels, 3 to 4096)"),
    vary_template: bool = typer.Option(False, help="cycle through the instruction templates"),
    like: Path = typer.Option(
        None,
        help="a TLA checkpoint (policy folder or training run): draw the images as it sees its input (its tactile "
        "representation, statistics and layout) instead of the paper's raw composite",
    ),
) -> None:
    """Export a TLA split in the chat format (messages + image paths) as JSONL; one export per folder."""
    from taclab.papers.tla.instruct import export_jsonl

    with _clear_errors():
        typer.echo(str(export_jsonl(path, split, out, size=size, vary_template=vary_template, like=like)))


@dataset_app.command("migrate")
def dataset_migrate(path: Path = typer.Argument(..., help="dataset folder written by taclab 0.1 (format 1)")) -> None:
    """Rewrite a format-1 dataset's dataset.json and card as format 2, recording a SHA-256 per shard."""
    from taclab.data import migrate, read_meta

    with _clear_errors():
        if read_meta(path).get("source_format_version") != 1:
            typer.echo(f"{path} is already in format version 2; nothing to do")
            return
        meta = migrate(path)
    n = sum(len(sp["shards"]) for sp in meta["splits"].values())
    typer.echo(f"migrated {path} to format version 2 ({len(meta['splits'])} splits, {n} shards checksummed)")


@app.command()
def train(
    policy: str = typer.Option(None, help="policy to train (bc, dp, tla, ...); or set policy: in --config"),
    data: Path = typer.Option(..., help="dataset folder (taclab generate)"),
    out: Path = typer.Option(..., help="run folder: logs, checkpoints, policy/"),
    config: Path = typer.Option(None, help="run config YAML with policy/train/model sections"),
    set_: list[str] = typer.Option(None, "--set", help="override train.<key>=value or model.<key>=value"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
) -> None:
    """Train a policy on a dataset with the shared loop (AdamW, warm-up + cosine, EMA, checkpoints)."""
    from taclab.train import load_run_config
    from taclab.train import train as run_train

    _papers()
    with _clear_errors():
        run = load_run_config(config, policy, _parse_sets(set_))
        final = run_train(run, data, out, resume=resume)
    typer.echo(f"policy saved to {final}; logs and learning_curve.png in {out}")


POLICY_SET_HELP = (
    "inference setting of the checkpoint, key=value (repeatable): e.g. decoding=expected (tla), init_noise_scale=0 "
    "(dp); only the policy's INFERENCE_KEYS (docs/evaluation.md)"
)

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
    policy_set: list[str] = typer.Option(None, "--policy-set", help=POLICY_SET_HELP),
) -> None:
    """Score a policy's actions on a dataset split with the dataset's metrics (e.g. GCR and L1)."""
    from taclab.eval.offline import evaluate_offline

    _papers()
    with _clear_errors():
        overrides = _sets(policy_set)
        rec = evaluate_offline(
            policy, data, split, name=name, out=out, batch_size=batch_size, limit=limit, policy_overrides=overrides
        )
    m = rec["metrics"]
    shown = ", ".join(f"{k} {v:.3f}" for k, v in m.items() if isinstance(v, float) and not k.startswith("ms_"))
    typer.echo(f"{rec['name']} on {split} ({rec['samples']} samples): {shown}; written to {out}")


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


@eval_app.command("closed-loop")
def eval_closed_loop(
    policy: str = typer.Option(..., help="checkpoint folder, training run folder, or policy name (oracle, zero, ...)"),
    out: Path = typer.Option(..., help="folder for closed_loop.json"),
    env: str = typer.Option("taclab/PegInHole-v0", help="registered environment"),
    tasks: str = typer.Option("paper", help="a task list of the env (e.g. 'paper') or tasks key=value,...;..."),
    episodes: int = typer.Option(50, min=1, help="episodes per task"),
    seed: int = typer.Option(0, min=0, help="seed of the episodes"),
    workers: int = typer.Option(0, min=0, help="worker processes or vector sub-envs (0: one per core)"),
    backend: str = typer.Option("process", help="process (a worker pool), sync or async (a Gymnasium vector env)"),
    name: str = typer.Option(None, help="row name in reports (default: the policy's name)"),
    set_: list[str] = typer.Option(None, "--set", help="env config override key=value (repeatable)"),
    policy_set: list[str] = typer.Option(None, "--policy-set", help=POLICY_SET_HELP),
) -> None:
    """Success rate and steps per task in a registered env, in parallel; inference failures counted and named."""
    from taclab.envs.base import env_class
    from taclab.eval.closed_loop import evaluate_closed_loop
    from taclab.eval.tasks import parse_tasks
    from taclab.utils import validation_message

    _papers()
    with _clear_errors():
        cls = env_class(env)
        task_list = parse_tasks(env, tasks)
        hint = "the task comes from --tasks (e.g. --tasks square:1.0)"
        config = _sets(set_, reserved={k: hint for k in cls.TASK_KEYS})
        try:
            cls.Config(**config)
        except ValueError as e:
            raise ValueError(f"invalid --set for {env}: {validation_message(e)}") from None
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file; give a folder for closed_loop.json")
        rec = evaluate_closed_loop(
            policy, env, task_list, episodes, seed=seed, workers=workers or None, name=name, out=out,
            env_config=config, backend=backend, policy_overrides=_sets(policy_set),
        )  # fmt: skip
    for t in rec["tasks"]:
        steps = "-" if t["mean_steps"] is None else f"{t['mean_steps']:.2f}"
        label = " ".join(f"{k}={t[k]}" for k in cls.TASK_KEYS if k in t)
        typer.echo(f"{label:>30}: success {t['success_rate']:5.1f} %, steps {steps}")
    o = rec["overall"]
    typer.echo(f"failures {o['failures']}, malformed {o['malformed']}, {_f(o['ms_per_action'])} ms/action; {out}")
    for err, count in o["errors"].items():
        typer.echo(f"inference failed in {count} episode(s): {err}", err=True)


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="evaluation folders or JSON records"),
    out: Path = typer.Option(..., help="folder for report.md, the CSV/JSON tables and the figures"),
    tables: str = typer.Option("tla", help="the paper whose tables are built"),
    title: str = typer.Option(None, help="report title (default: the paper's)"),
) -> None:
    """A paper's tables (markdown, CSV, JSON) beside the paper's numbers, plus figures."""
    from taclab.eval.report import make_report

    _papers()
    with _clear_errors():
        path = make_report(results, out, tables, title)
    typer.echo(str(path))


def _mount_paper_commands() -> None:
    from taclab.papers.tla.cli import tla_app  # light: transformers loads when a command runs

    app.add_typer(tla_app, name="tla")
    from taclab.papers.touchr1.cli import mount as mount_touchr1

    mount_touchr1(app, eval_app)


_mount_paper_commands()


def _usage_exceptions() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of the click that parses the command line: typer >= 0.22 carries its own copy of
    click (``typer._click``, errors derived from ``typer.TyperException``); older typer uses ``click``."""
    usage: list[type[BaseException]] = []
    aborts: list[type[BaseException]] = [typer.Abort]
    try:
        import click

        usage.append(click.exceptions.ClickException)
        aborts.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover - typer without click
        pass
    if hasattr(typer, "TyperException"):
        usage.append(typer.TyperException)
    return tuple(usage), tuple(aborts)


def _given_value(e: BaseException):
    """The value a parameter check refused, where the check kept it (typer validates options with pydantic)."""
    cause = e.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            found = errors()
        except Exception:  # noqa: BLE001 - a message without the value is still a message
            return None
        if found and "input" in found[0]:
            return found[0]["input"]
    return None


def main(argv: list[str] | None = None) -> None:
    """The console entry point: usage errors, too, end with one ``error: ...`` line and exit code 2."""
    usage, aborts = _usage_exceptions()
    try:
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except aborts:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except usage as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a bare group (``taclab``, ``taclab eval``): its help
            typer.echo(e.format_message())
            sys.exit(0)
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        given = _given_value(e)
        if given is not None and repr(given) not in message and str(given) not in message:
            message = f"{message.rstrip('.')}, got {given!r}"
        typer.echo(f"error: {' '.join(str(message).split())}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
