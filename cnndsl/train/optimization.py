"""From a recipe to the objects that train: optimizer, loss and learning-rate schedule.

Weight decay applies to weights only: biases and normalization parameters (every
parameter with fewer than two dimensions) are left undecayed, as is usual. Frozen
parameters (`freeze` prefixes) get no group at all; the backbone (everything outside the
head, the last module with parameters) may train at `backbone_lr` times the rate: each
group carries its `lr_scale`. The schedule is a `LambdaLR` stepped once per batch, whose
factor is a pure function of the step times the plateau schedule's scale, so that its
state is a step counter and a `Plateau` (both stored as JSON in the checkpoint).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..weights import head_modules, in_modules
from .errors import TrainError
from .recipe import Recipe


def freeze_prefixes(recipe: Recipe) -> list[str]:
    return [p.strip() for p in recipe.freeze.split(",") if p.strip()]


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def apply_freeze(model: torch.nn.Module, recipe: Recipe) -> list[str]:
    """Turn off gradients for the parameters under the recipe's freeze prefixes; their names."""
    prefixes = freeze_prefixes(recipe)
    names = [n for n, _ in model.named_parameters()]
    unmatched = [p for p in prefixes if not any(_matches(n, p) for n in names)]
    if unmatched:
        tops = sorted({n.split(".")[0] for n in names})
        raise TrainError(f"--freeze {','.join(unmatched)}: no parameter's name starts so",
                         f"the model's top-level names are {', '.join(tops)}")
    frozen = []
    for name, p in model.named_parameters():
        if any(_matches(name, prefix) for prefix in prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def _group_order(bucket) -> tuple:
    """Decayed groups first, the head's before the backbone's: with one rate this is the
    order of earlier versions (decay, then no decay), so their checkpoints still resume."""
    (decayed, scale), _ = bucket
    return (not decayed, -scale)


def make_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    heads = head_modules(model)
    buckets: dict[tuple[bool, float], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = 1.0 if in_modules(name, heads) else recipe.backbone_lr
            buckets.setdefault((p.dim() >= 2, scale), []).append(p)
    groups = [{"params": ps, "weight_decay": recipe.weight_decay if decayed else 0.0, "lr_scale": scale,
               "lr": recipe.lr * scale} for (decayed, scale), ps in sorted(buckets.items(), key=_group_order)]
    if not groups:
        raise TrainError("every parameter is frozen: nothing would train", "freeze fewer prefixes")
    kinds = _COMPILED if recipe.compile else _EAGER
    if recipe.optimizer == "sgd":
        return kinds["sgd"](groups, lr=recipe.lr, momentum=recipe.momentum,
                            nesterov=recipe.nesterov and recipe.momentum > 0)
    return kinds[recipe.optimizer](groups, lr=recipe.lr, betas=(recipe.beta1, recipe.beta2))


@functools.cache
def _unguarded(function):
    """`function` without the wrappers torch.optim puts around it for torch.compile
    (`_disable_dynamo`, `_use_grad_for_differentiable`, the profiler's step hook): each
    imports torch._dynamo on its first call, about 1 s of a 2-core machine's start-up
    (a third of `make demo`'s before training). The wrappers declare what they wrap
    (`__wrapped__`); where a torch version does not, the wrapped function is called as is."""
    import inspect

    return inspect.unwrap(function)


class _Eager:
    """A torch.optim optimizer for a run that is not compiled: the same arithmetic, state
    and state_dict (checkpoints move freely between the two), without torch.compile's
    guards, so that torch._dynamo is never imported. `step` runs under no_grad, as the
    guard it drops does for a non-differentiable optimizer."""

    _torch_class: type = torch.optim.Optimizer

    def add_param_group(self, param_group: dict) -> None:
        _unguarded(torch.optim.Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _unguarded(torch.optim.Optimizer.zero_grad)(self, set_to_none)

    def state_dict(self) -> dict:
        return _unguarded(torch.optim.Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict) -> None:
        _unguarded(torch.optim.Optimizer.load_state_dict)(self, state_dict)

    def step(self, closure=None):
        with torch.no_grad():
            return _unguarded(self._torch_class.step)(self, closure)


class EagerSGD(_Eager, torch.optim.SGD):
    _torch_class = torch.optim.SGD


class EagerAdam(_Eager, torch.optim.Adam):
    _torch_class = torch.optim.Adam


class EagerAdamW(_Eager, torch.optim.AdamW):
    _torch_class = torch.optim.AdamW


_EAGER = {"sgd": EagerSGD, "adam": EagerAdam, "adamw": EagerAdamW}
_COMPILED = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


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


class Plateau:
    """The plateau schedule's state: the rate's scale drops by `plateau_factor` after
    `plateau_patience` epochs without the monitored metric improving."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.scale, self.best, self.bad = 1.0, None, 0

    def update(self, score: float | None) -> None:
        """`score`: higher is better."""
        if self.recipe.schedule != "plateau" or score is None:
            return
        if self.best is None or score > self.best + self.recipe.min_delta:
            self.best, self.bad = score, 0
            return
        self.bad += 1
        if self.bad >= self.recipe.plateau_patience:
            self.scale *= self.recipe.plateau_factor
            self.bad = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = float(state["scale"]), state["best"], int(state["bad"])


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int, plateau: Plateau):
    factor = lr_factor(recipe, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step) * plateau.scale)


def make_loss(recipe: Recipe, task: str, outputs: int):
    """(logits, targets) -> scalar loss."""
    if task == "regression" and recipe.loss in ("cross_entropy", "hinge"):
        raise TrainError(f"the data has real-valued targets but the loss is {recipe.loss}",
                         "pass --loss mse (or l1, smooth_l1) for regression")
    if recipe.loss in ("dice", "cross_entropy_dice"):
        raise TrainError(f"--loss {recipe.loss} is a segmentation loss, and the data is {task}",
                         "train on masks for it, or pass --loss cross_entropy")
    if recipe.loss == "cross_entropy":
        return lambda logits, y: F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    if recipe.loss == "hinge":
        return lambda logits, y: F.multi_margin_loss(logits, y)
    distance = {"l1": F.l1_loss, "mse": F.mse_loss, "smooth_l1": F.smooth_l1_loss}[recipe.loss]
    if task == "classification":
        return lambda logits, y: distance(logits, F.one_hot(y, outputs).to(logits.dtype))
    return lambda logits, y: distance(logits, y.reshape(logits.shape).to(logits.dtype))
