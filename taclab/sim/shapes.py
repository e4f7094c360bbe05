"""Peg and hole cross-sections.

A :class:`Section` is a convex polygon in the peg's horizontal plane (metres), with its vertices in
counter-clockwise order and expressed relative to the peg's reference point, the centre of its bounding box.
The gripper closes along y around that point, and the pose error of the peg-in-hole task is measured there.

The hole of clearance ``c`` is the peg section with every edge pushed outward by ``c / 2`` (a mitred offset):
across any pair of parallel flats the hole is exactly ``c`` wider than the peg, which is the TLA paper's
"hole width minus peg width". A round peg is a regular polygon with ``round_segments`` sides (flats facing
the pads), so the same definition holds for it to within ``1 - cos(pi / n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAMED_SHAPES = ("square", "triangle", "round", "hexagon")
"""Shapes of the TLA paper; any regular polygon is also available as ``"polygon:<n>"``."""


@dataclass(frozen=True)
class Section:
    """A convex polygon, counter-clockwise, relative to the peg's reference point (metres)."""

    name: str
    vertices: np.ndarray  # (n, 2)

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices, dtype=float)
        object.__setattr__(self, "vertices", v)
        v.setflags(write=False)

    @property
    def n(self) -> int:
        return len(self.vertices)

    def halfplanes(self) -> tuple[np.ndarray, np.ndarray]:
        """Outward unit normals ``N`` (n, 2) and offsets ``d`` (n,) with the inside ``N @ p <= d``."""
        v = self.vertices
        e = np.roll(v, -1, axis=0) - v
        normals = np.stack([e[:, 1], -e[:, 0]], axis=1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        return normals, np.einsum("ij,ij->i", normals, v)

    def offset(self, distance: float, name: str | None = None) -> Section:
        """Push every edge outward by ``distance`` (inward when negative), keeping corners sharp."""
        normals, d = self.halfplanes()
        d = d + distance
        n = self.n
        out = np.empty((n, 2))
        for i in range(n):
            j = (i - 1) % n  # the vertex i lies on edges i-1 and i
            a = np.stack([normals[j], normals[i]])
            out[i] = np.linalg.solve(a, [d[j], d[i]])
        if distance < 0:
            if np.min(self.inradius_about(out)) <= 0 or not _is_convex_ccw(out):
                raise ValueError(f"inward offset {distance} m collapses section {self.name!r}")
        return Section(name or self.name, out)

    def inradius_about(self, pts: np.ndarray) -> np.ndarray:
        c = pts.mean(axis=0)
        normals, d = Section("tmp", pts).halfplanes()
        return d - normals @ c

    def transformed(self, dx: float, dy: float, drz: float) -> np.ndarray:
        """Vertices after a rotation ``drz`` (rad) about the reference point, then a shift (m)."""
        c, s = math.cos(drz), math.sin(drz)
        r = np.array([[c, -s], [s, c]])
        return self.vertices @ r.T + np.array([dx, dy])

    def protrusion(self, hole: Section, dx: float, dy: float, drz: float) -> float:
        """How far (m) this section, moved by (dx, dy, drz), sticks out of ``hole``; <= 0 means it fits."""
        normals, d = hole.halfplanes()
        pts = self.transformed(dx, dy, drz)
        return float(np.max(pts @ normals.T - d))

    def extent(self) -> np.ndarray:
        """Half-extents of the bounding box, (x, y)."""
        return np.max(np.abs(self.vertices), axis=0)

    def centroid(self) -> np.ndarray:
        v = self.vertices
        w = np.roll(v, -1, axis=0)
        cross = v[:, 0] * w[:, 1] - w[:, 0] * v[:, 1]
        area = cross.sum() / 2
        return ((v + w) * cross[:, None]).sum(axis=0) / (6 * area)


def _is_convex_ccw(v: np.ndarray) -> bool:
    e = np.roll(v, -1, axis=0) - v
    f = np.roll(e, -1, axis=0)
    cross = e[:, 0] * f[:, 1] - e[:, 1] * f[:, 0]
    return bool(np.all(cross > 1e-12))


def _recentre(v: np.ndarray) -> np.ndarray:
    return v - (v.max(axis=0) + v.min(axis=0)) / 2


def regular_polygon(n: int, diameter: float, name: str | None = None) -> Section:
    """Regular ``n``-gon inscribed in a circle of ``diameter`` (m), with a flat facing -y (the pad).

    For an even ``n`` a flat also faces +y, so both pads press on flats.
    """
    if int(n) != n or n < 3:
        raise ValueError(f"a regular polygon needs an integer n >= 3 sides, got {n!r}")
    if not diameter > 0:
        raise ValueError(f"peg size must be > 0 m, got {diameter!r}")
    n = int(n)
    # the edge between vertices 0 and n-1 is centred on -y
    ang = -math.pi / 2 + math.pi / n + 2 * math.pi * np.arange(n) / n
    v = diameter / 2 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return Section(name or f"polygon:{n}", _recentre(v))


def convex_polygon(vertices, name: str = "custom") -> Section:
    """Any convex polygon from its vertices (m), in either winding; it is recentred on its bounding box."""
    v = np.asarray(vertices, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
        raise ValueError(f"a convex polygon needs an (n>=3, 2) array of vertices, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("polygon vertices must be finite")
    area2 = float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1]))
    if area2 < 0:
        v = v[::-1]
    elif area2 == 0:
        raise ValueError("polygon vertices are degenerate (zero area)")
    if not _is_convex_ccw(v):
        raise ValueError("polygon vertices must form a strictly convex polygon (no reflex or collinear vertices)")
    return Section(name, _recentre(v))


