"""CIFAR-10 and CIFAR-100 in the "python version" their authors distribute.

Those batches are Python pickles: that is the format, so they are read with `pickle`,
but through an unpickler that refuses every global except the few numpy needs to
rebuild an array. A tampered file then fails to load instead of running code.
CIFAR-10 is a directory with `data_batch_1` .. `data_batch_5`, `test_batch` and
`batches.meta`; CIFAR-100 one with `train`, `test` and `meta` (fine labels are used).
The validation split is carved from the training batches.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from .errors import DataError
from .dataset import Dataset, Split, carve

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            content = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(f"{path}: not a readable CIFAR batch ({exc})",
                        "download and unpack cifar-*-python.tar.gz again") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not a CIFAR batch (holds {type(content).__name__}, not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}


def _images_and_labels(path: Path, label_key: str) -> Split:
    batch = read_batch(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{path}: a CIFAR batch needs 'data' and '{label_key}' entries, found {sorted(batch)}")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(f"{path}: expected N x 3072 pixels and N labels, found {data.shape} and {labels.shape}")
    return Split(data.reshape(-1, 3, 32, 32), labels)


def _names(path: Path, key: str, count: int) -> list[str]:
    if not path.is_file():
        return [str(i) for i in range(count)]
    names = read_batch(path).get(key, [])
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return names if len(names) == count else [str(i) for i in range(count)]


def cifar_kind(directory: Path) -> str | None:
    if (directory / "data_batch_1").is_file():
        return "cifar10"
    if (directory / "train").is_file() and (directory / "test").is_file():
        return "cifar100"
    return None


def load_cifar_dataset(directory: Path, val_fraction: float) -> Dataset:
    kind = cifar_kind(directory)
    if kind == "cifar10":
        parts = sorted(directory.glob("data_batch_*"))
        if not (directory / "test_batch").is_file():
            raise DataError(f"{directory}: CIFAR-10 directory without test_batch")
        train_parts = [_images_and_labels(p, "labels") for p in parts]
        test = _images_and_labels(directory / "test_batch", "labels")
        classes = _names(directory / "batches.meta", "label_names", 10)
    else:
        train_parts = [_images_and_labels(directory / "train", "fine_labels")]
        test = _images_and_labels(directory / "test", "fine_labels")
        classes = _names(directory / "meta", "fine_label_names", 100)
    full = Split(np.concatenate([p.x for p in train_parts]), np.concatenate([p.y for p in train_parts]))
    if full.y.max(initial=0) >= len(classes) or test.y.max(initial=0) >= len(classes):
        raise DataError(f"{directory}: labels beyond the {len(classes)} classes of {kind}")
    train, val = carve(full, val_fraction, classification=True)
    return Dataset("cifar-10" if kind == "cifar10" else "cifar-100", train, val, test, classes)
