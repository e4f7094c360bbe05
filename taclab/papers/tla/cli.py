"""Commands for the TLA model: build the tiny offline model, the recipe's pre-training and alignment stages, merge a
LoRA checkpoint, measure CPU cost.

``tla_app`` is a typer app; the main command line mounts it as ``taclab tla``. It also runs on its own:
``python -m taclab.papers.tla.cli --help``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from taclab.commandline import clear_errors as _clear_errors
from taclab.commandline import sets

tla_app = typer.Typer(
    help="The Tactile-Language-Action model: tiny offline Qwen2-VL, recipe stages, LoRA merging, cost measurement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _parse_sets(items: list[str] | None) -> dict:
    """The ``--set`` items (one grammar for every command: dotted keys, YAML values) as a config tree."""
    return sets(items)


@tla_app.command("init-tiny")
def init_tiny_cmd(
    out: Annotated[Path, typer.Argument(help="folder to write the model to")],
    image_size: Annotated[int, typer.Option(help="composite image size (pixels, a multiple of 28)")] = 168,
    seed: Annotated[int, typer.Option(help="seed of the random weights")] = 0,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="model size override key=value, e.g. hidden_size=256")
    ] = None,
) -> None:
    """Build the tiny randomly initialized Qwen2-VL and its tokenizer offline and save them in OUT."""
    from taclab.papers.tla.tiny import init_tiny

    with _clear_errors():
        path = init_tiny(out, image_size=image_size, seed=seed, **_parse_sets(set_))
    typer.echo(str(path))


@tla_app.command("merge")
def merge_cmd(
    checkpoint_dir: Annotated[Path, typer.Argument(help="a TLA checkpoint folder (written by TLAModel.save)")],
    out: Annotated[Path, typer.Argument(help="folder for the merged model")],
) -> None:
    """Merge a checkpoint's LoRA adapter into its base model and save a plain Qwen2-VL folder in OUT."""
    from taclab.papers.tla.model import TLAModel

    with _clear_errors():
        path = TLAModel.load(checkpoint_dir).merge(out)
    typer.echo(str(path))


def benchmark(
    model: str | Path | None = None,
    *,
    image_size: int = 168,
    finetune: str = "lora",
    batch: int = 8,
    steps: int = 10,
    predict_batches: tuple[int, ...] = (1, 16),
    repeats: int = 3,
    **config,
) -> dict:
    """Median milliseconds per training step (AdamW) at ``batch`` and per ``predict`` call at each batch size.

    Without ``model`` a tiny model is built in a temporary folder. Inputs are random 64x64 tactile sequences.
    """
    import tempfile

    import numpy as np
    import torch

    from taclab.papers.tla.model import TLAConfig, TLAModel
    from taclab.papers.tla.tiny import init_tiny

    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            model = init_tiny(Path(tmp) / "tiny", image_size=image_size)
        tla = TLAModel(TLAConfig(model=str(model), image_size=image_size, finetune=finetune, **config))
        rng = np.random.default_rng(0)
        n = max(batch, *predict_batches)
        tactile = rng.integers(0, 256, (n, 4, 2, 64, 64, 3), dtype=np.uint8)
        tla.fit_tactile_stats(tactile)
        actions = rng.uniform(-1.0, 1.0, (n, 3)) * np.array([1.0, 1.0, 1.5])
        shapes = ["square", "triangle", "round", "hexagon"] * (n // 4 + 1)
        opt = torch.optim.AdamW(tla.trainable_parameters(), lr=1e-4)
        tla.torch_module.train()
        times = []
        for _ in range(steps + 2):  # the first two steps warm up
            t0 = time.perf_counter()
            b = tla.batch(tactile[:batch], shapes[:batch], actions[:batch])
            loss = tla.loss(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        result = {
            "parameters": tla.parameter_count(),
            "image_tokens": tla.image_tokens,
            "train_step_ms": round(1000 * float(np.median(times[2:])), 1),
            "train_batch": batch,
            "num_beams": tla.cfg.num_beams,
            "threads": torch.get_num_threads(),
        }
        tla.torch_module.eval()
        for bs in predict_batches:
            times = []
            for _ in range(repeats + 1):
                t0 = time.perf_counter()
                tla.predict(tactile[:bs], shapes[:bs])
                times.append(time.perf_counter() - t0)
            result[f"predict_ms_batch{bs}"] = round(1000 * float(np.median(times[1:])), 1)
        return result


@tla_app.command("bench")
def bench_cmd(
    model: Annotated[str | None, typer.Option(help="Qwen2-VL folder or hub id (default: a fresh tiny model)")] = None,
    image_size: Annotated[int, typer.Option(help="composite image size (pixels)")] = 168,
    finetune: Annotated[str, typer.Option(help="lora or full")] = "lora",
    batch: Annotated[int, typer.Option(min=1, help="training batch size")] = 8,
    steps: Annotated[int, typer.Option(min=1, help="timed training steps")] = 10,
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads (0: torch's default)")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="TLAConfig override key=value")] = None,
) -> None:
    """Print the CPU cost of training steps and of predict() at batch 1 and 16, as JSON."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    with _clear_errors():
        sets = _parse_sets(set_)
        result = benchmark(model, image_size=image_size, finetune=finetune, batch=batch, steps=steps, **sets)
    typer.echo(json.dumps(result, indent=2))


def _stage(stage: str, config: Path | None, data: Path, out: Path, set_: list[str] | None, progress: bool) -> None:
    from taclab.papers.tla.recipe import load_stage_config, run_stage

    with _clear_errors():
        run = load_stage_config(config, _parse_sets(set_), stage=stage)
        record = run_stage(run, data, out, progress=progress)
    gate = record.get("gate", {})
    typer.echo(
        f"{out}: stage {stage}, {record['steps']} steps in {record['train_time_s']} s, loss "
        f"{record['first_loss']:.4g} -> {record['final_loss']:.4g}; check: real {gate.get('real', float('nan')):.4g}, "
        f"shuffled {gate.get('shuffled', float('nan')):.4g}. Next stage: --set model.model={out}"
    )


_CONFIG = Annotated[Path | None, typer.Option(help="stage config YAML (stage, train, model, pretrain, align)")]
_DATA = Annotated[Path, typer.Option(help="dataset folder (its training split is used, no labels)")]
_OUT = Annotated[Path, typer.Option(help="new folder: the base model of the next stage, with logs and curve")]
_SETS = Annotated[list[str] | None, typer.Option("--set", help="config override, e.g. train.epochs=3")]
_PROGRESS = Annotated[bool, typer.Option(help="show a progress bar")]


@tla_app.command("pretrain")
def pretrain_cmd(
    data: _DATA, out: _OUT, config: _CONFIG = None, set_: _SETS = None, progress: _PROGRESS = True
) -> None:
    """Recipe stage 1: self-supervised masked-patch pre-training of the vision tower on the tactile images."""
    _stage("pretrain", config, data, out, set_, progress)


@tla_app.command("align")
def align_cmd(data: _DATA, out: _OUT, config: _CONFIG = None, set_: _SETS = None, progress: _PROGRESS = True) -> None:
    """Recipe stage 2: tactile-language alignment on captions from the simulator's state, vision tower frozen."""
    _stage("align", config, data, out, set_, progress)


if __name__ == "__main__":
    tla_app()
