"""The syntax tree: what the user wrote, as frozen records (`node.py`) with a `Span` each.

`lower.py` builds it from Lark's parse tree; the passes read it and never change it.
Each class names its children in `_fields`, in source order, as CPython's `ast` does:
`cnndsl.traverse` walks, visits and rebuilds the tree from those alone.
"""

from __future__ import annotations

from typing import Union

from .node import node
from .source import Span


# -- expressions ---------------------------------------------------------------------

@node
class Num:
    _fields = ()
    value: int | float
    span: Span


@node
class Str:
    _fields = ()
    value: str
    span: Span


@node
class Bool:
    _fields = ()
    value: bool
    span: Span


@node
class Var:
    _fields = ()
    name: str
    span: Span


@node
class BinOp:
    _fields = ("left", "right")
    op: str  # one of + - * / // % **, == != < <= > >=, and or
    left: "Expr"
    right: "Expr"
    span: Span


@node
class Neg:
    _fields = ("operand",)
    operand: "Expr"
    span: Span


@node
class Not:
    _fields = ("operand",)
    operand: "Expr"
    span: Span


@node
class IfElse:
    """`then if test else orelse`, as Python writes it."""

    _fields = ("then", "test", "orelse")
    then: "Expr"
    test: "Expr"
    orelse: "Expr"
    span: Span


@node
class Index:
    """`base[index]`: `cfg[i]`, `cfg[i][1]`."""

    _fields = ("base", "index")
    base: "Expr"
    index: "Expr"
    span: Span


@node
class FuncCall:
    """A function in an expression: a built-in (`max(8, c)`) or a `def`."""

    _fields = ("args",)
    name: str
    args: tuple["Arg", ...]
    span: Span
    name_span: Span


@node
class ListExpr:
    """`[6, 12, 24, 16]` (kind "list") or `(3, 5)` (kind "tuple"); both are tuples as values."""

    _fields = ("items",)
    items: tuple["Expr", ...]
    kind: str
    span: Span


@node
class InputAttr:
    """`input.channels`, `input.height`, `input.width`: the shape of the enclosing block's
    input (in a network: the network's input)."""

    _fields = ()
    attr: str
    span: Span


Expr = Union[Num, Str, Bool, Var, BinOp, Neg, Not, IfElse, Index, FuncCall, ListExpr, InputAttr]


# -- chains ---------------------------------------------------------------------------

@node
class Arg:
    _fields = ("value",)
    name: str | None  # None for a positional argument
    value: Expr
    span: Span


@node
class Call:
    """`conv(64, 3, pad=1)` or `Bottleneck(128, stride=2)`."""

    _fields = ("args",)

    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span
    reads: tuple[str, ...] = ()  # `Head(21) reads(backbone.4)`: a block's other inputs, by name or path


@node
class Ref:
    """A bare name: `relu`, `POOL`, `INPUT`, `projection`."""

    _fields = ()

    name: str
    span: Span


@node
class Group:
    """`[a -> b]`: one element; each line inside continues the chain."""

    _fields = ("chains",)

    chains: tuple["Chain", ...]
    span: Span


@node
class Repeat:
    """`X * n`, or `X * n for i`: copy k (0 to n-1) sees i = k in its arguments and labels."""

    _fields = ("node", "count")
    node: "Node"
    count: Expr
    span: Span
    index: str | None = None
    index_span: Span | None = None


@node
class Optional:
    """`X?` (its switch is named after X), `X?switch`, or `X?(condition)`: kept where the
    condition, an expression of the enclosing parameters, is true (not a switch)."""

    _fields = ("node", "condition")

    node: "Node"
    span: Span
    switch: str | None = None
    condition: "Expr | None" = None


@node
class Side:
    """`side X`: X reads the chain's value and gives an extra output (an auxiliary
    classifier); the chain goes on with the value X read. `side(name) X` reads the
    output of the earlier element `name` instead, and is registered where it is written."""

    _fields = ("node",)

    node: "Node"
    span: Span
    source: str | None = None


@node
class Concat:
    """Parallel branches joined on channels; each line of the body is a branch.
    `concat(enc4)`: the outputs of the named earlier elements first (a U-Net's skips,
    cropped or padded to the branches' size), then the branches, or the chain's value
    where there is no body."""

    _fields = ("branches",)

    branches: tuple["Chain", ...]
    span: Span
    skips: tuple[str, ...] = ()
    split: bool = False  # `split { ... }`: the channels divided equally among the branches
    op: str = "cat"  # "add" (`add { ... }`: the branches summed) or "mul" (multiplied, broadcast)
    sources: tuple[str | None, ...] = ()  # per branch, `from(name)`: what it reads (None: the input)


@node
class Shortcut:
    _fields = ("node",)
    label: str | None
    node: Call | Ref
    span: Span
    first: bool = False  # `residual shortcut proj: projection {...}`: its modules come before the body's


