"""Helpers shared by the command-line modules (``taclab.cli`` and the command groups of paper packages): bad
input ends a command with one ``error: ...`` line and exit code 2, never a traceback."""

from __future__ import annotations

from contextlib import contextmanager

import typer

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, RuntimeError)
"""What a command reports as bad input (RuntimeError covers training errors and a folder locked by another
writer); anything else is a bug and keeps its traceback."""


def fail(message: str) -> None:
    """End the command: ``error: message`` on stderr, exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def clear_errors():
    """Bad input ends the command with its message (one line, no traceback) and exit code 2."""
    try:
        yield
    except typer.Exit:
        raise
    except EXPECTED_ERRORS as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        fail(msg)


def sets(items: list[str] | None, base: dict | None = None, reserved: dict[str, str] | None = None) -> dict:
    """The ``--set`` items applied to ``base`` (see :mod:`taclab.overrides`); YAML errors become ValueError."""
    import yaml

    from taclab.overrides import apply_sets

    try:
        return apply_sets(dict(base or {}), list(items or []), reserved)
    except yaml.YAMLError as e:
        raise ValueError(f"--set value is not valid YAML: {' '.join(str(e).split())}") from None
