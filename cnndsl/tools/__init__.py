"""The tools beside the compiler: fmt, lsp, highlight, export."""

from __future__ import annotations

from typing import Callable


def line_highlighter() -> Callable[[str], str] | None:
    """The terminal colouring of a source line for `report.render`, where Pygments is
    installed (it is optional); None where it is not."""
    try:
        from .highlight import highlight_line
    except ImportError:
        return None
    return highlight_line
