"""The ``taclab`` command line. Every subcommand is a thin wrapper over a library function."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="taclab: tactile simulation, datasets, policies and evaluation for contact-rich manipulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _parse_sets(items: list[str] | None) -> dict:
    """``key=value`` pairs; values are read as YAML scalars (numbers, booleans, lists)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


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
    episodes: int = typer.Option(20, min=1, help="episodes per policy and shape"),
    seed: int = typer.Option(0, help="random seed"),
    set_: list[str] = typer.Option(None, "--set", help="env config override key=value (repeatable)"),
) -> None:
    """A short end-to-end run: scripted policies in the tactile peg-in-hole env, with figures."""
    from taclab.demo import run_demo

    summary = run_demo(out, episodes=episodes, seed=seed, env_overrides=_parse_sets(set_))
    typer.echo(f"demo finished in {summary['seconds']} s; figures: {', '.join(summary['figures'])}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
