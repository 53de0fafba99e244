"""Pictures of the dense tasks' predictions: a mask as a palette PNG (Pascal VOC's colours,
so the file is both a picture and the class ids), a mask blended over its image, and a box
with its label drawn on the image. Pillow and numpy only; `cnndsl predict`, `cnndsl viz
overlay` and the drawing page (`serve`) use them.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255
ALPHA = 0.5  # the mask's share of an overlay pixel
MIN_DRAWN = 192  # pixels: the least side of a drawn box's picture


def voc_palette(n: int = 256) -> np.ndarray:
    """Pascal VOC's colour map: class i's colour from the bits of i (0 black, 1 dark red, ...)."""
    colours = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    colours[IGNORE] = (224, 224, 192)  # VOC's colour for "no label"
    return colours


PALETTE = voc_palette()


def mask_image(ids: np.ndarray):
    """H x W class ids as a palette ("P") image in VOC's colours."""
    from PIL import Image

    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette(PALETTE.reshape(-1).tolist())
    return image


def overlay(image, ids: np.ndarray, alpha: float = ALPHA):
    """`image` (a Pillow image) with the mask's colours blended in where the class is not 0
    (the mask scaled to the image by nearest neighbour)."""
    from PIL import Image

    image = image.convert("RGB")
    if max(image.size) < MIN_DRAWN:  # a small image is enlarged, so that the mask can be seen
        factor = -(-MIN_DRAWN // max(image.size))
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    base = np.asarray(image, dtype=np.float32)
    if ids.shape != base.shape[:2]:
        ids = np.asarray(mask_image(ids).resize((base.shape[1], base.shape[0]), Image.NEAREST))
    colour = PALETTE[ids].astype(np.float32)
    shown = (ids != 0)[..., None]
    mixed = np.where(shown, (1 - alpha) * base + alpha * colour, base)
    return Image.fromarray(np.rint(mixed).clip(0, 255).astype(np.uint8))


def draw_box(image, box: tuple[float, float, float, float], label: str, colour=(255, 64, 32)):
    """A copy of `image` in colour with `box` (pixels x0, y0, x1, y1) outlined and labelled."""
    from PIL import ImageDraw

    from PIL import Image

    out = image.convert("RGB")
    if max(out.size) < MIN_DRAWN:  # a small image is enlarged so that the label can be read
        factor = -(-MIN_DRAWN // max(out.size))
        out = out.resize((out.width * factor, out.height * factor), Image.NEAREST)
        box = tuple(v * factor for v in box)
    pen = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 100))
    pen.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=colour, width=width)
    text_y = box[1] - 11 if box[1] >= 11 else box[3] + 1
    pen.text((box[0] + 1, text_y), label, fill=colour)
    return out


def class_shares(ids: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Each class's share of the pixels, for the classes present, largest first."""
    counts = np.bincount(ids.reshape(-1), minlength=len(classes))[:len(classes)]
    total = max(1, int(counts.sum()))
    pairs = [(classes[i], int(c) / total) for i, c in enumerate(counts) if c]
    return dict(sorted(pairs, key=lambda p: -p[1]))
