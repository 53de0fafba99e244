"""Text to syntax tree: the cached LALR parser, line continuation, syntax errors.

The grammar lives in `cnndsl/grammar/cnn.lark`. A small post-lexer drops the newlines that
only continue a line (inside parentheses, after a trailing `->`, before a leading
`->`) and refuses hostile nesting before the parser sees it. Lark's exceptions become
`Diagnostic`s here and nowhere else; `lower.py` turns the parse tree into `ast` nodes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .diagnostics import CompileError, Diagnostic
from .resources import grammar_text
from .source import SourceFile, Span

MAX_NESTING = 48
# Lark parses some 50,000 tokens a second: a cap keeps any file under the size limit to a
# fraction of a second (the largest built-in, GoogLeNet, has about 500 tokens).
MAX_TOKENS = 20_000


_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSE = {v: k for k, v in _OPEN.items()}


class _TooDeep(Exception):
    def __init__(self, token: Token):
        self.token = token


class _TooLong(_TooDeep):
    pass


class _Continuation:
    """Post-lexer: newlines inside `(...)` or after `->` do not end a line.

    (A newline before a leading `->` is dropped by the lexer itself: `_CONTINUE`.)
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        parens = 0
        depth = 0
        previous: str | None = None
        for count, token in enumerate(stream):
            if count >= MAX_TOKENS:
                raise _TooLong(token)
            kind = token.type
            if kind == "_NL" and (parens > 0 or previous in (None, "ARROW", "_NL")):
                continue
            if kind in _OPEN:
                depth += 1
                if depth > MAX_NESTING:
                    raise _TooDeep(token)
                parens += kind == "LPAR"
            elif kind in _CLOSE:
                depth = max(0, depth - 1)
                if kind == "RPAR":
                    parens = max(0, parens - 1)
            previous = kind
            yield token


def _cache_file() -> str | bool:
    """Where Lark keeps its analysed grammar between runs: building the LALR tables takes
    about 0.2 s, loading them about 0.02 s. Lark keys the file by the grammar's hash and
    its own version; it lives in the user's own cache directory, like Python's .pyc files."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnndsl"
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return str(base / "cnn-lark.cache") if os.access(base, os.W_OK) else False


@lru_cache(maxsize=1)
def parser() -> Lark:
    # Not strict: strict mode needs interegular, whose import costs every command; the
    # grammar has no conflict, which tests/test_grammar.py checks on every run.
    options = dict(parser="lalr", lexer="basic", strict=False, propagate_positions=True,
                   maybe_placeholders=True, postlex=_Continuation())
    text = grammar_text()
    cache = _cache_file()
    if cache:
        try:
            return Lark(text, cache=cache, **options)
        except OSError:  # a read-only or full disk: build the tables in memory
            pass
    return Lark(text, **options)


def parse(source: SourceFile) -> ast.Program:
    """Parse a whole file; raise `CompileError` with a located diagnostic on bad syntax."""
    from .lower import lower

    if "\x00" in source.text:
        offset = source.text.index("\x00")
        raise CompileError([Diagnostic.error(
            source.span_at(offset), "NUL byte in source", "this looks like a binary file, not a .cnn spec")])
    try:
        tree = parser().parse(source.text)
    except _TooLong as exc:
        raise CompileError([Diagnostic.error(
            _token_span(source, exc.token), f"the spec has more than {MAX_TOKENS:,} tokens",
            "write long runs of layers with a repetition, [conv(64, 3) -> relu]*N", "limit")]) from None
    except _TooDeep as exc:
        raise CompileError([Diagnostic.error(
            _token_span(source, exc.token), f"brackets nested more than {MAX_NESTING} deep",
            "flatten the spec, or define a block for the inner part")]) from None
    except UnexpectedInput as exc:
        raise CompileError([_syntax_diagnostic(source, exc)]) from None
    return lower(tree, source)


def _token_span(source: SourceFile, token: Token) -> Span:
    start = token.start_pos or 0
    return source.span_at(start, start + max(1, len(token)))


_HUMAN = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "SHAPE": "a shape such as 3x32x32", "ARROW": "'->'", "_NL": "end of line",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'",
    "RBRACE": "'}'", "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "STAR": "'*'",
    "QMARK": "'?'", "PLUS": "'+'", "MINUS": "'-'", "SLASH": "'/'", "PERCENT": "'%'",
    "$END": "end of file",
}


_KEYWORDS = frozenset({"let", "block", "network", "input", "x", "concat", "residual", "shortcut", "side",
                       "true", "false"})


def _describe(kind: str) -> str:
    if kind in _HUMAN:
        return _HUMAN[kind]
    if kind.startswith("__"):  # an operator Lark named itself (`//` is __ANON_0): show its text
        literal = next((t.pattern.value for t in parser().terminals
                        if t.name == kind and t.pattern.type == "str"), None)
        if literal is not None:
            return f"'{literal}'"
    return f"'{kind.lower()}'" if kind.isupper() else kind


def _syntax_diagnostic(source: SourceFile, exc: UnexpectedInput) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        ch = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else ""
        span = source.span_at(exc.pos_in_stream)
        hint = None
        if ch == '"':
            hint = "a string must close on the same line, and may not contain a backslash"
        elif ch == "'":
            hint = "strings use double quotes: \"reflect\""
        elif not ch.isprintable() or ord(ch) > 127:
            hint = "names use ASCII letters, digits and underscores"
        return Diagnostic.error(span, f"unexpected character {ch!r}", hint, "syntax")
    if isinstance(exc, UnexpectedEOF):
        end = len(source.text)
        expected = sorted(_describe(e) for e in exc.expected)[:6]
        return Diagnostic.error(
            source.span_at(max(0, end - 1)), "unexpected end of file",
            f"expected {', '.join(expected)}; is a bracket or brace left open?", "syntax")
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected = set(exc.expected) - {"$END"} if token.type != "$END" else set(exc.expected)
    if token.type == "$END":
        return Diagnostic.error(
            source.span_at(max(0, len(source.text) - 1)), "unexpected end of file",
            "is a bracket or brace left open?", "syntax")
    span = _token_span(source, token)
    shown = "end of line" if token.type == "_NL" else repr(str(token))
    names = sorted(_describe(e) for e in expected)
    hint = f"expected {', '.join(names[:8])}" if names else None
    if token.type in ("NAME", "LSQB") and "ARROW" in expected:
        hint = "a '->' is missing between two layers on one line"
    elif token.type == "NAME" and str(token) in ("True", "False"):
        hint = f"booleans are written {str(token).lower()}"
    elif token.type == "_NL" and "RPAR" in expected:
        hint = "a ')' is missing"
    elif "NAME" in expected and str(token) in _KEYWORDS:
        hint = f"'{token}' is a reserved word of the language; choose another name"
    elif token.type == "EQUAL" and "COLON" in expected:
        hint = "a layer is named with ':' (conv1: conv(64, 3)); '=' is for keyword arguments"
    return Diagnostic.error(span, f"unexpected {shown}", hint, "syntax")
