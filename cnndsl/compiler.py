"""The compiler driver: source text through the passes to a checked network, and on to
Python source. The CLI and the Python API both call these functions.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import ir, resources
from .diagnostics import ERROR, WARNING, CompileError, Diagnostic
from .passes import PIPELINE, Context
from . import source as _source
from .source import SourceError, SourceFile, Span


@dataclass
class Compiled:
    network: ir.Network
    source: SourceFile
    warnings: list[Diagnostic] = field(default_factory=list)


def builtins() -> dict[str, Path]:
    """The built-ins by name and the spec file of each: every `specs/NAME.cnn`, and every
    variant declared in one (`resources.catalog`; examples live in specs/examples/)."""
    return resources.builtins()


def _diagnosed(exc: SourceError) -> CompileError:
    return CompileError([Diagnostic.error(exc.span, exc.message, exc.hint)])


def read_source(path: str | Path) -> SourceFile:
    """Read a spec as UTF-8; size and encoding problems raise `CompileError`."""
    try:
        return _source.read_source(path)
    except SourceError as exc:
        raise _diagnosed(exc) from None


def decode_source(name: str, data: bytes) -> SourceFile:
    try:
        return _source.decode_source(name, data)
    except SourceError as exc:
        raise _diagnosed(exc) from None


def load(spec: str | Path) -> SourceFile:
    """A path to a .cnn file, or the name of a built-in."""
    path = Path(spec)
    if path.suffix == ".cnn" or path.exists() or "/" in str(spec):
        return read_source(path)
    table = resources.catalog()
    if str(spec) in table:
        entry = table[str(spec)]
        return read_source(entry.path).renamed(f"specs/{entry.path.name}", entry.network)
    from .passes.resolve import suggest

    guess = suggest(str(spec), table)
    raise CompileError([Diagnostic.error(
        Span(str(spec), 1, 1, 1, 1), f"no file and no built-in named {spec!r}",
        (f"did you mean {guess!r}? " if guess else "") + "`cnndsl list` shows the built-ins")])


def source_from_text(text: str, name: str = "<string>") -> SourceFile:
    return decode_source(name, text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else \
        decode_source(name, text)


def compile_network(source: SourceFile, params: dict | None = None, strict: bool = False,
                    network: str | None = None, program=None) -> Compiled:
    """Parse, resolve, expand, infer shapes and name: the checked network. `program`: the
    syntax tree of `source`, already parsed (the language server parses once per change).
    On errors, the `CompileError` holds all of them, and the partial tree as `.tree`
    (see `run_passes`)."""
    context = Context(source, dict(params or {}), strict, network if network is not None else source.network)
    if program is None:
        tree = run_passes(source, context)
    else:
        tree = run_passes(program, context, PIPELINE[1:])
    return _compiled(tree, context)


def _compiled(tree, context: Context) -> Compiled:
    if context.errors:
        raise context.failure()
    if context.strict and context.warnings:
        error = CompileError([w.as_error() for w in context.warnings])
        error.tree, error.context = tree, context
        raise error
    return Compiled(tree, context.source, context.warnings)


# The passes that do not depend on which network of the file is built: parse, link_imports,
# derive_variants, resolve. `expand` and the passes after it build one network.
FRONT = PIPELINE[:4]


def front_end(source: SourceFile, params: dict | None = None, strict: bool = False, program=None) -> Context:
    """The passes before `expand` (`FRONT`), which say the same for every network of a file:
    run once for a file of many networks, then `back_end` for each. The context holds their
    tree (`.tree`), diagnostics and imported files; `.stopped` where no network can be built."""
    context = Context(source, dict(params or {}), strict, source.network)
    if program is None:
        run_passes(source, context, FRONT)
    else:
        run_passes(program, context, FRONT[1:])
    return context


def back_end(front: Context, network: str | None = None, inherit: bool = True) -> Compiled:
    """One network from a `front_end`: `back_end(front_end(source, params, strict, program),
    network)` is `compile_network(source, params, strict, network, program)`. With
    `inherit=False` the front end's diagnostics are left out (a caller that builds every
    network reports them once): only this network's own are raised, or returned as warnings."""
    context = Context(front.source, dict(front.params), front.strict,
                      network if network is not None else front.network, sources=dict(front.sources))
    if inherit or front.stopped:  # a front end that stopped builds no network: its errors are the answer
        context.extend(front.diagnostics)
    context.tree, context.stopped = front.tree, front.stopped
    tree = front.tree if front.stopped else run_passes(front.tree, context, PIPELINE[len(FRONT):])
    return _compiled(tree, context)


@contextmanager
def _without_cycle_collection():
    """The passes make and drop many small acyclic objects, which reference counting frees;
    the cycle collector, run every few hundred allocations, would scan every live node
    each time: a third of the time of a 20,000-layer network. It runs after, as before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_passes(tree, context: Context, steps=PIPELINE):
    """Run the passes (`passes.PIPELINE`) on `tree`: each while none has stopped. Returns
    the last tree, also left in `context.tree`: with shape errors, the named IR whose
    unknown parts have `stats=None`."""
    with _without_cycle_collection():
        return _run_passes(tree, context, steps)


def _run_passes(tree, context: Context, steps):
    for step in steps:
        try:
            tree = step(tree, context)
        except CompileError as error:  # a pass that cannot go on at all (a syntax error, a limit)
            context.extend(error.diagnostics)
            context.stop()
        context.tree = tree
        if context.stopped:
            break
    return tree


def generate(compiled: Compiled) -> str:
    from .codegen import generate_module

    with _without_cycle_collection():
        return generate_module(compiled.network)


__all__ = ["Compiled", "ERROR", "WARNING", "FRONT", "back_end", "builtins", "compile_network", "front_end",
           "generate", "load", "run_passes"]
