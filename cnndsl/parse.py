"""Text to syntax tree: the cached LALR parser, line continuation, syntax errors.

The grammar lives in `cnndsl/grammar/cnn.lark`. A small post-lexer drops the newlines that
only continue a line (inside parentheses, after a trailing `->`, before a leading
`->`) and refuses hostile nesting before the parser sees it. Lark's exceptions become
`Diagnostic`s here and nowhere else; `lower.py` turns the parse tree into `ast` nodes.
A well-formed file is read by `descent.py` instead, straight into the same `ast` nodes;
anything it is not sure of (every file with a syntax error) comes here.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from . import ast, descent, syntax_errors
from .diagnostics import CompileError, Diagnostic
from .resources import grammar_text
from .source import SourceFile, Span

if TYPE_CHECKING:  # Lark is imported where a file takes its path: `cnndsl check` of a good file never does
    from lark import Lark, Token
    from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

MAX_NESTING = 48
# Lark parses some 50,000 tokens a second: a cap keeps any file under the size limit to a
# fraction of a second (the largest built-in, GoogLeNet, has about 500 tokens).
MAX_TOKENS = 20_000
MAX_SYNTAX_ERRORS = 20  # reported at once; past that, the rest are likely to follow from them
RECOVERY_BUDGET = 120_000  # characters reparsed while looking for more errors (a big spec is 30,000):
# about half a second of CPU at the most (a mutated 28,000-character spec with 20 errors took 2.3 s at 400,000)


_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSE = {v: k for k, v in _OPEN.items()}


class _TooDeep(Exception):
    def __init__(self, token: Token):
        self.token = token


class _TooLong(_TooDeep):
    pass


class _Continuation:
    """Post-lexer: newlines inside the brackets of an expression (`(...)`, and a list's
    `[...]` in an argument or a `def`) or after `->` do not end a line. The `[...]` of a
    group in a chain keeps its newlines: each line inside continues the chain.

    (A newline before a leading `->` is dropped by the lexer itself: `_CONTINUE`.)
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        opened: list[bool] = []  # per open bracket: whether it holds an expression
        in_def = False  # inside a top-level `def`, every bracket holds an expression
        previous: str | None = None
        for count, token in enumerate(stream):
            if count >= MAX_TOKENS:
                raise _TooLong(token)
            kind = token.type
            if kind == "_NL" and ((opened and opened[-1]) or previous in (None, "ARROW", "_NL")):
                continue
            if kind == "_NL" and not opened:
                in_def = False
            elif kind == "DEF" and not opened:
                in_def = True
            if kind in _OPEN:
                if len(opened) >= MAX_NESTING:
                    raise _TooDeep(token)
                opened.append(kind == "LPAR" or in_def or (kind == "LSQB" and bool(opened) and opened[-1]))
            elif kind in _CLOSE and opened:
                opened.pop()
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
    from lark import Lark

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
    """Parse a whole file; raise `CompileError` with every syntax error, each located."""
    if "\x00" in source.text:
        offset = source.text.index("\x00")
        raise CompileError([Diagnostic.error(
            source.span_at(offset), "NUL byte in source", "this looks like a binary file, not a .cnn spec")])
    program = descent.read(source)  # the fast path, for a file it reads exactly as Lark would
    if program is not None:
        return program
    from .lower import lower

    return lower(_parse_all(source), source, _expression_parser(source))


def _expression_parser(source: SourceFile):
    """Parses the `{expr}` of a quoted label as the `def` `def _ = (expr)`, the text laid out
    so that its tokens stand at their line and column in the file (for the spans)."""

    def parse_expr(text: str, line: int, column: int, where: Span):
        from lark.exceptions import UnexpectedInput

        if line >= 2:
            padded = "\n" * (line - 2) + "def _ = (\n" + " " * (column - 1) + text + "\n)\n"
        else:
            padded = "def _ = (" + text + ")\n"
        try:
            return parser().parse(padded)
        except (_TooDeep, UnexpectedInput):
            raise CompileError([Diagnostic.error(where, f"cannot read {{{text}}} in a label as an expression",
                                                 'write an expression there, as in "denselayer{i + 1}"',
                                                 "syntax")]) from None

    return parse_expr


def _parse_all(source: SourceFile):
    """The parse tree, or every syntax error: after each error the statement that holds it
    is blanked out (its line, or lines where brackets or a `->` continue it, or the whole
    definition where the error is in its header) and the parse starts again, so that one
    mistake is reported once and the next mistake is found where it is."""
    from lark.exceptions import UnexpectedInput

    text = source.text
    found: list[Diagnostic] = []
    parsed = 0  # characters parsed so far: each new try reparses the file up to its next error
    while len(found) < MAX_SYNTAX_ERRORS and parsed <= RECOVERY_BUDGET:
        try:
            tree = parser().parse(text)
        except (_TooDeep, UnexpectedInput) as exc:
            diagnostic, region = _error(source, text, exc)
            if diagnostic not in found:
                found.append(diagnostic)
            text = _blank(text, region) if region else None
            if text is None:
                break
            parsed += region[1]
        else:
            if not found:
                return tree
            break
    raise CompileError(found)


