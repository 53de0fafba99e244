"""The concrete IR: one network with every name resolved, every repetition expanded,
every optional decided and every argument a value.

`passes/expand.py` builds it from the syntax tree; `passes/shapes.py` returns a copy
with the shape fields filled in; the summary and the code generator read that copy.
Each `Value` keeps both its number and the expression (`cnndsl.expr`) that computes it
from the parameters of the enclosing block or network (`planes * 4`), so that generated
classes take their parameters as constructor arguments. Each node class names its
children in `_fields`, in order, for `cnndsl.traverse`.
"""

from __future__ import annotations

from dataclasses import field
from typing import Union

from .expr import Const, Expr
from .node import node
from .source import Span

Shape = tuple[int, ...]

_CONSTANTS: dict = {}  # (type, value) -> its Value: constants are immutable and shared


def _item_types(value: tuple) -> tuple:
    """The types of a list's items, nested lists by theirs: part of a constant's key."""
    return tuple(_item_types(v) if type(v) is tuple else type(v) for v in value)


@node
class Value:
    value: object
    expr: Expr  # how the value is computed from the enclosing parameters

    @classmethod
    def constant(cls, value) -> "Value":
        # 1 and True are equal keys otherwise; a list's items by their types too ((1, 1) and
        # (1, True) are equal tuples)
        key = (type(value), value) if type(value) is not tuple else (tuple, value, _item_types(value))
        try:
            return _CONSTANTS[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list)
            return cls(value, Const(value))
        if len(_CONSTANTS) >= 4096:
            _CONSTANTS.clear()
        made = _CONSTANTS[key] = cls(value, Const(value))
        return made

    def dump_text(self) -> str:
        """`64`, or `planes * 4 (= 256)` where the source differs from the number."""
        try:
            literal = Const(self.value).text
        except TypeError:  # a value of a block's input shape, computed by the shapes pass
            return f"{self.text} (= pending)"
        return literal if self.text == literal else f"{self.text} (= {literal})"

    @property
    def text(self) -> str:
        """Python source for the value, in terms of the enclosing parameters."""
        return self.expr.text

    @property
    def names(self) -> frozenset[str]:
        """The parameters the value reads."""
        return self.expr.names


@node
class Stats:
    """What `passes/shapes.py` adds to each node."""

    in_shape: Shape
    out_shape: Shape
    params: int = 0
    macs: int = 0
    rf: int | tuple[int, int] = 1  # receptive field of one output element, in input pixels; (h, w) if they differ
    jump: int | tuple[int, int] = 1  # distance in input pixels between neighbouring outputs
    channels: Expr = Const(0)  # the output channels, in the enclosing parameters
    flatten_before: bool = False  # an fc that flattens its volume input
    in_channels: Expr = Const(0)  # the input channels, in the enclosing parameters
    dims: tuple[Expr, ...] | None = None  # the output's H, W in the block's H, W; () flat; None unknown

    @property
    def rf_text(self) -> str:
        """The receptive field as readers print it: `7x7`, or `7x11` where the axes differ."""
        return "x".join(map(str, self.rf)) if isinstance(self.rf, tuple) else f"{self.rf}x{self.rf}"

    def dump_text(self) -> str:
        shape = "x".join(map(str, self.in_shape)) + " -> " + "x".join(map(str, self.out_shape))
        extra = " flatten_before" if self.flatten_before else ""
        return (f"[{shape} params={self.params} macs={self.macs} rf={self.rf} jump={self.jump} "
                f"channels={self.channels.text!r} in_channels={self.in_channels.text!r}{extra}]")


@node
class Layer:
    _fields = ()
    kind: str
    args: tuple[tuple[str, Value], ...]
    name: str | None
    span: Span
    stats: Stats | None = None
    condition: Value | None = None  # kept by `X?(condition)`: it, in the enclosing block's parameters

    def arg(self, name: str):
        return dict(self.args)[name].value

    @property
    def values(self) -> dict:
        return {k: v.value for k, v in self.args}


@node
class Loop:
    """A block whose whole body is one repetition `X * n for i`: its index and count (an
    expression of the block's parameters), so that the code generator can write the loop
    that a hand-written class has (DenseNet's dense block) where the copies allow it."""

    index: str
    count: Value


@node
class Seq:
    """A chain. Named: an `nn.Sequential`; unnamed: its items join the enclosing chain."""

    _fields = ("items",)

    items: tuple["Node", ...]
    name: str | None
    span: Span
    stats: Stats | None = None
    loop: Loop | None = None  # a block's body that is one repetition (see Loop)
    condition: Value | None = None  # kept by `X?(condition)`: it, in the enclosing block's parameters


@node
class Concat:
    _fields = ("branches",)
    branches: tuple[Seq, ...]
    span: Span
    stats: Stats | None = None
    skips: tuple[str, ...] = ()  # earlier elements' outputs, first: cropped or padded to the branches' HxW
    fits: tuple[str, ...] = ()  # for each skip, once shapes are known: "", "crop" or "pad"
    split: bool = False  # each branch reads its equal share of the channels (ShuffleNet's x.chunk)
    name: str | None = None  # `convs: concat {...}`: the branches in one nn.ModuleList, numbered
    op: str = "cat"  # "add": the branches summed; "mul": multiplied, each size 1 or the largest
    sources: tuple[str | None, ...] = ()  # per branch, `from(name)`: the element it reads (None: the input)
    condition: Value | None = None  # kept by `X?(condition)`: it, in the enclosing block's parameters


