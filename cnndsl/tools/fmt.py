"""`cnndsl fmt`: one canonical layout for `.cnn` files, beside the pipeline.

The formatter reads the parser's own token stream (the same lexer and post-lexer that
`parse` uses) and lays the tokens out again; comments, which the grammar ignores, are
recovered from the source text between tokens. It is token-driven, not rule-driven:
spacing depends on a token's text and on the brackets around it, so a keyword added to
the grammar is formatted without a change here. Line breaks stay where the user put
them (newlines are significant in the language); what changes is indentation (four
spaces a bracket level, and one more for a line that continues a chain with a leading
`->`), spacing within a line, blank lines, trailing-comment alignment, and a break after
a trailing `->`, which moves before it. The parse tree of the output is checked
against that of the input before anything is written, so a formatter bug can never
change what a spec means.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..compiler import read_source
from ..diagnostics import CompileError
from ..errors import InternalError
from ..source import SourceFile

INDENT = "    "
ARROW = "->"
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_ARITHMETIC = {"+", "-", "*", "/", "//", "%", "**"}
# Where a continued chain's later lines start with `->`, the first line is padded by
# this much so that the elements stand in one column (see `_aligned_groups`).
_ARROW_PAD = " " * len(ARROW + " ")


@dataclass
class _Trivia:
    """What lies between two tokens: comments, line breaks and blank lines."""

    trailing: str | None = None  # a comment on the previous token's line
    lines: list = field(default_factory=list)  # own-line comments (str) and blank lines (None)
    newline: bool = False

    def absorb(self, later: "_Trivia") -> None:
        """Take `later`'s comments and breaks after ours (used when a break moves)."""
        if not self.newline:
            self.trailing, self.lines, self.newline = later.trailing, list(later.lines), later.newline
            return
        self.lines += ([later.trailing] if later.trailing else []) + later.lines


def _scan(gap: str) -> _Trivia:
    """Read the ignored text between two tokens: whitespace, comments, newlines and
    backslash continuations (which join lines, so they are dropped)."""
    trivia = _Trivia()
    commented = False  # the current line, after the first newline, holds a comment
    i, n = 0, len(gap)
    while i < n:
        c = gap[i]
        if c == "#":
            j = gap.find("\n", i)
            j = n if j < 0 else j
            text = gap[i:j].rstrip()
            if trivia.newline:
                trivia.lines.append(text)
                commented = True
            else:
                trivia.trailing = text
            i = j
        elif c == "\\":
            j = gap.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "\n":
            if trivia.newline and not commented:
                trivia.lines.append(None)
            trivia.newline = True
            commented = False
            i += 1
        else:
            i += 1
    return trivia


def _tokens(text: str) -> list:
    """The tokens the parser sees, in order, without the newline tokens (their text,
    comments included, is read back from the gaps)."""
    from ..parse import parser

    stream = parser().parse_interactive(text).iter_parse()
    return [t for t in stream if t.type not in ("_NL", "$END") and t.start_pos is not None]


def _is_keyword(token) -> bool:
    # Lark names an anonymous keyword terminal after its text: "network" is NETWORK.
    return token.type != "NAME" and token.type == str(token).upper() and str(token).isidentifier()


@dataclass
class _Frame:
    opener: str
    index: int  # of the opening token
    level: int  # indentation level of the line that opened it
    stmt_level: int  # level of the line where the current statement in it began
    header: bool = False  # the parameter list of a definition: `network Foo(N = 2)`
    aligned: bool = False
    expression: bool = False  # the file, within a `def`: its body is an expression


@dataclass
class _Line:
    start: int
    end: int  # token indices, end exclusive
    level: int = 0
    pad: str = ""
    code: str = ""
    trailing: str | None = None
    before: list = field(default_factory=list)  # own-line comments and blank lines before it
    item_start: bool = False  # begins a top-level definition


