"""A tiny, randomly initialized Qwen2-VL with a small tokenizer, built entirely offline.

It has the architecture of the TLA paper's base model (a ViT with 2x2 patch merging in front of a Qwen2 decoder,
multimodal rotary positions, the Qwen chat markers) at a size that trains on a CPU. Its weights are random:
nothing of the pretrained model's vision or language knowledge is in it.

- :func:`build_tokenizer` trains a byte-level BPE tokenizer of a few hundred tokens on text made from the
  instruction templates, the encoded actions of the action grid and the chat layout. Digits are split one by one
  (like Qwen2's tokenizer), and the Qwen special tokens are kept, so chat text reads the same as for Qwen2-VL.
- :func:`init_tiny` saves the model in the standard layout (``config.json``, ``model.safetensors``,
  ``generation_config.json``, tokenizer files, ``preprocessor_config.json``): it loads with ``from_pretrained``
  and with ``TLAConfig(model=folder)``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from taclab.papers.tla.instruct import DEFAULT_TEMPLATES, SHAPE_WORDS, ActionCodec, instruction

IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"

SPECIAL_TOKENS = (
    END_OF_TEXT,
    IM_START,
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    VISION_START,
    VISION_END,
    "<|vision_pad|>",
    IMAGE_PAD,
    VIDEO_PAD,
)
"""The special tokens of Qwen2-VL's tokenizer, in its order; the tiny tokenizer gives them the first ids."""

EXTRA_SHAPES = ("pentagon", "octagon", "rectangle", "oval", "star", "custom", "polygon:5", "polygon:8")
"""Shapes beyond the paper's four whose names the tokenizer also sees."""

TOKENIZER_VOCAB = 400
"""Vocabulary size of the tiny tokenizer, the special tokens and the 256 byte symbols included."""

# Pre-tokenization: contractions, words with an optional leading space, single digits, punctuation runs,
# newlines and other white space. Digits are isolated so that numbers are spelled one digit per token.
_SPLIT_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""The chat layout of ``taclab.papers.tla.instruct.render_chat`` (no system turn) as a Jinja chat template."""

TINY_DEFAULTS = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vision_depth": 2,
    "vision_embed_dim": 96,
    "vision_num_heads": 4,
    "max_position_embeddings": 4096,
}
"""Sizes of the tiny model; :func:`init_tiny` accepts any of these keys as an override."""

DEFAULT_TINY_IMAGE_SIZE = 168
"""Composite image size (pixels) the tiny model's image processor is set up for by default."""


def _corpus(codec: ActionCodec) -> list[str]:
    """Training text for the tokenizer: instructions, chat turns and every action of the codec's grid."""
    shapes = list(SHAPE_WORDS) + list(EXTRA_SHAPES)
    texts = []
    for shape, k in itertools.product(shapes, range(len(DEFAULT_TEMPLATES))):
        text = instruction(shape, k)
        user = f"{IM_START}user\n{VISION_START}{IMAGE_PAD}{VISION_END}{text}{IM_END}\n{IM_START}assistant\n"
        texts.extend([text, user])
    steps = [int(round(lim / res)) for lim, res in zip(codec.limits, codec.resolution, strict=True)]
    for a, b, c in itertools.product(*(range(-s, s + 1) for s in steps)):
        texts.append(f"{codec.encode((a * codec.resolution[0], b * codec.resolution[1], c * codec.resolution[2]))}")
    texts.extend(["user", "assistant", "system", "You are a helpful assistant."])
    return texts


def build_tokenizer(out_dir: str | Path | None = None, vocab_size: int = TOKENIZER_VOCAB):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with the Qwen special tokens and chat template.

    Trained offline and deterministically on :func:`_corpus`; ``eos`` is ``<|im_end|>``, ``pad`` is
    ``<|endoftext|>``, padding is on the left (for batched generation). Saved to ``out_dir`` when given.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(ActionCodec()), trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=TINY_DEFAULTS["max_position_embeddings"],
    )
    tok.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok


ARCHS = ("qwen2_vl", "qwen2_5_vl")
"""Architectures of the tiny model: Qwen2-VL (the TLA paper's) and Qwen2.5-VL (Touch-R1's: a ViT with SwiGLU MLPs,
RMSNorm and window attention in all but the last block)."""


