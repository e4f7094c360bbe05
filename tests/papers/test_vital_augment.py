"""Semantic augmentation: the foreground is kept, the background replaced; shift, jitter, sources, errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from taclab.data.augment import (
    PATTERNS,
    SemanticAugment,
    colour_jitter,
    load_backgrounds,
    procedural_backgrounds,
    shift,
)


def scene(n=4, h=32, w=40):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (n, h, w, 3), dtype=np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    masks[:, 5:15, 8:20] = 1  # gripper
    masks[:, 16:25, 10:18] = 2  # object
    masks[:, 26:30, 25:35] = 3  # target
    return images, masks


def test_foreground_is_kept_and_background_replaced():
    images, masks = scene()
    bank = procedural_backgrounds(8, (32, 40), seed=1)
    aug = SemanticAugment(bank, shift_px=0, brightness=0, contrast=0, saturation=0)
    out = aug(images, masks, np.random.default_rng(0))
    assert isinstance(out, np.ndarray) and out.shape == images.shape and out.dtype == np.uint8
    fg = masks > 0
    np.testing.assert_array_equal(out[fg], images[fg])
    for i in range(len(images)):  # each background is one of the bank's, whole
        bg = ~fg[i]
        assert any(np.array_equal(out[i][bg], b[bg]) for b in bank)
    # keep only the object: the gripper's pixels are replaced too
    only_object = SemanticAugment(bank, keep=(2,), shift_px=0, brightness=0, contrast=0, saturation=0)
    out = only_object(images, masks, np.random.default_rng(0))
    assert not np.array_equal(out[masks == 1], images[masks == 1])
    # p = 0 keeps every background
    keep_all = SemanticAugment(bank, p=0.0, shift_px=0, brightness=0, contrast=0, saturation=0)
    np.testing.assert_array_equal(keep_all(images, masks, np.random.default_rng(0)), images)


def test_same_generator_state_same_output_and_torch_in_torch_out():
    images, masks = scene()
    aug = SemanticAugment(n_procedural=6, size=(32, 40))
    a = aug(images, masks, np.random.default_rng(7))
    b = aug(images, masks, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    t = aug(torch.as_tensor(images), torch.as_tensor(masks), torch.Generator().manual_seed(7))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.shape == images.shape
    # leading batch dimensions are kept
    assert aug(images.reshape(2, 2, 32, 40, 3), masks.reshape(2, 2, 32, 40)).shape == (2, 2, 32, 40, 3)


def test_shift_moves_the_image_by_at_most_pad_pixels_with_repeated_edges():
    images, _ = scene(n=16)
    x = torch.as_tensor(images)
    out = shift(x, 3, np.random.default_rng(0)).numpy()
    for i in range(16):
        found = False
        for dy in range(-3, 4):
            for dx in range(-3, 4):
                rows = np.clip(np.arange(32) + dy, 0, 31)
                cols = np.clip(np.arange(40) + dx, 0, 39)
                found |= np.array_equal(out[i], images[i][rows][:, cols])
        assert found


def test_colour_jitter_stays_within_its_factors():
    grey = torch.full((64, 8, 8, 3), 100, dtype=torch.uint8)
    out = colour_jitter(grey, np.random.default_rng(0), brightness=0.3, contrast=0.3, saturation=0.2).float()
    # a flat grey image: contrast and saturation leave it, brightness scales it by 0.7 .. 1.3
    assert out.min() >= 69 and out.max() <= 131 and out.std(dim=(1, 2, 3)).max() == 0
    assert out.mean(dim=(1, 2, 3)).std() > 5
    col = torch.zeros((32, 4, 4, 3), dtype=torch.uint8)
    col[..., 0] = 200
    sat = colour_jitter(col, np.random.default_rng(1), brightness=0, contrast=0, saturation=0.5).float()
    assert (sat[..., 1] > 0).any() or (sat[..., 0] > 200).any()  # saturation moves colours from/towards grey


def test_backgrounds_from_a_folder_and_procedural_ones(tmp_path):
    for i, c in enumerate([(255, 0, 0), (0, 0, 255)]):
        Image.new("RGB", (50, 30), c).save(tmp_path / f"b{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    bank = load_backgrounds(tmp_path, size=(16, 20))
    assert bank.shape == (2, 16, 20, 3) and bank[0, 0, 0].tolist() == [255, 0, 0]
    aug = SemanticAugment(tmp_path, size=(16, 20), shift_px=0, brightness=0, contrast=0, saturation=0)
    out = aug(np.zeros((3, 16, 20, 3), np.uint8), np.zeros((3, 16, 20), np.uint8), np.random.default_rng(0))
    assert set(map(tuple, out.reshape(-1, 3).tolist())) <= {(255, 0, 0), (0, 0, 255)}
    a, b = procedural_backgrounds(7, (24, 24), seed=5), procedural_backgrounds(7, (24, 24), seed=5)
    np.testing.assert_array_equal(a, b)
    assert len(PATTERNS) == 7 and len({x.tobytes() for x in a}) == 7


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"holds no images; allowed suffixes: \.png, \.jpg"):
        SemanticAugment(tmp_path)
    with pytest.raises(ValueError, match="does not exist or is not a folder"):
        load_backgrounds(tmp_path / "missing")
    aug = SemanticAugment(n_procedural=2, size=(8, 8))
    with pytest.raises(ValueError, match="images must be uint8"):
        aug(np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="p must be in"):
        SemanticAugment(n_procedural=2, p=1.5)
