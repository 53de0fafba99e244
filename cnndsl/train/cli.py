"""The click commands `train`, `eval` and `predict`, registered on the `cnndsl` group by
cnndsl/cli.py.

Importing this module costs no torch: the recipe's options are built from
`recipe.FIELDS` (plain dataclass metadata), and torch, numpy and the data readers are
imported inside the command functions. Every recipe field is an option whose default
shows the built-in value; an option left out keeps the value of the spec's recipe file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..options import NETWORK_OPTION, SET_OPTION, complete_spec
from .recipe import FIELDS

_DATA_HELP = ("digits (default; scikit-learn's bundled 8x8 digits), synthetic[:N], shapes (segmentation), "
              "placed-digits (localisation), or a path to an .npz file (with masks or boxes for those) or a "
              "directory of MNIST IDX files, CIFAR python batches, class folders of images, images/ + masks/, "
              "or images with boxes.csv / boxes.json.")


def choose_wait_policy(environ) -> str | None:
    """OpenMP's wait policy, set before torch is first imported (OpenMP reads it once).

    Measured (benchmarks/train_overhead.py): with PASSIVE, idle OpenMP threads sleep
    between parallel regions, and small networks' steps pay a wake-up each time: resnet20
    trained at 0.82x a plain loop's rate, two threads on LeNet-5 at a third of one's. With
    the default (spin a while, then sleep) both match the plain loop. Spinning only hurts
    when other processes want the cores: then PASSIVE. Small networks train on one thread
    whatever the load (`Run._choose_threads`). A value the user set is kept."""
    if "OMP_WAIT_POLICY" in environ:
        return environ["OMP_WAIT_POLICY"]
    import os

    try:
        busy = os.getloadavg()[0] >= (os.cpu_count() or 1) + 0.5
    except OSError:
        busy = False
    if busy:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
        return "PASSIVE"
    return None


def _show(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def recipe_options(command):
    """One option per recipe field, in the dataclass's order."""
    for name, spec in reversed(FIELDS.items()):
        flag = "--" + name.replace("_", "-")
        help_text = f"{spec.metadata['help']}  [default: {_show(spec.default)}]"
        if isinstance(spec.default, bool):
            option = click.option(f"{flag}/--no-{name.replace('_', '-')}", name, default=None, help=help_text)
        else:
            kind = click.Choice(spec.metadata["choices"]) if spec.metadata["choices"] else type(spec.default)
            option = click.option(flag, name, type=kind, default=None, help=help_text)
        command = option(command)
    return command


@click.command("train", context_settings={"max_content_width": 110})
@click.argument("spec", required=False, shell_complete=complete_spec)
@click.option("--data", default=None, help=_DATA_HELP + "  [default: digits]")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory for checkpoints, metrics.jsonl, result.json.  [default: runs/SPEC]")
@SET_OPTION
@NETWORK_OPTION
@click.option("--recipe", "recipe_file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Recipe TOML file.  [default: SPEC.train.toml beside the spec, if any]")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Start afresh in an --out that holds an unfinished run.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resize", is_flag=True, help="Scale images whose size differs from the spec's input.")
@click.option("--convert-channels", is_flag=True, help="Turn colour images grey or grey ones colour to fit the spec.")
@click.option("--loader", type=click.Choice(["auto", "device", "stream"]), default="auto", show_default=True,
              help="device: the whole dataset on the device as tensors; stream: a DataLoader with workers.")
@click.option("--workers", type=click.IntRange(0), default=None, help="DataLoader workers when streaming.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads (default: torch's; one for a small network when the machine is busy).")
@click.option("--checkpoint-minutes", type=float, default=10.0, show_default=True,
              help="Also save within an epoch this often (0: only at epoch ends).")
@click.option("--progress/--no-progress", "progress_bar", default=None,
              help="Progress bar (default: when stderr is a terminal; plain lines otherwise).")
@click.option("--init", "init", type=click.Path(dir_okay=False), default=None,
              help="Start from these weights (fine-tuning): a cnndsl checkpoint, a safetensors file or a "
                   ".pth state_dict; a head of another shape is re-initialised.")
@click.option("--log", "log", multiple=True, type=click.Choice(["csv", "tensorboard"]),
              help="Also log to metrics.csv or TensorBoard event files (tb/); repeatable.")
@recipe_options
def train_command(spec, data, out, settings, network, recipe_file, resume, overwrite, device, resize,
                  convert_channels, loader, workers, threads, checkpoint_minutes, progress_bar, init, log,
                  **recipe_values):
    """Train SPEC (a .cnn file or a built-in's name) on a dataset.

    \b
    Recipe values come from the defaults shown, then SPEC.train.toml beside the spec
    (or --recipe FILE), then the options given here. Examples:
      cnndsl train lenet5 --data digits --out runs/lenet5
      cnndsl train vgg16 --data ~/data/cifar-10-batches-py --resize --epochs 30
      cnndsl train --resume --out runs/lenet5
      torchrun --nproc-per-node 2 -m cnndsl train lenet5 --out runs/ddp
    """
    import os

    choose_wait_policy(os.environ)
    from ..settings import parse_settings
    from .distributed import end_process, world_from_env
    from .loop import RunOptions, train

    if out is None:
        if spec is None:
            raise click.UsageError("give a SPEC, or --out DIR with --resume")
        out = str(Path("runs") / Path(spec).name.removesuffix(".cnn"))
    options = RunOptions(spec=spec, out=Path(out), data=data, params=parse_settings(settings), network=network,
                         overrides=recipe_values, recipe_file=Path(recipe_file) if recipe_file else None,
                         resume=resume, overwrite=overwrite, device=device, resize=resize,
                         convert_channels=convert_channels, loader=loader, workers=workers,
                         threads=threads, checkpoint_minutes=checkpoint_minutes, progress_bar=progress_bar,
                         argv=sys.argv[1:], init=init, log=tuple(log))
    result = train(options)
    world = world_from_env()
    if world.main:
        click.echo(_train_headline(result, out))
    end_process(world)


