"""Diagnostics are values: collected by every stage, rendered once by the CLI.

`Diagnostic` carries a severity, a `Span`, a message and a hint (what to change).
`CompileError` is the one exception the library raises for bad input; it holds the
diagnostics. Rendering them (text like rustc, JSON, colour) is `report.py`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CnndslError
from .source import Span

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
