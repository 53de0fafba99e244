"""The task of a run, decided from the data and the model's outputs together.

The data says what the targets are (`Dataset.task`: labels, values, masks or boxes); the
model's outputs, seen in one probing forward of a zero image, say what it can predict:
- a tensor N x C x H x W (H x W not 1 x 1), or a dict with `out` (and `aux`, as
  torchvision's segmentation models return), or a tuple whose first item is one of
  those: class scores per pixel, a segmenter;
- a dict with `scores` and `box`: a localiser; so is a flat N x (C + 4) vector trained on
  boxes (its first C numbers are the scores, the
  last four the box);
- anything else: the vector of classification and regression, handled by the loop as
  before.
A mismatch (masks for a classifier, boxes for a network without a box) is a `DataError`
that says what the spec must end in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.dataset import LOCALISATION, SEGMENTATION
from .errors import DataError
from .losses import localisation_loss, segmentation_loss
from .metrics import BoxMeter, SegmentationMeter

MONITORS = {SEGMENTATION: "val_miou", LOCALISATION: "val_box_iou"}
METRICS = {SEGMENTATION: ("miou", "pixel_accuracy"), LOCALISATION: ("accuracy", "box_iou", "box_hits")}


@dataclass(frozen=True)
class Head:
    """What the model's output looks like (from a probe)."""

    layout: str  # "tensor", "dict", "tuple"
    kind: str  # "pixels" (N x C x H x W scores), "boxes" (scores and a box), "vector"
    classes: int  # the class scores' width (pixels, boxes), or the vector's width
    size: tuple[int, int] | None = None  # pixels: the output's H x W
    aux: bool = False

    def describe(self) -> str:
        if self.kind == "pixels":
            return f"class scores per pixel ({self.classes} x {self.size[0]} x {self.size[1]})"
        if self.kind == "boxes":
            return f"{self.classes} class scores and a box"
        return f"a vector of {self.classes}"


def _pixels(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 4 and tuple(t.shape[2:]) != (1, 1)


def head_of(out) -> Head:
    """The Head of one forward's output (batch first)."""
    if isinstance(out, dict):
        if "out" in out and _pixels(out["out"]):
            main = out["out"]
            return Head("dict", "pixels", int(main.shape[1]), tuple(main.shape[2:]), "aux" in out)
        if "scores" in out and "box" in out:
            return Head("dict", "boxes", int(out["scores"].flatten(1).shape[1]))
        first = next(iter(out.values()))
        return Head("dict", "vector", int(first.flatten(1).shape[1]))
    if isinstance(out, (tuple, list)):
        first = out[0]
        if _pixels(first):
            return Head("tuple", "pixels", int(first.shape[1]), tuple(first.shape[2:]), len(out) > 1)
        return Head("tuple", "vector", int(first.flatten(1).shape[1]))  # (logits, aux, ...): a classifier
    if _pixels(out):
        return Head("tensor", "pixels", int(out.shape[1]), tuple(out.shape[2:]))
    return Head("tensor", "vector", int(out.flatten(1).shape[1]))


def main_output(out) -> torch.Tensor:
    """A classifier's scores from its output: the tensor, a tuple's first, a dict's `out` (else its first)."""
    if isinstance(out, dict):
        return out["out"] if "out" in out else next(iter(out.values()))
    return out[0] if isinstance(out, (tuple, list)) else out


def probe(model: torch.nn.Module, input_shape: tuple[int, ...]) -> Head:
    """One forward of a zero input in eval mode (no statistics change, no randomness drawn)."""
    was_training = model.training
    device = next(iter(model.parameters()), torch.zeros(0)).device
    model.eval()
    try:
        with torch.no_grad():
            return head_of(model(torch.zeros((1,) + tuple(input_shape), device=device)))
    finally:
        model.train(was_training)


@dataclass
class DenseTask:
    """A segmentation or localisation run's loss and metrics over the model's raw output."""

    task: str
    head: Head
    loss_name: str = "cross_entropy"
    aux_weight: float = 0.0
    box_weight: float = 1.0
    label_smoothing: float = 0.0

    @property
    def classes(self) -> int:
        return self.head.classes

    @property
    def monitor(self) -> str:
        return MONITORS[self.task]

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.task]

    def parts(self, out) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Segmentation: (main scores, aux scores); localisation: (scores, [box])."""
        if self.head.kind == "boxes":
            return out["scores"].flatten(1), [out["box"].flatten(1)]
        if self.task == LOCALISATION:  # a flat vector: scores, then the box's four numbers
            flat = out.flatten(1)
            return flat[:, :-4], [flat[:, -4:]]
        if isinstance(out, dict):
            return out["out"], [out["aux"]] if "aux" in out and out["aux"] is not None else []
        if isinstance(out, (tuple, list)):
            return out[0], [t for t in out[1:] if t is not None]
        return out, []

    def loss(self, out, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, extra = self.parts(out)
        if self.task == SEGMENTATION:
            return main, segmentation_loss(self.loss_name, main, extra, y, self.aux_weight)
        return main, localisation_loss(main, extra[0], y, self.box_weight, self.label_smoothing)

    def meter(self, device):
        return SegmentationMeter(self.classes, device) if self.task == SEGMENTATION else BoxMeter(device)

    def update(self, meter, out, y: torch.Tensor) -> None:
        main, loss = self.loss(out, y)
        if self.task == SEGMENTATION:
            meter.update(main, loss, y)
        else:
            meter.update(main, self.parts(out)[1][0], loss, y)


def dense_task(task: str, head: Head, network: str, data: str, input_size: tuple[int, ...]) -> DenseTask:
    """The DenseTask for `task` data on a model with `head`, or a DataError saying what the spec lacks."""
    if task == SEGMENTATION:
        if head.kind != "pixels":
            raise DataError(f"{data} is segmentation data (a mask per image) but {network} outputs "
                            f"{head.describe()}", "a segmenter ends in class scores per pixel, e.g. conv(num_classes,"
                            " 1) at the masks' resolution; the built-in unet is one")
        if head.size[0] > input_size[-2] or head.size[1] > input_size[-1]:
            raise DataError(f"{network} outputs {head.size[0]}x{head.size[1]} scores for a "
                            f"{input_size[-2]}x{input_size[-1]} input", "upsample to the input's size at most")
        return DenseTask(task, head)
    if head.kind == "boxes":
        return DenseTask(task, head)
    if head.kind == "vector" and head.classes > 5 and head.layout == "tensor":
        return DenseTask(task, Head("tensor", "vector", head.classes - 4))
    raise DataError(f"{data} is localisation data (a class and a box per image) but {network} outputs "
                    f"{head.describe()}", "a localiser ends in a class head and a 4-number box head (the "
                    "built-in localizer), or in fc(num_classes + 4): the scores, then x0, y0, x1, y1")
