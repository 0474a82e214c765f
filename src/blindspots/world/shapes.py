"""Object silhouettes of the built-in world, drawn once in a canonical square and sampled by the renderer.

Each class is a union of primitives on canonical coordinates u (right) and v (down), both in [-1, 1]. A
shape has a body (drawn in the object's colour and pattern) and details (wheels, windows, trunk, ...) drawn
dark, which keep classes apart when colour and pattern say nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

CANONICAL_SIZE = 96
_SUPERSAMPLE = 3
_OUTLINE_WIDTH = 0.075  # in canonical units; about 1-2 image pixels at the sizes the world draws
_STROKE_WIDTH = 0.11

Grid = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Silhouette:
    """Soft masks (float32, CANONICAL_SIZE+2 square, zero border) for one class."""

    body: np.ndarray
    detail: np.ndarray
    outline: np.ndarray
    stroke: np.ndarray  # a thicker outline: the pencil line of the sketch style


def ellipse(g: Grid, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    u, v = g
    return ((u - cx) / rx) ** 2 + ((v - cy) / ry) ** 2 <= 1.0


def rect(g: Grid, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    u, v = g
    return (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)


def polygon(g: Grid, points: list[tuple[float, float]]) -> np.ndarray:
    """Convex polygon; points in either winding order."""
    u, v = g
    signs = []
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        signs.append((x1 - x0) * (v - y0) - (y1 - y0) * (u - x0))
    inside_positive = np.all([s >= 0 for s in signs], axis=0)
    inside_negative = np.all([s <= 0 for s in signs], axis=0)
    return inside_positive | inside_negative


def segment(g: Grid, x0: float, y0: float, x1: float, y1: float, width: float) -> np.ndarray:
    u, v = g
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return (u - x0 - t * dx) ** 2 + (v - y0 - t * dy) ** 2 <= (width / 2) ** 2


def _boat(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    hull = polygon(g, [(-0.95, 0.32), (0.95, 0.32), (0.62, 0.82), (-0.62, 0.82)])
    sail = polygon(g, [(0.04, -0.9), (0.04, 0.24), (0.78, 0.24)])
    jib = polygon(g, [(-0.1, -0.68), (-0.1, 0.24), (-0.66, 0.24)])
    mast = segment(g, -0.03, -0.95, -0.03, 0.34, 0.09)
    return hull | sail | jib | mast, mast


def _car(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    body = rect(g, -0.95, -0.05, 0.95, 0.5) | ellipse(g, 0.0, -0.05, 0.55, 0.5) & (g[1] <= 0)
    wheels = ellipse(g, -0.52, 0.52, 0.25, 0.25) | ellipse(g, 0.52, 0.52, 0.25, 0.25)
    windows = polygon(g, [(-0.42, -0.08), (-0.06, -0.08), (-0.06, -0.42), (-0.28, -0.42)]) | polygon(
        g, [(0.06, -0.08), (0.42, -0.08), (0.28, -0.42), (0.06, -0.42)])
    return body | wheels, wheels | windows


def _house(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    walls = rect(g, -0.7, -0.12, 0.7, 0.9)
    roof = polygon(g, [(-0.92, -0.08), (0.92, -0.08), (0.0, -0.88)])
    chimney = rect(g, 0.38, -0.78, 0.58, -0.3)
    door = rect(g, -0.45, 0.35, -0.12, 0.9)
    window = rect(g, 0.15, 0.12, 0.5, 0.45)
    return walls | roof | chimney, door | window


def _tree(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    canopy = (ellipse(g, 0.0, -0.42, 0.55, 0.48) | ellipse(g, -0.45, -0.1, 0.42, 0.36)
              | ellipse(g, 0.45, -0.1, 0.42, 0.36))
    trunk = rect(g, -0.16, 0.1, 0.16, 0.92)
    return canopy | trunk, trunk & ~canopy


def _fish(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    body = ellipse(g, -0.12, 0.0, 0.66, 0.4)
    tail = polygon(g, [(0.42, 0.0), (0.95, -0.48), (0.95, 0.48)])
    fin = polygon(g, [(-0.3, -0.3), (0.15, -0.3), (-0.12, -0.62)])
    eye = ellipse(g, -0.5, -0.08, 0.09, 0.09)
    gill = segment(g, -0.3, -0.22, -0.3, 0.22, 0.06)
    return body | tail | fin, eye | gill


def _bird(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    body = ellipse(g, 0.05, 0.12, 0.5, 0.32)
    head = ellipse(g, -0.48, -0.3, 0.26, 0.26)
    tail = polygon(g, [(0.42, 0.0), (0.95, -0.28), (0.95, 0.12), (0.5, 0.3)])
    beak = polygon(g, [(-0.7, -0.38), (-0.7, -0.2), (-0.96, -0.3)])
    legs = segment(g, -0.05, 0.4, -0.12, 0.9, 0.07) | segment(g, 0.18, 0.4, 0.18, 0.9, 0.07)
    eye = ellipse(g, -0.52, -0.36, 0.07, 0.07)
    wing = segment(g, -0.15, 0.05, 0.4, 0.05, 0.07)
    return body | head | tail | beak | legs, beak | legs | eye | wing


def _cup(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    u, v = g
    body = polygon(g, [(-0.68, -0.55), (0.36, -0.55), (0.24, 0.62), (-0.56, 0.62)])
    ring = ((u - 0.42) ** 2 + (v - 0.0) ** 2 <= 0.36 ** 2) & ((u - 0.42) ** 2 + v ** 2 >= 0.2 ** 2) & (u >= 0.2)
    saucer = ellipse(g, -0.16, 0.7, 0.8, 0.14)
    rim = segment(g, -0.68, -0.55, 0.36, -0.55, 0.08)
    return body | ring | saucer, saucer | rim


def _plane(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    fuselage = ellipse(g, 0.0, 0.0, 0.94, 0.17)
    wings = polygon(g, [(-0.2, 0.0), (0.2, 0.0), (-0.22, 0.82), (-0.45, 0.82)]) | polygon(
        g, [(-0.2, 0.0), (0.2, 0.0), (-0.22, -0.82), (-0.45, -0.82)])
    tail = polygon(g, [(0.6, 0.0), (0.82, 0.0), (0.68, 0.36), (0.56, 0.36)]) | polygon(
        g, [(0.6, 0.0), (0.82, 0.0), (0.68, -0.36), (0.56, -0.36)])
    cockpit = ellipse(g, -0.72, 0.0, 0.14, 0.08)
    return fuselage | wings | tail, cockpit


def _umbrella(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    u, v = g
    canopy = ellipse(g, 0.0, -0.05, 0.95, 0.82) & (v <= -0.05)
    scallops = (ellipse(g, -0.63, -0.05, 0.32, 0.14) | ellipse(g, 0.0, -0.05, 0.32, 0.14)
                | ellipse(g, 0.63, -0.05, 0.32, 0.14))
    shaft = segment(g, 0.0, -0.9, 0.0, 0.72, 0.09)
    hook = ((u + 0.18) ** 2 + (v - 0.72) ** 2 <= 0.23 ** 2) & ((u + 0.18) ** 2 + (v - 0.72) ** 2 >= 0.13 ** 2)
    hook &= v >= 0.72
    return (canopy & ~scallops) | shaft | hook, (shaft | hook) & ~(canopy & ~scallops)


def _chair(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    # Chunky parts, so the pattern shows even on a small, sketched chair.
    back = rect(g, 0.14, -0.92, 0.62, 0.1)
    seat = rect(g, -0.66, -0.06, 0.62, 0.3)
    legs = rect(g, -0.64, 0.3, -0.4, 0.92) | rect(g, 0.38, 0.3, 0.62, 0.92)
    feet = rect(g, -0.64, 0.86, -0.4, 0.92) | rect(g, 0.38, 0.86, 0.62, 0.92)
    return back | seat | legs, feet


def _lamp(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    shade = polygon(g, [(-0.34, -0.9), (0.34, -0.9), (0.68, -0.16), (-0.68, -0.16)])
    pole = rect(g, -0.06, -0.16, 0.06, 0.72)
    base = ellipse(g, 0.0, 0.76, 0.5, 0.16)
    bulb = ellipse(g, 0.0, -0.12, 0.14, 0.1)
    return shade | pole | base, pole | bulb


def _bottle(g: Grid) -> tuple[np.ndarray, np.ndarray]:
    body = rect(g, -0.34, -0.2, 0.34, 0.92) | ellipse(g, 0.0, -0.2, 0.34, 0.22)
    neck = rect(g, -0.13, -0.72, 0.13, -0.2)
    cap = rect(g, -0.17, -0.94, 0.17, -0.7)
    return body | neck | cap, cap


SHAPES: dict[str, Callable[[Grid], tuple[np.ndarray, np.ndarray]]] = {
    "boat": _boat, "car": _car, "house": _house, "tree": _tree, "fish": _fish, "bird": _bird, "cup": _cup,
    "plane": _plane, "umbrella": _umbrella, "chair": _chair, "lamp": _lamp, "bottle": _bottle,
}


@cache
def silhouette(name: str) -> Silhouette:
    """Soft canonical masks of class `name`, anti-aliased by supersampling."""
    fine = CANONICAL_SIZE * _SUPERSAMPLE
    axis = (np.arange(fine) + 0.5) / fine * 2.0 - 1.0
    u, v = np.meshgrid(axis, axis)
    body, detail = SHAPES[name]((u, v))
    outline = body & ~_erode(body, round(_OUTLINE_WIDTH * fine / 2))
    stroke = body & ~_erode(body, round(_STROKE_WIDTH * fine / 2))
    return Silhouette(*(_pad(_downsample(mask)) for mask in (body, detail & body, outline, stroke)))


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        shrunk = out.copy()
        shrunk[1:, :] &= out[:-1, :]
        shrunk[:-1, :] &= out[1:, :]
        shrunk[:, 1:] &= out[:, :-1]
        shrunk[:, :-1] &= out[:, 1:]
        out = shrunk
    return out


def _downsample(mask: np.ndarray) -> np.ndarray:
    n = CANONICAL_SIZE
    return mask.reshape(n, _SUPERSAMPLE, n, _SUPERSAMPLE).mean(axis=(1, 3)).astype(np.float32)


def _pad(mask: np.ndarray) -> np.ndarray:
    return np.pad(mask, 1)
