"""Scene builders: the peg scene assembled from them compiles to the same model as before; hands, grippers,
fixtures and cameras compose (several hands per spec, names prefixed)."""

import hashlib

import mujoco
import numpy as np
import pytest

from taclab.sim import builders as B
from taclab.sim.config import SceneConfig
from taclab.sim.scene import build_scene

# SHA-256 of the binary model (mj_saveModel) of the peg scene as assembled before the builders existed,
# recorded with MuJoCo 4.0.0: every numeric array, every name, every option of the compiled model.
FINGERPRINTS = {
    ("square", 0.002, ()): "3e5c73c51ec725969d61f887c778849956233eb1082cbb56b21406049108ad90",
    ("round", 0.0005, ()): "94e785b43b525ea45a58e529b172a49a73b48e4022d9ea008ee50323d121efef",
    ("triangle", 0.001, ()): "6c007f7b4d2153e6918241720425b8f3f0df4efd29939a7b07c73c8693b2c2cf",
    (
        "polygon:5",
        0.002,
        (("taxels", (16, 24)), ("pad_friction", 0.8)),
    ): "c75708cea282704c0d0dccad43991feaed6632d95d98ba6f55822caff67a6919",
    (
        "custom",
        0.001,
        (("peg_vertices", ((0, 0), (0.012, 0), (0.012, 0.008), (0, 0.01))),),
    ): "9ca9303da775201ad466eefd4c01c49921b8fd8218875947fa80b787919e54bb",
}


def model_fingerprint(model: mujoco.MjModel) -> str:
    buf = np.zeros(mujoco.mj_sizeModel(model), np.uint8)
    mujoco.mj_saveModel(model, None, buf)
    return hashlib.sha256(buf.tobytes()).hexdigest()


@pytest.mark.skipif(mujoco.__version__ != "4.0.0", reason="fingerprints recorded with MuJoCo 4.0.0")
@pytest.mark.parametrize("case", sorted(FINGERPRINTS, key=str), ids=lambda c: f"{c[0]}-{c[1]}")
def test_peg_scene_compiles_to_the_recorded_model(case):
    shape, clearance, overrides = case
    scene = build_scene(SceneConfig(**dict(overrides)), shape, clearance)
    assert model_fingerprint(scene.model) == FINGERPRINTS[case]


SIX = {d: B.Servo.critical(2000.0, 1.0) for d in B.SLIDE_DOFS} | {
    d: B.Servo.critical(30.0, 0.01, (-3.2, 3.2)) for d in B.HINGE_DOFS
}


def two_hand_spec():
    spec = B.new_spec("two_hands", timestep=0.002)
    B.ensure_materials(spec, {"metal": B.METAL_RGBA, "gel": B.GEL_RGBA})
    B.add_floor(spec, collide=True)
    parts = {}
    for prefix, y in (("left_", 0.2), ("right_", -0.2)):
        hand = B.add_hand(spec, spec.worldbody, SIX, prefix=prefix, dofs=B.DOFS, pos=(0, y, 0.2))
        grip = B.add_pad_gripper(spec, hand.body, B.PadGripperParams(opening=0.01, taxels=(8, 8)), prefix=prefix)
        B.add_finger_actuators(spec, grip)
        B.add_wrist_camera(hand)
        parts[prefix] = (hand, grip)
    B.add_fixture(
        spec,
        spec.worldbody,
        "table",
        [B.Box((0, 0, 0.01), (0.1, 0.1, 0.01)), B.Prism(np.array([[0, 0], [0.02, 0], [0, 0.02]]), 0.02, 0.03)],
        geom={"rgba": [0.5, 0.5, 0.5, 1]},
    )
    B.add_look_at_camera(spec.worldbody, "front", eye=(0.5, 0, 0.3), target=(0, 0, 0.1))
    return spec, parts


