"""`cnndsl eval` and `cnndsl predict`: a model rebuilt from a checkpoint alone.

A checkpoint carries the spec's text, the `--set` values and the network's name, so the
model is compiled again from them, and its weights loaded by name; the data's
normalization and class names travel with it too, so an image is prepared exactly as the
training images were. A checkpoint that is damaged, or whose weights do not fit the
network its spec describes, is a `CheckpointError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import open_dataset
from ..data.batches import Batches, Preprocess, epoch_order
from ..data.fit import FitRequest
from . import checkpoint
from .errors import CheckpointError, DataError, TrainError
from .loop import pick_device
from .model import build_compiled, compile_stored
from .optimization import make_loss
from .recipe import from_dict
from .tasks import DenseTask, dense_task, main_output, probe

DENSE = ("segmentation", "localisation")


def load_model(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    meta, tensors = checkpoint.load(path)
    for key in ("spec", "network", "params", "data", "input"):
        if key not in meta:
            raise CheckpointError(f"{meta['path']}: the checkpoint's metadata lacks {key!r}",
                                  "it was not written by `cnndsl train`")
    checkpoint.check_meta(meta)
    model = build_compiled(compile_stored(meta), meta["params"])
    try:
        model.load_state_dict(checkpoint.weights_of(tensors))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"{meta['path']}: the weights do not fit {meta['network']} as its spec compiles now "
                              f"({first[1].strip() if len(first) > 1 else first[0]})",
                              "was the spec or the compiler changed since training?") from None
    model.to(device).eval()
    return model, meta


def preprocessor(meta: dict, device: torch.device) -> Preprocess:
    norm = meta["data"]["normalize"]
    return Preprocess(norm["mean"], norm["std"], norm["scale"], device)


def require_task(meta: dict) -> None:
    """eval and predict read the outputs and the task, which rebuilding a model does not."""
    if "outputs" not in meta or meta["data"].get("task") not in checkpoint.TASKS:
        raise CheckpointError(f"{meta['path']}: the checkpoint says neither its outputs nor its task",
                              "eval and predict need a checkpoint written by `cnndsl train`")


def _open_for(meta: dict, data, resize: bool, convert_channels: bool):
    """The dataset to score a checkpoint on: `data` (a --data string or a Dataset), else its own."""
    require_task(meta)
    from ..data.dataset import Dataset
    from ..data.fit import fit_dataset

    shape = tuple(meta["input"])
    dense = meta["data"]["task"] in DENSE
    request = FitRequest(shape, resize=resize or bool(meta["data"].get("resize", False)),
                         convert_channels=convert_channels or bool(meta["data"].get("convert_channels", False)),
                         classes=meta["outputs"] if dense else None)
    recipe = from_dict(meta.get("recipe", {}), meta["path"])
    if isinstance(data, Dataset):
        dataset = fit_dataset(data, request)
    else:
        dataset = open_dataset(data or meta["data"]["source"], request, meta["outputs"], recipe.val_fraction)
    if dataset.task != meta["data"]["task"]:
        raise DataError(f"{dataset.name} is a {dataset.task} dataset but the model was trained for "
                        f"{meta['data']['task']}")
    if dataset.task in ("classification", *DENSE) and len(dataset.classes) != meta["outputs"]:
        raise DataError(f"{dataset.name} has {len(dataset.classes)} classes but the model outputs "
                        f"{meta['outputs']} scores")
    return dataset, recipe


def _scores(model, batches, prepare, loss_fn, n: int, batch_size: int, classes: int | None):
    """(loss sum, confusion matrix [true, predicted] or None, top-5 hits, count)."""
    loss_sum, top5, count = 0.0, 0, 0
    confusion = torch.zeros(classes * classes, dtype=torch.int64) if classes else None
    with torch.no_grad():
        for x, y in batches.iterate(epoch_order(n, 0, 0, shuffle=False), batch_size):
            out = model(prepare(x))
            out = main_output(out).flatten(1)
            loss_sum += float(loss_fn(out, y)) * len(y)
            if classes:
                pairs = (y * classes + out.argmax(1)).cpu()
                confusion += torch.bincount(pairs, minlength=classes * classes)
                if classes > 5:
                    top5 += int((out.topk(5, dim=1).indices == y[:, None]).any(1).sum())
            count += len(y)
    return loss_sum, confusion.view(classes, classes) if classes else None, top5, count


def evaluate_checkpoint(path: str, data, split: str, device_name: str, batch_size: int,
                        resize: bool, convert_channels: bool) -> dict:
    """Loss, and for classifiers accuracy, top-5 (past 5 classes), per-class accuracy and the
    confusion matrix (rows: the true class, columns: the predicted one)."""
    device = pick_device(device_name)
    model, meta = load_model(path, device)
    dataset, recipe = _open_for(meta, data, resize, convert_channels)
    chosen = dataset.splits()[split]
    if len(chosen) == 0:
        raise DataError(f"{dataset.name} has no {split} split", "choose another with --split")
    if dataset.task in DENSE:
        task = task_of(model, meta, recipe)
        scores = _dense_scores(model, task, Batches(chosen, device, resident=True), preprocessor(meta, device),
                               batch_size)
        return {"checkpoint": meta["path"], "network": meta["network"], "data": dataset.name, "split": split,
                "task": dataset.task, "samples": scores.pop("count"), "classes": list(meta["data"]["classes"]),
                **scores}
    classes = len(dataset.classes) if dataset.task == "classification" else None
    loss_sum, confusion, top5, count = _scores(model, Batches(chosen, device, resident=True),
                                               preprocessor(meta, device),
                                               make_loss(recipe, dataset.task, meta["outputs"]),
                                               len(chosen), batch_size, classes)
    result = {"checkpoint": meta["path"], "network": meta["network"], "data": dataset.name, "split": split,
              "samples": count, "loss": loss_sum / count}
    if classes:
        correct = int(confusion.diagonal().sum())
        totals = confusion.sum(1)
        result.update(accuracy=correct / count, correct=correct, classes=list(meta["data"]["classes"]),
                      per_class_accuracy=[(int(d) / int(t)) if int(t) else None
                                          for d, t in zip(confusion.diagonal(), totals)],
                      confusion=confusion.tolist())
        if classes > 5:
            result["top5"] = top5 / count
    return result


def task_of(model, meta: dict, recipe) -> DenseTask:
    """The dense task of a checkpoint's model, its loss as it was trained."""
    head = probe(model, tuple(meta["input"]))
    task = dense_task(meta["data"]["task"], head, meta["network"], meta["data"].get("name", "the data"),
                      tuple(meta["input"]))
    task.loss_name, task.aux_weight, task.box_weight = recipe.loss, recipe.aux_weight, recipe.box_weight
    return task


