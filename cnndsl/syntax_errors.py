"""Syntax errors by example: bad snippets and what to tell the user about each.

Each `Example` holds a few malformed snippets and the hint they deserve. The snippets
are parsed once; the LALR state each one fails in, with the kind of token it fails on,
becomes the key under which a real error finds its hint. This is the idea of Lark's
`UnexpectedInput.match_examples`, keyed by the parser state alone: Lark's own
comparison also wants the same stack depth, so an example written in a network body
would not match the same mistake inside a block's `[...]`. The snippets double as
grammar tests (tests/test_grammar.py): each must fail, and find its own hint.

A hint may name `{before}`: the source line up to the offending token.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable


@dataclass(frozen=True)
class Example:
    hint: str
    snippets: tuple[str, ...]
    message: str | None = None  # where it says more than "unexpected '{'"


def _body(*lines: str) -> str:
    return "network N() {\n    input 3x8x8\n" + "".join(f"    {line}\n" for line in lines) + "}\n"


EXAMPLES: tuple[Example, ...] = (
    Example("a '->' is missing between two layers on one line", (
        _body("conv(4, 3) relu"), _body("relu relu"), _body("[relu] relu"), _body("relu*2 relu"),
        _body("conv(4, 3) [relu]"), _body("relu [relu]"), _body("relu*2 [relu]"), _body("[relu] [relu]"),
        _body("residual { relu } relu"), _body("concat { relu } relu"), _body("relu? x relu"),
        _body("conv(4, 3) residual { relu }"), _body("relu concat { relu }"), _body("side relu relu"),
        _body("residual { relu } shortcut pad relu"), _body("gate { sigmoid } relu"),
        _body("relu gate { sigmoid }"))),
    Example("a layer is named with ':' (conv1: conv(64, 3)); '=' is for keyword arguments", (
        _body("conv1 = conv(4, 3)"),)),
    Example("parameters go in parentheses after the name, even where there are none: {before}() {{",
            ("network Tiny {\n}\n", "network Tiny\n", "block B {\n}\n", "block B\n"),
            "expected '(' after the name"),
    Example("give the definition a name: let CONV = conv(32, 3, pad=1)", (
        "let = conv(4, 3)\n", "block (x) {\n}\n", "network () {\n}\n")),
    Example("a ')' is missing", (_body("conv(4, 3 -> relu"), _body("conv(4 -> relu"), _body("conv(4, pad=1 -> relu"),
                                  _body("conv(4, 3 relu"), _body("conv(4, pad=1 relu"))),
    Example("a keyword argument needs a value, as in pad=1", (_body("conv(4, 3, pad=)"), _body("conv(4, pad=, 3)"))),
    Example("a repetition needs a count: [conv(64, 3) -> relu]*2", (_body("relu*"), _body("relu* -> relu"))),
    Example("two '->' in a row: a layer is missing between them", (_body("relu -> -> relu"),)),
    Example("a layer is missing after the '->'", (_body("relu ->"),)),
    Example("one ')' too many", (_body("conv(4, 3))"),)),
    Example("one ']' too many", (_body("[relu]]"), _body("relu]"))),
    Example("a shortcut needs a kind: shortcut projection, shortcut pad or shortcut identity", (
        _body("residual { relu } shortcut"),)),
    Example("an input line is `input CxHxW` (input 3x32x32) or a flat size (input 784)", (
        _body("input"),)),
    Example("'add' and 'mul' are reserved words (add {{ ... }} sums branches, mul {{ ... }} multiplies "
            "them): choose another name", (_body("add: conv(4, 1)"), _body("mul: conv(4, 1)"),
                                          _body("relu -> add"), _body("relu -> mul"))),
)


def failure(parse: Callable[[str], object], snippet: str):
    """Where `snippet` fails: Lark's UnexpectedToken, or None where it parses (or fails otherwise)."""
    from lark.exceptions import UnexpectedToken

    try:
        parse(snippet)
    except UnexpectedToken as exc:
        return exc
    return None


@lru_cache(maxsize=1)
def _table(parse: Callable[[str], object]) -> dict[tuple[int, str], Example]:
    found: dict[tuple[int, str], Example] = {}
    for example in EXAMPLES:
        for snippet in example.snippets:
            exc = failure(parse, snippet)
            if exc is not None:
                found.setdefault((exc.state.position, exc.token.type), example)
    return found


def match(exc, parse: Callable[[str], object]) -> Example | None:
    """The example whose snippets fail where `exc` (a Lark UnexpectedToken) failed; `parse`
    is the parser's own function (`parse.parser().parse`), passed in so that this table
    stays below the parser in the import graph."""
    return _table(parse).get((exc.state.position, exc.token.type))
