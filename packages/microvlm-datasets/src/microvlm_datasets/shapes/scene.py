"""Scenes of the shapes set: 1-4 coloured shapes on a plain background, and their drawing.

A scene is drawn from a numpy ``Generator``; every (colour, kind) pair appears at most once
per image, so "the red circle" always names one object. About a quarter of the images let
shapes overlap (later shapes cover earlier ones; boxes are the full extents either way).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

KINDS = ("circle", "square", "triangle", "star", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 205, 30),
    "purple": (140, 60, 180),
    "orange": (245, 140, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "gray": (225, 225, 225),
    "beige": (245, 238, 220),
}

MAX_SHAPES = 4
SMALL = (0.16, 0.24)  # side of a small shape, fraction of the image side
LARGE = (0.30, 0.40)  # side of a large shape
OVERLAP_P = 0.25  # share of images whose shapes may overlap
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Shape:
    """One drawn shape. ``box`` is ``(x, y, w, h)`` in pixels, COCO-style."""

    kind: str  # one of KINDS
    colour: str  # one of COLOURS
    size: str  # "small" | "large"
    points: tuple[tuple[float, float], ...]  # polygon corners; for a circle, its two box corners
    rgb: tuple[int, int, int]  # fill colour, jittered around COLOURS[colour]

    @functools.cached_property
    def box(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    @functools.cached_property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)


@dataclass(frozen=True)
class Scene:
    size: int  # image side, pixels
    background: str  # one of BACKGROUNDS
    shapes: tuple[Shape, ...]  # in drawing order
    overlapping: bool  # whether the shapes were allowed to overlap


def _outline(kind: str, x: float, y: float, s: float) -> tuple[tuple[float, float], ...]:
    """Corner points of a shape in the square box at (x, y) with side s."""
    cx, cy = x + s / 2, y + s / 2
    if kind in ("circle", "square"):
        return ((x, y), (x + s, y + s))
    if kind == "triangle":
        return ((cx, y), (x + s, y + s), (x, y + s))
    if kind == "diamond":
        return ((cx, y), (x + s, cy), (cx, y + s), (x, cy))
    # star: 5 outer points on the circle of radius s/2, inner points at 0.4 of it
    points = []
    for i in range(10):
        r = s / 2 if i % 2 == 0 else s / 5
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return tuple(points)


def _intersects(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float], gap: float
) -> bool:
    return (
        a[0] < b[0] + b[2] + gap
        and b[0] < a[0] + a[2] + gap
        and a[1] < b[1] + b[3] + gap
        and b[1] < a[1] + a[3] + gap
    )


def sample_scene(rng: np.random.Generator, size: int) -> Scene:
    """A random scene for an image of ``size`` x ``size`` pixels."""
    n = int(rng.integers(1, MAX_SHAPES + 1))
    overlapping = bool(rng.random() < OVERLAP_P)
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    pairs = [(k, c) for k in KINDS for c in COLOURS]
    chosen = rng.choice(len(pairs), size=n, replace=False)
    shapes: list[Shape] = []
    boxes: list[tuple[float, float, float, float]] = []
    for index in chosen:
        kind, colour = pairs[int(index)]
        label = "large" if rng.random() < 0.5 else "small"
        low, high = LARGE if label == "large" else SMALL
        side = round(size * float(rng.uniform(low, high)))
        for _ in range(50):  # place without overlap unless this image allows it
            x, y = (int(v) for v in rng.integers(0, size - side, size=2))
            points = _outline(kind, x, y, side)
            box = Shape(kind, colour, label, points, (0, 0, 0)).box
            if overlapping or not any(_intersects(box, b, size * 0.02) for b in boxes):
                break
        jitter = rng.integers(-12, 13, size=3)
        rgb = tuple(int(min(255, max(0, v + j))) for v, j in zip(COLOURS[colour], jitter, strict=True))
        shapes.append(Shape(kind, colour, label, points, rgb))  # type: ignore[arg-type]
        boxes.append(box)
    return Scene(size, background, tuple(shapes), overlapping)


def draw(scene: Scene) -> Image.Image:
    """The scene as an RGB image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (scene.size, scene.size), BACKGROUNDS[scene.background])
    pen = ImageDraw.Draw(image)
    for shape in scene.shapes:
        if shape.kind == "circle":
            pen.ellipse(shape.points, fill=shape.rgb)
        elif shape.kind == "square":
            pen.rectangle(shape.points, fill=shape.rgb)
        else:
            pen.polygon(shape.points, fill=shape.rgb)
    return image


def encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes; the same image always gives the same bytes (no timestamps in JPEG/JFIF)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