def _error(source: SourceFile, text: str, exc: Exception) -> tuple[Diagnostic, tuple[int, int] | None]:
    """The diagnostic for one syntax error, and the region of `text` to blank before going on
    (None: nothing after it can be trusted)."""
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF

    if isinstance(exc, _TooLong):
        return Diagnostic.error(
            _token_span(source, exc.token), f"the spec has more than {MAX_TOKENS:,} tokens",
            "write long runs of layers with a repetition, [conv(64, 3) -> relu]*N", "limit"), None
    if isinstance(exc, _TooDeep):
        return Diagnostic.error(_token_span(source, exc.token), f"brackets nested more than {MAX_NESTING} deep",
                                "flatten the spec, or define a block for the inner part"), None
    if isinstance(exc, UnexpectedCharacters):
        return _character_error(source, exc), _statement(text, exc.pos_in_stream, 1)
    if isinstance(exc, UnexpectedEOF) or exc.token.type == "$END":
        return _eof_error(source, exc), None
    offset = exc.token.start_pos
    if exc.token.type in _CLOSE:
        unclosed = _unclosed(text, offset, str(exc.token))
        if unclosed is not None:
            opener, at = unclosed
            closer = {"(": ")", "[": "]"}[opener]
            return Diagnostic.error(source.span_at(at), f"'{opener}' is never closed",
                                    f"add the '{closer}' that closes it", "syntax"), (_statement(text, at)[0], offset)
    line_start = text.rfind("\n", 0, offset) + 1
    paren = _open_paren(text, offset) if not text[line_start:offset].strip() else None
    if paren is not None and paren < line_start:  # a line break inside '(' swallowed the line's end
        end = _statement_end(text, _line_end(text, paren), [])
        return Diagnostic.error(source.span_at(paren), "'(' is never closed", "add the ')' that closes it",
                                "syntax"), (_statement(text, paren)[0], end)
    width = 0 if exc.token.type == "_NL" else len(exc.token)
    return _token_error(source, exc), _statement(text, offset, width)


def _blank(text: str, region: tuple[int, int]) -> str | None:
    """`text` with the region's characters (all but line ends) made spaces; None where it
    held nothing to blank, so that the parse would fail the same way again."""
    start, end = region
    part = text[start:end]
    if not part.strip():
        return None
    return text[:start] + "".join(c if c in "\r\n" else " " for c in part) + text[end:]


# -- statements, for recovery -------------------------------------------------------------

_PAIRS = {")": "(", "]": "[", "}": "{"}


def _skip(text: str, i: int) -> int:
    """Past a string or a comment that starts at i (neither may hold a bracket that counts)."""
    if text[i] == "#":
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    end = min((p for p in (text.find('"', i + 1), text.find("\n", i + 1)) if p >= 0), default=len(text))
    return end + (text[end:end + 1] == '"')


class _Arrows:
    """Whether a `->` comes next from a line start, past blanks and comments. The answer
    from one line start holds for every line start before the next character that counts,
    so a run of blank lines (a blanked statement is one) is scanned once, not once a line:
    linear where a scan per line break was quadratic."""

    def __init__(self, text: str):
        self.text = text
        self.until, self.value = -1, False  # the last scan: where it stopped, and its answer

    def next(self, i: int) -> bool:
        if i <= self.until:
            return self.value
        text = self.text
        while i < len(text) and (text[i] in " \t\f\r\n" or text[i] == "#"):
            if text[i] == "#":
                i = text.find("\n", i)
                if i < 0:
                    i = len(text)
                    break
            else:
                i += 1
        self.until, self.value = i, text.startswith("->", i)
        return self.value


def _continues(text: str, newline: int, arrows: _Arrows) -> bool:
    """A line break that does not end the statement: a `->` ends the line or starts the next."""
    line = text[text.rfind("\n", 0, newline) + 1:newline]
    return line.split("#")[0].rstrip().endswith("->") or arrows.next(newline + 1)


def _close(stack: list, ch: str) -> None:
    """A closing bracket: a `}` closes everything back to its `{`; a `)` or `]` its match."""
    want = _PAIRS[ch]
    if any(c == want for c, _ in stack):
        while stack and stack.pop()[0] != want:
            pass


def _scan(text: str, until: int) -> tuple[list[tuple[str, int]], int]:
    """The brackets open at `until` (each with its offset), and where the statement that
    holds `until` starts."""
    stack: list[tuple[str, int]] = []
    starts: list[int] = []  # the statement start outside each open `{`
    start, i, arrows = 0, 0, _Arrows(text)
    while i < until:
        ch = text[i]
        if ch in '"#':
            i = _skip(text, i)
            continue
        if ch in "([{":
            stack.append((ch, i))
            if ch == "{":
                starts.append(start)
                start = i + 1
        elif ch in ")]}":
            if ch == "}" and starts and any(c == "{" for c, _ in stack):
                start = starts.pop()
            _close(stack, ch)
        elif ch == "\n" and not (stack and stack[-1][0] == "(") and not _continues(text, i, arrows):
            start = i + 1  # a line of a body, or of a `[...]` group (its lines are chains)
        i += 1
    return stack, start


