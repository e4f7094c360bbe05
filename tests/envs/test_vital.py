"""The VITAL environments: observations, the end-effector action frame, the skin at rest, failures, variations,
camera geometry and input validation."""

import math

import numpy as np
import pytest

import taclab  # noqa: F401 - registers the environments
from taclab.envs.base import make
from taclab.envs.vital import ENV_IDS, VitalEnv, VitalUSBEnv, check_task
from taclab.sim.vital import MASK_LABELS, TASKS

FAST = {"image_size": (64, 64)}


@pytest.fixture(scope="module")
def usb():
    env = VitalUSBEnv(**FAST, third_person=True, third_person_size=(96, 128))
    yield env
    env.close()


@pytest.mark.parametrize("task", TASKS)
def test_every_task_starts_as_the_paper_and_observes_what_it_should(task):
    env = make(ENV_IDS[task], **FAST)
    obs, info = env.reset(seed=1)
    assert obs["wrist_rgb"].shape == (64, 64, 3) and obs["skin"].shape == (2, 15) and obs["proprio"].shape == (7,)
    # the wrist mask sees the gripper and the object (the target too once near it)
    labels = set(np.unique(obs["wrist_mask"]).tolist())
    assert {MASK_LABELS["gripper"], MASK_LABELS["object"]} <= labels
    # start: grasp centre ~10 cm above the target within the start area; object in hand except for pick
    rel = info["ee_pos"] - info["target_pos"]
    if task == "card":
        assert 0.005 - 1e-3 <= rel[2] - 0.0475 <= 0.025 + 1e-3  # card edge 5-25 mm above the slot
    else:
        assert abs(rel[0]) <= 0.03 + 1e-3 and abs(rel[1]) <= 0.03 + 1e-3
        assert rel[2] == pytest.approx(0.1 + (0.0125 if task == "pick" else 0.0), abs=2e-3)
    assert info["pad_contact"].all() == (task != "pick")
    assert not info["is_success"] and info["failure"] is None
    for _ in range(2):
        obs, r, term, trunc, info = env.step(np.zeros(7, np.float32) + np.r_[0, 0, 0, 0, 0, 0, 1.0])
        assert not (term or trunc) and r == 0.0
    # holding still: the held object stays where it was
    assert info["pad_contact"].all() == (task != "pick")
    env.close()


def test_open_gripper_reads_the_baseline(usb):
    env = make(ENV_IDS["pick"], **FAST, masks=False)
    obs, _ = env.reset(seed=0)
    noise = env.unwrapped.skin_renderer.profile.noise_uT
    reads = [obs["skin"]]
    for _ in range(12):
        obs, *_ = env.step(np.r_[0, 0, 0, 0, 0, 0, -1.0])
        reads.append(obs["skin"])
    reads = np.stack(reads)
    assert np.abs(reads).max() < 6 * noise
    assert abs(reads.mean()) < noise


def test_actions_are_relative_motions_in_the_end_effector_frame(usb):
    obs, info = usb.reset(seed=0, options={"start": (0, 0, 0)})
    yaw = info["ee_target"][5]
    p0 = info["ee_target"][:3].copy()
    obs, _, _, _, info = usb.step(np.r_[6.0, 0, 0, 0, 0, 0, 1.0])
    moved = info["ee_target"][:3] - p0
    np.testing.assert_allclose(moved * 1000, [6 * math.cos(yaw), 6 * math.sin(yaw), 0], atol=1e-6)
    # the servos follow within a control period
    np.testing.assert_allclose(info["ee_pos"], info["ee_target"][:3], atol=3e-4)
    obs, _, _, _, info = usb.step(np.r_[0, 0, 0, 0, 0, 4.0, 1.0])
    assert info["ee_target"][5] - yaw == pytest.approx(math.radians(4), abs=1e-9)
    # out-of-range values are clipped to the documented maximum per step
    p1 = info["ee_target"][:3].copy()
    obs, _, _, _, info = usb.step(np.r_[0, 0, 50.0, 0, 0, 0, 1.0])
    assert info["action_clipped"] and (info["ee_target"][2] - p1[2]) * 1000 == pytest.approx(10.0)


