"""Source text and positions: the first stage of the pipeline.

Every later stage points back into a `SourceFile` through a `Span`, so that a
diagnostic raised anywhere (parser, passes, code generator) can show the file, the
line, the column and the text under a caret.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from operator import sub
from pathlib import Path

from .node import node

MAX_SOURCE_BYTES = 1 << 20  # 1 MiB: a spec larger than this is hostile or a mistake
_NEWLINE = re.compile("\n")


@node  # a frozen record (node.py): every node of the tree has one, made cheaply
class Span:
    """A range of a source file: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SourceFile:
    path: str
    text: str
    _line_starts: tuple[int, ...] = field(default=(), compare=False, repr=False)
    network: str | None = None  # the network a built-in's name selects (a variant); None: the file's last

    def __post_init__(self) -> None:
        starts = (0, *map(re.Match.end, _NEWLINE.finditer(self.text)))  # each line's first offset
        object.__setattr__(self, "_line_starts", starts)

    def renamed(self, path: str, network: str | None = None) -> SourceFile:
        """The same text under another name (a built-in, an imported file: named as its
        spans show it), made without finding its lines again."""
        new = object.__new__(SourceFile)
        new.__dict__.update(self.__dict__, path=path, network=network)
        return new

    def line_text(self, line: int) -> str:
        if not 1 <= line <= len(self._line_starts):
            return ""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].rstrip("\r")

    def header_comment(self) -> tuple[tuple[str, ...], ...]:
        """The comment lines that open the file, without their `#`, as paragraphs (a `#`
        line alone separates them): the spec's own account of itself."""
        paragraphs: list[list[str]] = [[]]
        for line in self.text.split("\n"):
            line = line.strip()
            if not line.startswith("#"):
                break
            line = line[1:].removeprefix(" ").rstrip()
            if line:
                paragraphs[-1].append(line)
            elif paragraphs[-1]:
                paragraphs.append([])
        return tuple(tuple(p) for p in paragraphs if p)

    def comment_above(self, line: int) -> tuple[str, ...]:
        """The comment lines right above `line` (1-based), without their `#`: what a
        declaration says of itself (a variant's one-line account)."""
        found: list[str] = []
        while line > 1 and self.line_text(line - 1).lstrip().startswith("#"):
            line -= 1
            found.insert(0, self.line_text(line).strip()[1:].removeprefix(" ").rstrip())
        return tuple(found)

    def span_at(self, offset: int, end: int | None = None) -> Span:
        line, col = self.position(offset)
        end_line, end_col = self.position(offset + 1 if end is None else end)
        return Span(self.path, line, col, end_line, end_col)

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    @cached_property
    def origins(self) -> tuple[int, ...]:
        """origins[line]: the offset just before the line's column 1 (`origins[0]` is 0), so
        that an offset on that line is at column `offset - origins[line]`: the parser places
        every token by it, in C (`map`)."""
        return (0, *map(sub, self._line_starts, repeat(1)))

    @property
    def whole(self) -> Span:
        return Span(self.path, 1, 1, 1, 2)


class SourceError(Exception):
    """A spec that cannot be read as text (missing, too large, not UTF-8). A plain value:
    `compiler.load` and `compiler.source_from_text` turn it into a `CompileError`."""

    def __init__(self, span: Span, message: str, hint: str | None = None) -> None:
        super().__init__(f"{span}: {message}")
        self.span, self.message, self.hint = span, message, hint


def read_source(path: str | Path) -> SourceFile:
    """Read a spec as UTF-8; size and encoding problems raise `SourceError`."""
    path = Path(path)
    name = display_name(path)
    nowhere = Span(name, 1, 1, 1, 1)
    try:
        with open(path, "rb") as handle:  # bounded by the bytes read: st_size is 0 for /dev/zero or a pipe
            data = handle.read(MAX_SOURCE_BYTES + 1)
    except FileNotFoundError:
        raise SourceError(nowhere, f"no such file: {name}",
                          "give a path to a .cnn file or the name of a built-in (`cnndsl list`)") from None
    except IsADirectoryError:
        raise SourceError(nowhere, f"{name} is a directory, not a spec") from None
    except OSError as exc:
        raise SourceError(nowhere, f"cannot read {name}: {exc.strerror}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(nowhere, f"file is over the {MAX_SOURCE_BYTES:,}-byte limit",
                          "split the spec, or check that this is the file you meant")
    return decode_source(name, data)


def display_name(path: str | Path) -> str:
    """A file name as printable text: bytes that are not UTF-8 (a POSIX name may hold any)
    shown as \\xNN escapes, so that every diagnostic and message can be printed."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def decode_source(name: str, data: bytes) -> SourceFile:
    if len(data) > MAX_SOURCE_BYTES:
        raise SourceError(Span(name, 1, 1, 1, 1),
                          f"source is {len(data):,} bytes, over the {MAX_SOURCE_BYTES:,}-byte limit")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8", "replace")
        line = prefix.count("\n") + 1
        col = len(prefix) - (prefix.rfind("\n") + 1) + 1
        raise SourceError(Span(name, line, col, line, col + 1), f"invalid UTF-8 byte 0x{data[exc.start]:02x}",
                          "save the file as UTF-8") from None
    return SourceFile(name, text)
