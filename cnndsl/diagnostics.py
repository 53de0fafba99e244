"""Diagnostics are values: collected by every stage, rendered once by the CLI.

`Diagnostic` carries a severity, a `Span`, a message and a hint (what to change).
`CompileError` is the one exception the library raises for bad input; it holds the
diagnostics. `render` draws them like rustc, `to_json` gives the same values to editors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import CnndslError
from .source import SourceFile, Span

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    span: Span
    message: str
    hint: str | None = None
    code: str = ""

    @classmethod
    def error(cls, span: Span, message: str, hint: str | None = None, code: str = "") -> "Diagnostic":
        return cls(ERROR, span, message, hint, code)

    @classmethod
    def warning(cls, span: Span, message: str, hint: str | None = None, code: str = "") -> "Diagnostic":
        return cls(WARNING, span, message, hint, code)

    def as_error(self) -> "Diagnostic":
        return Diagnostic(ERROR, self.span, self.message, self.hint, self.code)


class CompileError(CnndslError):
    """Raised with every diagnostic gathered when a stage cannot go on.

    Raised by `compiler.compile_network`, it also carries what the passes built: `tree`
    is the tree after the last pass that ran (an `ir.Network` once expansion succeeded,
    with `stats=None` on the nodes whose shape is unknown), `context` the passes' context.
    """

    tree = None
    context = None

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(first.message if first else "compile error", first.hint if first else None,
                         first.span if first else None)
        self.args = (f"{first.span}: {first.message}" if first else "compile error",)

    def __str__(self) -> str:
        return self.args[0]


def render(diagnostics: list[Diagnostic], sources: dict[str, SourceFile], color: bool = False) -> str:
    """Render like rustc: severity and message, location, source line, caret, hint."""
    return "\n".join(_render_one(d, sources.get(d.span.file), color) for d in diagnostics)


def _render_one(d: Diagnostic, source: SourceFile | None, color: bool) -> str:
    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    head = paint(d.severity, "1;31" if d.severity == ERROR else "1;33")
    code = f"[{d.code}]" if d.code else ""
    lines = [f"{head}{code}: {paint(d.message, '1')}", f"  --> {d.span}"]
    text = source.line_text(d.span.line) if source else ""
    if text or source:
        gutter = " " * len(str(d.span.line))
        shown = text.replace("\t", " ")
        end = d.span.end_column if d.span.end_line == d.span.line else len(text) + 1
        width = max(1, min(end, len(shown) + 1) - d.span.column)
        lines += [
            f" {gutter} |",
            f" {d.span.line} | {_highlight(shown) if color else shown}",
            f" {gutter} | {' ' * (d.span.column - 1)}{paint('^' * width, '1;31' if d.severity == ERROR else '1;33')}",
        ]
    if d.hint:
        lines.append(f"  = hint: {d.hint}")
    return "\n".join(lines) + "\n"


def _highlight(line: str) -> str:
    """The source line in colour where Pygments is installed (it is optional)."""
    try:
        from .tools.highlight import highlight_line
    except ImportError:
        return line
    return highlight_line(line)


def to_json(diagnostics: list[Diagnostic]) -> str:
    import json

    return json.dumps(
        [{**{k: v for k, v in asdict(d).items() if k != "span"}, **asdict(d.span)} for d in diagnostics],
        indent=2,
    )