def test_several_hands_per_spec_with_prefixed_names():
    spec, parts = two_hand_spec()
    model = spec.compile()
    for prefix, (hand, grip) in parts.items():
        assert hand.joints == tuple(f"{prefix}hand_{d}" for d in B.DOFS)
        assert grip.sensors == (f"{prefix}pad0_tactile", f"{prefix}pad1_tactile")
        B.ids(model, mujoco.mjtObj.mjOBJ_JOINT, (*hand.joints, *grip.joints))
        B.ids(model, mujoco.mjtObj.mjOBJ_ACTUATOR, (*hand.actuators, *grip.fingers))
        B.ids(model, mujoco.mjtObj.mjOBJ_CAMERA, [f"{prefix}wrist"])
        lay = B.taxel_layout(model, grip.sensors[0], grip.taxel_geoms[0], 8, 8)
        assert lay.local_xz.shape == (8, 8, 2)
    assert model.nu == 2 * (6 + 2) and model.nsensor == 4
    assert B.ids(model, mujoco.mjtObj.mjOBJ_GEOM, ["table0", "table1"])
    with pytest.raises(KeyError, match="no joint named 'hand_x'"):
        B.ids(model, mujoco.mjtObj.mjOBJ_JOINT, ["hand_x"])


def test_six_dof_hand_servos_reach_a_pose_and_carry_the_wrist_camera():
    spec, parts = two_hand_spec()
    model = spec.compile()
    data = mujoco.MjData(model)
    hand, _ = parts["left_"]
    target = np.array([0.02, -0.01, 0.03, 0.2, -0.15, 0.5])
    for a, v in zip(B.ids(model, mujoco.mjtObj.mjOBJ_ACTUATOR, hand.actuators), target, strict=True):
        data.ctrl[a] = v
    mujoco.mj_step(model, data, nstep=1500)
    q = data.qpos[[model.jnt_qposadr[j] for j in B.ids(model, mujoco.mjtObj.mjOBJ_JOINT, hand.joints)]]
    np.testing.assert_allclose(q, target, atol=2e-3)
    # the hand frame follows intrinsic x-y-z angles after the slides
    (bid,) = B.ids(model, mujoco.mjtObj.mjOBJ_BODY, ["left_hand"])
    rx, ry, rz = q[3:]

    def rot(axis, a):
        c, s = np.cos(a), np.sin(a)
        return {
            0: np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            1: np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            2: np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
        }[axis]

    np.testing.assert_allclose(data.xmat[bid].reshape(3, 3), rot(0, rx) @ rot(1, ry) @ rot(2, rz), atol=1e-9)
    np.testing.assert_allclose(data.xpos[bid], [q[0], 0.2 + q[1], 0.2 + q[2]], atol=1e-9)
    (cid,) = B.ids(model, mujoco.mjtObj.mjOBJ_CAMERA, ["left_wrist"])
    cam_in_hand = data.xmat[bid].reshape(3, 3).T @ (data.cam_xpos[cid] - data.xpos[bid])
    np.testing.assert_allclose(cam_in_hand, [-0.05, 0.0, 0.03], atol=1e-9)


def test_look_at_points_the_camera_at_the_target():
    eye, target = np.array([0.3, -0.2, 0.4]), np.array([0.0, 0.05, 0.1])
    xy = np.array(B.look_at(eye, target)).reshape(2, 3)
    forward = -np.cross(xy[0], xy[1])  # a MuJoCo camera looks along its -z
    np.testing.assert_allclose(forward, (target - eye) / np.linalg.norm(target - eye), atol=1e-12)
    assert abs(xy[0][2]) < 1e-12  # no roll: the image's x axis is horizontal
    with pytest.raises(ValueError, match="parallel"):
        B.look_at((0, 0, 1), (0, 0, 0))


def test_bad_builder_input_is_named():
    spec = B.new_spec("bad")
    with pytest.raises(ValueError, match="hand dofs must be distinct"):
        B.add_hand(spec, spec.worldbody, SIX, dofs=("yaw", "x"))
    with pytest.raises(ValueError, match=r"no servo given for hand dof\(s\) \['roll'\]"):
        B.add_hand(spec, spec.worldbody, {"x": SIX["x"]}, dofs=("x", "roll"))
    with pytest.raises(TypeError, match="allowed: Prism, Box"):
        B.add_fixture(spec, spec.worldbody, "f", [object()])
    with pytest.raises(ValueError, match="timestep"):
        B.new_spec("bad", timestep=0.0)
