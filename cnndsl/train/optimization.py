"""From a recipe to the objects that train: optimizer, loss and learning-rate schedule.

Weight decay applies to weights only: biases and normalization parameters (every
parameter with fewer than two dimensions) are left undecayed, as is usual. The schedule
is a `LambdaLR` stepped once per batch, whose factor is a pure function of the step, so
that its state is a step counter (stored as JSON in the checkpoint).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import TrainError
from .recipe import Recipe


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else plain).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": plain, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0)
    kind = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return kind(groups, lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))


def lr_factor(recipe: Recipe, steps_per_epoch: int):
    """step -> multiplier of `recipe.lr`."""
    total = max(1, recipe.epochs * steps_per_epoch)
    warm = int(recipe.warmup_epochs * steps_per_epoch)
    if recipe.schedule == "onecycle":
        warm = warm or int(0.3 * total)
        start, end = 1 / 25, 1 / 25e4

        def onecycle(step: int) -> float:
            if step < warm:
                return start + (1 - start) * step / warm
            t = min(1.0, (step - warm) / max(1, total - warm))
            return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))

        return onecycle

    def factor(step: int) -> float:
        if step < warm:
            return 0.01 + 0.99 * step / warm
        if recipe.schedule == "step":
            return recipe.step_gamma ** ((step // steps_per_epoch) // recipe.step_epochs)
        if recipe.schedule == "cosine":
            t = min(1.0, (step - warm) / max(1, total - warm))
            final = recipe.final_lr_fraction
            return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return factor


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe, steps_per_epoch))


def make_loss(recipe: Recipe, task: str, outputs: int):
    """(logits, targets) -> scalar loss."""
    if task == "regression" and recipe.loss in ("cross_entropy", "hinge"):
        raise TrainError(f"the data has real-valued targets but the loss is {recipe.loss}",
                         "pass --loss mse (or l1, smooth_l1) for regression")
    if recipe.loss == "cross_entropy":
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    if recipe.loss == "hinge":
        return lambda logits, y: F.multi_margin_loss(logits, y)
    distance = {"l1": F.l1_loss, "mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}[recipe.loss]
    if task == "classification":
        return lambda logits, y: distance(logits, F.one_hot(y, outputs).to(logits.dtype))
    return lambda logits, y: distance(logits, y.reshape(logits.shape).to(logits.dtype))
