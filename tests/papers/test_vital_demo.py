"""The scripted VITAL demonstrator: it completes every task, it is a registered privileged policy, and its
contact-driven corrections come from the skin."""

import numpy as np
import pytest

import taclab  # noqa: F401 - registers the environments
from taclab.envs.base import make
from taclab.envs.vital import ENV_IDS
from taclab.papers.vital.demonstrator import VitalDemonstrator
from taclab.policies.base import POLICIES
from taclab.sim.vital import TASKS

FAST = {"cameras": False, "masks": False, "image_size": (16, 16)}


def run(task, seed, **demo):
    env = make(ENV_IDS[task], **FAST)
    policy = VitalDemonstrator(task=task, **demo)
    obs, info = env.reset(seed=seed)
    policy.reset(env.unwrapped.task_of(info), seed=seed)
    actions = []
    while True:
        a = policy.select_action(obs, info)
        assert env.action_space.contains(a)
        actions.append(a)
        obs, r, term, trunc, info = env.step(a)
        if term or trunc:
            return info, policy, np.array(actions)


@pytest.mark.parametrize("task", TASKS)
def test_the_demonstrator_completes_each_task(task):
    info, policy, actions = run(task, seed=3)
    assert info["is_success"] and info["failure"] is None, (info["failure"], policy.phase)
    assert len(actions) < 60
    # it moves like a person: fast in free space, slowly near the target
    assert np.abs(actions[:3, :3]).max() > 5
    if task in ("plug", "usb", "key"):
        assert np.abs(actions[-3:, :3]).max() < 5


def test_registered_privileged_and_asks_for_info():
    assert POLICIES["vital_demo"] is VitalDemonstrator and VitalDemonstrator.privileged
    p = VitalDemonstrator(task="usb")
    with pytest.raises(ValueError, match="privileged"):
        p.select_action({"skin": np.zeros((2, 15))})
    with pytest.raises(ValueError, match="unknown VITAL task 'sock'"):
        VitalDemonstrator(task="sock")


def test_felt_contacts_drive_the_corrections():
    # a demonstrator that sees badly near the port: with touch it backs off and retries until the plug goes in;
    # without, it pushes on until the skin's abort threshold
    noise = {"near_bias_mm": 1.2}
    info, policy, _ = run("usb", seed=0, noise=noise)
    assert info["is_success"] and policy.corrections >= 1
    info, policy, _ = run("usb", seed=0, noise=noise, use_touch=False)
    assert not info["is_success"] and info["failure"] == "skin_limit" and policy.corrections == 0


def test_render_task_saves_readable_figures(tmp_path):
    from PIL import Image

    from taclab.papers.vital.render import RENDERERS, render_task

    paths = RENDERERS["vital-key"](tmp_path, seed=2)
    names = {p.name for p in paths}
    kinds = ("wrist", "masks", "augmented", "third_person", "variations", "skin")
    assert names == {f"vital_key_{n}.png" for n in kinds}
    for p in paths:
        with Image.open(p) as im:
            assert im.size[0] >= 200 and im.size[1] >= 100
    with pytest.raises(ValueError, match="unknown VITAL task 'socket'; allowed: plug, usb"):
        render_task("socket", tmp_path)
