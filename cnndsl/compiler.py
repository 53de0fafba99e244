"""The compiler driver: source text through the passes to a checked network, and on to
Python source. The CLI and the Python API both call these functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ir, resources
from .diagnostics import ERROR, WARNING, CompileError, Diagnostic
from .parse import parse
from .passes import assign_names, expand, infer_shapes, resolve
from . import source as _source
from .source import SourceError, SourceFile, Span



@dataclass
class Compiled:
    network: ir.Network
    source: SourceFile
    warnings: list[Diagnostic] = field(default_factory=list)


def builtins() -> dict[str, Path]:
    """The built-in specs: every `specs/NAME.cnn` (examples live in specs/examples/)."""
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
    table = builtins()
    if str(spec) in table:
        source = read_source(table[str(spec)])
        return SourceFile(f"specs/{table[str(spec)].name}", source.text)
    from .passes.resolve import suggest

    guess = suggest(str(spec), table)
    raise CompileError([Diagnostic.error(
        Span(str(spec), 1, 1, 1, 1), f"no file and no built-in named {spec!r}",
        (f"did you mean {guess!r}? " if guess else "") + "`cnndsl list` shows the built-ins")])


def source_from_text(text: str, name: str = "<string>") -> SourceFile:
    return decode_source(name, text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else \
        decode_source(name, text)


def compile_network(source: SourceFile, params: dict | None = None, strict: bool = False,
                    network: str | None = None) -> Compiled:
    """Parse, resolve, expand, infer shapes and name: the checked network."""
    program = resolve(parse(source))
    expanded = expand(program, params or {}, network)
    shaped, warnings = infer_shapes(expanded)
    named = assign_names(shaped)
    named = _with_path(named, source)
    if strict and warnings:
        raise CompileError([w.as_error() for w in warnings])
    return Compiled(named, source, warnings)


def _with_path(network: ir.Network, source: SourceFile) -> ir.Network:
    from dataclasses import replace

    return replace(network, source_path=source.path, doc=source.header_comment())


def generate(compiled: Compiled) -> str:
    from .codegen import generate_module

    return generate_module(compiled.network)


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == ERROR for d in diagnostics)


__all__ = ["Compiled", "ERROR", "WARNING", "builtins", "compile_network", "generate", "load"]
