"""How the generated code reads: shape comments, stages, docstrings.

A shape comment stands where the shape changes, as torchvision's GoogLeNet notes them;
in a block class it is in the block's own terms (`(planes * 4) x H x W`), true for
every use of the class, and in the network it is the numbers. `forward` is set out in
stages, a blank line between them, as torchvision's ResNet is: a stage is a run of
statements at one spatial size, and the residual's bookkeeping (keeping the identity,
projecting it, adding it) and the side outputs stand apart.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass

from .. import ir
from ..expr import Const, Expr, Name, Prec
from ..layers import RULES, channels_last
from ..passes.shapes import dim_names, fmt_shape
from ..traverse import evolve

# Statements that stand apart from their neighbours, and those that open a stage of their own.
APART = ("save", "project", "pad", "side", "branch")
OPENS = ("add", "mul")


@functools.lru_cache(maxsize=4096)  # a block's shapes, once for all its uses
def shape_text(channels: Expr, dims: tuple[Expr, ...] | None, last: bool = False) -> str:
    """`64x56x56` where every part is a number, else `(planes * 4) x H x W`; channels `last`:
    `H x W x (4 * dim)`, as the tensor is held after permute(0, 2, 3, 1)."""
    parts = tuple(Const(p.evaluate()) if not p.names else p
                  for p in (channels,) + (dims if dims is not None else (Name("?"), Name("?"))))
    if last and len(parts) == 3:
        parts = parts[1:] + parts[:1]
    if all(isinstance(p, Const) for p in parts):
        return "x".join(p.text for p in parts)
    if len(parts) == 1:
        return channels.text
    return " x ".join(p.text if p.precedence == Prec.ATOM else f"({p.text})" for p in parts)


MAX_NOTE = 80  # characters of a shape comment (a bottleneck's width in its parameters, ResNeXt's, is 90)


@dataclass
class ShapeNotes:
    """The shape last commented in one chain, to comment only where it changes."""

    symbolic: bool  # a block class: shapes as expressions of its parameters and input size
    current: object = None

    @classmethod
    def network(cls, network: ir.Network) -> "ShapeNotes":
        return cls(False, tuple(network.input))

    @classmethod
    def block(cls, node: ir.BlockInstance) -> "ShapeNotes":
        notes = cls(True)
        notes.current = notes.key(block_input(node))
        return notes

    def fork(self) -> "ShapeNotes":
        return ShapeNotes(self.symbolic, self.current)

    def key(self, stats: ir.Stats) -> object:
        return (stats.channels, stats.dims) if self.symbolic else tuple(stats.out_shape)

    def text(self, stats: ir.Stats) -> str:
        return shape_text(stats.channels, stats.dims, channels_last(stats.out_shape)) if self.symbolic \
            else fmt_shape(stats.out_shape)

    def stage(self, stats: ir.Stats) -> object:
        """The spatial size, which a new stage changes; () once flat."""
        return (stats.dims or ()) if self.symbolic else tuple(stats.out_shape[1:])

    def note(self, stats: ir.Stats | None) -> str:
        """The comment for a statement giving this shape: "" where it is the one before."""
        if stats is None:
            return ""
        key = self.key(stats)
        if key == self.current:
            return ""
        self.current = key
        text = self.text(stats)
        return text if len(text) <= MAX_NOTE else ""  # a shape longer than a line says nothing at a glance


def block_input(node: ir.BlockInstance) -> ir.Stats:
    """A block's input in its own terms: in_channels x H x W (or in_channels, flat)."""
    height, width = dim_names(node)
    dims = (Name(height), Name(width)) if len(node.stats.in_shape) == 3 else ()
    return ir.Stats(node.stats.in_shape, node.stats.in_shape, channels=Name("in_channels"), dims=dims)


def flattened(first: ir.Layer) -> ir.Stats:
    """The shape after the flatten that an fc at `first` asks for."""
    stats = first.stats
    flat, _ = RULES["flatten"].shape(stats.in_shape, {})
    channels = RULES["flatten"].channels(stats.in_shape, stats.in_channels, {})
    return ir.Stats(stats.in_shape, flat, channels=channels, dims=())


def staged(forward: list) -> list:
    """The statements with `blank` set where a new stage begins."""
    if any(stmt.kind == "join" for stmt in forward):
        return _levels(forward)
    out = []
    previous, previous_stage = None, None
    for stmt in forward:
        stage = stmt.stage
        blank = previous is not None and (
            stmt.kind in APART or previous.kind in APART or stmt.kind in OPENS
            or (stage not in (None, ()) and previous_stage is not None and stage != previous_stage))
        out.append(evolve(stmt, blank=True) if blank else stmt)
        previous = stmt
        if stage is not None:
            previous_stage = stage
    return out


def _levels(forward: list) -> list:
    """A network with skips (a U-Net) in its levels, as the paper's figure draws them: a level
    going down ends where its output is kept for a skip; one going up starts at the statement
    before the concat that reads a skip."""
    out = []
    for index, stmt in enumerate(forward):
        joins = index + 1 < len(forward) and forward[index + 1].kind == "join"
        blank = index > 0 and (forward[index - 1].kind == "keep" or joins)
        out.append(evolve(stmt, blank=True) if blank else stmt)
    return out


def block_doc(name: str, node: ir.BlockInstance) -> tuple[str | tuple[str, ...], ...]:
    start, end = block_input(node), node.body.stats
    first = f"Block `{name}`: {shape_text(start.channels, start.dims)} to"
    last = f"{shape_text(end.channels, end.dims)}."
    return (f"{first} {last}",) if len(first) + len(last) < 85 else ((first, last),)


def wrap_doc(paragraphs) -> tuple[str, ...]:
    """A docstring's lines, a blank line between paragraphs: a string is wrapped at 85
    columns (92 with the indent and the opening quotes), a tuple of lines (a spec's
    comment) kept as written but for lines past that."""
    lines: list[str] = []
    for paragraph in paragraphs:
        if lines:
            lines.append("")
        if isinstance(paragraph, tuple):
            for line in paragraph:
                lines.extend(_wrapped(line) if len(line) > 85 else [line])
        else:
            lines.extend(_wrapped(paragraph) or [""])
    return tuple(lines)


_SPACES = frozenset("\t\n\x0b\x0c\r")  # the whitespace textwrap turns into spaces, but the space


def _wrapped(text: str, width: int = 85) -> list[str]:
    """`textwrap.wrap(text, width, break_on_hyphens=False)`, filled greedily without its regular
    expression for text whose words stand one space apart, none longer than a line (a
    docstring's sentences); textwrap's own for the rest."""
    words = text.split(" ")
    if not text or _SPACES.intersection(text) or "" in words or max(map(len, words)) > width:
        return textwrap.wrap(text, width, break_on_hyphens=False)
    lines = []
    line = [words[0]]
    length = len(words[0])
    for word in words[1:]:
        if length + 1 + len(word) <= width:
            line.append(word)
            length += 1 + len(word)
        else:  # the space between ends the line, dropped as textwrap drops it
            lines.append(" ".join(line))
            line = [word]
            length = len(word)
    lines.append(" ".join(line))
    return lines
