"""A tiny, randomly initialized Qwen2-VL for Touch-R1, built offline (``taclab touchr1 init-tiny PATH``).

The architecture, sizes, chat template and image processor are those of the TLA tiny model
(:mod:`taclab.papers.tla.tiny`); only the tokenizer differs: a byte-level BPE trained on Touch-R1's questions
and reference traces, so the three-tag answers take few tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from taclab.papers.tla import tiny as tla_tiny
from taclab.papers.touchr1.objects import PROPERTIES
from taclab.papers.touchr1.physics import SENSORS
from taclab.papers.touchr1.questions import QuestionConfig, make_questions

TOKENIZER_VOCAB = 700
DEFAULT_IMAGE_SIZE = 168


def corpus(n_objects: int = 100, seed: int = 0) -> list[str]:
    """Training text for the tokenizer: prompts and reference traces of questions over random objects."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(1, 6, size=(n_objects, len(PROPERTIES)))
    conflict = rng.uniform(size=n_objects) < 0.5
    props = np.array([PROPERTIES[i % 4] if c else "" for i, c in enumerate(conflict)])
    table = {
        "levels": levels,
        "apparent_levels": 6 - levels,
        "conflict": conflict,
        "conflict_property": props,
        "sensors": np.array([",".join(SENSORS)] * n_objects),
    }
    qs = make_questions(table, QuestionConfig(level=120, compare=60, rank=40, cross_sensor=12, conflict=30))
    texts = []
    for q in qs:
        texts += [q.prompt, q.trace, f"{tla_tiny.IM_START}assistant\n{q.trace}{tla_tiny.IM_END}\n"]
    texts += ["user", "assistant", "system"]
    return texts


def build_tokenizer(out_dir: str | Path | None = None, vocab_size: int = TOKENIZER_VOCAB):
    """The Touch-R1 tokenizer: TLA's tokenizer recipe (Qwen special tokens first, digits split, left padding, the
    chat template) trained on :func:`corpus`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(tla_tiny._SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(tla_tiny.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(), trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=tla_tiny.IM_END,
        pad_token=tla_tiny.END_OF_TEXT,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=tla_tiny.TINY_DEFAULTS["max_position_embeddings"],
    )
    tok.chat_template = tla_tiny.CHAT_TEMPLATE
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


def init_tiny(
    out: str | Path, *, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0, arch: str = "qwen2_vl", **overrides
) -> Path:
    """Build the tiny Qwen2-VL (``arch="qwen2_5_vl"``: Qwen2.5-VL, the paper's family) with the Touch-R1 tokenizer
    (random weights seeded by ``seed``) and save it.

    ``overrides`` are keys of :data:`taclab.papers.tla.tiny.TINY_DEFAULTS`. The same arguments give the same files.
    """
    return tla_tiny.init_tiny(
        out, image_size=image_size, seed=seed, tokenizer=build_tokenizer(), arch=arch, **overrides
    )
