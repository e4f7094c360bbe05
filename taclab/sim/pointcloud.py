"""Point clouds: depth images to world points, workspace crops, fixed-size down-sampling, visuo-tactile clouds.

Conventions
-----------
- Depth images hold, per pixel, the distance (m) along the camera's optical axis (z-depth, as MuJoCo's depth
  renderer returns it); pixels with no surface are ``0``, negative, non-finite or beyond ``far``.
- Pixel ``(row v, column u)`` has its centre at ``(u + 0.5, v + 0.5)``; the principal point ``(cx, cy)`` is in
  the same pixel coordinates.
- Camera frames follow MuJoCo (OpenGL): x to the right of the image, y up, the camera looking along -z. The
  extrinsics are the camera's world position and its rotation matrix (camera frame to world), MuJoCo's
  ``cam_xpos`` and ``cam_xmat``. ``convention="opencv"`` takes a frame with y down and the camera looking
  along +z instead.
- A cloud of the visuo-tactile observation has the columns of :data:`POINT_FEATURES`: world position (m), a
  one-hot flag (visual or tactile) and a pressure value (a tactile point's reading as a fraction of its
  sensor's full scale; 0 for visual points).

Everything random (sub-sampling, padding, the first farthest point) draws from a ``numpy.random.Generator``
passed in; with the same generator state the same cloud comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

POINT_FEATURES = ("x", "y", "z", "visual", "tactile", "pressure")
"""Columns of a visuo-tactile point cloud."""
DOWNSAMPLE_METHODS = ("fps", "voxel")


@dataclass(frozen=True)
class CameraIntrinsics:
    """A pinhole camera: image size (pixels), focal lengths and principal point (pixels)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @staticmethod
    def from_fovy(width: int, height: int, fovy_deg: float) -> CameraIntrinsics:
        """Square pixels, principal point at the image centre, vertical field of view ``fovy_deg`` (MuJoCo's
        camera ``fovy``)."""
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width} x {height}")
        if not 0 < fovy_deg < 180:
            raise ValueError(f"fovy_deg must be in (0, 180), got {fovy_deg}")
        f = (height / 2) / math.tan(math.radians(fovy_deg) / 2)
        return CameraIntrinsics(width, height, f, f, width / 2, height / 2)

    def ray_directions(self, convention: str = "opengl") -> np.ndarray:
        """Per pixel (H, W, 3), the camera-frame direction through the pixel centre, scaled to unit z-depth."""
        u = np.arange(self.width) + 0.5
        v = np.arange(self.height) + 0.5
        uu, vv = np.meshgrid(u, v)
        x = (uu - self.cx) / self.fx
        y = (vv - self.cy) / self.fy
        one = np.ones_like(x)
        if convention == "opengl":
            return np.stack([x, -y, -one], axis=-1)
        if convention == "opencv":
            return np.stack([x, y, one], axis=-1)
        raise ValueError(f"unknown camera convention {convention!r}; allowed: 'opengl', 'opencv'")


def depth_to_points(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    cam_pos: np.ndarray,
    cam_rot: np.ndarray,
    far: float = np.inf,
    convention: str = "opengl",
) -> np.ndarray:
    """World points (M, 3) of the valid pixels of a z-depth image (H, W), row-major pixel order."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != (intrinsics.height, intrinsics.width):
        want = (intrinsics.height, intrinsics.width)
        raise ValueError(f"depth image {depth.shape} does not match the intrinsics' image size {want}")
    rays = intrinsics.ray_directions(convention)
    valid = np.isfinite(depth) & (depth > 0) & (depth < far)
    cam = rays[valid] * depth[valid][:, None]
    rot = np.asarray(cam_rot, dtype=np.float64).reshape(3, 3)
    return cam @ rot.T + np.asarray(cam_pos, dtype=np.float64).reshape(3)


def crop(points: np.ndarray, low, high) -> np.ndarray:
    """The points inside the axis-aligned box ``low <= p <= high`` (bounds per axis, m)."""
    points = np.asarray(points)
    lo, hi = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    keep = np.all((points[:, :3] >= lo) & (points[:, :3] <= hi), axis=1)
    return points[keep]


def farthest_point_indices(points: np.ndarray, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of ``n`` points chosen by farthest-point sampling (each next point is the one farthest from those
    already chosen), starting from a random point (from ``rng``) or from point 0 without one.

    Exact and O(n M). Asking for at least as many points as there are returns every index once.
    """
    xyz = np.asarray(points, dtype=np.float32)[:, :3]
    m = len(xyz)
    if n >= m:
        return np.arange(m)
    out = np.empty(n, dtype=np.int64)
    cur = int(rng.integers(m)) if rng is not None else 0
    mind = np.full(m, np.inf, dtype=np.float32)
    diff = np.empty_like(xyz)
    dist = np.empty(m, dtype=np.float32)
    for i in range(n):
        out[i] = cur
        np.subtract(xyz, xyz[cur], out=diff)
        np.einsum("ij,ij->i", diff, diff, out=dist)
        np.minimum(mind, dist, out=mind)
        cur = int(np.argmax(mind))
    return out


