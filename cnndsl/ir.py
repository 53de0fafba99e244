"""The concrete IR: one network with every name resolved, every repetition expanded,
every optional decided and every argument a value.

`passes/expand.py` builds it from the syntax tree; `passes/shapes.py` returns a copy
with the shape fields filled in; the summary and the code generator read that copy.
Each `Value` keeps both its number and the expression (`cnndsl.expr`) that computes it
from the parameters of the enclosing block or network (`planes * 4`), so that generated
classes take their parameters as constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .expr import Const, Expr
from .source import Span

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Value:
    value: object
    expr: Expr  # how the value is computed from the enclosing parameters

    @classmethod
    def constant(cls, value) -> "Value":
        return cls(value, Const(value))

    @property
    def text(self) -> str:
        """Python source for the value, in terms of the enclosing parameters."""
        return self.expr.text

    @property
    def names(self) -> frozenset[str]:
        """The parameters the value reads."""
        return self.expr.names


@dataclass(frozen=True)
class Stats:
    """What `passes/shapes.py` adds to each node."""

    in_shape: Shape
    out_shape: Shape
    params: int = 0
    macs: int = 0
    rf: int = 1  # receptive field of one output element, in input pixels
    jump: int = 1  # distance in input pixels between neighbouring outputs
    channels: Expr = Const(0)  # the output channels, in the enclosing parameters
    flatten_before: bool = False  # an fc that flattens its volume input
    in_channels: Expr = Const(0)  # the input channels, in the enclosing parameters
    dims: tuple[Expr, ...] | None = None  # the output's H, W in the block's H, W; () flat; None unknown


@dataclass(frozen=True)
class Layer:
    kind: str
    args: tuple[tuple[str, Value], ...]
    name: str | None
    span: Span
    stats: Stats | None = None

    def arg(self, name: str):
        return dict(self.args)[name].value

    @property
    def values(self) -> dict:
        return {k: v.value for k, v in self.args}


@dataclass(frozen=True)
class Seq:
    """A chain. Named: an `nn.Sequential`; unnamed: its items join the enclosing chain."""

    items: tuple["Node", ...]
    name: str | None
    span: Span
    stats: Stats | None = None


@dataclass(frozen=True)
class Concat:
    branches: tuple[Seq, ...]
    span: Span
    stats: Stats | None = None


@dataclass(frozen=True)
class Shortcut:
    kind: str  # "identity", "projection" (1x1 conv, + batch norm if bn) or "pad" (He et al.'s option A)
    name: str | None
    span: Span
    layers: tuple[Layer, ...] = ()  # the projection's conv and batch norm, once shapes are known
    condition: Value | None = None  # when the projection applies, in the block's parameters
    applied: bool = False  # whether it applies in this instance
    bn: bool = True
    stats: Stats | None = None


@dataclass(frozen=True)
class Residual:
    body: Seq
    shortcut: Shortcut
    span: Span
    stats: Stats | None = None


@dataclass(frozen=True)
class Side:
    """An extra output read off the chain (an auxiliary classifier); the chain goes on."""

    node: "Node"
    span: Span
    stats: Stats | None = None
    source: str | None = None  # the earlier member whose output it reads; None: the chain here


@dataclass(frozen=True)
class BlockInstance:
    block: str
    args: tuple[tuple[str, Value], ...]
    body: Seq
    name: str | None
    span: Span
    stats: Stats | None = None


Node = Union[Layer, Seq, Concat, Residual, BlockInstance, Side]


@dataclass(frozen=True)
class BlockInfo:
    name: str
    params: tuple[tuple[str, Value], ...]  # name and default (None: required)
    span: Span


@dataclass(frozen=True)
class Network:
    name: str
    input: Shape
    input_channels: Value
    params: tuple[tuple[str, Value], ...]  # the network's parameters, as compiled
    body: Seq
    span: Span
    blocks: dict = field(default_factory=dict)  # name -> BlockInfo
    switches: tuple[tuple[str, bool], ...] = ()
    source_path: str = ""
    doc: tuple[tuple[str, ...], ...] = ()  # the spec's header comment: paragraphs of lines


def members(seq: Seq) -> list:
    """The items of a chain with its unnamed groups opened: what sits in one scope."""
    out = []
    for item in seq.items:
        if isinstance(item, Seq) and item.name is None:
            out.extend(members(item))
        else:
            out.append(item)
    return out


def elements(shape: Shape) -> int:
    """The number of values in a volume or vector of this shape."""
    out = 1
    for d in shape:
        out *= d
    return out
