"""`--data placed-digits`: the embedded 8x8 digits, scaled and placed at random on a
larger noisy canvas, each with its class and its box: localisation data made here,
procedurally and deterministically (one fixed seed), at the spec's input size.

A digit is scaled to between a quarter and a half of the canvas's side and placed
anywhere it fits whole; its box is the tight box of its ink. The digits keep the splits
of `--data digits` (a digit of the test split is only ever placed on a test canvas), and
each is placed `PLACEMENTS` times at different places.
"""

from __future__ import annotations

import numpy as np

from .dataset import LOCALISATION, Dataset, Split
from .digits import load_digits_dataset
from .errors import DataError

SEED = 20_240_613
PLACEMENTS = 2
MIN_SIZE = 24
INK = 64  # a scaled pixel at least this bright is ink


def _scaled(digit: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(digit).resize((side, side), Image.BILINEAR), dtype=np.uint8)


def place(rng: np.random.Generator, digit: np.ndarray, h: int, w: int) -> tuple[np.ndarray, list[float]]:
    """A canvas (h x w uint8) with `digit` (8 x 8 uint8) on it, and the digit's box as fractions."""
    side = int(rng.integers(min(h, w) // 4, min(h, w) // 2 + 1))
    scaled = _scaled(digit, side)
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    canvas = rng.normal(30, 15, (h, w))
    region = canvas[y0:y0 + side, x0:x0 + side]
    canvas[y0:y0 + side, x0:x0 + side] = np.maximum(region, scaled)
    rows, cols = np.flatnonzero((scaled >= INK).any(1)), np.flatnonzero((scaled >= INK).any(0))
    if len(rows) == 0:  # a digit with no bright ink: the whole square
        rows, cols = np.array([0, side - 1]), np.array([0, side - 1])
    box = [(x0 + cols[0]) / w, (y0 + rows[0]) / h, (x0 + cols[-1] + 1) / w, (y0 + rows[-1] + 1) / h]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), box


def place_all(split: Split, size: tuple[int, int], rng: np.random.Generator, placements: int) -> Split:
    images, targets = [], []
    for _ in range(placements):
        for digit, label in zip(split.x[:, 0], split.y):
            canvas, box = place(rng, digit, *size)
            images.append(canvas[None])
            targets.append([float(label), *box])
    return Split(np.stack(images), np.asarray(targets, dtype=np.float32).reshape(-1, 5))


def load_placed_digits(shape: tuple[int, ...], placements: int = PLACEMENTS) -> Dataset:
    """Canvases of the spec's input size (C x H x W; colour specs get grey repeated via fit)."""
    if len(shape) != 3 or min(shape[1:]) < MIN_SIZE:
        raise DataError(f"--data placed-digits places digits on canvases of at least {MIN_SIZE}x{MIN_SIZE}, but "
                        f"the spec's input is {'x'.join(map(str, shape))}",
                        "use a spec whose input is C x H x W, 24 pixels or more")
    digits = load_digits_dataset()
    rng = np.random.default_rng(SEED)
    size = tuple(shape[1:])
    parts = [place_all(s, size, rng, placements) for s in (digits.train, digits.val, digits.test)]
    return Dataset("placed-digits", *parts, classes=list(digits.classes), flip_ok=False, kind=LOCALISATION)
