"""The passes, in order. Each is a function `(tree, context) -> tree`: it reads the
previous stage's tree and returns a new one, and reports what it finds to the context
(`passes/context.py`), every problem it can and none twice. `compiler.compile_network`
runs `PIPELINE` in one loop, until a pass stops it (its tree could not be read further).

    parse         source text to the syntax tree                    (SourceFile -> syntax tree)
    link_imports  `from resnet import Bottleneck`: imported definitions added  (syntax tree)
    derive_variants  each `network a = B(...)` becomes the network it names  (syntax tree)
    resolve       names mean one thing and are safe to emit         (syntax tree)
    expand        values, lets, blocks, repetitions, optionals      (syntax tree -> IR)
    infer_shapes  shapes, parameters, MACs, receptive fields        (IR -> IR; stats None where unknown)
    assign_names  attribute names and Sequential indices            (IR -> IR)
    check_inits   the `init { ... }` rules against the named IR      (IR -> IR: init_steps)
    check_emittable  what the code generator needs of the named IR  (IR, unchanged)

Each pass may also be called alone, as `resolve(program)`: it then raises `CompileError`
if it finds errors.
"""

from __future__ import annotations

from .. import parse as _parse
from .context import Context
from .emittable import check_emittable
from .expand import expand
from .imports import link_imports
from .inits import check_inits
from .names import assign_names
from .resolve import resolve
from .shapes import infer_shapes
from .variants import derive_variants


def parse(source, context: Context | None = None):
    """The syntax tree of a source file (a syntax error raises `CompileError`)."""
    return _parse.parse(source)


PIPELINE = (parse, link_imports, derive_variants, resolve, expand, infer_shapes, assign_names, check_inits, check_emittable)

__all__ = ["PIPELINE", "Context", "assign_names", "check_inits", "link_imports", "check_emittable", "derive_variants", "expand", "infer_shapes", "parse", "resolve"]
