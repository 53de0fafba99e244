"""Text helpers shared by the command line's value parser and the code generator."""

from __future__ import annotations


def split_top_level(text: str) -> list[str]:
    """The comma-separated parts of `text` at its own bracket level: `a, f(b, c), [d, e]` gives three."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += ch in "([{"
        depth -= ch in ")]}"
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts
