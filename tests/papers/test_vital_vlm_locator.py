"""The pointing-VLM locator's plumbing on a tiny random Qwen2-VL built offline: loading by path, the prompt, greedy
generation, the answer parser, the frames of an answer's point and the lift to 3-D with depth and calibration.
A random model's answer is garbage, so the numbers are checked on known answers put in place of the generation."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from taclab.papers.tla.tiny import init_tiny  # noqa: E402
from taclab.papers.vital import locate  # noqa: E402
from taclab.papers.vital.locate import VLMLocator, back_project, locate_world, project  # noqa: E402

H, W = 60, 80
K = np.array([[100.0, 0, 40], [0, 90.0, 30], [0, 0, 1]])
QUERY = "the USB port"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Qwen2-VL saved to a folder; its processor resizes to 56 x 56 pixels at most (3136 pixels), so
    the 80 x 60 view becomes 56 x 28: 4 x 2 patches of 14, 2 image tokens after 2 x 2 merging."""
    return init_tiny(tmp_path_factory.mktemp("vlm") / "tiny", image_size=56, hidden_size=64, intermediate_size=128)


@pytest.fixture(scope="module")
def loc(tiny):
    return VLMLocator(tiny, max_new_tokens=8)


def _view():
    """A synthetic third-person RGB-D view: a camera at (0.1, -0.2, 0.8) looking straight down (world -z), over
    a depth that grows to the right."""
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = 0.5 + 0.001 * np.arange(W)[None, :].repeat(H, 0)
    pose = np.eye(4)
    pose[:3, :3] = np.diag([1.0, -1.0, -1.0])  # camera x = world x, camera y = world -y, optical axis = world -z
    pose[:3, 3] = [0.1, -0.2, 0.8]
    return {"rgb": rgb, "depth": depth, "K": K, "world_from_camera": pose}


def _answer_with(loc, monkeypatch, text):
    """Make the model's generation append the tokens of ``text`` to the prompt."""
    ids = loc.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]

    def generate(input_ids, **kwargs):
        assert kwargs["do_sample"] is False and kwargs["max_new_tokens"] == loc.max_new_tokens
        assert kwargs["pixel_values"].shape[0] == 4 * 2  # 56 x 28 pixels: 4 x 2 patches of 14
        return torch.cat([input_ids, ids], 1)

    monkeypatch.setattr(loc.model, "generate", generate)


def test_random_model_generates_and_its_answer_reaches_the_parser(loc, monkeypatch):
    assert loc.model_type == "qwen2_vl" and loc.coords == "grid1000" and loc.device.type == "cpu"
    view = _view()
    inputs, size = loc._inputs(view["rgb"], QUERY)
    assert size == (56, 28)
    prompt = loc.tokenizer.decode(inputs["input_ids"][0])
    assert "Point to the USB port in the image." in prompt and "from 0 to 1000" in prompt
    assert prompt.count("<|image_pad|>") == 2 and prompt.endswith("<|im_start|>assistant\n")
    real_generate, outputs = loc.model.generate, []

    def generate(**kwargs):
        outputs.append(real_generate(**kwargs))
        return outputs[-1]

    monkeypatch.setattr(loc.model, "generate", generate)
    text, _ = loc.answer(view["rgb"], QUERY)
    new = outputs[0][0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new) <= loc.max_new_tokens and torch.equal(
        outputs[0][0, : len(inputs["input_ids"][0])], inputs["input_ids"][0]
    )
    assert text == loc.tokenizer.decode(new, skip_special_tokens=True) == loc.last_answer

    seen = []

    def spy(answer, width, height, frame):
        seen.append((answer, width, height, frame))
        return np.array([50.5, 25.5])

    monkeypatch.setattr(locate, "parse_point", spy)
    uv, world = locate_world(loc, view, QUERY)
    assert seen == [(text, W, H, (1000.0, 1000.0))]  # greedy: the same answer again, handed to the parser
    np.testing.assert_allclose(uv, [50.5, 25.5])
    np.testing.assert_allclose(world, back_project(uv, view["depth"], K, view["world_from_camera"]))
    np.testing.assert_allclose(project(world, K, view["world_from_camera"]), uv, atol=1e-9)


