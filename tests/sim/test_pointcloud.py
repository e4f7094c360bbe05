"""Point clouds: unprojection, crops, down-sampling and the visuo-tactile layout, on hand-checkable cases."""

import math

import mujoco
import numpy as np
import pytest

from taclab.sim.pointcloud import (
    POINT_FEATURES,
    CameraIntrinsics,
    crop,
    depth_to_points,
    farthest_point_indices,
    fixed_size,
    raycast_depth,
    visuo_tactile_cloud,
    voxel_downsample,
)

# a 3 x 3 camera with a 90-degree field of view: focal length 1.5 px, principal point (1.5, 1.5)
INTR = CameraIntrinsics.from_fovy(3, 3, 90.0)


def test_intrinsics_from_fovy():
    assert INTR.fx == pytest.approx(1.5) and INTR.fy == pytest.approx(1.5)
    assert (INTR.cx, INTR.cy) == (1.5, 1.5)
    with pytest.raises(ValueError, match="fovy"):
        CameraIntrinsics.from_fovy(3, 3, 180.0)


def test_flat_depth_unprojects_to_a_plane_in_the_camera_frame():
    pts = depth_to_points(np.ones((3, 3)), INTR, np.zeros(3), np.eye(3))
    assert pts.shape == (9, 3)
    # the centre pixel lies on the optical axis, one metre in front (-z, MuJoCo / OpenGL camera)
    np.testing.assert_allclose(pts[4], [0, 0, -1], atol=1e-12)
    # pixel (row 0, column 0) is up and to the left: x = (0.5 - 1.5) / 1.5, y = +(1.5 - 0.5) / 1.5
    np.testing.assert_allclose(pts[0], [-2 / 3, 2 / 3, -1], atol=1e-12)
    # the OpenCV convention: y down, looking along +z
    cv = depth_to_points(np.ones((3, 3)), INTR, np.zeros(3), np.eye(3), convention="opencv")
    np.testing.assert_allclose(cv[0], [-2 / 3, -2 / 3, 1], atol=1e-12)


def test_extrinsics_move_and_turn_the_points_and_invalid_pixels_are_dropped():
    # a camera 2 m above the origin looking straight down sees the floor z = 0 at depth 2
    depth = np.full((3, 3), 2.0)
    depth[0, 0] = 0.0  # no surface
    depth[2, 2] = np.nan
    pts = depth_to_points(depth, INTR, [0.0, 0.0, 2.0], np.eye(3))
    assert len(pts) == 7
    np.testing.assert_allclose(pts[:, 2], 0.0, atol=1e-12)
    # turned 90 degrees about world z: the camera's x axis is the world's y axis
    rot = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p = depth_to_points(np.full((3, 3), 2.0), INTR, [1.0, 0.0, 2.0], rot)
    np.testing.assert_allclose(p[5], [1.0, 4 / 3, 0.0], atol=1e-12)  # row 1, column 2: camera +x
    with pytest.raises(ValueError, match="image size"):
        depth_to_points(np.ones((2, 3)), INTR, np.zeros(3), np.eye(3))


def test_raycast_depth_camera_matches_the_geometry():
    spec = mujoco.MjSpec()
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1, 1, 0.01])
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.05, 0.05, 0.1], pos=[0, 0, 0.1])
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    intr = CameraIntrinsics.from_fovy(31, 31, 60.0)
    depth = raycast_depth(model, data, intr, [0, 0, 1.0], np.eye(3))
    assert depth[15, 15] == pytest.approx(0.8)  # the box top, 0.2 m high, seen from 1 m
    assert depth[0, 0] == pytest.approx(1.0)  # the floor: z-depth, not the ray length
    pts = depth_to_points(depth, intr, [0, 0, 1.0], np.eye(3))
    floor = pts[np.abs(pts[:, 2]) < 1e-9]
    top = pts[np.abs(pts[:, 2] - 0.2) < 1e-9]
    assert len(floor) + len(top) == 31 * 31
    assert np.all(np.abs(top[:, :2]) <= 0.05 + 1e-9)
    # nothing within `far`: zero depth, dropped on unprojection
    assert np.all(raycast_depth(model, data, intr, [0, 0, 1.0], np.eye(3), far=0.5) == 0)


