"""The dense tasks' losses and metrics against values worked by hand, and the task a run
takes from the model's outputs (issue 12)."""

from __future__ import annotations

import math

import pytest
import torch

from cnndsl.data.dataset import IGNORE
from cnndsl.train.errors import DataError, TrainError
from cnndsl.train.losses import (box_loss, centre_crop, dice_loss, localisation_loss, pixel_cross_entropy,
                                 segmentation_loss)
from cnndsl.train.metrics import BoxMeter, SegmentationMeter, box_iou, confusion, iou_per_class, mean_iou, \
    pixel_accuracy
from cnndsl.train.tasks import Head, dense_task, head_of


def logits(*pixels) -> torch.Tensor:
    """1 x C x 1 x P scores from P per-pixel score lists."""
    return torch.tensor(pixels, dtype=torch.float32).T[None, :, None, :]


def test_pixel_cross_entropy_skips_ignored_pixels():
    # pixel 0: scores (0, 0), true 0: ln 2; pixel 1: (ln 3, 0), true 0: -ln 3/4; pixel 2 ignored
    scores = logits([0.0, 0.0], [math.log(3), 0.0], [50.0, -50.0])
    target = torch.tensor([[[0, 0, IGNORE]]], dtype=torch.uint8)
    assert pixel_cross_entropy(scores, target).item() == pytest.approx((math.log(2) - math.log(0.75)) / 2)
    none = torch.full((1, 1, 3), IGNORE, dtype=torch.uint8)
    assert pixel_cross_entropy(scores, none).item() == 0.0  # nothing labelled: no NaN


def test_dice_by_hand_and_the_aux_weight():
    scores = logits([0.0, 0.0], [0.0, 0.0], [9.0, 0.0])  # probabilities 1/2, 1/2 on pixels 0 and 1
    target = torch.tensor([[[0, 1, IGNORE]]], dtype=torch.uint8)
    # each class: |P∩T| = 1/2, |P| = 1, |T| = 1: (2 * 1/2 + 1) / (1 + 1 + 1) = 2/3
    assert dice_loss(scores, target).item() == pytest.approx(1 - 2 / 3)
    ce = pixel_cross_entropy(scores, target).item()
    assert ce == pytest.approx(math.log(2))
    both = segmentation_loss("cross_entropy_dice", scores, [], target, 0.0).item()
    assert both == pytest.approx(math.log(2) + 1 / 3)
    with_aux = segmentation_loss("cross_entropy", scores, [scores * 0], target, 0.5).item()
    assert with_aux == pytest.approx(math.log(2) * 1.5)
    with pytest.raises(TrainError, match="does not apply to segmentation"):
        segmentation_loss("hinge", scores, [], target, 0.0)


def test_masks_are_centre_cropped_to_a_smaller_output():
    target = torch.arange(36).view(1, 6, 6)
    assert torch.equal(centre_crop(target, (2, 2)), torch.tensor([[[14, 15], [20, 21]]]))
    with pytest.raises(TrainError, match="not larger"):
        centre_crop(target, (8, 8))


def test_box_losses_by_hand():
    pred = torch.tensor([[0.05, 0.0, 0.5, 0.0]])
    zero = torch.zeros(1, 4)
    # smooth L1, beta 1/9: |d| < beta: d^2 / (2 beta); else |d| - beta / 2
    expected = (0.05 ** 2 * 9 / 2 + (0.5 - 1 / 18)) / 4
    assert box_loss(pred, zero).item() == pytest.approx(expected)
    target = torch.zeros(1, 5)  # class 0, box (0, 0, 0, 0)
    total = localisation_loss(torch.zeros(1, 2), pred, target, box_weight=2.0).item()
    assert total == pytest.approx(math.log(2) + 2 * expected)


def test_mean_iou_and_pixel_accuracy_by_hand():
    target = torch.tensor([0, 0, 1, 1, IGNORE])
    predicted = torch.tensor([0, 1, 1, 1, 0])
    matrix = confusion(predicted, target, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert iou_per_class(matrix) == [pytest.approx(1 / 2), pytest.approx(2 / 3), None]  # class 2: absent
    assert mean_iou(matrix) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert pixel_accuracy(matrix) == pytest.approx(3 / 4)
    meter = SegmentationMeter(3, "cpu")
    scores = torch.nn.functional.one_hot(predicted, 3).T.float()[None, :, None, :]
    meter.update(scores, torch.tensor(0.5), target.view(1, 1, 5))
    result = meter.result(meter.sums.tolist())
    assert result["miou"] == pytest.approx(7 / 12) and result["loss"] == 0.5


def test_box_iou_and_the_share_above_one_half():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    assert box_iou(a, b).tolist() == pytest.approx([1 / 7, 1.0, 0.0])
    meter = BoxMeter("cpu")
    target = torch.cat([torch.tensor([[1.0], [0.0], [0.0]]), b], 1)
    meter.update(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), a, torch.tensor(1.0), target)
    result = meter.result(meter.sums.tolist())
    assert result["accuracy"] == pytest.approx(2 / 3) and result["box_hits"] == pytest.approx(1 / 3)
    assert result["box_iou"] == pytest.approx((1 / 7 + 1) / 3)


def test_the_task_comes_from_the_outputs_and_the_data():
    pixels = head_of(torch.zeros(2, 4, 8, 8))
    assert (pixels.kind, pixels.classes, pixels.size) == ("pixels", 4, (8, 8))
    seg = head_of({"out": torch.zeros(2, 3, 8, 8), "aux": torch.zeros(2, 3, 8, 8)})
    assert seg.kind == "pixels" and seg.aux and seg.layout == "dict"
    loc = head_of({"scores": torch.zeros(2, 10), "box": torch.zeros(2, 4)})
    assert (loc.kind, loc.classes) == ("boxes", 10)
    assert head_of((torch.zeros(2, 5), torch.zeros(2, 4))).kind == "vector"  # (logits, aux): a classifier
    assert head_of(torch.zeros(2, 10, 1, 1)).kind == "vector"
    task = dense_task("localisation", head_of(torch.zeros(2, 14)), "Net", "d", (1, 8, 8))
    assert task.classes == 10
    scores, (box,) = task.parts(torch.arange(28.0).view(2, 14))
    assert scores.shape == (2, 10) and box[0].tolist() == [10, 11, 12, 13]
    with pytest.raises(DataError, match="segmentation data .* outputs a vector of 10"):
        dense_task("segmentation", Head("tensor", "vector", 10), "Net", "shapes", (3, 8, 8))
    with pytest.raises(DataError, match="localisation data .* class scores per pixel"):
        dense_task("localisation", pixels, "Net", "placed-digits", (3, 8, 8))
    main, loss = dense_task("segmentation", seg, "Net", "d", (3, 8, 8)).loss(
        {"out": torch.zeros(2, 3, 8, 8), "aux": torch.zeros(2, 3, 8, 8)}, torch.zeros(2, 8, 8, dtype=torch.uint8))
    assert main.shape == (2, 3, 8, 8) and loss.item() == pytest.approx(math.log(3))  # aux weight 0 by default