@node
class Residual:
    """`y = body(x) + shortcut(x)`; the lines of the body form one chain."""

    _fields = ("body", "shortcut")

    body: tuple["Chain", ...]
    shortcut: Shortcut | None
    span: Span


@node
class Gate:
    """`y = x * body(x)`, the body's output broadcast over the input (squeeze-and-excitation);
    the lines of the body form one chain."""

    _fields = ("body",)

    body: tuple["Chain", ...]
    span: Span


@node
class InputDecl:
    _fields = ("dims",)
    dims: tuple[Expr, ...]
    span: Span


Node = Union[Call, Ref, Group, Repeat, Optional, Concat, Residual, Gate, Side]


@node
class Element:
    """`label: node`. A quoted label (`"block1-0": ...`) may be any key; one with `{expr}`
    parts (`"denselayer{i + 1}"`) has them in `template`: its text pieces and expressions,
    computed where the element is expanded (`label` holds the text as written)."""

    _fields = ("node",)
    label: str | None
    node: Node
    span: Span
    label_span: Span | None = None
    quoted: bool = False
    template: tuple | None = None  # (str | Expr, ...), for a label with {expr} parts


@node
class Chain:
    _fields = ("elements",)
    elements: tuple[Element, ...]
    span: Span


# -- definitions ----------------------------------------------------------------------

@node
class Param:
    _fields = ("default",)
    name: str
    default: Expr | None
    span: Span


@node
class LetDef:
    _fields = ("chain",)
    name: str
    chain: Chain
    span: Span


@node
class DefDef:
    """`def name(params) = expr` (a function) or `def name = expr` (a constant, params None)."""

    _fields = ("params", "body")
    name: str
    params: tuple[Param, ...] | None
    body: Expr
    span: Span
    name_span: Span


@node
class BlockDef:
    _fields = ("params", "body")
    name: str
    params: tuple[Param, ...]
    body: tuple[Chain, ...]
    span: Span
    name_span: Span
    reads: tuple[str, ...] = ()  # `block Head(...) reads(low)`: inputs besides the chain's value


@node
class Output:
    """`out=classifier` in `outputs(...)`: the key the forward's dict gives the output of
    the element (a member or a side output); `box` alone is `box=box`."""

    _fields = ()
    key: str
    element: str
    span: Span


@node
class Outputs:
    _fields = ("items",)
    items: tuple[Output, ...]
    span: Span


@node
class InitTarget:
    """What an init rule sets: the layers of a kind (`conv`), `last_norm` (the last norm of
    each residual body), the module at a label path (`"classifier.1"`), or the layers of a
    kind inside one (`"backbone" conv`)."""

    _fields = ()
    kind: str | None  # None: the module at `path` itself
    path: str | None  # a quoted label path, "AuxLogits.fc"; None: the whole network
    span: Span


@node
class InitRule:
    """`conv, fc: kaiming_normal(mode="fan_out"), bias=zeros`, or `last_norm?(zero_init): zeros`:
    the weight's init (the positional argument, or `weight=`) and the bias's. The arguments
    are read by passes/inits.py, not by the other passes: they are the module's (`m.out_features`)."""

    _fields = ()
    targets: tuple[InitTarget, ...]
    args: tuple[Arg, ...]
    span: Span
    condition: Expr | None = None  # `?(cond)`: an expression of the network's parameters


@node
class Init:
    """A network's `init { rules }` section, one rule a line; later rules win."""

    _fields = ()
    rules: tuple[InitRule, ...]
    span: Span


@node
class NetworkDef:
    _fields = ("params", "input", "body")
    name: str
    params: tuple[Param, ...]
    input: InputDecl | None
    body: tuple[Chain, ...]
    span: Span
    name_span: Span
    outputs: Outputs | None = None  # several named outputs: forward returns a dict
    variant: str | None = None  # the name of the variant declaration this network is (passes/variants.py)
    init: Init | None = None  # its weight initialisation (passes/inits.py)


@node
class VariantDef:
    """`network resnet50 = ResNet(layers = [3, 4, 6, 3])`: the network `family` with these
    arguments as its parameters' defaults, under a name of its own."""

    _fields = ("args",)
    name: str
    family: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span
    family_span: Span


@node
class ImportDef:
    """`from resnet import Bottleneck` (a built-in, by name) or `from "blocks.cnn" import A, B`
    (a file, relative to the importing one): `quoted` tells which."""

    _fields = ()
    module: str
    quoted: bool
    names: tuple[tuple[str, Span], ...]
    span: Span
    module_span: Span


@node
class Program:
    _fields = ("defs", "lets", "blocks", "networks", "variants")
    lets: tuple[LetDef, ...]
    blocks: tuple[BlockDef, ...]
    networks: tuple[NetworkDef, ...]
    span: Span
    defs: tuple[DefDef, ...] = ()
    variants: tuple[VariantDef, ...] = ()
    imports: tuple[ImportDef, ...] = ()
