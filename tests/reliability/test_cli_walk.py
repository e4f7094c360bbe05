"""Every command answers bad input with one ``error: ...`` line naming the value, exit code 2, no traceback.

The test walks the command tree of ``taclab``: a command without a bad-input case below fails the test, so a new
command cannot skip the rule. Each case runs through the console entry point (``taclab.cli.main``) in this
process; one case also runs in a fresh process through the installed ``taclab`` script.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import taclab.cli
from taclab.cli import app, main


def _commands() -> list[str]:
    import typer.main

    out: list[str] = []

    def walk(group, prefix: tuple[str, ...]) -> None:
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):
                walk(sub, (*prefix, name))
            else:
                out.append(" ".join((*prefix, name)))

    walk(typer.main.get_command(app), ())
    return sorted(out)


def _cases(tmp) -> dict[str, list[tuple[list[str], str]]]:
    """command -> [(arguments after the command, a fragment the one error line must contain)]."""
    nodata = tmp / "not_a_dataset"
    nodata.mkdir(exist_ok=True)
    afile = tmp / "a_file"
    afile.write_text("x")
    out = str(tmp / "out")
    return {
        "info": [(["--nope"], "--nope")],
        "render": [(["--task", "blob", "--out", out], "'blob'"), (["--task", "peg", "--out", str(afile)], "a_file")],
        "demo": [(["nosuchpaper", "--out", out], "nosuchpaper"), (["--workers", "-2", "--out", out], "-2")],
        "generate": [
            (["--config", str(tmp / "missing.yaml"), "--out", out], "missing.yaml"),
            (["--config", str(afile), "--out", out], "a_file"),
        ],
        "dataset info": [([str(nodata)], "not a taclab dataset")],
        "dataset show": [([str(nodata), "--out", str(tmp / "x.png")], "not a taclab dataset")],
        "dataset export-jsonl": [([str(nodata), "--out", out], "not a taclab dataset")],
        "dataset migrate": [([str(nodata)], "not a taclab dataset")],
        "train": [
            (["--policy", "nope", "--data", str(nodata), "--out", out], "'nope'"),
            (["--policy", "bc", "--data", str(nodata), "--out", out, "--set", "train.lrr=1"], "train.lrr"),
        ],
        "eval offline": [(["--policy", "bc", "--data", str(nodata), "--out", out], "not a taclab dataset")],
        "eval closed-loop": [
            (["--policy", "zero", "--out", out, "--seed", "-5"], "-5"),
            (["--policy", "zero", "--out", out, "--episodes", "abc"], "abc"),
            (["--policy", "zero", "--out", out, "--env", "taclab/Nope-v0"], "taclab/Nope-v0"),
            (["--policy", "zero", "--out", out, "--backend", "threads"], "threads"),
            (["--policy", "zero", "--out", str(afile)], "a_file"),
        ],
        "report": [
            ([str(tmp / "no_results"), "--out", out], "no_results"),
            ([str(nodata), "--out", out, "--tables", "nosuch"], "nosuch"),
        ],
        "eval reason": [(["--model", str(tmp / "nomodel"), "--data", str(nodata), "--out", out], "nomodel")],
        "touchr1 init-tiny": [([out, "--image-size", "-3"], "-3")],
        "touchr1 pretrain": [(["--model", str(tmp / "nomodel"), "--data", str(nodata), "--out", out], "nomodel")],
        "touchr1 sft": [(["--model", str(tmp / "nomodel"), "--data", str(nodata), "--out", out], "nomodel")],
        "touchr1 grpo": [(["--model", str(tmp / "nomodel"), "--data", str(nodata), "--out", out], "nomodel")],
        "touchr1 baselines": [(["--data", str(nodata), "--out", out, "--set", "nope=1"], "'nope'")],
        "touchr1 questions": [(["--data", str(nodata), "--out", out], "not_a_dataset")],
        "tla bench": [(["--model", "nosuch"], "nosuch")],
        "tla init-tiny": [([out, "--set", "hidden=64"], "hidden")],
        "tla merge": [([str(nodata), out], "not a TLA model checkpoint")],
        "tla pretrain": [(["--data", str(nodata), "--out", out, "--set", "train.nope=1"], "train.nope")],
        "tla align": [(["--data", str(nodata), "--out", out, "--set", "align.nope=1"], "nope")],
    }


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def test_every_command_has_a_bad_input_case(tmp_path):
    missing = sorted(set(_commands()) - set(_cases(tmp_path)))
    assert not missing, f"commands without a bad-input case in this test: {missing}"


def test_every_command_rejects_bad_input_with_one_error_line(tmp_path, capsys):
    bad = []
    for command, cases in _cases(tmp_path).items():
        for args, fragment in cases:
            argv = [*command.split(), *args]
            code, out, err = _run(argv, capsys)
            lines = err.strip().splitlines()
            ok = (
                code == 2
                and len(lines) == 1
                and lines[0].startswith("error: ")
                and fragment in lines[0]
                and "Traceback" not in out + err
            )
            if not ok:
                bad.append(f"taclab {' '.join(argv)} -> exit {code}, stderr {err!r}, stdout {out[-300:]!r}")
    assert not bad, "\n".join(bad)
    assert not (tmp_path / "out").exists()  # no failed start left a folder behind


def test_usage_errors_through_the_installed_script(tmp_path):
    """A typing error in an option (parsed by click before any taclab code runs) in a fresh process."""
    script = (
        "import sys; from taclab.cli import main; "
        "sys.argv = ['taclab', 'eval', 'closed-loop', '--policy', 'zero', '--seed', 'x']; main()"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "'--seed'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_bare_group_prints_its_help(capsys):
    code, out, err = _run(["eval"], capsys)
    assert code == 0 and "closed-loop" in out and not err
    assert taclab.cli.app is app
