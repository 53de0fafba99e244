"""cnndsl: describe a convolutional network in the notation of the lecture notes, check
every shape before anything runs, and generate readable PyTorch.

The pipeline, one module a stage:
    grammar/cnn.lark -> parse -> lower (ast) -> passes/ (resolve, expand, shapes, names)
    -> ir -> codegen -> cli
"""

from .api import build, check, compile_source, compile_spec, summarize
from .diagnostics import CompileError, Diagnostic

__version__ = "0.1.0"
__all__ = ["CompileError", "Diagnostic", "build", "check", "compile_source", "compile_spec", "summarize",
           "fit", "evaluate", "predict", "Callback"]

_TRAINING = ("fit", "evaluate", "predict", "Callback", "History")  # cnndsl.train.api, loaded when first used


def __getattr__(name: str):
    """The training API on first use, so that `import cnndsl` imports no torch."""
    if name in _TRAINING:
        from .train import api

        return getattr(api, name)
    raise AttributeError(f"module 'cnndsl' has no attribute {name!r}")
