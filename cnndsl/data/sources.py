"""`--data` to a `Dataset` fitted to the spec's input: the one entry point of the package.

`digits`, `synthetic[:N]`, `shapes` and `placed-digits` are names; anything else is a
path, and the format is recognised from what is there: an `.npz` file (with `masks` or
`boxes` for the dense tasks), a segmentation folder (images/ + masks/, or VOC's
layout), a localisation folder (boxes.csv or boxes.json), a directory of MNIST IDX
files, of CIFAR-10/100 python batches, or an image folder. torchvision's download roots work as
they are: `root/MNIST/raw` (and FashionMNIST, KMNIST), `root/cifar-10-batches-py`
(any `cifar*` folder one level down).
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import DataError
from .dataset import Dataset
from .fit import FitRequest, fit_dataset

DATA_HELP = ("digits (the default: scikit-learn's bundled 8x8 handwritten digits), synthetic[:N] "
             "(random data for throughput), shapes (segmentation: shapes on noise, with masks), placed-digits "
             "(localisation: digits placed on a canvas, with boxes), or a path: an .npz file (x/y, or with "
             "masks or boxes), a directory of MNIST/Fashion-MNIST IDX files, CIFAR-10/100 python batches, an "
             "image folder (one sub-folder per class), images/ + masks/ folders (segmentation), or images "
             "with boxes.csv or boxes.json (localisation)")


# torchvision's download layouts: root/MNIST/raw/..., root/FashionMNIST/raw/..., root/cifar-10-batches-py/
TORCHVISION_MNIST = ("MNIST", "FashionMNIST", "KMNIST", "EMNIST")


def open_dataset(data: str, request: FitRequest, outputs: int, val_fraction: float = 0.1,
                 eager_limit_bytes: int = 2 << 30) -> Dataset:
    """The dataset `data` names, fitted to `request.shape`.

    `outputs` is the width of the network's output (for synthetic labels);
    `eager_limit_bytes` bounds the image folders decoded into memory up front."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), not {val_fraction}")
    if data == "digits":
        from .digits import load_digits_dataset

        return fit_dataset(load_digits_dataset(), request, always=True)
    if data in EMBEDDED_DENSE:
        return fit_dataset(_embedded_dense(data, request), request, always=True)
    if data == "synthetic" or data.startswith("synthetic:"):
        from .synthetic import DEFAULT_TRAIN_SIZE, load_synthetic_dataset

        count = data.partition(":")[2]
        if count and not (count.isascii() and count.isdigit() and int(count) > 0):
            raise DataError(f"--data {data}: the size after 'synthetic:' must be a positive integer")
        size = int(count) if count else DEFAULT_TRAIN_SIZE
        sample = math.prod(request.shape) * (1 if len(request.shape) == 3 else 4)
        if size * sample > eager_limit_bytes:
            most = max(1, eager_limit_bytes // sample)
            raise DataError(f"--data {data}: {size:,} samples of {tuple(request.shape)} would take "
                            f"{size * sample / 2**30:,.1f} GiB in memory", f"use at most synthetic:{most}")
        return load_synthetic_dataset(tuple(request.shape), outputs, size)
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"no dataset at {data!r}: not a file or directory, nor 'digits' or 'synthetic'",
                        "--data takes " + DATA_HELP)
    return fit_dataset(_read(path, request, val_fraction, eager_limit_bytes), request)


EMBEDDED_DENSE = ("shapes", "placed-digits")


def _embedded_dense(name: str, request: FitRequest) -> Dataset:
    """`shapes` or `placed-digits`, drawn at the spec's size (their colour fitted to it after)."""
    if name == "shapes":
        from .shapes import load_shapes_dataset

        return load_shapes_dataset(tuple(request.shape))
    from .placed import load_placed_digits

    return load_placed_digits(tuple(request.shape))


def _dense_folder(path: Path, request: FitRequest, val_fraction: float) -> Dataset | None:
    from .boxes import box_table, load_box_folder
    from .masks import load_mask_folder, mask_layout

    if mask_layout(path) is not None:
        return load_mask_folder(path, val_fraction, request)
    if box_table(path) is not None:
        return load_box_folder(path, val_fraction, request)
    return None


def _read(path: Path, request: FitRequest, val_fraction: float, eager_limit_bytes: int) -> Dataset:
    if path.is_file():
        if path.suffix == ".npz":
            from .npz import load_npz_dataset

            return load_npz_dataset(path, val_fraction, request.classes)
        raise DataError(f"{path}: a single file that is not an .npz archive",
                        "for MNIST or CIFAR give the directory that holds the files")
    dense = _dense_folder(path, request, val_fraction)
    if dense is not None:
        return dense
    from .cifar import cifar_kind, load_cifar_dataset
    from .idx import find_idx_files, load_idx_dataset

    candidates = [path, path / "raw"] + [path / name / "raw" for name in TORCHVISION_MNIST] + \
        sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith("cifar"))
    candidates = [c for c in candidates if c.is_dir()]
    for directory in candidates:
        if find_idx_files(directory):
            return load_idx_dataset(directory, val_fraction)
        if cifar_kind(directory):
            return load_cifar_dataset(directory, val_fraction)
    from .image_folder import is_image_folder, load_image_folder

    if is_image_folder(path) or (path / "train").is_dir():
        return load_image_folder(path, val_fraction, request, eager_limit_bytes)
    raise DataError(f"{path}: no dataset recognised in this directory",
                    "expected MNIST IDX files, CIFAR python batches, or one sub-folder of images per class")