def test_crop_keeps_the_box():
    pts = np.array([[0, 0, 0], [1, 0, 0], [0.5, 0.5, 0.5], [0.2, -0.1, 0.1]], float)
    np.testing.assert_array_equal(crop(pts, [0, 0, 0], [0.6, 0.6, 0.6]), pts[[0, 2]])


def test_farthest_point_sampling_picks_the_extremes():
    rng = np.random.default_rng(0)
    cluster = rng.normal(0, 0.001, (50, 3))
    corners = np.array([[1, 1, 0], [-1, 1, 0], [1, -1, 0], [-1, -1, 0]], float)
    pts = np.concatenate([cluster, corners])
    idx = farthest_point_indices(pts, 5)  # starts at point 0, in the cluster
    assert idx[0] == 0 and set(idx[1:]) == {50, 51, 52, 53}
    assert len(set(farthest_point_indices(pts, 5, rng))) == 5
    np.testing.assert_array_equal(farthest_point_indices(pts, 100), np.arange(54))


def test_voxel_downsample_averages_within_a_voxel():
    pts = np.array([[0.001, 0.001, 0.001], [0.003, 0.003, 0.003], [0.011, 0, 0]], float)
    out = voxel_downsample(pts, 0.005)
    np.testing.assert_allclose(out, [[0.002, 0.002, 0.002], [0.011, 0, 0]])
    # extra columns are averaged too
    feats = np.c_[pts, [1.0, 0.0, 0.5]]
    np.testing.assert_allclose(voxel_downsample(feats, 0.005)[:, 3], [0.5, 0.5])


@pytest.mark.parametrize("method", ["fps", "voxel"])
def test_fixed_size_is_exact_and_seeded(method):
    rng = np.random.default_rng(1)
    pts = rng.uniform(-0.1, 0.1, (500, 3))
    a = fixed_size(pts, 64, method, np.random.default_rng(3), voxel=0.01)
    b = fixed_size(pts, 64, method, np.random.default_rng(3), voxel=0.01)
    assert a.shape == (64, 3)
    np.testing.assert_array_equal(a, b)
    # too few points: padded by repeating existing ones
    few = fixed_size(pts[:5], 16, method, np.random.default_rng(0), voxel=1e-4)
    assert few.shape == (16, 3)
    assert all(any(np.allclose(p, q) for q in pts[:5]) for p in few)
    assert fixed_size(np.zeros((0, 3)), 8, method).shape == (8, 3)
    with pytest.raises(ValueError, match="allowed"):
        fixed_size(pts, 8, "random")


def test_fps_spreads_points_more_evenly_than_a_random_subset():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(0, 0.002, (900, 3)), rng.uniform(-0.1, 0.1, (100, 3))])
    far = fixed_size(pts, 32, "fps", rng)
    spread = np.linalg.norm(far - far.mean(0), axis=1).mean()
    rand = pts[rng.choice(len(pts), 32, replace=False)]
    assert spread > 2 * np.linalg.norm(rand - rand.mean(0), axis=1).mean()


def test_visuo_tactile_layout():
    vis = np.array([[0.0, 0.0, 0.1], [0.0, 0.1, 0.1]])
    tac = np.array([[0.1, 0.0, 0.0, 0.75]])
    cloud = visuo_tactile_cloud(vis, tac)
    assert POINT_FEATURES == ("x", "y", "z", "visual", "tactile", "pressure")
    assert cloud.dtype == np.float32 and cloud.shape == (3, 6)
    np.testing.assert_array_equal(cloud[:2, 3:], [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_allclose(cloud[2], [0.1, 0, 0, 0, 1, 0.75])
    assert visuo_tactile_cloud(vis, None).shape == (2, 6)
    assert math.isclose(float(cloud[2, 5]), 0.75)
