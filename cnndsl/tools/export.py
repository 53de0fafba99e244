"""`cnndsl export`: a built model to ONNX, beside the pipeline, after code generation.

The model is what `cnndsl.build` makes of a spec (or, for a checkpoint written by
`cnndsl train`, of the spec recorded in it, with its trained weights), in eval mode.
torch's exporter traces it with the batch axis dynamic, so the ONNX file takes any
batch size; every other axis is the spec's input shape. torch and onnx are imported
only inside these functions: `cnndsl compile` and friends never load them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from ..atomic import STDOUT, write_atomic, write_target
from ..errors import CnndslError, MissingExtra
from ..options import NETWORK_OPTION, SET_OPTION, complete_spec
from ..settings import parse_settings

# Protobuf's limit on one file: a larger model keeps its weights in FILE.data beside it.
_SINGLE_FILE_BYTES = 1_800_000_000
CHECKPOINT_SUFFIX = ".safetensors"


class ExportError(CnndslError):
    """An export that cannot be done as asked; the message says what to change."""


def is_checkpoint(target: str | Path) -> bool:
    path = Path(target)
    return path.suffix == CHECKPOINT_SUFFIX or (
        path.is_dir() and any((path / name).is_file() for name in ("best.safetensors", "checkpoint.safetensors")))


def model_from_checkpoint(path: str | Path):
    """The model a `cnndsl train` checkpoint (or run directory) describes, with its
    weights: rebuilt as `cnndsl eval` rebuilds it, from the spec recorded in it."""
    import torch

    from ..train.inference import load_model

    model, _ = load_model(path, torch.device("cpu"))
    return model


def export_onnx(model, input_shape: tuple[int, ...], path: str | Path, opset: int = 18) -> list[str]:
    """Write `model` to `path` as ONNX with a dynamic batch axis; the output names."""
    import logging
    import warnings

    import torch

    # Without torchvision the exporter warns once per torchvision op it cannot register.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)

    model = model.eval()
    sample = torch.randn(2, *input_shape)  # a batch of 2, so that tracing keeps the axis general
    with torch.no_grad():
        result = model(sample)
    if isinstance(result, dict):  # named outputs (`out`, `aux`; `scores`, `box`) keep their names
        outputs = list(result)
    else:
        outputs = ["output"] if isinstance(result, torch.Tensor) else [f"output{i}" for i in range(len(result))]
    batch = torch.export.Dim("batch")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the exporter's own deprecations
        try:
            program = torch.onnx.export(model, (sample,), None, input_names=["input"], output_names=outputs,
                                        dynamic_shapes=({0: batch},), dynamo=True, opset_version=opset,
                                        verbose=False)
        except torch.onnx.OnnxExporterError as exc:
            raise ExportError(f"torch could not export this model to ONNX: {exc}") from None
    _save(program, path, external=size > _SINGLE_FILE_BYTES)
    return outputs


def _save(program, path: str | Path, external: bool) -> None:
    """Save through `write_atomic`: staged in a private directory beside the target, so the
    target is whole or untouched (a weights file FILE.data, when there is one, is renamed
    into place first). `-` is standard output."""
    if os.fspath(path) == STDOUT:
        if external:
            raise ExportError("a model over 1.8 GB keeps its weights in a second file: give --onnx a file name")
        parent, name = None, "model.onnx"
    else:
        target, _ = write_target(path)
        parent, name = target.parent, target.name
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=parent) as staging:
        staged = Path(staging) / name
        program.save(str(staged), external_data=external)
        for extra in sorted(Path(staging).iterdir()):
            if extra != staged and parent is not None:
                os.replace(extra, parent / extra.name)
        write_atomic(path, staged.read_bytes())


@click.command("export")
@click.argument("target", metavar="SPEC|CHECKPOINT", shell_complete=complete_spec)
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="Write the ONNX model here.")
@SET_OPTION
@NETWORK_OPTION
@click.option("--opset", default=18, show_default=True, help="ONNX opset version.")
def export_command(target: str, onnx_path: str, settings, network, opset: int) -> None:
    """Export SPEC (a .cnn file or a built-in's name) or a training CHECKPOINT (.safetensors,
    or a run directory) to ONNX, with a dynamic batch axis."""
    try:
        import onnx  # noqa: F401  the exporter needs onnx and onnxscript
        import onnxscript  # noqa: F401
    except ImportError:
        raise MissingExtra("ONNX export", "onnx", "onnx or onnxscript") from None
    if onnx_path != STDOUT:
        write_target(onnx_path)  # a device or FIFO is refused before the model is built
    if is_checkpoint(target):
        if settings or network:
            raise ExportError("--set and --network are for specs: a checkpoint records its own")
        model = model_from_checkpoint(target)
    else:
        from ..api import build

        model = build(target, network=network, **parse_settings(settings))
    outputs = export_onnx(model, model.cnndsl_input, onnx_path, opset)
    params = sum(p.numel() for p in model.parameters())
    shape = "x".join(str(d) for d in model.cnndsl_input)
    click.echo(f"wrote {onnx_path} ({type(model).__name__}, {params:,} parameters, "
               f"input: batch x {shape}, outputs: {', '.join(outputs)})", err=True)


__all__ = ["export_command", "export_onnx", "is_checkpoint", "model_from_checkpoint"]
