"""Datasets for `cnndsl train`, `eval` and `predict`, read without torchvision.

Every reader turns its format into the same thing, a `Dataset` of three `Split`s
(train, validation, test) of images as N x C x H x W arrays (uint8 pixels, or float32
for `.npz` files that hold floats) and integer class labels or float regression
targets, or masks or boxes for segmentation and localisation (`masks.py`, `boxes.py`,
the embedded `shapes.py` and `placed.py`); `sources.open_dataset` picks the reader from
`--data`. `fit` checks a dataset
against the spec's input and, when asked, resizes it or converts its channels.
`batches` turns the splits into batches on the training device: small datasets live on
the device as tensors and are augmented there; large ones stream through a DataLoader.

The modules import numpy (and torch where they need it) at import time; this package's
own names load lazily, so `cnndsl.data.errors` (which the recipe's checks raise) costs
neither. The data side imports nothing of `cnndsl.train`.
"""

from __future__ import annotations

import importlib

_HOMES = {"Dataset": "dataset", "ImageFiles": "dataset", "Split": "dataset", "DATA_HELP": "sources",
          "open_dataset": "sources", "DataError": "errors"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
