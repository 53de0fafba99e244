"""MNIST and Fashion-MNIST as their authors distribute them: IDX files, raw or gzipped.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), the dimensions as big-endian 32-bit integers, then the data. `--data DIR`
finds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
and `t10k-labels-idx1-ubyte` in DIR (each may end in `.gz`; `-idx3-ubyte` may also be
spelled `.idx3-ubyte`). The validation split is carved from the training files.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from .errors import DataError
from .dataset import Dataset, Split, carve, class_count

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
_STEMS = {"train_x": "train-images", "train_y": "train-labels", "test_x": "t10k-images", "test_y": "t10k-labels"}


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable gzip file ({exc})", "download the file again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)", "MNIST files start with 00 00 08 0N")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header", "download the file again")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize  # Python integers: numpy's product wraps
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header promises {dims} ({expected:,} bytes) but the file holds "
                        f"{len(raw) - header:,}", "the file is truncated or corrupted; download it again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).copy()  # writable, for torch


def find_idx_files(directory: Path) -> dict[str, Path] | None:
    """The four files of an MNIST-style directory, or None when it is not one."""
    found = {}
    for key, stem in _STEMS.items():
        kind = "idx3" if key.endswith("x") else "idx1"
        for name in (f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"):
            for suffix in ("", ".gz"):
                if (directory / (name + suffix)).is_file():
                    found[key] = directory / (name + suffix)
    if not found:
        return None
    missing = [f"{_STEMS[k]}-{'idx3' if k.endswith('x') else 'idx1'}-ubyte" for k in _STEMS if k not in found]
    if missing:
        raise DataError(f"{directory}: an MNIST-style directory without {', '.join(missing)}",
                        "it needs the training and the t10k image and label files")
    return found


def load_idx_dataset(directory: Path, val_fraction: float) -> Dataset:
    files = find_idx_files(directory)
    arrays = {key: read_idx(path) for key, path in files.items()}
    splits = {}
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{files[part + '_x']}: {len(x)} images of shape {x.shape[1:]} but "
                            f"{len(y)} labels of shape {y.shape[1:]}", "image and label files must match")
        splits[part] = Split(np.ascontiguousarray(x), y.astype(np.int64))
    train, val = carve(splits["train"], val_fraction, classification=True)
    n_classes = class_count(str(directory), splits["train"].y, splits["test"].y)
    fashion = "fashion" in str(directory.resolve()).lower() and n_classes == 10
    classes = FASHION_CLASSES if fashion else [str(i) for i in range(n_classes)]
    return Dataset("fashion-mnist" if fashion else "mnist", train, val, splits["test"], classes, flip_ok=fashion)
