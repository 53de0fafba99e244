"""`.npz` arrays, loaded with `allow_pickle=False` (an .npz may not run code).

Accepted keys: `x_train`, `y_train`, `x_test`, `y_test` and optionally `x_val`, `y_val`
(the layout of Keras' mnist.npz); or `x`, `y` (alias `images`, `labels`), from which
fixed test and validation splits are carved. Images may be N x H x W, N x H x W x C or
N x C x H x W; uint8 images are pixels in 0..255, float images are used as they are.
Integer targets are class labels (an optional `classes` array names them); float
targets make a regression dataset. Inputs of shape N x F are feature vectors. With
`masks` (or `masks_train`, ...) the file is segmentation data (masks.py), with `boxes`
localisation data (boxes.py).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError
from .dataset import Dataset, Split, carve, class_count

TEST_FRACTION = 0.1


def _as_nchw(x: np.ndarray, path, key: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return x
    if x.ndim == 2:
        return x
    raise DataError(f"{path}: '{key}' has shape {x.shape}; expected N x H x W, N x H x W x C, N x C x H x W "
                    "or N x F")


def _inputs(x: np.ndarray, path, key: str) -> np.ndarray:
    x = _as_nchw(x, path, key)
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_:
        return x.astype(np.float32)
    raise DataError(f"{path}: '{key}' holds {x.dtype}, not numbers")


def _targets(y: np.ndarray, path, key: str) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        if y.ndim != 1:
            raise DataError(f"{path}: integer labels '{key}' must be one per sample, found shape {y.shape}")
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    raise DataError(f"{path}: '{key}' holds {y.dtype}; targets must be integer labels or float values")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})",
                        "write it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None
    for a, b in (("images", "x"), ("labels", "y")):
        if a in arrays and b not in arrays:
            arrays[b] = arrays.pop(a)
    return arrays


def _given_splits(arrays: dict[str, np.ndarray], where: str) -> dict[str, Split]:
    parts: dict[str, Split] = {}
    for part in ("train", "val", "test"):
        if f"x_{part}" in arrays and f"y_{part}" in arrays:
            parts[part] = Split(_inputs(arrays[f"x_{part}"], where, f"x_{part}"),
                                _targets(arrays[f"y_{part}"], where, f"y_{part}"))
    if "train" not in parts:
        if "x" not in arrays or "y" not in arrays:
            raise DataError(f"{where}: found arrays {sorted(arrays)}; expected x_train/y_train/x_test/y_test or x/y",
                            "rename the arrays when saving: numpy.savez(path, x=images, y=labels)")
        parts["train"] = Split(_inputs(arrays["x"], where, "x"), _targets(arrays["y"], where, "y"))
    for part, split in parts.items():
        if len(split.x) != len(split.y):
            raise DataError(f"{where}: {len(split.x)} {part} inputs but {len(split.y)} targets")
    return parts


def dataset_from_arrays(arrays: dict[str, np.ndarray], name: str, val_fraction: float = 0.1,
                        where: str | None = None, classes: int | None = None) -> Dataset:
    """A dataset from arrays named as in an .npz file (x_train, y_train, ... or x, y; with
    `masks` or `boxes` for segmentation or localisation): the .npz reader's and the Python
    API's (`cnndsl.fit(spec, {"x": ..., "y": ...})`). `classes` is a dense head's class count."""
    where = where or name
    if any(k in arrays for k in ("masks", "masks_train")):
        from .masks import masks_from_arrays

        return masks_from_arrays(arrays, name, val_fraction, where, classes, _inputs)
    if "boxes" in arrays:
        from .boxes import boxes_from_arrays

        return boxes_from_arrays(arrays, name, val_fraction, where, classes, _inputs)
    parts = _given_splits(arrays, where)
    classification = parts["train"].y.dtype == np.int64
    if "test" not in parts:
        parts["train"], parts["test"] = carve(parts["train"], TEST_FRACTION, classification)
    if "val" not in parts:
        parts["train"], parts["val"] = carve(parts["train"], val_fraction, classification)
    shapes = {p: s.sample_shape for p, s in parts.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{where}: the splits have different sample shapes {shapes}")
    classes = None
    if classification:
        count = class_count(where, *(s.y for s in parts.values()))
        named = arrays.get("classes")
        classes = [str(c) for c in named] if named is not None and len(named) >= count else \
            [str(i) for i in range(count)]
    scale = 255.0 if parts["train"].x.dtype == np.uint8 else 1.0
    return Dataset(name, parts["train"], parts["val"], parts["test"], classes, scale=scale)


def load_npz_dataset(path: Path, val_fraction: float, classes: int | None = None) -> Dataset:
    return dataset_from_arrays(_read_arrays(path), path.stem, val_fraction, str(path), classes)
