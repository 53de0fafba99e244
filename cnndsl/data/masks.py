"""Segmentation data: every image with a mask of class ids, one per pixel.

Two forms:
- a folder of paired image and mask folders, matched by file stem:
  `DIR/images/` + `DIR/masks/` (also `image/` + `mask/`), or `DIR/train/...` with optional
  `DIR/val/...` and `DIR/test/...` laid out so; or Pascal VOC's own layout
  (`JPEGImages/` + `SegmentationClass/`, pairs named by the masks, and
  `ImageSets/Segmentation/train.txt` / `val.txt` when present: VOC's val is our test).
  Masks are palette PNGs (VOC's: the palette index is the class) or grey PNGs (the grey
  level is the class); 255 means "no label" and is ignored by the loss and the metrics.
  A `classes.txt` beside them names the classes, one per line.
- an `.npz` with `masks` (N x H x W integers) beside `x`/`images`, or `masks_train`,
  `masks_val`, `masks_test` beside `x_train`, ... .

An image without its mask, a mask without its image, a mask whose size differs from its
image's, a colour mask, a class id beyond the spec's head: each a `DataError` naming the
file. Images are read at the spec's size with --resize (bilinear), masks with them
(nearest, so ids stay ids).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import IGNORE, SEGMENTATION, Dataset, Split, carve
from .errors import DataError
from .fit import FitRequest
from .pixels import images_in, open_image, plan_images, read_pixels

LAYOUTS = (("images", "masks"), ("image", "mask"), ("JPEGImages", "SegmentationClass"))
TEST_FRACTION = 0.1
MAX_ID = IGNORE - 1  # a mask is 8-bit: ids 0..254, and 255 for "no label"


def mask_layout(root: Path) -> tuple[Path, Path] | None:
    """(images folder, masks folder) of a segmentation folder (or of its train/ part), or None."""
    for base in (root, root / "train"):
        for images, masks in LAYOUTS:
            if (base / images).is_dir() and (base / masks).is_dir():
                return base / images, base / masks
    return None


def read_mask(path: Path) -> np.ndarray:
    """A mask file as H x W uint8 class ids."""
    image = open_image(path)
    with image:
        if image.mode in ("P", "L", "1"):
            return np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)
        if image.mode in ("I", "I;16"):
            ids = np.asarray(image)
            if ids.max(initial=0) > IGNORE:
                raise DataError(f"{path}: a mask with class id {int(ids.max())}; ids must be 0..{MAX_ID} "
                                f"({IGNORE}: no label)")
            return ids.astype(np.uint8)
    raise DataError(f"{path}: a {image.mode} mask; a mask holds one class id per pixel",
                    "save masks as palette (mode P) or grey (mode L) PNGs whose pixel values are the class ids")


def _pairs(images: Path, masks: Path, voc: bool) -> list[tuple[Path, Path]]:
    """(image, mask) by file stem; an unpaired file is an error (VOC: images without masks are fine)."""
    by_stem = {p.stem: p for p in images_in(images)}
    mask_files = {p.stem: p for p in images_in(masks)}
    for stem, mask in mask_files.items():
        if stem not in by_stem:
            raise DataError(f"{mask}: a mask without an image (no {images / stem}.*)",
                            "every mask needs the image of the same name; remove the mask or add its image")
    if not voc:
        for stem, image in by_stem.items():
            if stem not in mask_files:
                raise DataError(f"{image}: an image without a mask (no {masks / stem}.png)",
                                "every image needs a mask of the same name in " + str(masks))
    if not mask_files:
        raise DataError(f"{masks}: no mask files", "put one PNG mask per image there")
    return [(by_stem[s], mask_files[s]) for s in sorted(mask_files)]


def check_ids(mask: np.ndarray, where: str, classes: int | None) -> None:
    """A DataError when a mask holds a class id the head has no score for."""
    ids = mask[mask != IGNORE]
    top = int(ids.max(initial=0))
    if classes is not None and top >= classes:
        raise DataError(f"{where}: class id {top} in the mask, but the spec's head scores {classes} classes "
                        f"(0..{classes - 1}; {IGNORE} is 'no label')",
                        f"pass --set num_classes={top + 1} (or the spec's class parameter), or fix the mask")


def _read_pair(image: Path, mask: Path, channels: int, size: tuple[int, int] | None, classes: int | None):
    from PIL import Image

    pixels = read_pixels(image, channels, None)
    ids = read_mask(mask)
    if ids.shape != pixels.shape[1:]:
        raise DataError(f"{mask}: the mask is {ids.shape[0]}x{ids.shape[1]} but its image {image.name} is "
                        f"{pixels.shape[1]}x{pixels.shape[2]}", "a mask must have its image's size")
    check_ids(ids, str(mask), classes)
    if size is not None and ids.shape != tuple(size):
        pixels = read_pixels(image, channels, size)
        ids = np.asarray(Image.fromarray(ids).resize((size[1], size[0]), Image.NEAREST), dtype=np.uint8)
    return pixels, ids


def read_pairs(pairs: list[tuple[Path, Path]], request: FitRequest, name: str) -> tuple[Split, bool]:
    """The pairs read at the spec's size, and whether any had to be resized."""
    channels, resize = plan_images([i for i, _ in pairs], request, name)
    size = tuple(request.shape[1:]) if resize else None
    read = [_read_pair(i, m, channels, size, request.classes) for i, m in pairs]
    return Split(np.stack([p for p, _ in read]), np.stack([m for _, m in read])), resize


