"""Rendering diagnostics: the values of `diagnostics.py` as text, JSON or an editor's message.

A reader beside the pipeline: the compiler collects `Diagnostic` values and never
formats them; the command line, `cnndsl fmt` and the language server call these
functions. `render` draws diagnostics like rustc (severity and message, location, source
line, caret, hint); colour is asked for with `color=True`, and the source line is
coloured by a `highlight` function the caller passes in (`tools.line_highlighter()`),
so that nothing here imports Pygments or the tools.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Callable

from .diagnostics import ERROR, Diagnostic
from .node import field_names
from .source import SourceFile

Highlight = Callable[[str], str]


def render(diagnostics: list[Diagnostic], sources: dict[str, SourceFile], color: bool = False,
           highlight: Highlight | None = None) -> str:
    """Every diagnostic like rustc; `highlight` colours the source line where `color` is on."""
    return "\n".join(_render_one(d, sources.get(d.span.file), color, highlight) for d in diagnostics)


def _paint(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def _render_one(d: Diagnostic, source: SourceFile | None, color: bool, highlight: Highlight | None) -> str:
    tone = "1;31" if d.severity == ERROR else "1;33"
    code = f"[{d.code}]" if d.code else ""
    lines = [f"{_paint(d.severity, tone, color)}{code}: {_paint(d.message, '1', color)}", f"  --> {d.span}"]
    if source is not None:
        lines += _excerpt(d, source.line_text(d.span.line), tone, color, highlight)
    if d.hint:
        lines.append(f"  = hint: {d.hint}")
    return "\n".join(lines) + "\n"


def _excerpt(d: Diagnostic, text: str, tone: str, color: bool, highlight: Highlight | None) -> list[str]:
    """The source line with a caret under the span."""
    gutter = " " * len(str(d.span.line))
    shown = text.replace("\t", " ")
    end = d.span.end_column if d.span.end_line == d.span.line else len(text) + 1
    width = max(1, min(end, len(shown) + 1) - d.span.column)
    line = highlight(shown) if color and highlight is not None else shown
    return [f" {gutter} |", f" {d.span.line} | {line}",
            f" {gutter} | {' ' * (d.span.column - 1)}{_paint('^' * width, tone, color)}"]


def as_dict(d: Diagnostic) -> dict:
    """One diagnostic as `--format json` writes it: the fields, with the span's inlined."""
    span = {name: getattr(d.span, name) for name in field_names(d.span)}
    return {**{k: v for k, v in asdict(d).items() if k != "span"}, **span}


def to_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([as_dict(d) for d in diagnostics], indent=2)


def editor_message(d: Diagnostic) -> str:
    """The message an editor shows for a diagnostic: the message, then the hint."""
    return d.message + (f"\nhint: {d.hint}" if d.hint else "")
