import numpy as np
import pytest

from taclab.papers.tla.instruct import (
    ActionCodec,
    chat_sample,
    composite_image,
    instruction,
    render_chat,
)


def seq():
    t = np.zeros((4, 2, 8, 8, 3), np.uint8)
    for k in range(8):
        t[k // 2, k % 2] = 10 * (k + 1)
    return t


def test_composite_layout_time_major_and_white_last_cell():
    g = composite_image(seq(), size=24)
    assert g.shape == (24, 24, 3) and g.dtype == np.uint8
    cells = [g[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] for r in range(3) for c in range(3)]
    for k in range(8):
        assert np.all(cells[k] == 10 * (k + 1))
    assert np.all(cells[8] == 255)


def test_composite_resizes_and_validates():
    assert composite_image(seq(), size=616).shape == (616, 616, 3)
    with pytest.raises(ValueError, match=r"\(4, 2, H, W, 3\)"):
        composite_image(np.zeros((4, 8, 8, 3), np.uint8))


def test_codec_round_trips_on_the_grid():
    codec = ActionCodec()
    rng = np.random.default_rng(0)
    for steps in rng.integers([-10, -10, -15], [11, 11, 16], size=(200, 3)):
        action = steps * 0.1
        text = codec.encode(action)
        res = codec.decode(text)
        assert res.ok and np.array_equal(codec.to_ints(res.action), steps)
    assert codec.encode([-0.9, 0.4, 1.3]) == "[-9, 4, 13]"


def test_codec_resolution_is_configurable():
    codec = ActionCodec(resolution=(0.01, 0.01, 0.05))
    assert codec.encode([-0.9, 0.4, 1.3]) == "[-90, 40, 26]"
    np.testing.assert_allclose(codec.decode("[-90, 40, 26]").action, [-0.9, 0.4, 1.3])
    with pytest.raises(ValueError, match="resolution"):
        ActionCodec(resolution=(0.1, 0.0, 0.1))


@pytest.mark.parametrize(
    "text, why",
    [
        ("", "form"),
        ("[1, 2]", "form"),
        ("[1.5, 2, 3]", "form"),
        ("move left", "form"),
        ("[1, 2, 3] ok", "form"),
        ("[11, 0, 0]", "limits"),
        ("[0, 0, -16]", "limits"),
        (None, "expected text"),
    ],
)
def test_parser_rejects_malformed_output_without_raising(text, why):
    res = ActionCodec().decode(text)
    assert not res.ok and res.action is None and why in res.error


def test_instruction_and_chat_sample():
    assert "hexagonal peg" in instruction("hexagon")
    assert "triangular peg" in instruction("triangle", template=1)
    with pytest.raises(ValueError, match="out of range"):
        instruction("square", template=9)
    with pytest.raises(ValueError, match="shape"):
        instruction("square", template="no placeholder")
    s = chat_sample("hexagon", [-0.9, 0.4, 1.3])
    text = render_chat(s)
    assert text.startswith("<|im_start|>user\n<|vision_start|>")
    assert "insert the hexagonal peg" in text and "<|im_start|>assistant\n[-9, 4, 13]<|im_end|>" in text
