"""`--data digits`: the UCI handwritten digits that scikit-learn ships inside its wheel
(1,797 images of 8x8 pixels, 16 grey levels, classes 0-9), so the default dataset needs
no download. The split is fixed: 20% test, 10% validation, the rest training, stratified
with seed 0. Pixels are stretched from 0..16 to 0..255 (bright ink on a dark ground, as
in MNIST), and `fit` scales the images to the spec's input size.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset, Split, carve

TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # of the whole set


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(N x 8 x 8 pixels 0..16, labels), from the CSV inside scikit-learn's wheel.

    The file is read directly: importing scikit-learn for `load_digits` cost more than
    a second of every `make demo`, for the same 1,797 rows (checked equal in the tests)."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return bunch.images, bunch.target
    text = gzip.decompress(path.read_bytes()).decode("ascii")
    table = np.array(text.replace("\n", ",").strip(",").split(","), dtype=np.float64).reshape(-1, 65)
    return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int64)


def load_digits_dataset() -> Dataset:
    pixels, labels = read_digits()
    images = np.rint(pixels * (255.0 / 16.0)).astype(np.uint8)[:, None]  # N x 1 x 8 x 8
    everything = Split(images, labels.astype(np.int64))
    rest, test = carve(everything, TEST_FRACTION, classification=True)
    train, val = carve(rest, VAL_FRACTION / (1 - TEST_FRACTION), classification=True)
    return Dataset("digits", train, val, test, classes=[str(d) for d in range(10)], flip_ok=False)
