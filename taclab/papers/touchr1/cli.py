"""Commands of Touch-R1: ``taclab touchr1 ...`` (the model's stages, the reference rows, the questions) and
``taclab eval reason`` (the benchmark). :func:`mount` adds both to the main command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from taclab.commandline import clear_errors, sets

touchr1_app = typer.Typer(
    help="Touch-R1: tactile property reasoning (tiny VLM, pre-training, SFT, GRPO, reference rows, questions).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="config override key=value (repeatable)")]


def _threads() -> None:
    import torch

    torch.set_num_threads(1)  # small models on a shared CPU: one thread is fastest


def _validated(model_cls, items, base: dict | None = None):
    from taclab.utils import validation_message

    values = sets(items, base)
    unknown = sorted(set(values) - set(model_cls.model_fields))
    if unknown:
        raise ValueError(f"unknown --set key(s) {unknown}; allowed: {', '.join(model_cls.model_fields)}")
    try:
        return model_cls(**values)
    except ValueError as e:
        raise ValueError(f"invalid --set: {validation_message(e)}") from None


SECTIONS = ("model", "pretrain", "sft", "grpo")
"""Sections of a Touch-R1 config file (``--config``): the model's keys and each stage's."""


def _stage_config(model: str | None, config: Path | None, stage: str, stage_cls, items):
    """(model source, model overrides, stage config) from --model, --config and --set (``model.KEY=...`` items set
    the model section, the others the stage's)."""
    import yaml

    from taclab.papers.touchr1.model import ModelConfig
    from taclab.utils import validation_message

    raw: dict = {}
    if config is not None:
        if not config.is_file():
            raise ValueError(f"--config {config}: no such file")
        raw = yaml.safe_load(config.read_text()) or {}
        if not isinstance(raw, dict) or set(raw) - set(SECTIONS):
            bad = sorted(set(raw) - set(SECTIONS)) if isinstance(raw, dict) else raw
            raise ValueError(f"--config {config}: unknown section(s) {bad}; allowed: {', '.join(SECTIONS)}")
    items = list(items or [])
    model_items = [i[len("model.") :] for i in items if i.startswith("model.")]
    cfg = _validated(stage_cls, [i for i in items if not i.startswith("model.")], raw.get(stage) or {})
    section = sets(model_items, raw.get("model") or {})
    source = model or section.pop("model", None)
    section.pop("model", None)
    if not source:
        raise ValueError("no model: give --model (a folder or hub id) or model.model in --config")
    unknown = sorted(set(section) - set(ModelConfig.model_fields))
    if unknown:
        raise ValueError(f"unknown model key(s) {unknown}; allowed: {', '.join(ModelConfig.model_fields)}")
    try:
        ModelConfig(model=source, **section)
    except ValueError as e:
        raise ValueError(f"invalid model settings: {validation_message(e)}") from None
    return source, section, cfg


ModelOpt = Annotated[str | None, typer.Option(help="Qwen2-VL / Qwen2.5-VL folder or hub id, or a Touch-R1 checkpoint")]
ConfigOpt = Annotated[
    Path | None, typer.Option(help="YAML file with the sections model, pretrain, sft, grpo (configs/touchr1_*.yaml)")
]


@touchr1_app.command("init-tiny")
def init_tiny_cmd(
    out: Annotated[Path, typer.Argument(help="folder to write the model to")],
    image_size: Annotated[int, typer.Option(help="composite image size (a multiple of 84)")] = 168,
    seed: Annotated[int, typer.Option(help="seed of the random weights")] = 0,
    arch: Annotated[str, typer.Option(help="qwen2_vl or qwen2_5_vl")] = "qwen2_vl",
) -> None:
    """Build the tiny Qwen2-VL (or Qwen2.5-VL) with the Touch-R1 tokenizer offline and save it in OUT."""
    from taclab.papers.tla.tiny import ARCHS
    from taclab.papers.touchr1.tiny import init_tiny

    with clear_errors():
        if image_size % 84 or not 84 <= image_size <= 1008:
            raise ValueError(f"--image-size must be a multiple of 84 in [84, 1008], got {image_size}")
        if arch not in ARCHS:
            raise ValueError(f"--arch {arch!r} is not known; allowed: {', '.join(ARCHS)}")
        typer.echo(str(init_tiny(out, image_size=image_size, seed=seed, arch=arch)))


def _model(model: str, overrides: dict | None = None):
    """A Touch-R1 checkpoint (its own config, ``overrides`` on top) or a base model (image size 168 unless
    overridden)."""
    from taclab.papers.touchr1.model import CONFIG_FILE, TouchR1Model

    overrides = dict(overrides or {})
    if (Path(model) / CONFIG_FILE).is_file():
        return TouchR1Model.load(model, **overrides)
    return TouchR1Model({"model": model, "image_size": 168, **overrides})


@touchr1_app.command("pretrain")
def pretrain_cmd(
    data: Annotated[Path, typer.Option(help="touchr1 dataset folder")],
    out: Annotated[Path, typer.Option(help="run folder (model/, log.jsonl, loss.png, done.json)")],
    model: ModelOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Stage 1: pre-train the vision tower to predict the next tactile field."""
    from taclab.papers.touchr1.pretrain import PretrainConfig, run_pretrain

    with clear_errors():
        source, mcfg, cfg = _stage_config(model, config, "pretrain", PretrainConfig, set_)
        _threads()
        typer.echo(json.dumps(run_pretrain(_model(source, mcfg), data, out, cfg)["test"]))


@touchr1_app.command("sft")
def sft_cmd(
    data: Annotated[Path, typer.Option(help="touchr1 dataset folder")],
    out: Annotated[Path, typer.Option(help="run folder (model/, log.jsonl, loss.png, done.json)")],
    model: ModelOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Stage 2: supervised fine-tuning on the reference reasoning traces."""
    from taclab.papers.touchr1.sft import SFTConfig, run_sft

    with clear_errors():
        source, mcfg, cfg = _stage_config(model, config, "sft", SFTConfig, set_)
        _threads()
        s = run_sft(_model(source, mcfg), data, out, cfg)
        typer.echo(f"{s['steps']} steps, final loss {s['final_loss']:.3f}; {out}")


@touchr1_app.command("grpo")
def grpo_cmd(
    data: Annotated[Path, typer.Option(help="touchr1 dataset folder")],
    out: Annotated[Path, typer.Option(help="run folder (model/, log.json, rewards.png, done.json)")],
    model: ModelOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Stage 3: GRPO with the ordinal, consistency, format and counterfactual rewards (weights: rewards.*)."""
    from taclab.papers.touchr1.grpo import GRPOStageConfig, run_grpo

    with clear_errors():
        source, mcfg, cfg = _stage_config(model, config, "grpo", GRPOStageConfig, set_)
        _threads()
        s = run_grpo(_model(source, mcfg), data, out, cfg)
        typer.echo(f"{s['steps']} steps, final rewards {s['final']}; {out}")


@touchr1_app.command("baselines")
def baselines_cmd(
    data: Annotated[Path, typer.Option(help="touchr1 dataset folder")],
    out: Annotated[Path, typer.Option(help="folder for tactile_cnn.pt and vision_cnn.pt")],
    set_: SetOpt = None,
) -> None:
    """Train the reference classifiers (tactile-only CNN, vision-only CNN)."""
    from taclab.papers.touchr1.baselines import CNNConfig, train_baselines

    with clear_errors():
        cfg = _validated(CNNConfig, set_)
        _threads()
        typer.echo(json.dumps(train_baselines(data, out, cfg)))


@touchr1_app.command("questions")
def questions_cmd(
    data: Annotated[Path, typer.Option(help="touchr1 dataset folder")],
    out: Annotated[Path, typer.Option(help="JSONL file of questions, reference answers and traces")],
    split: Annotated[str, typer.Option(help="split")] = "test",
    set_: SetOpt = None,
) -> None:
    """Write the questions of a split (counts per type and seed: --set level=..., compare=..., seed=...)."""
    from taclab.papers.touchr1.inputs import load_split
    from taclab.papers.touchr1.questions import QuestionConfig, make_questions

    with clear_errors():
        cfg = _validated(QuestionConfig, set_)
        qs = make_questions(load_split(data, split), cfg, split)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(q.to_json()) + "\n" for q in qs))
        typer.echo(f"{len(qs)} questions; {out}")


def answerer(spec: str, batch_size: int = 16):
    """An answerer from a spec: a Touch-R1 checkpoint folder, ``oracle``, ``chance``, ``tactile-cnn:PATH`` or
    ``vision-cnn:PATH`` (a ``.pt`` written by ``taclab touchr1 baselines``)."""
    from taclab.papers.touchr1.baselines import LevelAnswerer, load_cnn
    from taclab.papers.touchr1.evaluate import ModelAnswerer
    from taclab.papers.touchr1.model import CONFIG_FILE, TouchR1Model

    if spec in ("oracle", "chance"):
        return LevelAnswerer(spec)
    kind, _, path = spec.partition(":")
    if kind in ("tactile-cnn", "vision-cnn"):
        if not Path(path).is_file():
            raise ValueError(f"{kind} needs a trained network file: {kind}:PATH, got {path!r}")
        return LevelAnswerer(kind, load_cnn(path))
    if (Path(spec) / CONFIG_FILE).is_file():
        return ModelAnswerer(TouchR1Model.load(spec), batch_size)
    raise ValueError(
        f"--model {spec!r} is not a Touch-R1 checkpoint folder; allowed: a checkpoint folder, oracle, chance, "
        "tactile-cnn:PATH, vision-cnn:PATH"
    )


def reason_cmd(
    model: Annotated[str, typer.Option(help="checkpoint folder, oracle, chance, tactile-cnn:PATH or vision-cnn:PATH")],
    data: Annotated[Path, typer.Option(help="touchr1 dataset folder")],
    out: Annotated[Path, typer.Option(help="folder for reason_<split>.json")],
    split: Annotated[str, typer.Option(help="split to score")] = "test",
    name: Annotated[str | None, typer.Option(help="row name (default: --model)")] = None,
    counterfactuals: Annotated[bool, typer.Option(help="also score removed / shuffled / noised touch")] = True,
) -> None:
    """Touch-R1 benchmark: OMAE, exact match, CSC, format errors and tactile reliance per question type."""
    from taclab.papers.touchr1.evaluate import evaluate

    with clear_errors():
        _threads()
        ans = answerer(model)
        cf = ("removed", "shuffled", "noised") if counterfactuals else ()
        r = evaluate(ans, data, split, counterfactuals=cf, out=out, name=name or model)
    o = r["overall"]
    csc = "-" if o["csc"] is None else f"{o['csc']:.1f}"
    typer.echo(
        f"{r['name']} on {split} ({r['questions']} questions): OMAE {o['omae']:.3f}, EM {o['exact_match']:.1f} %, "
        f"CSC {csc} %, format errors {o['format_error']:.1f} %, tactile reliance "
        f"{r['tactile_reliance'].get('mean') or 0:.1f} points; {out}"
    )


def mount(app: typer.Typer, eval_app: typer.Typer) -> None:
    """Add ``taclab touchr1 ...`` and ``taclab eval reason`` to the main command line."""
    app.add_typer(touchr1_app, name="touchr1")
    eval_app.command("reason")(reason_cmd)