@node
class Shortcut:
    _fields = ("layers",)
    kind: str  # "identity", "projection" (1x1 conv, + batch norm if bn) or "pad" (He et al.'s option A)
    name: str | None
    span: Span
    layers: tuple[Layer, ...] = ()  # the projection's conv and batch norm, once shapes are known
    condition: Value | None = None  # when the projection applies, in the block's parameters
    applied: bool = False  # whether it applies in this instance
    bn: bool = True
    stats: Stats | None = None
    first: bool = False  # its modules are registered before the body's (RegNet's proj before f)


@node
class Residual:
    _fields = ("body", "shortcut")
    body: Seq
    shortcut: Shortcut
    span: Span
    stats: Stats | None = None
    condition: Value | None = None  # `residual { ... }?(condition)`: when it is on, in the block's parameters


@node
class Gate:
    """`x * body(x)`: the body's output (a per-channel scale, say) broadcast over the input."""

    _fields = ("body",)

    body: Seq
    span: Span
    stats: Stats | None = None


@node
class Side:
    """An extra output read off the chain (an auxiliary classifier); the chain goes on."""

    _fields = ("node",)

    node: "Node"
    span: Span
    stats: Stats | None = None
    source: str | None = None  # the earlier member whose output it reads; None: the chain here


@node
class BlockInstance:
    _fields = ("body",)
    block: str
    args: tuple[tuple[str, Value], ...]
    body: Seq
    name: str | None
    span: Span
    stats: Stats | None = None
    condition: Value | None = None  # kept by `X?(condition)`: it, in the enclosing block's parameters
    reads: tuple[tuple[str, str], ...] = ()  # `reads(backbone.4)`: (the block's input name, the element or path)
    read_channels: tuple[Value, ...] = ()  # once shapes are known: each read's channels, in the caller's terms


@node
class Unknown:
    """An element the expander could not make (an unknown layer name, a bad argument; its
    error is reported): it stands where the element was, with an unknown output, so that
    the shapes before it and beside it are still inferred. Only in a tree with errors."""

    _fields = ()
    span: Span
    name: str | None = None
    stats: Stats | None = None


Node = Union[Layer, Seq, Concat, Residual, Gate, BlockInstance, Side, Unknown]


@node
class BlockInfo:
    _fields = ()
    name: str
    params: tuple[tuple[str, Value], ...]  # name and default (None: required)
    span: Span
    reads: tuple[str, ...] = ()  # `reads(low)`: the block's inputs besides its chain's value


def call_args(args, defaults: dict, changed):
    """The arguments a block call writes, as (name, value, by_name): each of `args` (name,
    Value) without a default in `defaults` by position, one with a default by name where
    `changed(value, default)`; the rest are left out."""
    for name, value in args:
        default = defaults.get(name)
        if default is None:
            yield name, value, False
        elif changed(value, default):
            yield name, value, True


def call_text(callee: str, args, defaults: dict, show, changed) -> str:
    """A block call as the generated code and the diagram write it: `Bottleneck(64, 128, stride=2)`:
    `call_args`, each shown as `show(value)`."""
    return format_call(callee, call_args(args, defaults, changed), show)


def format_call(callee: str, passed, show, leading: tuple[str, ...] = ()) -> str:
    """`call_text` of the arguments `call_args` gave (`passed`): `leading` texts first."""
    parts = list(leading) + [f"{name}={show(value)}" if by_name else show(value) for name, value, by_name in passed]
    return f"{callee}({', '.join(parts)})"


@node
class Output:
    """A named output: `outputs(out=classifier)` gives the forward's dict the key `out`
    for the output of the member or side output `classifier`."""

    _fields = ()
    key: str
    element: str
    span: Span
    shape: Shape | None = None  # once shapes are known


@node
class InitRule:
    """A rule of the network's `init { ... }` as written (ast.InitTarget targets, ast.Arg
    arguments: they name the module's attributes, `out_features`, so they stay syntax),
    its condition computed in the network's parameters. passes/inits.py checks it."""

    _fields = ()
    targets: tuple
    args: tuple
    span: Span
    condition: Value | None = None


@node
class InitCall:
    """`nn.init.<function>(tensor, *args)`: each argument (keyword or None, ast expression)."""

    function: str  # nn.init's name: "kaiming_normal_"
    args: tuple[tuple[str | None, object], ...]


@node
class InitStep:
    """One checked init rule's target, as the code generator writes it: the layers of `kinds`
    among the modules of `path` (() the network), the module at `path` (kinds empty), or
    the last norms of residual bodies (`norms`: (owner block instance or None, path from
    it), each)."""

    kinds: tuple[str, ...]
    path: tuple[str, ...]
    weight: InitCall | None
    bias: InitCall | None
    span: Span
    condition: Value | None = None
    norms: tuple = ()
    last_norm: bool = False


@node
class Network:
    _fields = ("body",)
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
    input_span: Span | None = None  # the `input` line
    outputs: tuple[Output, ...] = ()  # several named outputs (forward returns a dict); () for one
    structural: tuple[str, ...] = ()  # parameters a count, a condition or a label read: fixed in its class
    init: tuple[InitRule, ...] = ()  # the `init { ... }` rules, as expanded
    init_steps: tuple[InitStep, ...] = ()  # the rules checked against the named IR (passes/inits.py)

    @property
    def output_shapes(self) -> dict[str, Shape]:
        """Each output's shape by key: the named outputs, or the chain's end as `out`."""
        if self.outputs:
            return {o.key: o.shape for o in self.outputs}
        return {"out": self.body.stats.out_shape if self.body.stats else None}


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