def format_text(text: str) -> str:
    """The canonical layout of a spec that parses; raises `CompileError` if it does not."""
    tokens = _tokens(text)
    if not tokens:
        return _only_comments(_scan("\n" + text))
    trivia = [_scan("\n" + text[: tokens[0].start_pos])]
    trivia += [_scan(text[a.end_pos : b.start_pos]) for a, b in zip(tokens, tokens[1:])]
    trivia.append(_scan(text[tokens[-1].end_pos :]))
    # A break after a trailing `->` moves before it: leading arrows are the one style.
    for i, token in enumerate(tokens):
        if token.type == "ARROW" and trivia[i + 1].newline:
            trivia[i].absorb(trivia[i + 1])
            trivia[i + 1] = _Trivia()

    lines: list[_Line] = []
    for i in range(len(tokens)):
        if i == 0 or trivia[i].newline:
            if lines:
                lines[-1].end = i
                lines[-1].trailing = trivia[i].trailing
            lines.append(_Line(i, len(tokens), before=list(trivia[i].lines)))
    lines[-1].trailing = trivia[-1].trailing

    match = _matching(tokens)
    aligned = _aligned_groups(tokens, lines, match)
    _layout(tokens, lines, aligned)
    return _render(tokens, lines, trivia[-1].lines)


def _matching(tokens) -> dict[int, int]:
    match: dict[int, int] = {}
    stack: list[int] = []
    for i, token in enumerate(tokens):
        if str(token) in _OPENERS:
            stack.append(i)
        elif str(token) in _CLOSERS and stack:
            j = stack.pop()
            match[i], match[j] = j, i
    return match


def _aligned_groups(tokens, lines: list[_Line], match: dict[int, int]) -> set[int]:
    """The `[` groups laid out as a column of elements with hanging arrows:

        features: [
               [conv(64, 3, pad=1) -> relu]
            -> [conv(128, 3, pad=1) -> relu]
        ]

    A group gets this layout when its `[` ends a line, its `]` starts one, and what is
    between is one chain whose later lines all start with `->`."""
    owner: list[int] = []  # the innermost open bracket at the start of each line
    stack: list[int] = []
    for line in lines:
        owner.append(stack[-1] if stack else -1)
        for i in range(line.start, line.end):
            if str(tokens[i]) in _OPENERS:
                stack.append(i)
            elif str(tokens[i]) in _CLOSERS and stack:
                stack.pop()
    ends = {line.end - 1 for line in lines}
    starts = {line.start for line in lines}
    found = set()
    for opener, closer in match.items():
        if str(tokens[opener]) != "[" or opener not in ends or closer not in starts:
            continue
        firsts = [str(tokens[line.start]) for line, o in zip(lines, owner)
                  if o == opener and str(tokens[line.start]) not in _CLOSERS]
        if len(firsts) >= 2 and firsts[0] != ARROW and all(f == ARROW for f in firsts[1:]):
            found.add(opener)
    return found


def _layout(tokens, lines: list[_Line], aligned: set[int]) -> None:
    """Indentation of every line and the spaced text of its tokens."""
    stack = [_Frame("", -1, -1, -1)]  # the file itself
    item_first = 0  # index of the first token of the current top-level definition
    for line in lines:
        first = str(tokens[line.start])
        top = stack[-1]
        if first in _CLOSERS:
            line.level = top.level
        elif first == ARROW:
            line.level = top.stmt_level + (0 if top.aligned else 1)
        else:
            line.level = top.level + 1
            top.stmt_level = line.level
            if top.aligned and top.index + 1 == line.start:
                line.pad = _ARROW_PAD
            if len(stack) == 1:
                line.item_start = True
                item_first = line.start
                top.expression = first == "def"
        parts: list[str] = []
        for i in range(line.start, line.end):
            text = str(tokens[i])
            if i > line.start:
                parts.append(_space(tokens, i, stack))
            parts.append(text)
            if text in _OPENERS:
                # `network Foo(N = 2)`, and a variant's `network foo = Foo(N = 4)`, spaced alike
                header = (text == "(" and len(stack) == 1 and i in (item_first + 2, item_first + 4)
                          and _is_keyword(tokens[item_first]) and tokens[i - 1].type == "NAME"
                          and (i == item_first + 2 or str(tokens[item_first]) == "network"))
                stack.append(_Frame(text, i, line.level, line.level, header, i in aligned))
            elif text in _CLOSERS and len(stack) > 1:
                stack.pop()
        line.code = "".join(parts)


def _in_parens(stack: list[_Frame]) -> bool:
    return any(frame.opener == "(" or frame.expression for frame in stack)