def _dense_scores(model, task: DenseTask, batches, prepare, batch_size: int) -> dict:
    meter = task.meter(batches.device)
    with torch.no_grad():
        for x, y in batches.iterate(epoch_order(len(batches), 0, 0, shuffle=False), batch_size):
            task.update(meter, model(prepare(x)), y)
    return meter.result(meter.sums.tolist())


def confusion_text(result: dict) -> str:
    """The per-class accuracy and the confusion matrix as a fixed-width table."""
    names = [str(c) for c in result["classes"]]
    width = max(5, max(len(str(v)) for row in result["confusion"] for v in row) + 1)
    label = min(16, max(len(n) for n in names))
    corner = "true \\ predicted"
    lead = max(label + 9, len(corner) + 1)
    lines = [corner.ljust(lead) + "".join(f"{n[:width - 1]:>{width}}" for n in names)]
    for name, row, acc in zip(names, result["confusion"], result["per_class_accuracy"]):
        shown = "    - " if acc is None else f"{100 * acc:5.1f}%"
        lines.append(f"{name[:label]:<{label}} {shown}".ljust(lead) + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def read_image(path: str, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """One image file as C x H x W pixels of the model's input, converted and resized."""
    from PIL import Image, UnidentifiedImageError

    if len(shape) != 3:
        raise TrainError("this model's input is a vector, not an image", "predict needs a model of images")
    channels, height, width = shape
    if channels not in (1, 3):
        raise TrainError(f"the model takes {channels}-channel input; predict reads grey or RGB images")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"no image at {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return array * (scale / 255.0)


def _png_bytes(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _original(path: str):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image.copy()


def _mask_result(path: str, scores: torch.Tensor, classes: list[str], out_dir: Path) -> dict:
    from ..atomic import write_atomic
    from ..pictures.overlay import class_shares, mask_image

    original = _original(path)
    ids = scores.argmax(0).to(torch.uint8).cpu().numpy()
    picture = mask_image(ids).resize(original.size, 0)  # 0: nearest, so the ids stay ids
    target = out_dir / f"{Path(path).stem}.mask.png"
    write_atomic(target, _png_bytes(picture))
    return {"image": path, "mask": str(target), "classes": class_shares(np.asarray(picture), classes)}


def _box_result(path: str, scores: torch.Tensor, box: torch.Tensor, classes: list[str], out_dir: Path) -> dict:
    from ..atomic import write_atomic
    from ..pictures.overlay import draw_box

    original = _original(path)
    probabilities = scores.float().softmax(0)
    index = int(probabilities.argmax())
    fractions = box.float().clamp(0, 1).tolist()
    pixels = [round(v * (original.width if i % 2 == 0 else original.height), 1) for i, v in enumerate(fractions)]
    target = out_dir / f"{Path(path).stem}.box.png"
    label = f"{classes[index]} {100 * float(probabilities[index]):.0f}%"
    write_atomic(target, _png_bytes(draw_box(original, tuple(pixels), label)))
    return {"image": path, "class": classes[index], "index": index, "probability": float(probabilities[index]),
            "box": pixels, "drawn": str(target)}


def dense_outputs(model, meta: dict, batch: torch.Tensor) -> tuple[DenseTask, torch.Tensor, list[torch.Tensor]]:
    """(the task, the main scores, [the box] or the aux scores) of a dense model on a prepared batch."""
    task = task_of(model, meta, from_dict(meta.get("recipe", {}), meta["path"]))
    with torch.no_grad():
        main, extra = task.parts(model(batch))
    return task, main, extra


def predict_dense(model, meta: dict, batch: torch.Tensor, images: list[str], out_dir: Path) -> list[dict]:
    """A mask (a palette PNG at each image's own size) or a box drawn on each image, in `out_dir`."""
    task, main, extra = dense_outputs(model, meta, batch)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = list(meta["data"]["classes"])
    if task.task == "segmentation":
        return [_mask_result(p, main[i], classes, out_dir) for i, p in enumerate(images)]
    return [_box_result(p, main[i], extra[0][i], classes, out_dir) for i, p in enumerate(images)]


def predict(path: str, images: list[str], top_k: int, device_name: str, out_dir: str | Path = "predictions") -> \
        list[dict]:
    device = pick_device(device_name)
    model, meta = load_model(path, device)
    require_task(meta)
    if meta["data"]["task"] in DENSE:
        norm = meta["data"]["normalize"]
        raw = torch.from_numpy(np.stack([read_image(p, tuple(meta["input"]), norm["scale"]) for p in images]))
        return predict_dense(model, meta, preprocessor(meta, device)(raw), images, Path(out_dir))
    norm = meta["data"]["normalize"]
    batch = torch.from_numpy(np.stack([read_image(p, tuple(meta["input"]), norm["scale"]) for p in images]))
    with torch.no_grad():
        out = model(preprocessor(meta, device)(batch))
        out = main_output(out).flatten(1).float().cpu()
    results = []
    if meta["data"]["task"] != "classification":
        return [{"image": p, "outputs": row.tolist()} for p, row in zip(images, out)]
    classes = meta["data"]["classes"]
    probabilities = out.softmax(1)
    k = min(top_k, probabilities.shape[1])
    values, indices = probabilities.topk(k, dim=1)
    for p, vs, ix in zip(images, values, indices):
        results.append({"image": p, "top": [{"class": classes[i], "index": int(i), "probability": float(v)}
                                            for v, i in zip(vs.tolist(), ix.tolist())]})
    return results