def _voc_lists(root: Path) -> dict[str, set[str]]:
    lists = root / "ImageSets" / "Segmentation"
    found = {}
    for part, file in (("train", "train.txt"), ("test", "val.txt")):
        if (lists / file).is_file():
            found[part] = set((lists / file).read_text(encoding="utf-8").split())
    return found


def _parts(root: Path, images: Path, masks: Path) -> dict[str, list[tuple[Path, Path]]]:
    voc = images.name == "JPEGImages"
    pairs = _pairs(images, masks, voc)
    lists = _voc_lists(images.parent) if voc else {}
    if lists:
        return {part: [p for p in pairs if p[1].stem in stems] for part, stems in lists.items()}
    parts = {"train": pairs}
    if images.parent != root:  # DIR/train/images: val/ and test/ beside train/
        for part in ("val", "test"):
            other = mask_layout(root / part)
            if other is not None and other[0].parent == root / part:
                parts[part] = _pairs(*other, voc=False)
    return parts


def class_names(directory: Path, count: int) -> list[str]:
    """From classes.txt when there is one (one name per line), else the ids."""
    names_file = directory / "classes.txt"
    if names_file.is_file():
        names = [n.strip() for n in names_file.read_text(encoding="utf-8").splitlines() if n.strip()]
        if len(names) >= count:
            return names
    return [str(i) for i in range(count)]


def finish(name: str, parts: dict[str, Split], val_fraction: float, classes: list[str], **extra) -> Dataset:
    """The three splits (test, then validation, carved where missing) as a segmentation Dataset."""
    if "test" not in parts:
        parts["train"], parts["test"] = carve(parts["train"], TEST_FRACTION, classification=False)
    if "val" not in parts:
        parts["train"], parts["val"] = carve(parts["train"], val_fraction, classification=False)
    return Dataset(name, parts["train"], parts["val"], parts["test"], classes, kind=SEGMENTATION, **extra)


def load_mask_folder(root: Path, val_fraction: float, request: FitRequest) -> Dataset:
    images, masks = mask_layout(root)
    found = {part: read_pairs(pairs, request, root.name) for part, pairs in _parts(root, images, masks).items()
             if pairs}
    if "train" not in found:
        raise DataError(f"{root}: no training pairs (ImageSets/Segmentation/train.txt names none of the masks)")
    read = {part: split for part, (split, _) in found.items()}
    top = max(int(s.y[s.y != IGNORE].max(initial=0)) for s in read.values())
    count = request.classes if request.classes is not None else top + 1
    notes = [f"resized to {request.shape[1]}x{request.shape[2]}"] if any(r for _, r in found.values()) else []
    return finish(root.name, read, val_fraction, class_names(masks.parent, count), notes=notes)


# ---------------------------------------------------------------- .npz arrays

def _mask_array(masks: np.ndarray, where: str, key: str, images: np.ndarray, classes: int | None) -> np.ndarray:
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or not (np.issubdtype(masks.dtype, np.integer) or masks.dtype == np.bool_):
        raise DataError(f"{where}: '{key}' must be N x H x W integer class ids, found {masks.dtype} {masks.shape}")
    if len(masks) != len(images):
        raise DataError(f"{where}: {len(images)} images but {len(masks)} masks in '{key}'")
    if images.ndim != 4 or masks.shape[1:] != images.shape[2:]:
        raise DataError(f"{where}: the masks in '{key}' are {'x'.join(map(str, masks.shape[1:]))} but the images "
                        f"are {'x'.join(map(str, images.shape[2:]))}", "a mask must have its image's size")
    low = int(masks.min(initial=0))
    if low < 0 or int(masks.max(initial=0)) > IGNORE:
        raise DataError(f"{where}: '{key}' holds class id {low if low < 0 else int(masks.max())}; ids must be "
                        f"0..{MAX_ID} ({IGNORE}: no label)")
    masks = masks.astype(np.uint8)
    for i, mask in enumerate(masks):
        if classes is not None and int(mask[mask != IGNORE].max(initial=0)) >= classes:
            check_ids(mask, f"{where}: {key}[{i}]", classes)
    return masks


def masks_from_arrays(arrays: dict, name: str, val_fraction: float, where: str, request_classes: int | None,
                      inputs) -> Dataset:
    """A segmentation Dataset from .npz arrays; `inputs(array, key)` converts images as npz.py does."""
    parts = {}
    for part, x_key, m_key in (("train", "x", "masks"), ("train", "x_train", "masks_train"),
                               ("val", "x_val", "masks_val"), ("test", "x_test", "masks_test")):
        if m_key in arrays:
            if x_key not in arrays:
                raise DataError(f"{where}: '{m_key}' without the images '{x_key}'")
            x = inputs(arrays[x_key], where, x_key)
            parts[part] = Split(x, _mask_array(arrays[m_key], where, m_key, x, request_classes))
    if "train" not in parts:
        raise DataError(f"{where}: masks but no training masks", "name them 'masks' (beside 'x') or 'masks_train'")
    top = max(int(s.y[s.y != IGNORE].max(initial=0)) for s in parts.values())
    count = request_classes if request_classes is not None else top + 1
    named = arrays.get("classes")
    classes = [str(c) for c in named] if named is not None and len(named) >= count else \
        [str(i) for i in range(count)]
    scale = 255.0 if parts["train"].x.dtype == np.uint8 else 1.0
    return finish(name, parts, val_fraction, classes, scale=scale)