def test_known_answer_to_pixel_and_world_by_hand(loc, monkeypatch):
    view = _view()
    _answer_with(loc, monkeypatch, "(500, 250)")
    uv, world = locate_world(loc, view, QUERY)
    u, v = 500 / 1000 * W, 250 / 1000 * H  # Qwen2-VL's 0-1000 grid over the 80 x 60 image: (40, 15)
    np.testing.assert_allclose(uv, [u, v])
    z = 0.5 + 0.001 * 40  # the depth at column 40
    cam = [(u - 40) / 100 * z, (v - 30) / 90 * z, z]  # (0, -0.09, 0.54) in the camera
    np.testing.assert_allclose(world, [0.1 + cam[0], -0.2 - cam[1], 0.8 - cam[2]])
    np.testing.assert_allclose(world, [0.1, -0.11, 0.26])
    assert loc.last_answer == "(500, 250)"

    _answer_with(loc, monkeypatch, '<point x="25" y="50" alt="the USB port">the USB port</point>')
    np.testing.assert_allclose(loc.locate(view["rgb"], view["depth"], QUERY), [20, 30])  # Molmo: percent


def test_pixel_frames(tiny, monkeypatch):
    """``input``: pixels of the 56 x 28 image the model saw (Qwen2.5-VL); ``image``: pixels of the given image."""
    view = _view()
    loc = VLMLocator(tiny, coords="input", max_new_tokens=4)
    inputs, _ = loc._inputs(view["rgb"], QUERY)
    assert "in pixels of the 56 x 28 image" in loc.tokenizer.decode(inputs["input_ids"][0])
    _answer_with(loc, monkeypatch, 'It is here: {"point_2d": [28, 14], "label": "port"}')
    np.testing.assert_allclose(loc.locate(view["rgb"], view["depth"], QUERY), [28 / 56 * W, 14 / 28 * H])
    loc.coords = "image"
    _answer_with(loc, monkeypatch, "(12.5, 7)")
    np.testing.assert_allclose(loc.locate(view["rgb"], view["depth"], QUERY), [12.5, 7])
    _answer_with(loc, monkeypatch, "(80, 60)")  # the far corner: the last pixel
    assert np.all(loc.locate(view["rgb"], view["depth"], QUERY) < [W, H])


def test_bad_inputs_name_the_bad_value(tiny, loc, monkeypatch, tmp_path):
    view = _view()
    missing = tmp_path / "no_such_model"
    with pytest.raises(ValueError, match="no_such_model"):
        VLMLocator(missing)
    with pytest.raises(ValueError, match="'someone/not-cached-vlm'.*HF_HUB_OFFLINE"):
        VLMLocator("someone/not-cached-vlm")
    with pytest.raises(ValueError, match="unknown coords 'percent'"):
        VLMLocator(tiny, coords="percent")
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        VLMLocator(tiny, dtype="int8")
    with pytest.raises(ValueError, match="has no {query}"):
        VLMLocator(tiny, prompt="Where is it?")
    _answer_with(loc, monkeypatch, "I cannot see it")
    with pytest.raises(ValueError, match="found no point.*'I cannot see it'"):
        loc.locate(view["rgb"], view["depth"], QUERY)
    _answer_with(loc, monkeypatch, "(1200, 250)")
    with pytest.raises(ValueError, match=r"'\(1200, 250\)'.*outside the 80 x 60 image"):
        loc.locate(view["rgb"], view["depth"], QUERY)
    with pytest.raises(ValueError, match="depth image"):
        loc.locate(view["rgb"], view["depth"][:, :10], QUERY)
