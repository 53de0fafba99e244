"""The Python API of training: `cnndsl.fit`, `cnndsl.evaluate`, `cnndsl.predict`.

    >>> import cnndsl
    >>> history = cnndsl.fit("lenet5", "digits", out="runs/lenet5", epochs=20, patience=5)
    >>> history.result["test_accuracy"], history.metrics[-1]["val_loss"]
    >>> cnndsl.evaluate("runs/lenet5")["confusion"]

`fit` runs the same `Run` as `cnndsl train` (the command is a thin layer over it): the
same recipe fields as keyword arguments, the same run directory with checkpoints,
metrics and `--resume`. `spec` is a .cnn path, a built-in's name, spec text, or a module
made by `cnndsl.build` (its spec, parameters and current weights are used). `data` is
what `--data` takes, a `cnndsl.data.Dataset`, a dict of arrays named as in an .npz file
(`x`, `y` or `x_train`, `y_train`, ...), or an `(x, y)` pair. Callbacks are objects with
any of `on_epoch_end(run, record)` and `on_checkpoint(run, path)`; returning False from
either ends the run after the current epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import TrainError


class Callback:
    """A base for callbacks; override what you need. Return False to stop after this epoch."""

    def on_epoch_end(self, run, record: dict):
        return None

    def on_checkpoint(self, run, path: Path):
        return None


@dataclass
class History:
    """What `fit` returns: one record per epoch (as metrics.jsonl), the result (as
    result.json), the run directory, and the trained model holding the best weights."""

    metrics: list[dict]
    result: dict
    out: Path
    model: object = field(repr=False, default=None)


def _as_dataset(data):
    """`data` as a `Dataset`, or None when it is a --data string."""
    import numpy as np

    from ..data.dataset import Dataset
    from ..data.npz import dataset_from_arrays

    if data is None or isinstance(data, (str, Path)):
        return None
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        data = {"x": data[0], "y": data[1]}
    if isinstance(data, dict):
        return dataset_from_arrays({k: np.asarray(v) for k, v in data.items()}, "arrays")
    raise TrainError(f"fit: data must be a --data string, a Dataset, a dict of arrays or (x, y), "
                     f"not {type(data).__name__}")


def _spec_of(spec, init):
    """(spec, params, init) from a spec or a module `cnndsl.build` made."""
    text = getattr(spec, "cnndsl_spec", None)
    if text is not None:
        weights = init if init is not None else {k: v.detach().cpu() for k, v in spec.state_dict().items()}
        return text, dict(getattr(spec, "cnndsl_params", {})), weights
    if hasattr(spec, "state_dict"):
        raise TrainError("fit: a module not made by cnndsl.build has no spec to train from",
                         "pass the spec (a .cnn path, a built-in's name or spec text)")
    return str(spec), {}, init


def fit(spec, data="digits", *, out: str | Path | None = None, network: str | None = None,
        params: dict | None = None, init=None, callbacks=(), resume: bool = False, overwrite: bool = True,
        device: str = "auto", threads: int | None = None, log=(), progress: bool = False,
        recipe_file: str | Path | None = None, **recipe) -> History:
    """Train `spec` on `data`; the recipe's fields as keyword arguments (`epochs=5, lr=0.01`)."""
    from .loop import Run, RunOptions
    from .recipe import coerce

    spec, spec_params, init = _spec_of(spec, init)
    overrides = {name: coerce(name, value, "fit") for name, value in recipe.items()}
    dataset = _as_dataset(data)
    name = Path(spec).name.removesuffix(".cnn") if "\n" not in spec and "{" not in spec else "fit"
    options = RunOptions(spec=None if resume else spec, out=Path(out or Path("runs") / name),
                         data=None if dataset is not None else (str(data) if data is not None else None),
                         params={**spec_params, **(params or {})}, network=network, overrides=overrides,
                         recipe_file=Path(recipe_file) if recipe_file else None, resume=resume,
                         overwrite=overwrite, device=device, threads=threads, progress_bar=progress,
                         init=init, log=tuple(log), callbacks=list(callbacks), dataset=dataset,
                         quiet=not progress)
    run = Run(options)
    result = run.execute()
    return History(list(run.metrics), result, run.out, run.model)


def evaluate(checkpoint: str | Path, data=None, *, split: str = "test", device: str = "auto",
             batch_size: int = 256, resize: bool = False, convert_channels: bool = False) -> dict:
    """Score a checkpoint (or a run directory's best) on a split: loss, accuracy, top-5,
    per-class accuracy and the confusion matrix, as `cnndsl eval --json` prints them; for a
    segmenter mIoU, pixel accuracy and IoU per class, for a localiser box IoU and the share
    of boxes above IoU 0.5."""
    from .inference import evaluate_checkpoint

    dataset = _as_dataset(data)
    return evaluate_checkpoint(str(checkpoint), dataset if dataset is not None else data, split, device,
                               batch_size, resize, convert_channels)


def predict(checkpoint: str | Path, images, *, top_k: int = 3, device: str = "auto",
            out: str | Path = "predictions") -> list[dict]:
    """The top-k classes of each image file (or the outputs, for a regression model); a
    segmenter's mask PNG or a localiser's drawn box for each, written into `out`."""
    from .inference import predict as predict_files

    images = [images] if isinstance(images, (str, Path)) else list(images)
    return predict_files(str(checkpoint), [str(p) for p in images], top_k, device, out)