def _ends_value(token) -> bool:
    text = str(token)
    return text in _CLOSERS or text[-1].isalnum() or text[-1] in '_."'


def _space(tokens, i: int, stack: list[_Frame]) -> str:
    """The space between token i-1 and token i on one line."""
    prev, token = str(tokens[i - 1]), str(tokens[i])
    if _tight(tokens, i, stack):
        return ""
    if token == "(" and _is_keyword(tokens[i - 1]):
        # `side(aux)` reads as a call, `input (c * 2) x 32 x 32` as a value: as written.
        return "" if tokens[i - 1].end_pos == tokens[i].start_pos else " "
    if token == "=" or prev == "=":
        top = stack[-1]
        init_rule = top.opener == "{" and top.index > 0 and tokens[top.index - 1].type == "INIT"  # bias=zeros
        return "" if (top.opener == "(" and not top.header) or init_rule else " "
    if token in _ARITHMETIC or prev in _ARITHMETIC:
        return _arithmetic_space(tokens, i, stack)
    return " "


def _tight(tokens, i: int, stack: list[_Frame]) -> bool:
    """Whether token i follows token i-1 with no space at all."""
    prev, token = str(tokens[i - 1]), str(tokens[i])
    if token in (",", ")", "]", ":", "?", ".") or prev in ("(", "[", "."):
        return True  # `.`: input.channels
    if tokens[i].type == "FLOAT" and token.startswith(".") and tokens[i - 1].type in ("NAME", "FLOAT"):
        return True  # a member's path, side(backbone.4): `.4` lexes as a number (nothing else reads so)
    if prev == "?" and (tokens[i].type == "NAME" or token == "("):
        return True  # an explicit switch, POOL?pool, or a condition, X?(stride == 1)
    if token == "(" and tokens[i - 1].type == "NAME":
        return True  # a call, or a definition's parameter list
    # an index: cfg[i][1]
    return token == "[" and (tokens[i - 1].type == "NAME" or prev in (")", "]")) and _in_parens(stack)


def _arithmetic_space(tokens, i: int, stack: list[_Frame]) -> str:
    """Around an operator: none in a repetition (`[conv -> relu]*2`) or after a unary minus."""
    prev, token = str(tokens[i - 1]), str(tokens[i])
    if not _in_parens(stack):
        return ""
    if prev == "-" and not _ends_value(tokens[i - 2]):
        return ""  # a unary minus binds to its operand
    if token == "-" and not _ends_value(tokens[i - 1]):
        return " " if prev not in ("(", "[") else ""
    return " "


def _render(tokens, lines: list[_Line], tail: list) -> str:
    multi, item_of = _definitions(lines)
    out: list[tuple[str, str | None]] = []  # (code with indentation, trailing comment)
    for n, line in enumerate(lines):
        closes = str(tokens[line.start]) in _CLOSERS
        indent = INDENT * line.level
        comment_indent = INDENT * (line.level + 1) if closes else indent
        for entry in _before(tokens, lines, n, multi, item_of):
            out.append(("", None) if entry is None else (comment_indent + entry, None))
        out.append((indent + line.pad + line.code, line.trailing))
    tail = _collapse(tail)
    while tail and tail[-1] is None:
        tail.pop()
    for entry in tail:
        out.append(("", None) if entry is None else (entry, None))
    return _align_comments(out)


def _definitions(lines: list[_Line]) -> tuple[set[int], list[int]]:
    """The top-level definitions that span more than one line (by their first line), and
    the first line of the definition each line belongs to."""
    multi: set[int] = set()
    item_of: list[int] = []
    item = -1
    for n, line in enumerate(lines):
        if line.item_start:
            item = n
        elif item >= 0:
            multi.add(item)
        item_of.append(item)
    return multi, item_of


def _before(tokens, lines: list[_Line], n: int, multi: set[int], item_of: list[int]) -> list:
    """The comments and blank lines (None) to write before line n: no blank line at the top
    of the file or of a bracket, none before a closer, one around a definition of several lines."""
    line = lines[n]
    before = _collapse(line.before)
    if n == 0 or str(tokens[lines[n - 1].end - 1]) in _OPENERS:
        while before and before[0] is None:
            before.pop(0)
    if str(tokens[line.start]) in _CLOSERS:
        while before and before[-1] is None:
            before.pop()
    if n > 0 and line.item_start and (n in multi or item_of[n - 1] in multi) and None not in before:
        before.insert(0, None)
    return before


