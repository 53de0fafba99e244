"""Text helpers shared by the command line's value parser, the code generator and the two
readers of a source file (lower.py after Lark, and descent.py's fast path)."""

from __future__ import annotations


def split_top_level(text: str) -> list[str]:
    """The comma-separated parts of `text` at its own bracket level: `a, f(b, c), [d, e]` gives
    three. A comma splits where the text before it opens as many brackets as it closes, so
    the pieces of str.split are rejoined where it does not: brackets are counted a piece at a
    time, not a character (the code generator splits every long call it wraps)."""
    pieces = text.split(",")
    if not _BRACKETS.intersection(text):  # every comma splits
        parts = [piece.strip() for piece in pieces]
        if not parts[-1]:
            parts.pop()
        return parts
    parts = []
    current = pieces[0]
    depth = _depth(current)
    for piece in pieces[1:]:
        if depth == 0:
            parts.append(current.strip())
            current = piece
        else:
            current += "," + piece
        depth += _depth(piece)
    if current.strip():
        parts.append(current.strip())
    return parts


_BRACKETS = frozenset("()[]{}")


def _depth(text: str) -> int:
    """The brackets `text` opens less those it closes."""
    return (text.count("(") + text.count("[") + text.count("{")
            - text.count(")") - text.count("]") - text.count("}"))


def label_pieces(text: str) -> list[str | tuple[int, int]] | None:
    """An interpolated label's parts: its literal strings, and the (start, end) offsets in
    `text` of each `{expr}`'s expression. `"denselayer{i + 1}"` (without its quotes) gives
    ["denselayer", (11, 16)]. None where a brace is unmatched or a `{}` is empty."""
    pieces: list[str | tuple[int, int]] = []
    i = 0
    while i < len(text):
        opening, closing = text.find("{", i), text.find("}", i)
        if opening < 0 and closing < 0:
            pieces.append(text[i:])
            break
        end = text.find("}", opening) if opening >= 0 else -1
        if opening < 0 or closing < opening or end < 0 or end == opening + 1:
            return None
        pieces.append(text[i:opening])
        pieces.append((opening + 1, end))
        i = end + 1
    return pieces