def _train_headline(result: dict, out: str) -> str:
    if result.get("test_miou") is not None:
        headline = (f"test mIoU {100 * result['test_miou']:.2f}%, pixel accuracy "
                    f"{100 * result['test_pixel_accuracy']:.2f}% ({result['test_samples']} images)")
    elif result.get("test_box_iou") is not None:
        headline = (f"test box IoU {100 * result['test_box_iou']:.2f}%, IoU > 0.5 for "
                    f"{100 * result['test_box_hits']:.2f}%, class accuracy {100 * result['test_accuracy']:.2f}% "
                    f"({result['test_samples']} images)")
    elif result.get("test_accuracy") is not None:
        headline = f"test accuracy {100 * result['test_accuracy']:.2f}% ({result['test_samples']} images)"
    else:
        headline = f"test loss {result['test_loss']:.5g} ({result['test_samples']} samples)"
    return (f"{headline}, best epoch {result['best_epoch']}/{result['epochs']}, "
            f"{result['seconds']:.1f} s training; run in {out}")


@click.command("eval")
@click.argument("checkpoint")
@click.option("--data", default=None, help=_DATA_HELP + "  [default: the data the model was trained on]")
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True)
@click.option("--resize", is_flag=True, help="Scale images whose size differs from the model's input.")
@click.option("--convert-channels", is_flag=True, help="Turn colour images grey or grey ones colour.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--per-class/--no-per-class", default=None,
              help="Per-class accuracy and the confusion matrix (default: with at most 20 classes). "
                   "`cnndsl viz confusion` draws it as a PNG.")
def eval_command(checkpoint, data, split, device, batch_size, resize, convert_channels, as_json, per_class):
    """Score CHECKPOINT (a .safetensors file or a run directory) on a dataset split."""
    from .inference import confusion_text, evaluate_checkpoint

    result = evaluate_checkpoint(checkpoint, data, split, device, batch_size, resize, convert_channels)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif result.get("task") in ("segmentation", "localisation"):
        click.echo(dense_text(result, split))
    elif "accuracy" in result:
        top5 = f", top-5 {100 * result['top5']:.2f}%" if "top5" in result else ""
        click.echo(f"{result['data']} {split}: accuracy {100 * result['accuracy']:.2f}% "
                   f"({result['correct']}/{result['samples']}){top5}, loss {result['loss']:.4f}")
        if per_class or (per_class is None and len(result["classes"]) <= 20):
            click.echo(confusion_text(result))
    else:
        click.echo(f"{result['data']} {split}: loss {result['loss']:.5g} ({result['samples']} samples)")


def dense_text(result: dict, split: str) -> str:
    """eval's lines for a segmenter (mIoU, pixel accuracy, IoU per class) or a localiser."""
    head = f"{result['data']} {split}: "
    if result["task"] == "localisation":
        return (head + f"box IoU {100 * result['box_iou']:.2f}%, IoU > 0.5 for {100 * result['box_hits']:.2f}%, "
                f"class accuracy {100 * result['accuracy']:.2f}% ({result['samples']} images), "
                f"loss {result['loss']:.4f}")
    lines = [head + f"mIoU {100 * result['miou']:.2f}%, pixel accuracy {100 * result['pixel_accuracy']:.2f}% "
             f"({result['samples']} images), loss {result['loss']:.4f}"]
    for name, iou in zip(result["classes"], result["iou"]):
        lines.append(f"  {name:<16} IoU " + ("   -" if iou is None else f"{100 * iou:6.2f}%"))
    return "\n".join(lines)


@click.command("predict")
@click.argument("checkpoint")
@click.argument("images", nargs=-1, required=True)
@click.option("-k", "--top-k", type=click.IntRange(1), default=3, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as JSON.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="predictions", show_default=True,
              help="Where a segmenter's masks (palette PNGs) and a localiser's drawn boxes go.")
def predict_command(checkpoint, images, top_k, device, as_json, out_dir):
    """Classify IMAGES with CHECKPOINT: the top-k classes with their probabilities.
    A segmenter writes each image's mask, a localiser draws its box (into --out)."""
    from .inference import predict

    results = predict(checkpoint, list(images), top_k, device, out_dir)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for r in results:
        if "mask" in r:
            shares = ", ".join(f"{name} {100 * share:.1f}%" for name, share in r["classes"].items())
            click.echo(f"{r['image']}: mask {r['mask']} ({shares})")
            continue
        if "box" in r:
            x0, y0, x1, y1 = r["box"]
            click.echo(f"{r['image']}: {r['class']} ({100 * r['probability']:.1f}%) at x {x0:g}..{x1:g}, "
                       f"y {y0:g}..{y1:g}; drawn in {r['drawn']}")
            continue
        if "outputs" in r:
            click.echo(f"{r['image']}: " + ", ".join(f"{v:.5g}" for v in r["outputs"]))
            continue
        click.echo(f"{r['image']}:")
        for rank, t in enumerate(r["top"], 1):
            click.echo(f"  {rank}. {t['class']:<16} {100 * t['probability']:6.2f}%")