def _collapse(entries: list) -> list:
    """Runs of blank lines become one."""
    kept: list = []
    for entry in entries:
        if entry is None and kept and kept[-1] is None:
            continue
        kept.append(entry)
    return kept


def _align_comments(out: list[tuple[str, str | None]]) -> str:
    """Trailing comments on consecutive lines start in one column, two spaces after the
    longest line of the run (as gofmt does)."""
    text: list[str] = []
    n = 0
    while n < len(out):
        if out[n][1] is None:
            text.append(out[n][0])
            n += 1
            continue
        end = n
        while end < len(out) and out[end][1] is not None:
            end += 1
        column = max(len(code) for code, _ in out[n:end]) + 2
        for code, comment in out[n:end]:
            text.append(f"{code.ljust(column)}{comment}" if code else comment)
        n = end
    return "\n".join(text) + "\n"


def _only_comments(trivia: _Trivia) -> str:
    entries = _collapse(trivia.lines)
    while entries and entries[0] is None:
        entries.pop(0)
    while entries and entries[-1] is None:
        entries.pop()
    return "".join(f"{e}\n" if e is not None else "\n" for e in entries)


# -- checking the result ------------------------------------------------------------

class FormatterBug(InternalError):
    """The formatted text would parse differently: refuse to write it."""


def format_source(source: SourceFile) -> str:
    """Format a spec, checking that the result parses to the same tree."""
    from ..parse import parse, parser

    parse(source)  # a file with a syntax error gets the compiler's diagnostic, not ours
    formatted = format_text(source.text)
    if parser().parse(formatted) != parser().parse(source.text):
        raise FormatterBug(f"formatting {source.path} would change its meaning; the file was left as it "
                           "was. This is a bug in cnndsl fmt: please report it with the file.")
    return formatted


def _spec_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files.extend(sorted(path.rglob("*.cnn")) if path.is_dir() else [path])
    return files


def _text(diagnostics: list, sources: dict) -> str:
    from ..report import render
    from . import line_highlighter

    color = sys.stderr.isatty()
    return render(diagnostics, sources, color=color, highlight=line_highlighter() if color else None)


@click.command("fmt")
@click.argument("paths", nargs=-1, required=True, metavar="FILE...")
@click.option("--check", is_flag=True, help="Change nothing; list the files that would change and exit 1.")
def fmt_command(paths: tuple[str, ...], check: bool) -> None:
    """Lay out .cnn files in the one canonical style (a directory: every .cnn in it;
    '-': standard input to standard output)."""
    from ..atomic import write_atomic

    if paths == ("-",):
        source = SourceFile("<stdin>", click.get_text_stream("stdin").read())
        try:
            formatted = format_source(source)
        except CompileError as exc:
            click.echo(_text(exc.diagnostics, {source.path: source}), err=True, nl=False)
            sys.exit(1)
        click.echo(formatted, nl=False)
        if check and formatted != source.text:
            sys.exit(1)
        return
    changed, failed, same = [], [], 0
    for path in _spec_files(paths):
        try:
            source = read_source(path)
            formatted = format_source(source)
        except CompileError as exc:
            sources = {}
            if path.is_file():
                text = path.read_bytes().decode("utf-8", "replace")
                sources = {str(path): SourceFile(str(path), text)}
            click.echo(_text(exc.diagnostics, sources), err=True, nl=False)
            failed.append(path)
            continue
        if formatted == source.text:
            same += 1
            continue
        changed.append(path)
        if check:
            click.echo(f"would reformat {path}")
        else:
            write_atomic(path, formatted)
            click.echo(f"reformatted {path}", err=True)
    verb = "would be reformatted" if check else "reformatted"
    summary = [f"{len(changed)} file(s) {verb}", f"{same} unchanged"]
    if failed:
        summary.append(f"{len(failed)} could not be parsed")
    click.echo(", ".join(summary), err=True)
    if failed or (check and changed):
        sys.exit(1)


__all__ = ["format_source", "format_text", "fmt_command"]
