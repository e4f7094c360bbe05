"""Model inputs of the TLA model: composite images and chat text as Qwen2-VL tensors.

A sample is written in the chat layout of :func:`taclab.papers.tla.instruct.render_chat`::

    <|im_start|>user\\n<|vision_start|><|image_pad|> x N<|vision_end|>{instruction}<|im_end|>\\n
    <|im_start|>assistant\\n{answer}<|im_end|>\\n

where N, the number of image tokens, is the number of patches the image processor makes of the image divided by
``merge_size ** 2`` (each 2x2 group of patches becomes one token). Training batches carry ``labels``: -100 (no
loss) everywhere except on the answer and its closing ``<|im_end|>``, so the loss is the next-token loss of the
answer alone (equation 4 of the paper). Prompt batches stop after ``<|im_start|>assistant\\n`` and are padded
on the left, so that batched generation continues every row from its last token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taclab.papers.tla.instruct import render_chat

IGNORE_INDEX = -100
"""Label value that the loss skips."""

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"
ASSISTANT_OPEN = f"{IM_START}assistant\n"


def encode_images(image_processor, images: Sequence[np.ndarray]) -> dict:
    """``pixel_values`` (patches of all images, concatenated) and ``image_grid_thw`` (one row per image)."""
    arrays = []
    for i, img in enumerate(images):
        a = np.asarray(img)
        if a.ndim != 3 or a.shape[-1] != 3 or a.dtype != np.uint8:
            raise ValueError(f"image {i} must be uint8 of shape (H, W, 3), got {a.dtype} {a.shape}")
        arrays.append(a)
    if not arrays:
        raise ValueError("a batch needs at least one image")
    out = image_processor(images=arrays, return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def image_token_counts(image_grid_thw, merge_size: int) -> list[int]:
    """Image tokens per image: grid_t * grid_h * grid_w / merge_size**2."""
    return [int(t * h * w) // (merge_size**2) for t, h, w in image_grid_thw.tolist()]


def prompt_text(instruction: str, n_image_tokens: int) -> str:
    """The user turn with ``n_image_tokens`` image tokens, followed by the opening of the assistant turn."""
    user = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]}
    return render_chat(user, image_token=VISION_START + IMAGE_PAD * n_image_tokens + VISION_END) + ASSISTANT_OPEN


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def build_batch(
    tokenizer,
    image_processor,
    images: Sequence[np.ndarray],
    instructions: Sequence[str],
    answers: Sequence[str] | None = None,
) -> dict:
    """Tensors for a Qwen2-VL forward pass or ``generate``.

    Returns ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` (1 on image tokens; the model needs it for
    its multimodal positions), ``pixel_values``, ``image_grid_thw`` and, when ``answers`` are given, ``labels``.
    With answers the rows are padded on the right, without them on the left.
    """
    import torch

    n = len(images)
    if len(instructions) != n or (answers is not None and len(answers) != n):
        raise ValueError(
            f"got {n} images, {len(instructions)} instructions and "
            f"{'no' if answers is None else len(answers)} answers: the counts must match"
        )
    vision = encode_images(image_processor, images)
    counts = image_token_counts(vision["image_grid_thw"], int(image_processor.merge_size))
    image_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has no pad token")

    rows, label_rows = [], []
    for i in range(n):
        # The image tokens are inserted as ids: tokenizing hundreds of markers as text is slow, and special
        # tokens split the text anyway, so the result is the same.
        before, after = prompt_text(instructions[i], 1).split(IMAGE_PAD)
        ids = _ids(tokenizer, before) + [image_id] * counts[i] + _ids(tokenizer, after)
        labels = [IGNORE_INDEX] * len(ids)
        if answers is not None:
            answer = _ids(tokenizer, f"{answers[i]}{IM_END}")
            tail = _ids(tokenizer, "\n")
            ids += answer + tail
            labels += answer + [IGNORE_INDEX] * len(tail)
        rows.append(ids)
        label_rows.append(labels)

    width = max(len(r) for r in rows)
    left = answers is None
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    label_t = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    for i, (ids, labels) in enumerate(zip(rows, label_rows, strict=True)):
        sl = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[i, sl] = torch.tensor(ids)
        attention_mask[i, sl] = 1
        label_t[i, sl] = torch.tensor(labels)
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": (input_ids == image_id).to(torch.int32),
        "pixel_values": vision["pixel_values"],
        "image_grid_thw": vision["image_grid_thw"],
    }
    if answers is not None:
        batch["labels"] = label_t
    return batch