def _statement(text: str, offset: int, width: int = 0) -> tuple[int, int]:
    """The statement that holds the `width` characters at `offset`: from its start to the
    line end where its brackets are closed, or to the `}` of the body around it."""
    stack, start = _scan(text, offset)
    if text[offset:offset + width] == "}" and any(c == "{" for c, _ in stack):
        return start, offset  # the `}` closes the body around the statement: it stays
    inner = [c for c, at in stack if at >= start]
    for ch in text[offset:offset + width]:  # the offending token belongs to the statement
        _track(inner, ch)
    return start, _statement_end(text, offset + width, inner)


def _track(inner: list[str], ch: str) -> bool:
    """Brackets opened inside the statement; False for a closer that closes what is around it."""
    if ch in "([{":
        inner.append(ch)
    elif ch in _PAIRS:
        if _PAIRS[ch] not in inner:
            return False
        while inner.pop() != _PAIRS[ch]:
            pass
    return True


def _statement_end(text: str, i: int, inner: list[str]) -> int:
    arrows = _Arrows(text)
    while i < len(text):
        ch = text[i]
        if ch in '"#':
            i = _skip(text, i)
            continue
        if ch in _PAIRS and _PAIRS[ch] not in inner:
            return i  # it closes the body around the statement
        _track(inner, ch)
        if ch == "\n" and not inner and not _continues(text, i, arrows):
            return i
        i += 1
    return len(text)


def _open_paren(text: str, offset: int) -> int | None:
    """Where the innermost bracket open at `offset` starts, if it is a `(`."""
    stack, _ = _scan(text, offset)
    return stack[-1][1] if stack and stack[-1][0] == "(" else None


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end < 0 else end


def _unclosed(text: str, offset: int, closer: str) -> tuple[str, int] | None:
    """The `(` or `[` left open where `closer` came instead of its match: (bracket, offset)."""
    stack, _ = _scan(text, offset)
    if stack and stack[-1][0] in "([" and stack[-1][0] != _PAIRS[closer]:
        return stack[-1]
    return None


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


_KEYWORDS = frozenset({"let", "block", "network", "input", "x", "concat", "split", "residual", "shortcut", "side",
                       "gate", "true", "false", "add", "mul", "reads"})


def _describe(kind: str) -> str:
    if kind in _HUMAN:
        return _HUMAN[kind]
    if kind.startswith("__"):  # an operator Lark named itself (`//` is __ANON_0): show its text
        literal = next((t.pattern.value for t in parser().terminals
                        if t.name == kind and t.pattern.type == "str"), None)
        if literal is not None:
            return f"'{literal}'"
    return f"'{kind.lower()}'" if kind.isupper() else kind


def _character_error(source: SourceFile, exc: UnexpectedCharacters) -> Diagnostic:
    ch = source.text[exc.pos_in_stream] if exc.pos_in_stream < len(source.text) else ""
    hint = _CHARACTER_HINTS.get(ch)
    if hint is None and (not ch.isprintable() or ord(ch) > 127):
        hint = "names use ASCII letters, digits and underscores"
    return Diagnostic.error(source.span_at(exc.pos_in_stream), f"unexpected character {ch!r}", hint, "syntax")


_CHARACTER_HINTS = {
    '"': "a string must close on the same line, and may not contain a backslash",
    "'": "strings use double quotes: \"reflect\"",
}


def _eof_error(source: SourceFile, exc: UnexpectedInput) -> Diagnostic:
    from lark.exceptions import UnexpectedEOF

    where = source.span_at(max(0, len(source.text) - 1))
    if isinstance(exc, UnexpectedEOF):
        expected = sorted(_describe(e) for e in exc.expected)[:6]
        return Diagnostic.error(where, "unexpected end of file",
                                f"expected {', '.join(expected)}; is a bracket or brace left open?", "syntax")
    return Diagnostic.error(where, "unexpected end of file", "is a bracket or brace left open?", "syntax")


_WORD_HINTS = {"True": "booleans are written true", "False": "booleans are written false"}


def _token_error(source: SourceFile, exc: UnexpectedToken) -> Diagnostic:
    """An unexpected token: the hint of the example that fails in the same state, else what
    the parser expected, in the user's terms."""
    token = exc.token
    expected = set(exc.expected) - {"$END"}
    shown = "end of line" if token.type == "_NL" else repr(str(token))
    example = syntax_errors.match(exc, parser().parse)
    before = source.line_text(token.line)[:token.column - 1].strip() if token.line else ""
    hint = None
    if token.type == "NAME" and str(token) in _WORD_HINTS:
        hint = _WORD_HINTS[str(token)]
    elif "NAME" in expected and str(token) in _KEYWORDS:
        hint = f"'{token}' is a reserved word of the language; choose another name"
    elif example is not None:
        hint = example.hint.format(before=before)
    elif expected:
        hint = f"expected {', '.join(sorted(_describe(e) for e in expected)[:8])}"
    message = example.message if example is not None and example.message else f"unexpected {shown}"
    return Diagnostic.error(_token_span(source, token), message, hint, "syntax")
