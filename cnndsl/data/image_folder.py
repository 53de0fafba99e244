"""An image folder: one sub-folder per class, images read with Pillow.

Either `DIR/<class>/*.png` (a fixed, stratified 10% is held out for test and
`--val-fraction` of the rest for validation), or `DIR/train/<class>/...` with optional
`DIR/val/` (or `valid/`, `validation/`) and `DIR/test/` trees. Class names are the
sorted folder names of the training tree. Small folders are decoded once into an array;
a folder too large for memory stays a list of files that the DataLoader's workers decode.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .dataset import Dataset, ImageFiles, Split, carve
from .fit import FitRequest, channel_plan, size_plan

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
TEST_FRACTION = 0.1
SCAN_ALL_BELOW = 20_000  # above this many files, check a sample of the headers only
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def is_image_folder(root: Path) -> bool:
    return any(_images_in(folder)[:1] for folder in _class_folders(root))


def _labelled(root: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    paths, labels = [], []
    for index, name in enumerate(classes):
        folder = root / name
        found = _images_in(folder) if folder.is_dir() else []
        paths += found
        labels += [index] * len(found)
    holder = np.empty(len(paths), dtype=object)  # an object array so that Split.take can index it
    holder[:] = paths
    return holder, np.asarray(labels, dtype=np.int64)


def _scan(paths: list[Path]) -> tuple[int, set]:
    """The channel count (3 if any scanned image has colour) and the set of sizes (H, W)."""
    from PIL import Image, UnidentifiedImageError

    sample = paths if len(paths) <= SCAN_ALL_BELOW else \
        [paths[i] for i in np.random.default_rng(0).choice(len(paths), 2000, replace=False)]
    channels, sizes = 1, set()
    for path in sample:
        try:
            with Image.open(path) as image:
                sizes.add((image.height, image.width))
                if image.mode not in _GREY_MODES:
                    channels = 3
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})", "remove or replace the file") from None
    return channels, sizes


def _labelled_parts(root: Path, val_fraction: float) -> tuple[dict[str, Split], list[str]]:
    """The splits as file lists with labels: from train/ val/ test/ trees, or carved from one."""
    split_names = {"train": ["train"], "val": ["val", "valid", "validation"], "test": ["test"]}
    trees = {part: next((root / n for n in names if (root / n).is_dir()), None) for part, names in split_names.items()}
    nested = trees["train"] is not None and is_image_folder(trees["train"])
    class_root = trees["train"] if nested else root
    classes = [p.name for p in _class_folders(class_root) if _images_in(p)[:1]]
    if len(classes) < 2:
        raise DataError(f"{root}: an image folder needs at least two class folders with images, found "
                        f"{len(classes)}", "lay it out as DIR/<class>/<image>.png")
    parts = {}
    if not nested:
        rest, parts["test"] = carve(Split(*_labelled(root, classes)), TEST_FRACTION, classification=True)
        parts["train"], parts["val"] = carve(rest, val_fraction / (1 - TEST_FRACTION), classification=True)
        return parts, classes
    for part, tree in trees.items():
        if tree is not None:
            parts[part] = Split(*_labelled(tree, classes))
    if "test" not in parts:
        parts["train"], parts["test"] = carve(parts["train"], TEST_FRACTION, classification=True)
    if "val" not in parts:
        parts["train"], parts["val"] = carve(parts["train"], val_fraction, classification=True)
    return parts, classes


def _fit_plan(root: Path, parts: dict[str, Split], request: FitRequest) -> tuple[int, list[str]]:
    """(channels to convert to, notes), or a DataError when the sizes differ without --resize."""
    have_channels, sizes = _scan([p for s in parts.values() for p in s.x])
    channels = channel_plan(have_channels, request, root.name)
    if len(sizes) > 1 and not request.resize:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
        raise DataError(f"{root}: the images have {len(sizes)} different sizes "
                        f"({shown}{', ...' if len(sizes) > 4 else ''})",
                        f"pass --resize to scale them all to the spec's {request.shape[1]}x{request.shape[2]}")
    size_plan(next(iter(sizes)), request, root.name)
    notes = [f"resized to {request.shape[1]}x{request.shape[2]}"] if sizes != {tuple(request.shape[1:])} else []
    return channels, notes


def load_image_folder(root: Path, val_fraction: float, request: FitRequest, eager_limit_bytes: int) -> Dataset:
    if len(request.shape) != 3:
        raise DataError(f"{root} holds images but the spec's input is a vector of {request.shape[0]}",
                        "train an image folder on a spec whose input is C x H x W")
    parts, classes = _labelled_parts(root, val_fraction)
    channels, notes = _fit_plan(root, parts, request)
    shape = (channels,) + tuple(request.shape[1:])
    mode = "L" if channels == 1 else "RGB"
    total = sum(len(s) for s in parts.values()) * int(np.prod(shape))
    splits = {}
    for part, split in parts.items():
        files = ImageFiles(list(split.x), mode, tuple(request.shape[1:]), shape)
        splits[part] = Split(files.load_all() if total <= eager_limit_bytes else files, split.y)
    return Dataset(root.name, splits["train"], splits["val"], splits["test"], classes, notes=notes)
