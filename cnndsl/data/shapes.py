"""`--data shapes`: circles, squares and triangles on noisy backgrounds, with their masks.

Made here, procedurally and deterministically (one fixed seed: every machine makes the
same images), at the spec's input size, so it needs no download and no resizing. Each
colour image holds one to three shapes of random size, place, rotation and colour over a
background of a random colour, a gradient and strong Gaussian noise (the shapes have
little: texture tells shape from ground, the outline tells which shape); later shapes
cover earlier ones, and the mask says which shape (or the background) each pixel shows. Classes:
0 background, 1 circle, 2 square, 3 triangle.
"""

from __future__ import annotations

import numpy as np

from .dataset import SEGMENTATION, Dataset, Split, carve
from .errors import DataError

CLASSES = ["background", "circle", "square", "triangle"]
COUNT = 1200  # images in all: 10% test, 10% validation
SEED = 20_240_612
MIN_SIZE = 16
NOISE = 28  # the background's Gaussian noise: its standard deviation, in grey levels
SHAPE_NOISE = 6  # the shapes' (a texture tells them from the ground; their outline, which they are)


def _inside(kind: int, ys, xs, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    """The pixels a shape covers: `r` is its circumradius, `angle` its rotation."""
    dy, dx = ys - cy, xs - cx
    if kind == 1:
        return dy * dy + dx * dx <= r * r
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == 2:
        half = r / np.sqrt(2)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):  # an equilateral triangle: three half-planes at distance r/2 from the centre
        a = 2 * np.pi * k / 3
        inside &= np.cos(a) * u + np.sin(a) * v <= r / 2
    return inside


def _background(rng: np.random.Generator, h: int, w: int, ys, xs) -> tuple[np.ndarray, np.ndarray]:
    base = rng.uniform(20, 235, 3)
    tilt = rng.uniform(-60, 60, (3, 2))
    image = base[:, None, None] + tilt[:, :1, None] * (ys / h - 0.5) + tilt[:, 1:, None] * (xs / w - 0.5)
    return image, base


def _colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A colour far enough from the background's to be seen."""
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - avoid).sum() > 150:
            return colour
    return 255 - avoid


def draw(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (3 x h x w uint8) and its mask (h x w uint8)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    image, base = _background(rng, h, w, ys, xs)
    mask = np.zeros((h, w), dtype=np.uint8)
    side = min(h, w)
    for _ in range(rng.integers(1, 4)):
        kind = int(rng.integers(1, 4))
        r = rng.uniform(side / 8, side / 3.5)
        cy, cx = rng.uniform(r * 0.7, h - r * 0.7), rng.uniform(r * 0.7, w - r * 0.7)
        covered = _inside(kind, ys, xs, cy, cx, r, rng.uniform(0, 2 * np.pi))
        image[:, covered] = _colour(rng, base)[:, None]
        mask[covered] = kind
    image += rng.normal(0, 1, image.shape) * np.where(mask > 0, SHAPE_NOISE, NOISE)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def make_shapes(count: int, size: tuple[int, int], seed: int = SEED) -> Split:
    rng = np.random.default_rng(seed)
    drawn = [draw(rng, *size) for _ in range(count)]
    return Split(np.stack([i for i, _ in drawn]), np.stack([m for _, m in drawn]))


def load_shapes_dataset(shape: tuple[int, ...], count: int = COUNT) -> Dataset:
    """The shapes at the spec's input size (`shape` is C x H x W; grey specs get grey images via fit)."""
    if len(shape) != 3 or min(shape[1:]) < MIN_SIZE:
        raise DataError(f"--data shapes draws images of at least {MIN_SIZE}x{MIN_SIZE}, but the spec's input is "
                        f"{'x'.join(map(str, shape))}", "use a spec whose input is C x H x W, 16 pixels or more")
    everything = make_shapes(count, tuple(shape[1:]))
    rest, test = carve(everything, 0.1, classification=False)
    train, val = carve(rest, 0.1 / 0.9, classification=False)
    return Dataset("shapes", train, val, test, list(CLASSES), kind=SEGMENTATION)