def test_third_person_camera_geometry_projects_the_target(usb):
    usb.reset(seed=2, options={"target": (60.0, -40.0)})
    view = usb.unwrapped.third_person()
    k, pose = view["K"], view["world_from_camera"]
    p = usb.unwrapped.sim.target_pose()[0] + [0.014, 0.0, 0.0]  # on the port's top face, beside the opening
    cam = np.linalg.inv(pose) @ np.r_[p, 1.0]
    u, v = (k @ cam[:3])[:2] / cam[2]
    h, w = view["depth"].shape
    assert 0 <= u < w and 0 <= v < h
    assert view["depth"][int(v), int(u)] == pytest.approx(cam[2], abs=0.003)
    assert view["rgb"].shape == (96, 128, 3)


def test_pushing_too_hard_ends_the_episode_as_a_failure():
    env = make(ENV_IDS["key"], **FAST, masks=False, max_skin_norm=300.0)
    obs, info = env.reset(seed=0, options={"start": (12.0, 0.0, 0.0)})  # the key lands beside the keyway
    for _ in range(40):
        obs, r, term, trunc, info = env.step(np.r_[0, 0, -10.0, 0, 0, 0, 1.0])
        if term or trunc:
            break
    assert term and not info["is_success"] and info["failure"] == "skin_limit"
    assert info["skin_norm"] > 300.0


def test_opening_the_gripper_drops_the_part():
    env = make(ENV_IDS["plug"], **FAST, masks=False)
    env.reset(seed=0)
    for _ in range(10):
        obs, r, term, trunc, info = env.step(np.r_[0, 0, 0, 0, 0, 0, -1.0])
        if term:
            break
    assert term and info["failure"] == "dropped"


def test_scene_variations_change_what_the_cameras_see():
    env = make(ENV_IDS["usb"], **FAST, masks=False)
    green, _ = env.reset(seed=5)
    clutter, info = env.reset(seed=5, options={"background": "cluttered", "lighting": "random"})
    assert info["background"] == "cluttered" and env.unwrapped.task_of(info)["lighting"] == "random"
    assert np.abs(green["wrist_rgb"].astype(int) - clutter["wrist_rgb"]).mean() > 10
    _, info = env.reset(seed=5, options={"target": "novel"})
    assert 0.08 <= np.hypot(*info["target_pos"][:2]) <= 0.2
    # the hand starts relative to the target wherever it stands
    assert np.hypot(*(info["ee_pos"] - info["target_pos"])[:2]) < 0.045
    assert set(VitalEnv.TASK_LISTS) >= {"paper", "spatial", "scene"}


def test_bad_input_is_named(usb):
    usb.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(7,\)"):
        usb.step(np.zeros(6))
    with pytest.raises(ValueError, match="action must be finite"):
        usb.step(np.r_[np.nan, np.zeros(6)])
    with pytest.raises(ValueError, match="unknown VITAL task 'socket'; allowed: plug, usb, card, key, pick"):
        check_task("socket")
    with pytest.raises(ValueError, match="unknown background 'beach'; allowed: green, textured, cluttered"):
        usb.reset(seed=0, options={"background": "beach"})
    with pytest.raises(ValueError, match="unknown target 'far'; allowed: train, novel"):
        usb.reset(seed=0, options={"target": "far"})
    with pytest.raises(ValueError, match=r"or finite \(x_mm, y_mm\) within 250 mm, got \[1, 2, 3\]"):
        usb.reset(seed=0, options={"target": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['colour'\]"):
        usb.reset(seed=0, options={"colour": 1})
    with pytest.raises(ValueError, match="unknown lighting"):
        make(ENV_IDS["usb"], lighting="disco")


def test_docs_name_every_config_key():
    from pathlib import Path

    from taclab.envs.vital import VitalConfig
    from taclab.papers.vital.dataset import VitalDemoConfig
    from taclab.papers.vital.demonstrator import DemoConfig, DemoNoise
    from taclab.sim.tactile.magnetic import MagneticProfile
    from taclab.sim.vital import VitalSceneConfig

    doc = (Path(__file__).resolve().parents[2] / "docs" / "vital.md").read_text()
    for model in (VitalConfig, VitalSceneConfig, MagneticProfile, DemoConfig, DemoNoise, VitalDemoConfig):
        missing = [k for k in model.model_fields if f"`{k}`" not in doc]
        assert not missing, f"docs/vital.md does not name {model.__name__} keys {missing}"