def make_section(shape: str, size: float, round_segments: int = 48, vertices=None) -> Section:
    """The peg section for a shape name.

    ``shape`` is one of ``square``, ``triangle``, ``round``, ``hexagon``, ``polygon:<n>`` (regular n-gon) or
    ``custom`` (then ``vertices`` gives the convex polygon in metres). ``size`` is the diameter of the
    circumscribed circle of regular shapes.
    """
    if shape == "square":
        return regular_polygon(4, size, "square")
    if shape == "triangle":
        return regular_polygon(3, size, "triangle")
    if shape == "hexagon":
        return regular_polygon(6, size, "hexagon")
    if shape == "round":
        if round_segments < 12:
            raise ValueError(f"round_segments must be >= 12, got {round_segments}")
        return regular_polygon(round_segments, size, "round")
    if shape.startswith("polygon:"):
        try:
            n = int(shape.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"shape {shape!r}: expected 'polygon:<n>' with an integer n >= 3") from None
        return regular_polygon(n, size, shape)
    if shape == "custom":
        if vertices is None:
            raise ValueError("shape 'custom' needs peg vertices (a list of [x, y] in metres)")
        return convex_polygon(vertices, "custom")
    raise ValueError(
        f"unknown peg shape {shape!r}; allowed: {', '.join(NAMED_SHAPES)}, 'polygon:<n>' (n >= 3) or 'custom'"
    )


def clip_polygon(poly: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Keep the part of a convex polygon where ``normal @ p <= offset`` (Sutherland-Hodgman)."""
    out = []
    n = len(poly)
    for i in range(n):
        p, q = poly[i], poly[(i + 1) % n]
        fp, fq = normal @ p - offset, normal @ q - offset
        if fp <= 0:
            out.append(p)
        if fp * fq < 0:
            t = fp / (fp - fq)
            out.append(p + t * (q - p))
    return np.array(out) if out else np.zeros((0, 2))


def block_pieces(hole: Section, half_size: float) -> list[np.ndarray]:
    """Split a square block of half-size ``half_size`` with ``hole`` cut out into convex polygons.

    Piece ``i`` is the part of the block outside edge ``i`` of the hole, inside the wedge spanned from the
    hole's centroid by that edge's two vertices. The pieces tile the block minus the hole exactly, with no
    overlap, so collision with the assembled block is exact.
    """
    if np.any(hole.extent() >= half_size):
        raise ValueError(
            f"hole of half-extent {hole.extent().max() * 1e3:.2f} mm does not fit in a block of half-size "
            f"{half_size * 1e3:.2f} mm"
        )
    square = half_size * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    normals, d = hole.halfplanes()
    c = hole.centroid()
    v = hole.vertices
    pieces = []
    for i in range(hole.n):
        a, b = v[i], v[(i + 1) % hole.n]
        poly = square
        # outside edge i
        poly = clip_polygon(poly, -normals[i], -d[i])
        # wedge: left of ray c->a ... right of ray c->b (CCW order a then b)
        for p, sign in ((a, 1.0), (b, -1.0)):
            r = p - c
            wn = sign * np.array([r[1], -r[0]])  # for a: points to the right of c->a (outside the wedge)
            poly = clip_polygon(poly, wn, wn @ c)
            if len(poly) == 0:
                break
        if len(poly) >= 3:
            pieces.append(poly)
    return pieces
