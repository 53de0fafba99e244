"""The dense tasks' losses, as plain functions of tensors (tests check them against values
worked by hand).

Segmentation: per-pixel cross-entropy that skips IGNORE (255) pixels, or soft Dice
(1 - the mean over classes of 2|P∩T| / (|P| + |T|), with softmax probabilities for P),
or their sum; an `aux` output adds `aux_weight` times the same loss, as torchvision's
segmentation references train FCN and DeepLab. Where a network's output is smaller than
its input (the U-Net paper's valid convolutions: 572 in, 388 out) the mask is centre
cropped to it, as the paper does.
Localisation: cross-entropy on the class scores plus `box_weight` times smooth L1 on the
box (fractions of the image; beta 1/9, Fast R-CNN's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.dataset import IGNORE
from .errors import TrainError

BOX_BETA = 1 / 9
DICE_SMOOTH = 1.0
SEGMENTATION_LOSSES = ("cross_entropy", "dice", "cross_entropy_dice")


def centre_crop(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks (B, H, W) cropped to their centre `size` (h, w) <= (H, W)."""
    h, w = target.shape[-2:]
    if (h, w) == tuple(size):
        return target
    if size[0] > h or size[1] > w:
        raise TrainError(f"the network's output is {size[0]}x{size[1]} but the masks are {h}x{w}",
                         "a segmenter's output may be smaller than its input (it is centre-cropped), not larger")
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return target[..., top:top + size[0], left:left + size[1]]


def pixel_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled pixels (none labelled: 0, with a gradient)."""
    target = centre_crop(target, logits.shape[-2:]).long()
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, ignore_index=IGNORE)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH) -> torch.Tensor:
    """1 - mean over classes of (2 |P∩T| + smooth) / (|P| + |T| + smooth), labelled pixels only."""
    target = centre_crop(target, logits.shape[-2:]).long()
    valid = (target != IGNORE)[:, None].to(logits.dtype)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(torch.where(target == IGNORE, 0, target), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot.to(probs.dtype) * valid
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + smooth) / (total + smooth)).mean()


def pixel_loss(name: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "cross_entropy":
        return pixel_cross_entropy(logits, target)
    if name == "dice":
        return dice_loss(logits, target)
    if name == "cross_entropy_dice":
        return pixel_cross_entropy(logits, target) + dice_loss(logits, target)
    raise TrainError(f"--loss {name} does not apply to segmentation",
                     "use --loss " + ", ".join(SEGMENTATION_LOSSES))


def segmentation_loss(name: str, main: torch.Tensor, aux: list[torch.Tensor], target: torch.Tensor,
                      aux_weight: float) -> torch.Tensor:
    loss = pixel_loss(name, main, target)
    for extra in aux:
        loss = loss + aux_weight * pixel_loss(name, extra, target)
    return loss


def box_loss(predicted: torch.Tensor, target: torch.Tensor, beta: float = BOX_BETA) -> torch.Tensor:
    """Smooth L1 over the four numbers of each box, averaged."""
    return F.smooth_l1_loss(predicted.float(), target.float(), beta=beta)


def localisation_loss(scores: torch.Tensor, box: torch.Tensor, target: torch.Tensor, box_weight: float,
                      label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy on the class plus `box_weight` x smooth L1 on the box; target rows are
    (class id, x0, y0, x1, y1)."""
    labels = target[:, 0].long()
    return F.cross_entropy(scores.float(), labels, label_smoothing=label_smoothing) + \
        box_weight * box_loss(box, target[:, 1:5])
