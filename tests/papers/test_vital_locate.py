"""Localize-then-execute plumbing: projection by hand, point parsing, the noisy oracle, and one episode that
places the hand above the located target."""

import numpy as np
import pytest

import taclab.papers  # noqa: F401
from taclab.envs.base import make
from taclab.envs.vital import ENV_IDS
from taclab.papers.vital.dataset import demonstrator_for
from taclab.papers.vital.locate import NoisyOracleLocator, back_project, localize_then_execute, parse_point, project

K = np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])


def test_projection_by_hand():
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]  # camera at (1, 2, 3) looking along world +z
    uv = project([1.2, 1.9, 5.0], K, pose)  # 2 m in front, 0.2 right, 0.1 up
    np.testing.assert_allclose(uv, [40 + 100 * 0.2 / 2, 30 - 100 * 0.1 / 2])
    depth = np.full((60, 80), 2.0)
    np.testing.assert_allclose(back_project([50.0, 25.0], depth, K, pose), [1.2, 1.9, 5.0])
    with pytest.raises(ValueError, match="outside"):
        back_project([80.5, 3], depth, K, pose)
    with pytest.raises(ValueError, match="behind the camera"):
        project([1, 2, 1], K, pose)


def test_parse_point():
    np.testing.assert_allclose(parse_point('<point x="50.0" y="25" alt="port">port</point>', 320, 240), [160, 60])
    np.testing.assert_allclose(parse_point("The port is at (101, 57).", 320, 240), [101, 57])
    with pytest.raises(ValueError, match="no point in the answer"):
        parse_point("I cannot see it", 320, 240)


def test_oracle_places_the_hand_above_the_target():
    with pytest.raises(ValueError, match="noise_px"):
        NoisyOracleLocator(-1)
    env = make(ENV_IDS["plug"], third_person=True, third_person_size=(120, 160), image_size=(16, 16))
    demo = demonstrator_for("plug", env.unwrapped.config)
    r = localize_then_execute(env, demo, NoisyOracleLocator(0.0), seed=3)
    assert r["error_mm"] < 8 and r["success"]
    far = localize_then_execute(env, demo, NoisyOracleLocator(25.0, seed=1), seed=3)
    assert far["error_mm"] > r["error_mm"]


def test_keypoint_locator_overfit_gate_and_reload(tmp_path):
    """The keypoint network memorizes two dozen scenes; against shuffled images its error is far larger; a saved
    locator reloads with identical answers and refuses another task's query."""
    from taclab.papers.vital.locate import QUERIES, KeypointLocator, train_keypoint_locator

    rng = np.random.default_rng(0)
    n, h, w = 24, 32, 40
    rgb = rng.integers(0, 120, (n, h, w, 3), dtype=np.uint8)
    uv = np.stack([rng.uniform(4, w - 4, n), rng.uniform(4, h - 4, n)], 1).astype(np.float32)
    for i, (u, v) in enumerate(uv.astype(int)):
        rgb[i, v - 2 : v + 2, u - 2 : u + 2] = 255
    loc = train_keypoint_locator("usb", {"rgb": rgb, "uv": uv}, steps=250, batch=24, width=16)
    err = np.linalg.norm(loc.predict(rgb) - uv, axis=1).mean()
    shuffled = np.linalg.norm(loc.predict(rgb[np.roll(np.arange(n), 1)]) - uv, axis=1).mean()
    assert err < 2.5 and shuffled > 4 * err, (err, shuffled)
    again = KeypointLocator.load(loc.save(tmp_path / "loc"))
    np.testing.assert_array_equal(again.predict(rgb[:3]), loc.predict(rgb[:3]))
    assert np.allclose(again.locate(rgb[0], None, QUERIES["usb"]), uv[0], atol=3)
    with pytest.raises(ValueError, match="this locator finds"):
        again.locate(rgb[0], None, QUERIES["plug"])
