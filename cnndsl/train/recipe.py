"""The training recipe: every knob of a run, its default, and where values come from.

Precedence, lowest first: the defaults below; the recipe file beside the spec
(`specs/lenet5.train.toml` for `specs/lenet5.cnn`, or `--recipe FILE`); the options on
the command line. The file's `[set]` table gives the spec's parameters for training
(`size = 64` for `--set size=64`), beneath the command line's `--set`. The file is flat TOML whose keys are the field names below, read with
`tomllib`. `cnndsl train --help` shows every field as an option with its default; the
recipe a run used is stored in its checkpoints and `run.json`.

No torch here: the CLI builds its options from this module at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import TrainError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (the train extra pins it)
    import tomli as tomllib


SETTINGS = "set"  # the recipe file's table of spec parameters


def _f(default, help: str, choices: tuple | None = None):
    return field(default=default, metadata={"help": help, "choices": choices})


OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("cross_entropy", "hinge", "l1", "mse", "smooth_l1", "dice", "cross_entropy_dice")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "plateau")
MONITORS = ("auto", "val_accuracy", "val_loss", "val_top5", "train_accuracy", "train_loss", "val_miou",
            "val_pixel_accuracy", "val_box_iou", "val_box_hits")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SWITCHES = ("auto", "on", "off")


@dataclass
class Recipe:
    epochs: int = _f(30, "Passes over the training split.")
    batch_size: int = _f(128, "Images per step, over all processes together.")
    optimizer: str = _f("sgd", "Optimizer.", OPTIMIZERS)
    lr: float = _f(0.05, "Peak learning rate.")
    momentum: float = _f(0.9, "SGD momentum.")
    nesterov: bool = _f(True, "Nesterov momentum for SGD.")
    beta1: float = _f(0.9, "Adam/AdamW first-moment decay.")
    beta2: float = _f(0.999, "Adam/AdamW second-moment decay.")
    weight_decay: float = _f(5e-4, "L2 weight decay (decoupled for AdamW); not applied to biases or norms.")
    loss: str = _f("cross_entropy", "Loss: softmax cross-entropy, multi-class hinge (SVM), or L1/MSE/smooth L1 "
                   "(on one-hot targets when classifying); segmentation: per-pixel cross-entropy (255 ignored), "
                   "dice, or cross_entropy_dice, their sum.", LOSSES)
    label_smoothing: float = _f(0.0, "Label smoothing for cross-entropy.")
    aux_weight: float = _f(0.3, "Weight of each auxiliary classifier's loss (GoogLeNet-style heads, a "
                           "segmenter's aux output).")
    box_weight: float = _f(1.0, "Localisation: weight of the box's smooth L1 loss beside the class's "
                           "cross-entropy.")
    schedule: str = _f("cosine", "Learning-rate schedule after warm-up.", SCHEDULES)
    warmup_epochs: float = _f(0.0, "Linear warm-up from lr/100 (onecycle: from lr/25; 0 there means 30% of "
                              "the run).")
    step_epochs: int = _f(30, "step schedule: multiply the rate by step_gamma every this many epochs.")
    step_gamma: float = _f(0.1, "step schedule: the factor.")
    final_lr_fraction: float = _f(0.0, "cosine: the rate at the end, as a fraction of lr.")
    clip_grad_norm: float = _f(0.0, "Clip the gradients' global norm to this (0: off).")
    crop_padding: int = _f(-1, "Random-crop augmentation: pad by this many pixels and crop back (0: off; "
                           "-1: an eighth of the image size).")
    flip: str = _f("auto", "Random horizontal flips (auto: on unless the data is digits or MNIST).", SWITCHES)
    precision: str = _f("auto", "Arithmetic: auto is bf16 autocast on a CUDA GPU that has it, else fp32; fp16 "
                        "uses a gradient scaler (CUDA only).", PRECISIONS)
    channels_last: str = _f("auto", "channels_last memory format (auto: on for CUDA).", SWITCHES)
    compile: bool = _f(False, "Run the model through torch.compile.")
    val_fraction: float = _f(0.1, "Share of the training data held out for validation when the dataset "
                             "has no validation split.")
    seed: int = _f(0, "Seed for initialization, data order and augmentation.")
    monitor: str = _f("auto", "The metric that picks the best epoch and drives --patience and the plateau "
                      "schedule (auto: val_accuracy when classifying, val_miou when segmenting, val_box_iou "
                      "when localising, else val_loss); losses are minimized, "
                      "accuracies maximized.", MONITORS)
    patience: int = _f(0, "Early stopping: stop after this many epochs without the monitored metric "
                       "improving (0: never).")
    min_delta: float = _f(0.0, "The least change of the monitored metric that counts as improving.")
    keep_best: int = _f(1, "Keep the k best epochs' weights: best.safetensors, and with k > 1 also "
                        "best-epochN.safetensors for each of the k.")
    plateau_patience: int = _f(2, "plateau schedule: epochs without improvement before the rate drops.")
    plateau_factor: float = _f(0.1, "plateau schedule: the factor the rate is multiplied by.")
    freeze: str = _f("", "Comma-separated state_dict prefixes whose parameters stay fixed (fine-tuning), "
                     "e.g. features.")
    backbone_lr: float = _f(1.0, "The rate of every parameter outside the head (the last layer with "
                            "weights), as a fraction of lr.")
    log_every: int = _f(0, "Also log the loss and rate every this many steps (0: per epoch only).")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "Recipe":
        return check(dataclasses.replace(self, **changes))


FIELDS = {f.name: f for f in dataclasses.fields(Recipe)}


def coerce(name: str, value, where: str):
    """`value` as the type of field `name`, or a TrainError saying what is wrong where."""
    if name not in FIELDS:
        guess = difflib.get_close_matches(name, FIELDS, n=1)
        raise TrainError(f"{where}: unknown recipe field {name!r}",
                         (f"did you mean {guess[0]!r}? " if guess else "") + "`cnndsl train --help` lists them")
    spec = FIELDS[name]
    kind = type(spec.default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise TrainError(f"{where}: {name} must be {kind.__name__}, not {value!r}")
    choices = spec.metadata["choices"]
    if choices and value not in choices:
        raise TrainError(f"{where}: {name} = {value!r} is not one of {', '.join(choices)}")
    return value


_AT_LEAST_ZERO = ("momentum", "weight_decay", "warmup_epochs", "final_lr_fraction", "clip_grad_norm",
                  "aux_weight", "box_weight", "min_delta", "patience", "log_every")
_UNIT = ("beta1", "beta2")  # [0, 1)
_POSITIVE = ("step_gamma", "plateau_factor", "backbone_lr")


def _range_problems(recipe: Recipe) -> list[str]:
    values = recipe.to_dict()
    problems = [f"{name} must be a finite number, not {value}" for name, value in values.items()
                if isinstance(value, float) and not math.isfinite(value)]
    if problems:
        return problems
    problems += [f"{name} must not be negative" for name in _AT_LEAST_ZERO if values[name] < 0]
    problems += [f"{name} must be in [0, 1)" for name in _UNIT if not 0 <= values[name] < 1]
    problems += [f"{name} must be positive" for name in _POSITIVE if values[name] <= 0]
    if recipe.keep_best < 1 or recipe.plateau_patience < 1:
        problems.append("keep_best and plateau_patience must be at least 1")
    return problems


def check(recipe: Recipe) -> Recipe:
    problems = _range_problems(recipe)
    if recipe.epochs < 1:
        problems.append("epochs must be at least 1")
    if recipe.batch_size < 1:
        problems.append("batch_size must be at least 1")
    if recipe.lr <= 0:
        problems.append("lr must be positive")
    if not 0 <= recipe.label_smoothing < 1:
        problems.append("label_smoothing must be in [0, 1)")
    if not 0 <= recipe.val_fraction < 1:
        problems.append("val_fraction must be in [0, 1)")
    if recipe.step_epochs < 1:
        problems.append("step_epochs must be at least 1")
    if recipe.crop_padding < -1:
        problems.append("crop_padding must be -1 (auto), 0 (off) or a number of pixels")
    if problems:
        raise TrainError("bad recipe: " + "; ".join(problems))
    return recipe


def recipe_file_for(spec: str) -> Path | None:
    """The recipe file beside a spec: `NAME.train.toml` next to `NAME.cnn`, if there is one."""
    from ..compiler import builtins

    path = builtins().get(spec) if "/" not in spec and not spec.endswith(".cnn") else None
    if path is not None:  # a built-in's own recipe (a variant's: NAME.train.toml beside its family's file)
        path = path.with_name(f"{spec}.cnn")
    else:
        path = Path(spec)
        if "\n" in spec or not path.is_file():
            return None
    candidate = path.with_name(path.name.removesuffix(".cnn") + ".train.toml")
    return candidate if candidate.is_file() else None


def _read_table(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise TrainError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise TrainError(f"cannot read recipe file {path}: {exc.strerror}") from None
    return table.get("train", table) if set(table) == {"train"} else table


def read_recipe_file(path: Path) -> dict:
    """The recipe fields of a recipe file (its `[set]` table aside)."""
    table = _read_table(path)
    return {name: coerce(name, value, str(path)) for name, value in table.items() if name != SETTINGS}


def read_recipe_settings(path: Path) -> dict:
    """A recipe file's `[set]` table: the spec's parameters for training it (a built-in's
    defaults may be sized for a paper, not a CPU), beneath the command line's `--set`."""
    settings = _read_table(path).get(SETTINGS, {})
    if not isinstance(settings, dict) or not all(
            isinstance(k, str) and k.isidentifier() and isinstance(v, (int, float, str, bool))
            for k, v in settings.items()):
        raise TrainError(f"{path}: [{SETTINGS}] must map the spec's parameter names to numbers, text or booleans")
    return settings


def build_recipe(file_values: dict, overrides: dict, base: Recipe | None = None) -> Recipe:
    values = (base or Recipe()).to_dict()
    values.update(file_values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return check(Recipe(**values))


def from_dict(values: dict, where: str) -> Recipe:
    """A stored recipe (a checkpoint's); fields added since it was written keep their defaults."""
    known = {k: coerce(k, v, where) for k, v in values.items() if k in FIELDS}
    return check(Recipe(**{**Recipe().to_dict(), **known}))
