"""The common form every reader produces: a `Dataset` of train, validation and test
`Split`s, plus the fixed, seeded splitting that carves a validation or test split out of
a larger one. Splits are fixed (seed 0, stratified by class) so that `cnndsl eval` on a
run's checkpoint sees exactly the test images the run held out, whatever `--seed` was.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import DataError

SPLIT_SEED = 0  # the split is part of the dataset's definition, not of a run's randomness
SEGMENTATION = "segmentation"  # targets: N x H x W class ids per pixel (uint8), IGNORE where unlabelled
LOCALISATION = "localisation"  # targets: N x 5 float32 rows (class id, x0, y0, x1, y1), the box as fractions
IGNORE = 255  # a mask's "no label here" (VOC's object borders)
MAX_CLASSES = 100_000  # a label past this is a mistake (an id, a hash), not a class index


@dataclass
class ImageFiles:
    """Image files read lazily with Pillow (the streaming path for large image folders).

    `mode` is the Pillow mode every image is converted to ("L" or "RGB"); `size` is
    (H, W) to resize to, or None when the files already have the spec's size.
    """

    paths: list[Path]
    mode: str
    size: tuple[int, int] | None
    shape: tuple[int, int, int]  # C, H, W after conversion and resizing

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, index: np.ndarray) -> "ImageFiles":
        return replace(self, paths=[self.paths[i] for i in index])

    def load(self, i: int) -> np.ndarray:
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            image = image.convert(self.mode)
            if self.size is not None and image.size != (self.size[1], self.size[0]):
                image = image.resize((self.size[1], self.size[0]), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def load_all(self) -> np.ndarray:
        out = np.empty((len(self),) + self.shape, dtype=np.uint8)
        for i in range(len(self)):
            out[i] = self.load(i)
        return out


@dataclass
class Split:
    """Inputs and targets. `x` is an array (N, C, H, W) or (N, F), or `ImageFiles`;
    `y` is int64 class indices (N,) or float32 regression targets (N,) or (N, K), or, for
    the dense tasks, masks (N, H, W) or boxes (N, 5): see SEGMENTATION and LOCALISATION."""

    x: np.ndarray | ImageFiles
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "Split":
        x = self.x.take(index) if isinstance(self.x, ImageFiles) else self.x[index]
        return Split(x, self.y[index])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.x.shape if isinstance(self.x, ImageFiles) else tuple(self.x.shape[1:])

    @property
    def nbytes(self) -> int:
        if isinstance(self.x, ImageFiles):
            return len(self.x) * int(np.prod(self.x.shape))
        return int(self.x.nbytes)


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str] | None  # None: a regression dataset
    scale: float = 255.0  # what a pixel value is divided by before normalizing
    flip_ok: bool = True  # False for digits: a mirrored 2 is not a 2
    notes: list[str] = field(default_factory=list)  # what was done to fit the spec
    kind: str | None = None  # SEGMENTATION or LOCALISATION; None: classification or regression

    @property
    def task(self) -> str:
        if self.kind is not None:
            return self.kind
        return "classification" if self.classes is not None else "regression"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.train.sample_shape

    def splits(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def map(self, fn) -> "Dataset":
        """The same dataset with `fn` applied to every split's inputs."""
        return replace(self, train=Split(fn(self.train.x), self.train.y), val=Split(fn(self.val.x), self.val.y),
                       test=Split(fn(self.test.x), self.test.y))


def carve(split: Split, fraction: float, classification: bool) -> tuple[Split, Split]:
    """Split off `fraction` of `split` (stratified by class when classifying): (rest, carved)."""
    n = len(split)
    if fraction <= 0 or n == 0:
        return split, split.take(np.arange(0))
    rng = np.random.default_rng(SPLIT_SEED)
    if classification:
        carved = []
        for label in np.unique(split.y):
            members = np.flatnonzero(split.y == label)
            rng.shuffle(members)
            carved.append(members[: int(round(fraction * len(members)))])
        chosen = np.sort(np.concatenate(carved))
    else:
        chosen = np.sort(rng.permutation(n)[: int(round(fraction * n))])
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return split.take(np.flatnonzero(~mask)), split.take(chosen)


def class_count(where: str, *labels: np.ndarray) -> int:
    """The number of classes integer labels 0 .. N-1 imply, checked before anything is
    made per class: a negative label, or one so large that a list of every class up to it
    would exhaust memory, is a `DataError`."""
    low = min((int(y.min()) for y in labels if len(y)), default=0)
    high = max((int(y.max()) for y in labels if len(y)), default=0)
    if low < 0:
        raise DataError(f"{where}: negative class label {low}", "labels must be 0 .. classes-1")
    if high >= MAX_CLASSES:
        raise DataError(f"{where}: a class label of {high:,}, but labels must be 0 .. classes-1 and at most "
                        f"{MAX_CLASSES:,} classes are supported",
                        "renumber the labels: numpy.unique(y, return_inverse=True)[1]")
    return high + 1