def voxel_downsample(points: np.ndarray, voxel: float) -> np.ndarray:
    """One point per occupied cubic voxel of side ``voxel`` (m): the mean of the rows that fall in it (every
    column averaged), in the order of the voxels' first points."""
    if voxel <= 0:
        raise ValueError(f"voxel must be > 0, got {voxel}")
    points = np.asarray(points)
    if len(points) == 0:
        return points.copy()
    keys = np.floor(points[:, :3] / voxel).astype(np.int64)
    _, first, inverse, counts = np.unique(keys, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(first), points.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, points)
    means = sums / counts[:, None]
    order = np.argsort(first, kind="stable")
    return means[order].astype(points.dtype)


def fixed_size(
    points: np.ndarray,
    n: int,
    method: str = "fps",
    rng: np.random.Generator | None = None,
    voxel: float = 0.005,
) -> np.ndarray:
    """Exactly ``n`` rows from a cloud (M, F).

    ``fps``: farthest-point sampling. ``voxel``: voxel-grid means (side ``voxel``), then a random subset of
    ``n`` if more remain. Either way a cloud with fewer than ``n`` points is padded by repeating randomly
    chosen points (the first ones without ``rng``); an empty cloud becomes ``n`` rows of zeros.
    """
    if method not in DOWNSAMPLE_METHODS:
        raise ValueError(f"unknown down-sampling method {method!r}; allowed: {', '.join(DOWNSAMPLE_METHODS)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    points = np.asarray(points)
    if len(points) == 0:
        return np.zeros((n, points.shape[1] if points.ndim == 2 else 3), dtype=points.dtype)
    if method == "voxel":
        points = voxel_downsample(points, voxel)
        if len(points) > n:
            idx = rng.choice(len(points), n, replace=False) if rng is not None else np.arange(n)
            points = points[np.sort(idx)]
    else:
        points = points[farthest_point_indices(points, n, rng)]
    if len(points) < n:
        extra = n - len(points)
        idx = rng.integers(len(points), size=extra) if rng is not None else np.arange(extra) % len(points)
        points = np.concatenate([points, points[idx]])
    return points


def visual_points(xyz: np.ndarray) -> np.ndarray:
    """Rows of the visuo-tactile layout (:data:`POINT_FEATURES`) for visual points (M, 3)."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    out = np.zeros((len(xyz), len(POINT_FEATURES)), dtype=np.float32)
    out[:, :3] = xyz
    out[:, 3] = 1.0
    return out


def tactile_points(xyzp: np.ndarray) -> np.ndarray:
    """Rows of the visuo-tactile layout for tactile points (M, 4): world position and pressure (0..1)."""
    xyzp = np.asarray(xyzp, dtype=np.float32).reshape(-1, 4)
    out = np.zeros((len(xyzp), len(POINT_FEATURES)), dtype=np.float32)
    out[:, :3] = xyzp[:, :3]
    out[:, 4] = 1.0
    out[:, 5] = xyzp[:, 3]
    return out


def visuo_tactile_cloud(visual_xyz: np.ndarray, tactile_xyzp: np.ndarray | None) -> np.ndarray:
    """The observation cloud (Nv + Nt, 6): the visual points, then the tactile points (none for vision only)."""
    parts = [visual_points(visual_xyz)]
    if tactile_xyzp is not None:
        parts.append(tactile_points(tactile_xyzp))
    return np.concatenate(parts, axis=0)


def raycast_depth(
    model,
    data,
    intrinsics: CameraIntrinsics,
    cam_pos: np.ndarray,
    cam_rot: np.ndarray,
    geomgroup=(1, 1, 1, 0, 0, 0),
    far: float = 10.0,
) -> np.ndarray:
    """A z-depth image (H, W) of a MuJoCo scene by casting one ray per pixel centre (``mj_multiRay``): a depth
    camera without OpenGL. Pixels that hit nothing within ``far`` are 0. ``geomgroup`` selects the visible geom
    groups (as in ``mjvOption``)."""
    import mujoco

    h, w = intrinsics.height, intrinsics.width
    rays = intrinsics.ray_directions("opengl").reshape(-1, 3)
    rot = np.asarray(cam_rot, dtype=np.float64).reshape(3, 3)
    world = rays @ rot.T
    norm = np.linalg.norm(world, axis=1)
    vec = np.ascontiguousarray((world / norm[:, None]).reshape(-1))
    n = h * w
    dist = np.empty(n)
    geomid = np.empty(n, dtype=np.int32)
    group = np.asarray(geomgroup, dtype=np.uint8)
    pos = np.asarray(cam_pos, dtype=np.float64).reshape(3).copy()
    mujoco.mj_multiRay(model, data, pos, vec, group, 1, -1, geomid, dist, None, n, far)
    hit = (geomid >= 0) & (dist >= 0) & (dist < far)
    depth = np.where(hit, dist / norm, 0.0)  # distance along the ray to z-depth: the ray has unit z-depth per norm
    return depth.reshape(h, w)