def tiny_config(tokenizer, arch: str = "qwen2_vl", **overrides):
    """The ``Qwen2VLConfig`` (or ``Qwen2_5_VLConfig`` with ``arch="qwen2_5_vl"``) of the tiny model, with token ids
    taken from ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    if arch not in ARCHS:
        raise ValueError(f"unknown tiny model architecture {arch!r}; allowed: {', '.join(ARCHS)}")
    unknown = set(overrides) - set(TINY_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown tiny model setting(s) {sorted(unknown)}; allowed: {sorted(TINY_DEFAULTS)}")
    s = {**TINY_DEFAULTS, **overrides}
    for key, value in s.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"tiny model setting {key} must be a positive integer, got {value!r}")
    if s["hidden_size"] % s["num_attention_heads"] or s["num_attention_heads"] % s["num_key_value_heads"]:
        raise ValueError(
            f"hidden_size {s['hidden_size']} must be divisible by num_attention_heads {s['num_attention_heads']}, "
            f"which must be divisible by num_key_value_heads {s['num_key_value_heads']}"
        )
    head_dim = s["hidden_size"] // s["num_attention_heads"]
    if head_dim % 8:
        raise ValueError(
            f"the text head size hidden_size / num_attention_heads must be a multiple of 8, got {head_dim}"
        )
    if s["vision_embed_dim"] % s["vision_num_heads"] or (s["vision_embed_dim"] // s["vision_num_heads"]) % 4:
        raise ValueError(
            f"vision_embed_dim {s['vision_embed_dim']} / vision_num_heads {s['vision_num_heads']} must be a multiple "
            "of 4"
        )
    # Multimodal rotary sections (temporal, height, width) in Qwen2-VL's 2:3:3 proportion of head_dim / 2.
    half = head_dim // 2
    t_sec = half // 4
    h_sec = (half - t_sec) // 2
    mrope_section = [t_sec, h_sec, half - t_sec - h_sec]
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in _ID_TOKENS.items()}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": s["hidden_size"],
        "intermediate_size": s["intermediate_size"],
        "num_hidden_layers": s["num_hidden_layers"],
        "num_attention_heads": s["num_attention_heads"],
        "num_key_value_heads": s["num_key_value_heads"],
        "max_position_embeddings": s["max_position_embeddings"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "pad_token_id": ids["pad"],
    }
    vision = {
        "depth": s["vision_depth"],
        "embed_dim": s["vision_embed_dim"],
        "num_heads": s["vision_num_heads"],
        "hidden_size": s["hidden_size"],
        "mlp_ratio": 4,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    cls = Qwen2VLConfig
    if arch == "qwen2_5_vl":
        cls = Qwen2_5_VLConfig
        vision = {
            "depth": s["vision_depth"],
            "hidden_size": s["vision_embed_dim"],
            "intermediate_size": 4 * s["vision_embed_dim"],
            "num_heads": s["vision_num_heads"],
            "out_hidden_size": s["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,  # 8 x 8 patches, as the 7B model
            "fullatt_block_indexes": [s["vision_depth"] - 1],
        }
    return cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
        tie_word_embeddings=False,
    )


_ID_TOKENS = {
    "bos": END_OF_TEXT,
    "eos": IM_END,
    "pad": END_OF_TEXT,
    "image": IMAGE_PAD,
    "video": VIDEO_PAD,
    "vision_start": VISION_START,
    "vision_end": VISION_END,
}


def image_processor(image_size: int = DEFAULT_TINY_IMAGE_SIZE):
    """A Qwen2-VL image processor that keeps a square composite of ``image_size`` pixels at that size."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if image_size % 28 or not 28 <= image_size <= 4088:
        raise ValueError(f"image_size must be a multiple of 28 (patch 14 x merge 2) in [28, 4088], got {image_size}")
    pixels = int(image_size) ** 2
    return Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2)


def init_tiny(
    out: str | Path,
    *,
    image_size: int = DEFAULT_TINY_IMAGE_SIZE,
    seed: int = 0,
    tokenizer=None,
    arch: str = "qwen2_vl",
    **overrides,
) -> Path:
    """Build the tiny Qwen2-VL (random weights from a generator seeded with ``seed``) and save it to ``out``.

    ``overrides`` are keys of :data:`TINY_DEFAULTS`; ``tokenizer`` (default: :func:`build_tokenizer`, the TLA
    vocabulary) lets another paper build the same model over its own vocabulary; ``arch`` (one of :data:`ARCHS`)
    picks Qwen2-VL or Qwen2.5-VL. The same arguments give the same files.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration

    processor = image_processor(image_size)  # validates image_size before any work
    tokenizer = build_tokenizer() if tokenizer is None else tokenizer
    config = tiny_config(tokenizer, arch, **overrides)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        cls = Qwen2VLForConditionalGeneration if arch == "qwen2_vl" else Qwen2_5_VLForConditionalGeneration
        model = cls(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.bos_token_id],
        pad_token_id=config.text_config.pad_token_id,
        bos_token_id=config.text_config.bos_token_id,
        do_sample=False,
    )
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    (out / "tiny_init.json").write_text(
        json.dumps(
            {
                "image_size": int(image_size),
                "seed": int(seed),
                **({"arch": arch} if arch != "qwen2_vl" else {}),
                **TINY_DEFAULTS,
                **overrides,
            },
            indent=2,
        )
        + "\n"
    )
    return out
