"""Image files for the dense tasks' readers (masks.py, boxes.py): decoded with Pillow into
C x H x W uint8 arrays of the spec's channels and size, every failure a `DataError`
naming the file.

The plan comes first (`plan_images`): the channels the data will have (grey unless some
image has colour, converted only with --convert-channels) and the size every image is
read at: its own where all agree with the spec, the spec's with --resize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .fit import FitRequest, channel_plan, size_plan

GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def images_in(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})", "remove or replace the file") from None
    return image


def image_size(path: Path) -> tuple[int, int, str]:
    """(height, width, Pillow mode) from the file's header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.height, image.width, image.mode
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})", "remove or replace the file") from None


def plan_images(paths: list[Path], request: FitRequest, name: str) -> tuple[int, bool]:
    """(channels to read, whether to resize to the spec's size) for these files."""
    if len(request.shape) != 3:
        raise DataError(f"{name} holds images but the spec's input is a vector of {request.shape[0]}",
                        "train images on a spec whose input is C x H x W")
    headers = [image_size(p) for p in paths]
    have = 3 if any(mode not in GREY_MODES for _, _, mode in headers) else 1
    channels = channel_plan(have, request, name)
    sizes = {(h, w) for h, w, _ in headers}
    if len(sizes) > 1 and not request.resize:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
        raise DataError(f"{name}: the images have {len(sizes)} different sizes ({shown}"
                        f"{', ...' if len(sizes) > 4 else ''})",
                        f"pass --resize to scale them all to the spec's {request.shape[1]}x{request.shape[2]}")
    resize = any(size_plan(size, request, name) for size in sizes)
    return channels, resize


def read_pixels(path: Path, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """One image as C x H x W uint8, converted to `channels` and scaled to `size` (H, W) if given."""
    from PIL import Image

    image = open_image(path)
    with image:
        image = image.convert("L" if channels == 1 else "RGB")
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
