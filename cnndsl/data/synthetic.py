"""`--data synthetic` (or `synthetic:N` for N training images): random pixels and random
labels of the spec's shape, for measuring throughput. Nothing can be learnt from it;
the validation and test splits exist so that a run goes through every stage.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset, Split

DEFAULT_TRAIN_SIZE = 4096


def load_synthetic_dataset(shape: tuple[int, ...], outputs: int, train_size: int = DEFAULT_TRAIN_SIZE) -> Dataset:
    rng = np.random.default_rng(0)
    held_out = max(1, min(512, train_size // 8))

    def split(n: int) -> Split:
        if len(shape) == 1:
            x = rng.standard_normal((n,) + tuple(shape), dtype=np.float32)
        else:
            x = rng.integers(0, 256, (n,) + tuple(shape), dtype=np.uint8)
        return Split(x, rng.integers(0, outputs, n, dtype=np.int64))

    return Dataset("synthetic", split(train_size), split(held_out), split(held_out),
                   [str(i) for i in range(outputs)], scale=255.0 if len(shape) == 3 else 1.0)
