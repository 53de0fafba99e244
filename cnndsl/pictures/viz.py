"""`cnndsl viz filters` and `cnndsl viz activations`: pictures of a trained model.

A reader of checkpoints, beside the training package: the model is rebuilt by
`train.inference.load_model` (spec text, parameters and weights from the checkpoint),
and the layers to look at come from the checked IR through `summary.rows`, so that
each picture is labelled with the spec's own names. The activations a layer shows are
those after the pointwise layers that follow it (conv · bn · relu shows the ReLU's
output), as the lecture's pictures do. `serve.py` uses the same capture for its page.
Pictures are composed with Pillow; torch is imported by the functions that need it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import click

from ..errors import CnndslError, UsageError
from .. import ir
from ..layers import RULES
from ..summary import rows

# The layers pictured: convolutions, pools and fully connected layers (their category in
# `layers.py`); the pointwise layers after one fold into its picture.
SHOWN = tuple(kind for kind, rule in RULES.items() if rule.category in ("conv", "pool", "fc") and kind == rule.kind)


@dataclass
class Probe:
    """A layer to look at: `path` is the module whose output is captured."""

    name: str  # the spec's name of the layer (its module path)
    label: str  # `conv 5×5, 6 · tanh`
    kind: str
    path: str
    shape: tuple


def probes(network: ir.Network, kinds: tuple[str, ...] = SHOWN) -> list[Probe]:
    from .build import layer_label

    found: list[Probe] = []
    current: Probe | None = None
    for row in rows(network):
        layer = row.layer
        if RULES[layer.kind].pointwise and current is not None and layer.stats.out_shape == current.shape:
            current.path = row.path
            current.label += f" · {layer_label(layer)}"
            continue
        current = None
        if layer.kind in kinds and layer.values.get("like") is None:  # like=: a call in forward, no module
            current = Probe(row.path, layer_label(layer), layer.kind, row.path, layer.stats.out_shape)
            found.append(current)
    return found


@dataclass
class Loaded:
    model: object  # torch.nn.Module
    meta: dict
    network: ir.Network


def load(checkpoint: str) -> Loaded:
    """The model of a `cnndsl train` checkpoint (a file or a run directory), on the CPU."""
    import torch

    from ..api import compile_spec
    from ..train.inference import load_model

    model, meta = load_model(checkpoint, torch.device("cpu"))
    network = compile_spec(meta["spec"], network=meta["network"], **meta["params"]).network
    return Loaded(model, meta, network)


def capture(model, x, paths: list[str]) -> tuple[object, dict]:
    """Run `model` on the batch `x`; the output and each path's first output, detached."""
    import torch

    seen: dict[str, torch.Tensor] = {}
    handles = []
    for path in dict.fromkeys(paths):
        def hook(module, inputs, output, path=path):
            seen.setdefault(path, output.detach())
        handles.append(model.get_submodule(path).register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    if isinstance(out, dict):  # named outputs: the main one (`out` of a segmenter, `scores` of a localiser)
        out = out.get("out", out.get("scores", next(iter(out.values()))))
    out = out[0] if isinstance(out, (tuple, list)) else out
    return out.flatten(1), seen


# -- pictures ----------------------------------------------------------------------------

def _normalise(a):
    import numpy as np

    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros_like(a) if hi - lo < 1e-12 else (a - lo) / (hi - lo)


def grid_size(n: int) -> tuple[int, int]:
    """Columns and rows of a near-square grid of n cells (8 × 8 for AlexNet's 64)."""
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


def filter_grid(weight, cell: int = 48, gap: int = 4):
    """A C_out x C_in x k x k weight as a grid image: RGB when C_in is 3, grey otherwise
    (the mean over input channels), each filter stretched to its own full range."""
    import numpy as np
    from PIL import Image

    n, c_in, k, _ = weight.shape
    cols, rows_ = grid_size(n)
    scale = max(1, cell // k)
    side = k * scale
    image = Image.new("RGB", (cols * side + (cols + 1) * gap, rows_ * side + (rows_ + 1) * gap), (255, 255, 255))
    for i in range(n):
        w = weight[i]
        pixels = _normalise(w.transpose(1, 2, 0)) if c_in == 3 else np.repeat(_normalise(w.mean(0))[:, :, None], 3, 2)
        tile = Image.fromarray((pixels * 255).round().astype(np.uint8), "RGB").resize((side, side), Image.NEAREST)
        r, c = divmod(i, cols)
        image.paste(tile, (gap + c * (side + gap), gap + r * (side + gap)))
    return image


ROW_HEIGHT = 96  # one activation row: label line + maps of at most MAP pixels
MAP = 72
LABEL = 18
MAX_MAPS = 32


def _colour(values):
    """Maps in 0..1 to a white-to-dark-blue ramp (white: silent, dark: strongly active)."""
    import numpy as np

    ramp = np.array([[255, 255, 255], [158, 202, 225], [49, 130, 189], [8, 48, 107]], dtype=np.float64)
    pos = values * (len(ramp) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(ramp) - 2)
    t = (pos - lo)[..., None]
    return ((1 - t) * ramp[lo] + t * ramp[lo + 1]).round().astype(np.uint8)


def activation_sheet(image, probes_: list[Probe], maps: dict, title: str):
    """One row per probe: its label, then each channel's map (up to MAX_MAPS), one colour
    scale per layer so that the channels of a layer compare."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    per_row = max((min(p.shape[0], MAX_MAPS) for p in probes_ if len(p.shape) == 3 and p.shape[1] > 1), default=1)
    width = max(640, 12 + per_row * (MAP + 4) + 12)
    height = LABEL + 8 + ROW_HEIGHT * (len(probes_) + 1)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    draw.text((12, 6), title, fill=(20, 20, 20), font=font)
    y = LABEL + 8
    draw.text((12, y), "input", fill=(60, 60, 60), font=font)
    first = image if image.shape[0] in (1, 3) else image.mean(0, keepdims=True)
    grey = _normalise(first.transpose(1, 2, 0))
    tile = Image.fromarray((np.repeat(grey, 3 // grey.shape[2], 2) * 255).round().astype(np.uint8), "RGB")
    sheet.paste(tile.resize(_fit(tile.size), Image.NEAREST), (12, y + LABEL))
    for probe in probes_:
        y += ROW_HEIGHT
        a = maps[probe.path][0].float().numpy()
        if a.ndim != 3 or a.shape[1] * a.shape[2] == 1:  # a vector (fc, or C x 1 x 1): one strip
            a = a.reshape(1, 1, -1)
        shown = min(a.shape[0], MAX_MAPS)
        note = f"  (first {shown} of {a.shape[0]})" if shown < a.shape[0] else ""
        label = f"{probe.name}: {probe.label}".replace("×", "x").replace("·", "+")
        draw.text((12, y), f"{label}  ->  {'x'.join(map(str, probe.shape))}{note}", fill=(60, 60, 60), font=font)
        values = _normalise(a[:shown])
        for ch in range(shown):
            tile = Image.fromarray(_colour(values[ch]), "RGB")
            size = _fit(tile.size) if a.shape[1] > 1 else (min(width - 24, 6 * a.shape[2]), 24)
            tile = tile.resize(size, Image.NEAREST)
            sheet.paste(tile, (12 + ch * (MAP + 4), y + LABEL))
    return sheet


def _fit(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    k = MAP / max(w, h)
    return max(1, round(w * k)), max(1, round(h * k))


def read_input(path: str, meta: dict):
    """An image file prepared as the training images were: the model's C x H x W, scaled."""
    from ..train.inference import read_image

    return read_image(path, tuple(meta["input"]), meta["data"]["normalize"]["scale"])


# -- the commands ------------------------------------------------------------------------

@click.group("viz")
def viz_group() -> None:
    """Pictures of a trained model: its first filters, its activation maps, its confusion
    matrix, a segmenter's mask or a localiser's box over an image."""


@viz_group.command("filters")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
@click.option("--cell", default=48, show_default=True, type=click.IntRange(8, 256), help="Pixels per filter.")
def filters_command(checkpoint: str, output: str, cell: int) -> None:
    """The first convolution's filters of CHECKPOINT as a grid (RGB for 3-channel input)."""
    from ..atomic import write_atomic

    _png(output)
    loaded = load(checkpoint)
    first = next(iter(probes(loaded.network, ("conv",))), None)
    if first is None:
        raise CnndslError(f"{loaded.meta['network']} has no convolution")
    weight = loaded.model.get_submodule(first.name).weight.detach().float().numpy()
    image = filter_grid(weight, cell)
    write_atomic(output, _encode(image))
    cols, rows_ = grid_size(weight.shape[0])
    click.echo(f"wrote {output}: {weight.shape[0]} filters of {first.name} "
               f"({weight.shape[1]}x{weight.shape[2]}x{weight.shape[3]}) in {cols}x{rows_}", err=True)


@viz_group.command("activations")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
def activations_command(checkpoint: str, image: str, output: str) -> None:
    """The activation maps of each convolution of CHECKPOINT for IMAGE."""
    import torch

    from ..atomic import write_atomic
    from ..train.inference import preprocessor

    _png(output)
    loaded = load(checkpoint)
    chosen = probes(loaded.network, ("conv",))
    if not chosen:
        raise CnndslError(f"{loaded.meta['network']} has no convolution")
    pixels = read_input(image, loaded.meta)
    x = preprocessor(loaded.meta, torch.device("cpu"))(torch.from_numpy(pixels[None]))
    out, maps = capture(loaded.model, x, [p.path for p in chosen])
    title = f"{loaded.meta['network']} on {image}"
    if loaded.meta["data"].get("task") == "classification":
        classes = loaded.meta["data"]["classes"]
        p = out.softmax(1)[0]
        title += f": {classes[int(p.argmax())]} ({float(p.max()):.0%})"
    sheet = activation_sheet(pixels, chosen, maps, title)
    write_atomic(output, _encode(sheet))
    click.echo(f"wrote {output}: {len(chosen)} convolution(s)", err=True)


@viz_group.command("confusion")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
@click.option("--data", default=None, help="The dataset (default: the one the model was trained on).")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--cell", default=36, show_default=True, type=click.IntRange(12, 128), help="Pixels per cell.")
def confusion_command(checkpoint: str, output: str, data: str | None, split: str, cell: int) -> None:
    """The confusion matrix of CHECKPOINT on a split (rows: true class, columns: predicted)."""
    from ..atomic import write_atomic
    from ..train.inference import evaluate_checkpoint

    _png(output)
    result = evaluate_checkpoint(checkpoint, data, split, "cpu", 256, False, False)
    if "confusion" not in result:
        raise CnndslError(f"{result['network']} is a regression model: it has no confusion matrix")
    write_atomic(output, _encode(confusion_image(result["confusion"], result["classes"], cell)))
    click.echo(f"wrote {output}: {len(result['classes'])} classes, accuracy {100 * result['accuracy']:.2f}% "
               f"on {result['data']} {split}", err=True)


@viz_group.command("overlay")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The PNG to write.")
def overlay_command(checkpoint: str, image: str, output: str) -> None:
    """A segmenter's mask blended over IMAGE, or a localiser's box drawn on it."""
    from ..atomic import write_atomic

    _png(output)
    picture, said = overlay_picture(load(checkpoint), image)
    write_atomic(output, _encode(picture))
    click.echo(f"wrote {output}: {said}", err=True)


def overlay_picture(loaded: Loaded, image: str):
    """(the picture, what it shows in words) of a dense model's prediction for IMAGE."""
    import numpy as np
    import torch
    from PIL import Image

    from ..train.inference import dense_outputs, preprocessor
    from .overlay import class_shares, draw_box, overlay

    meta = loaded.meta
    if meta["data"].get("task") not in ("segmentation", "localisation"):
        raise CnndslError(f"{meta['network']} is a {meta['data'].get('task')} model: it predicts no mask or box",
                          "`cnndsl viz activations` pictures a classifier")
    x = preprocessor(meta, torch.device("cpu"))(torch.from_numpy(read_input(image, meta)[None]))
    task, main, extra = dense_outputs(loaded.model, meta, x)
    classes = meta["data"]["classes"]
    with Image.open(image) as original:
        original.load()
        if task.task == "segmentation":
            ids = main[0].argmax(0).to(torch.uint8).numpy()
            shares = class_shares(ids, classes)
            return overlay(original, ids), ", ".join(f"{n} {100 * v:.1f}%" for n, v in shares.items())
        p = main[0].softmax(0)
        box = (extra[0][0].clamp(0, 1) * torch.tensor([original.width, original.height] * 2)).tolist()
        label = f"{classes[int(p.argmax())]} {100 * float(p.max()):.0f}%"
        return draw_box(original, tuple(box), label), f"{label} at {', '.join(f'{v:.0f}' for v in box)}"


def confusion_image(matrix: list[list[int]], classes: list[str], cell: int = 36):
    """Cells shaded by the share of the true class's samples, counts written in them."""
    from PIL import Image, ImageDraw

    n = len(classes)
    margin = 8 + 7 * min(12, max(len(str(c)) for c in classes))
    image = Image.new("RGB", (margin + n * cell + 8, margin + n * cell + 8), "white")
    draw = ImageDraw.Draw(image)
    for i, row in enumerate(matrix):
        total = max(1, sum(row))
        for j, count in enumerate(row):
            share = count / total
            shade = int(255 * (1 - share))
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell - 1, margin + (i + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255) if i == j else (255, shade, shade), outline=(200, 200, 200))
            if count:
                draw.text((box[0] + 3, box[1] + cell // 3), str(count), fill="black" if share < 0.6 else "white")
    for k, name in enumerate(classes):
        label = str(name)[:12]
        draw.text((4, margin + k * cell + cell // 3), label, fill="black")
        draw.text((margin + k * cell + 3, 4), label[: max(1, cell // 7)], fill="black")
    return image


def _png(output: str) -> None:
    if not output.lower().endswith(".png"):
        raise UsageError(f"-o {output!r}: the file name must end in .png")


def _encode(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
