"""The dense tasks' metrics, kept as sums on the device so that a run's ranks add them up.

Segmentation: a confusion matrix over the labelled pixels (rows: the true class, columns:
the predicted one); from it the IoU of each class, TP / (TP + FP + FN), the mean IoU over
the classes that occur (in the truth or the prediction), and the pixel accuracy, as
torchvision's segmentation reference computes them over a whole split.
Localisation: the class accuracy, the mean IoU of the predicted box with the true one,
and the share of boxes whose IoU is above 0.5 (`box_hits`, PASCAL's criterion).
"""

from __future__ import annotations

import torch

from ..data.dataset import IGNORE
from .losses import centre_crop

HIT_IOU = 0.5


def confusion(predicted: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    """classes x classes counts of (true, predicted) over the pixels not IGNORE'd."""
    target = target.long().reshape(-1)
    predicted = predicted.long().reshape(-1)
    keep = target != IGNORE
    pairs = target[keep] * classes + predicted[keep]
    return torch.bincount(pairs, minlength=classes * classes).view(classes, classes)


def iou_per_class(matrix) -> list[float | None]:
    """TP / (TP + FP + FN) per class; None where the class is neither true nor predicted."""
    m = torch.as_tensor(matrix, dtype=torch.float64)
    tp = m.diagonal()
    union = m.sum(0) + m.sum(1) - tp
    return [float(t / u) if u > 0 else None for t, u in zip(tp, union)]


def mean_iou(matrix) -> float:
    present = [v for v in iou_per_class(matrix) if v is not None]
    return sum(present) / len(present) if present else 0.0


def pixel_accuracy(matrix) -> float:
    m = torch.as_tensor(matrix, dtype=torch.float64)
    total = float(m.sum())
    return float(m.diagonal().sum()) / total if total else 0.0


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of each row's box in `a` with the same row's in `b`; boxes are (x0, y0, x1, y1)."""
    a, b = a.float(), b.float()
    w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = w * h
    area = lambda x: (x[:, 2] - x[:, 0]).clamp(min=0) * (x[:, 3] - x[:, 1]).clamp(min=0)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


class SegmentationMeter:
    """Loss and confusion sums: `sums` is [loss * n, n, confusion...] (float64, on the device)."""

    def __init__(self, classes: int, device) -> None:
        self.classes = classes
        self.sums = torch.zeros(2 + classes * classes, dtype=torch.float64, device=device)

    def update(self, main: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> None:
        target = centre_crop(target, main.shape[-2:])
        self.sums[0] += loss.double() * len(target)
        self.sums[1] += len(target)
        self.sums[2:] += confusion(main.argmax(1), target, self.classes).reshape(-1).double()

    def result(self, totals: list[float]) -> dict:
        n = totals[1]
        matrix = torch.tensor(totals[2:], dtype=torch.float64).view(self.classes, self.classes)
        return {"loss": totals[0] / n if n else None, "count": int(n), "miou": mean_iou(matrix),
                "pixel_accuracy": pixel_accuracy(matrix), "iou": iou_per_class(matrix),
                "confusion": matrix.long().tolist()}


class BoxMeter:
    """`sums` is [loss * n, n, correct classes, IoU sum, hits] (float64, on the device)."""

    def __init__(self, device) -> None:
        self.sums = torch.zeros(5, dtype=torch.float64, device=device)

    def update(self, scores: torch.Tensor, box: torch.Tensor, loss: torch.Tensor, target: torch.Tensor) -> None:
        iou = box_iou(box, target[:, 1:5])
        self.sums[0] += loss.double() * len(target)
        self.sums[1] += len(target)
        self.sums[2] += (scores.argmax(1) == target[:, 0].long()).sum()
        self.sums[3] += iou.double().sum()
        self.sums[4] += (iou > HIT_IOU).sum()

    def result(self, totals: list[float]) -> dict:
        n = totals[1]
        if not n:
            return {"loss": None, "count": 0, "accuracy": None, "box_iou": None, "box_hits": None}
        return {"loss": totals[0] / n, "count": int(n), "accuracy": totals[2] / n, "box_iou": totals[3] / n,
                "box_hits": totals[4] / n}
