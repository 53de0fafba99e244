"""The Python API: `compile_source`, `build`, `check`, `summarize`.

    >>> import cnndsl
    >>> code = cnndsl.compile_source(open("specs/lenet5.cnn").read())
    >>> model = cnndsl.build("resnet50", num_classes=10)      # needs torch

Errors are raised as `cnndsl.CompileError`, whose `diagnostics` say where and why.
"""

from __future__ import annotations

import types
from pathlib import Path

from .compiler import Compiled, compile_network, generate, load, source_from_text
from .source import SourceFile


def _source(spec: str | Path) -> SourceFile:
    if isinstance(spec, str) and ("\n" in spec or "{" in spec):
        return source_from_text(spec)
    return load(spec)


def compile_spec(spec: str | Path, strict: bool = False, network: str | None = None, **params) -> Compiled:
    """Compile a path, a built-in's name or spec text to the checked network."""
    return compile_network(_source(spec), params, strict=strict, network=network)


def compile_source(text: str, strict: bool = False, network: str | None = None, **params) -> str:
    """Spec text to the source of a standalone PyTorch module."""
    return generate(compile_network(source_from_text(text), params, strict=strict, network=network))


def check(spec: str | Path, strict: bool = False, network: str | None = None, **params) -> list:
    """The warnings of a spec that compiles; raises `CompileError` for one that does not."""
    return compile_spec(spec, strict=strict, network=network, **params).warnings


def load_generated(code: str, name: str = "cnndsl_generated") -> types.ModuleType:
    """Execute generated source as a fresh module (it imports torch and nothing else)."""
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(code, module.__file__, "exec"), module.__dict__)  # our own generated code
    return module


def build(spec: str | Path, strict: bool = False, network: str | None = None, *,
          weights: str | Path | None = None, **params):
    """A ready `torch.nn.Module` from a path, a built-in's name or spec text.

    Its class lives in a real module, `cnndsl.built.<name>_<hash>` (see `cnndsl.built`),
    so the model pickles, `torch.save`s, deep-copies, scripts, exports and compiles.
    `weights=PATH` loads a state_dict (a torchvision-format `.pth`, read with
    `weights_only=True`, or a `.safetensors` file) strictly; with `num_classes` given
    and different from the file's, everything but the head is loaded (a warning says so).
    """
    from .extras import require

    require("build", "cnndsl.build")
    compiled = compile_spec(spec, strict=strict, network=network, **params)
    model = instantiate(compiled, params)
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights, params.get("num_classes"))
    return model


def instantiate(compiled: Compiled, params: dict):
    """The module of a compiled network, its class imported from `cnndsl.built`, with the
    spec's text, parameters and input shape attached (checkpoints and export read them)."""
    from .built import import_generated

    module = import_generated(generate(compiled), compiled.network.name)
    model = getattr(module, compiled.network.name)()
    model.cnndsl_spec = compiled.source.text
    model.cnndsl_params = dict(params)
    model.cnndsl_input = compiled.network.input
    if compiled.network.outputs:  # forward returns a dict of these, by key
        model.cnndsl_outputs = compiled.network.output_shapes
    return model


def summarize(spec: str | Path, style: str = "table", network: str | None = None, **params):
    """The summary of a spec: a `str` (the table, or with style="cs231n" the notes'
    listings) that also has `.rows`, `.totals`, `.to_json()`, `.to_csv()` and
    `.with_view(depth, columns)` (see `cnndsl.summary.Summary`)."""
    from .summary import Summary

    compiled = compile_spec(spec, network=network, **params)
    return Summary(compiled.network, style)
