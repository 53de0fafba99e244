"""Datasets for `cnndsl train`, `eval` and `predict`, read without torchvision.

Every reader turns its format into the same thing, a `Dataset` of three `Split`s
(train, validation, test) of images as N x C x H x W arrays (uint8 pixels, or float32
for `.npz` files that hold floats) and integer class labels or float regression
targets; `sources.open_dataset` picks the reader from `--data`. `fit` checks a dataset
against the spec's input and, when asked, resizes it or converts its channels.
`batches` turns the splits into batches on the training device: small datasets live on
the device as tensors and are augmented there; large ones stream through a DataLoader.

The modules import numpy (and torch where they need it) at import time: the CLI imports
this package only inside the training commands, never for `compile` or `check`.
"""

from .dataset import Dataset, ImageFiles, Split
from .sources import DATA_HELP, open_dataset

__all__ = ["DATA_HELP", "Dataset", "ImageFiles", "Split", "open_dataset"]
