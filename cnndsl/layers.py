"""The one table of layer rules.

For each layer kind: its arguments and their types, its output shape, its parameter
count, its multiply-accumulates, its receptive-field step and its PyTorch constructor.
The shape checker (`passes/shapes.py`), the summary and the code generator read this
table and nothing else; adding a layer kind means adding one `LayerRule` here.

Shapes are tuples: `(C, H, W)` for a spatial volume, `(F,)` for a flat vector. The
formulas are the notes': `W2 = (W1 - F + 2P)/S + 1`, with a dilated filter spanning
`D*(F-1)+1`, floored as PyTorch floors it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .expr import Binary, Const, Expr
Shape = tuple[int, ...]
Dims = tuple[Expr, ...]
REQUIRED = object()


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: str  # "int", "float", "bool", "str"
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    doc: str = ""


class ShapeProblem(Exception):
    """A rule cannot produce an output for this input: an error for the checker."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Note:
    """A warning a rule attaches to a shape that it could compute."""

    message: str
    hint: str
    code: str


@dataclass(frozen=True)
class Torch:
    """How the code generator constructs the layer: `callee(*positional, **keywords)`."""

    callee: str
    positional: tuple[Expr, ...]
    keywords: tuple[tuple[str, Expr], ...] = ()
    helper: str | None = None  # a class the generated file must define (MinPool2d, Maxout)


@dataclass(frozen=True)
class LayerRule:
    kind: str
    doc: str
    args: tuple[ArgSpec, ...]
    shape: Callable[[Shape, dict], tuple[Shape, list[Note]]]
    params: Callable[[Shape, dict], int] = lambda s, a: 0
    macs: Callable[[Shape, Shape, dict], int] = lambda i, o, a: 0
    window: Callable[[Shape, dict], tuple[int, int]] = lambda s, a: (1, 1)  # (extent, stride)
    torch: Callable[[Shape, dict, dict], Torch] = None  # (in_shape, values, exprs)
    base_name: str = "layer"  # for attributes the user did not name: conv1, conv2, ...
    flattens: bool = False  # takes a vector; a volume before it is flattened
    channels: Callable[[Shape, Expr, dict], Expr] = lambda s, c, t: c  # output channels, as an expression
    # The output's height and width as expressions of the input's (`(H - 1) // stride + 1`),
    # for comments in block classes: (in_dims, values, exprs); () once flat, None if unknown.
    dims: Callable[[Dims, dict, dict], Dims | None] = lambda d, v, t: d
    inplace: bool = False  # may overwrite its input (`inplace=True`) where the code generator finds it fresh
    fresh_output: bool = False  # its backward does not read its output, so a ReLU after it may overwrite it
    aliases: tuple[str, ...] = field(default=())

    def arg(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args if a.name == name), None)


# -- shape arithmetic -----------------------------------------------------------------

def _spatial(shape: Shape, kind: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeProblem(
            f"{kind} needs a CxHxW volume, but its input is a flat vector of {shape[0]}",
            f"move the {kind} before the first fc or flatten")
    return shape


# Where (W - F + 2P)/S + 1 is not whole, PyTorch floors it and the checker warns;
# `floor=true` says the spec means it (torchvision's ResNet stem does, on 224x224).
FLOOR = ArgSpec("floor", "bool", False, doc="floor a size that does not fit, without a warning")


def window_output(kind: str, size: int, extent: int, stride: int, pad: int, ceil: bool,
                  notes: list[Note], axis: str, floor: bool = False) -> int:
    """One spatial axis through a sliding window: the notes' (W - F + 2P)/S + 1."""
    padded = size + 2 * pad
    if extent > padded:
        what = "filter" if kind == "conv" else "window"
        raise ShapeProblem(
            f"{what} of {extent} is larger than its input of {size}"
            + (f" padded by {pad} to {padded}" if pad else ""),
            f"use a smaller {kind} size, more padding, or a larger input")
    span = padded - extent
    if ceil:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + pad:  # PyTorch: the last window must start inside
            out -= 1
    else:
        out = span // stride + 1
        # PyTorch floors the size and the last span % stride padded rows go unread; only
        # when that reaches past the zero padding into the input is something lost.
        lost = span % stride - pad
        if lost > 0 and not floor:
            notes.append(Note(
                f"{kind} does not fit: ({size} - {extent} + 2*{pad})/{stride} + 1 = "
                f"{span / stride + 1:.3g} on the {axis} axis; PyTorch floors it to {out} and "
                f"never reads the last {lost} row(s)/column(s) of the input",
                f"choose pad or stride so that {size} - {extent} + 2*pad is a multiple of {stride}, "
                "or say floor=true if that is meant",
                "fit"))
    if out <= 0:
        raise ShapeProblem(f"{kind} output size is {out}", "use a smaller stride or more padding")
    return out


def _windowed(kind: str, in_shape: Shape, a: dict, extent: int, ceil: bool = False):
    c, h, w = _spatial(in_shape, kind)
    notes: list[Note] = []
    stride, pad = a["stride"], a["pad"]
    floor = a.get("floor", False)
    ho = window_output(kind, h, extent, stride, pad, ceil, notes, "height", floor)
    wo = window_output(kind, w, extent, stride, pad, ceil, notes, "width", floor)
    if h == w and len(notes) == 2:
        notes = notes[:1]
    return (c, ho, wo), notes


def _extent(a: dict) -> int:
    return a.get("dilation", 1) * (a["size"] - 1) + 1


def _window_dims(in_dims: Dims | None, e: dict, ceil: bool = False) -> Dims | None:
    """(W - F + 2P)/S + 1 on expressions, floored; None where ceil mode makes it depend on
    where the last window starts."""
    if not in_dims:
        return None
    stride = e["stride"] if e.get("stride") not in (None, Const(None)) else e["size"]
    if ceil and stride != Const(1):
        return None
    extent = e.get("dilation", Const(1)) * (e["size"] - 1) + 1
    span = [d + Const(2) * e["pad"] - extent for d in in_dims]
    return tuple(x + 1 if stride == Const(1) else x // stride + 1 for x in span)


def _pool_defaults(a: dict) -> dict:
    return {**a, "stride": a["stride"] if a.get("stride") is not None else a["size"]}


def _flat(shape: Shape) -> int:
    return math.prod(shape)


def _flat_channels(shape: Shape, channels: Expr) -> Expr:
    """The features of a flattened volume, `512 * 7 * 7` as torchvision writes it."""
    if len(shape) == 1:
        return channels
    c, h, w = shape
    if h == w == 1:
        return channels
    return Binary("*", Binary("*", channels, Const(h)), Const(w))


def _kw(values: dict, exprs: dict, spec: tuple[tuple[str, str, Any], ...]) -> tuple[tuple[str, Expr], ...]:
    """Keyword arguments for PyTorch, leaving out those equal to PyTorch's default unless
    they read a parameter (`stride`), which the generated class must then pass on."""
    out = []
    for ours, theirs, torch_default in spec:
        if ours in values and (values[ours] != torch_default or exprs[ours].names):
            out.append((theirs, exprs[ours]))
    return tuple(out)


# -- the rules --------------------------------------------------------------------------

def _conv_shape(s: Shape, a: dict):
    c = _spatial(s, "conv")[0]
    if a["groups"] < 1 or c % a["groups"] or a["filters"] % a["groups"]:
        raise ShapeProblem(
            f"groups={a['groups']} must divide both the input channels ({c}) and the filters ({a['filters']})",
            "choose groups as a common divisor of the two")
    if a["padding_mode"] != "zeros" and a["pad"] >= min(s[1], s[2]) and a["padding_mode"] == "reflect":
        raise ShapeProblem(f"reflect padding of {a['pad']} needs an input larger than {a['pad']}",
                           "use less padding or padding_mode=\"zeros\"")
    if a["padding_mode"] == "circular" and a["pad"] > min(s[1], s[2]):  # PyTorch wraps around once at most
        raise ShapeProblem(f"circular padding of {a['pad']} needs an input of at least {a['pad']}",
                           "use less padding or padding_mode=\"zeros\"")
    (_, ho, wo), notes = _windowed("conv", s, a, _extent(a))
    return (a["filters"], ho, wo), notes


def _conv_params(s: Shape, a: dict) -> int:
    return a["filters"] * (s[0] // a["groups"]) * a["size"] ** 2 + (a["filters"] if a["bias"] else 0)


def _conv_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.Conv2d", (t["in"], t["filters"]), (("kernel_size", t["size"]),) + _kw(v, t, (
        ("stride", "stride", 1), ("pad", "padding", 0), ("dilation", "dilation", 1),
        ("groups", "groups", 1), ("bias", "bias", True), ("padding_mode", "padding_mode", "zeros"))))


CONV = LayerRule(
    "conv", "2-D convolution: `filters` FxF filters at `stride`, zero-padded by `pad`",
    (ArgSpec("filters", "int", minimum=1, doc="number of filters K (output channels)"),
     ArgSpec("size", "int", minimum=1, doc="filter size F"),
     ArgSpec("stride", "int", 1, minimum=1, doc="stride S"),
     ArgSpec("pad", "int", 0, minimum=0, doc="zero padding P on each side"),
     ArgSpec("dilation", "int", 1, minimum=1),
     ArgSpec("groups", "int", 1, minimum=1),
     ArgSpec("bias", "bool", True),
     ArgSpec("padding_mode", "str", "zeros", choices=("zeros", "reflect", "replicate", "circular")),
     FLOOR),
    _conv_shape, _conv_params,
    macs=lambda i, o, a: o[0] * o[1] * o[2] * (i[0] // a["groups"]) * a["size"] ** 2,
    window=lambda s, a: (_extent(a), a["stride"]),
    torch=_conv_torch, base_name="conv", channels=lambda s, c, t: t["filters"], fresh_output=True,
    dims=lambda d, v, t: _window_dims(d, t))


def _pool_rule(kind: str, callee: str, doc: str, extra: tuple[ArgSpec, ...], kw_extra, helper=None,
               dilation: bool = False) -> LayerRule:
    args = (ArgSpec("size", "int", minimum=1, doc="window size F"),
            ArgSpec("stride", "int", None, minimum=1, doc="stride S (default: the size)"),
            ArgSpec("pad", "int", 0, minimum=0)) + extra + (ArgSpec("ceil", "bool", False), FLOOR)

    def shape(s: Shape, a: dict):
        a = _pool_defaults(a)
        if a["pad"] * 2 > a["size"]:
            raise ShapeProblem(f"{kind} pad of {a['pad']} is more than half its window of {a['size']}",
                               f"use pad <= {a['size'] // 2}")
        return _windowed(kind, s, a, _extent(a), a["ceil"])

    def torch(s: Shape, v: dict, t: dict) -> Torch:
        v = _pool_defaults(v)
        if t.get("stride") is None or t["stride"] == Const(None):
            t = {**t, "stride": t["size"]}
        kws = _kw(v, t, (("pad", "padding", 0),) + kw_extra + (("ceil", "ceil_mode", False),))
        if v["stride"] != v["size"]:
            kws = (("stride", t["stride"]),) + kws
        return Torch(callee, (t["size"],), kws, helper)

    return LayerRule(kind, doc, args, shape,
                     window=lambda s, a: (_extent(_pool_defaults(a)), _pool_defaults(a)["stride"]),
                     torch=torch, base_name="pool", fresh_output=True,
                     dims=lambda d, v, t: _window_dims(d, t, v["ceil"]))


MAXPOOL = _pool_rule("maxpool", "nn.MaxPool2d", "max pooling over FxF windows",
                     (ArgSpec("dilation", "int", 1, minimum=1),), (("dilation", "dilation", 1),))
AVGPOOL = _pool_rule("avgpool", "nn.AvgPool2d", "average pooling over FxF windows",
                     (ArgSpec("count_include_pad", "bool", True),),
                     (("count_include_pad", "count_include_pad", True),))
MINPOOL = _pool_rule("minpool", "MinPool2d", "min pooling over FxF windows (the notes' third kind)",
                     (), (), helper="MinPool2d")


def _adaptive(kind: str, callee: str, doc: str) -> LayerRule:
    def shape(s: Shape, a: dict):
        c, h, w = _spatial(s, kind)
        notes = []
        if a["size"] > min(h, w):
            notes.append(Note(f"{kind} to {a['size']}x{a['size']} enlarges a {h}x{w} input",
                              "pool to a size no larger than the input", "upsample"))
        return (c, a["size"], a["size"]), notes

    return LayerRule(kind, doc, (ArgSpec("size", "int", minimum=1, doc="output size"),), shape,
                     window=lambda s, a: (-(-s[1] // a["size"]) if len(s) == 3 else 1,
                                          max(1, s[1] // a["size"]) if len(s) == 3 else 1),
                     torch=lambda s, v, t: Torch(callee, (t["size"],)),
                     base_name="pool", fresh_output=True, dims=lambda d, v, t: (t["size"], t["size"]))


ADAPTIVE_AVGPOOL = _adaptive("adaptive_avgpool", "nn.AdaptiveAvgPool2d", "average pooling to a fixed output size")
ADAPTIVE_MAXPOOL = _adaptive("adaptive_maxpool", "nn.AdaptiveMaxPool2d", "max pooling to a fixed output size")

GLOBAL_AVGPOOL = LayerRule(
    "global_avgpool", "average over each whole activation map: CxHxW to Cx1x1", (),
    lambda s, a: ((_spatial(s, "global_avgpool")[0], 1, 1), []),
    window=lambda s, a: (s[1] if len(s) == 3 else 1, s[1] if len(s) == 3 else 1),
    torch=lambda s, v, t: Torch("nn.AdaptiveAvgPool2d", (Const(1),)), base_name="pool", fresh_output=True,
    dims=lambda d, v, t: (Const(1), Const(1)))


def _fc_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.Linear", (_flat_channels(s, t["in"]), t["units"]), _kw(v, t, (("bias", "bias", True),)))


FC = LayerRule(
    "fc", "fully connected; flattens a volume before it, as the notes draw it",
    (ArgSpec("units", "int", minimum=1, doc="output features"), ArgSpec("bias", "bool", True)),
    lambda s, a: ((a["units"],), []),
    params=lambda s, a: _flat(s) * a["units"] + (a["units"] if a["bias"] else 0),
    macs=lambda i, o, a: _flat(i) * a["units"],
    window=lambda s, a: (s[1] if len(s) == 3 else 1, 1),
    torch=_fc_torch, base_name="fc", flattens=True, aliases=("linear",), channels=lambda s, c, t: t["units"],
    fresh_output=True, dims=lambda d, v, t: ())

FLATTEN = LayerRule(
    "flatten", "CxHxW to a vector of C*H*W", (), lambda s, a: ((_flat(s),), []),
    torch=lambda s, v, t: Torch("nn.Flatten", ()), base_name="flatten",
    channels=lambda s, c, t: _flat_channels(s, c), dims=lambda d, v, t: ())

def _dropout_shape(s: Shape, a: dict):
    if a["p"] >= 1:
        raise ShapeProblem(f"dropout probability {a['p']} is not below 1", "use a p in [0, 1)")
    return s, []


DROPOUT = LayerRule(
    "dropout", "zeroes each element with probability p while training",
    (ArgSpec("p", "float", 0.5, minimum=0.0),), _dropout_shape,
    torch=lambda s, v, t: Torch("nn.Dropout", (), _kw(v, t, (("p", "p", 0.5),))),
    base_name="dropout")


def _bn_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.BatchNorm2d" if len(s) == 3 else "nn.BatchNorm1d", (t["in"],), _kw(v, t, (
        ("eps", "eps", 1e-5), ("momentum", "momentum", 0.1), ("affine", "affine", True))))


BATCHNORM = LayerRule(
    "batchnorm", "batch normalization over channels (or features, after an fc)",
    (ArgSpec("eps", "float", 1e-5, minimum=0.0), ArgSpec("momentum", "float", 0.1, minimum=0.0),
     ArgSpec("affine", "bool", True)),
    lambda s, a: (s, []), params=lambda s, a: 2 * s[0] if a["affine"] else 0,
    torch=_bn_torch, base_name="bn", aliases=("bn",), fresh_output=True)

LRN = LayerRule(
    "lrn", "local response normalization across `size` neighbouring channels (AlexNet's NORM)",
    (ArgSpec("size", "int", 5, minimum=1), ArgSpec("alpha", "float", 1e-4),
     ArgSpec("beta", "float", 0.75), ArgSpec("k", "float", 1.0)),
    lambda s, a: (s, []),
    torch=lambda s, v, t: Torch("nn.LocalResponseNorm", (t["size"],), _kw(v, t, (
        ("alpha", "alpha", 1e-4), ("beta", "beta", 0.75), ("k", "k", 1.0)))),
    base_name="norm", aliases=("norm",))


def _activation(kind: str, callee: str, doc: str, args: tuple[ArgSpec, ...] = (), kw=(),
                aliases: tuple[str, ...] = (), inplace: bool = False) -> LayerRule:
    return LayerRule(kind, doc, args, lambda s, a: (s, []),
                     torch=lambda s, v, t: Torch(callee, (), _kw(v, t, kw)), base_name=kind, aliases=aliases,
                     inplace=inplace)


RELU = _activation("relu", "nn.ReLU", "max(0, x)", inplace=True)
LEAKY_RELU = _activation("leaky_relu", "nn.LeakyReLU", "max(slope*x, x)",
                         (ArgSpec("slope", "float", 0.01),), (("slope", "negative_slope", 0.01),))
ELU = _activation("elu", "nn.ELU", "x if x > 0 else alpha*(exp(x) - 1)",
                  (ArgSpec("alpha", "float", 1.0),), (("alpha", "alpha", 1.0),))
SIGMOID = _activation("sigmoid", "nn.Sigmoid", "1/(1 + exp(-x))")
TANH = _activation("tanh", "nn.Tanh", "tanh(x)")
SOFTMAX = _activation("softmax", "nn.Softmax", "exp(x_i)/sum_j exp(x_j) over channels",
                      (ArgSpec("dim", "int", 1),), (("dim", "dim", None),))
IDENTITY = _activation("identity", "nn.Identity", "x")


def _maxout_shape(s: Shape, a: dict):
    if a["pieces"] < 1 or s[0] % a["pieces"]:
        raise ShapeProblem(f"maxout of {a['pieces']} pieces needs channels divisible by it, got {s[0]}",
                           "give the layer before it a multiple of pieces as its width")
    return (s[0] // a["pieces"],) + s[1:], []


MAXOUT = LayerRule(
    "maxout", "max over groups of `pieces` consecutive channels: max(w1.x + b1, w2.x + b2)",
    (ArgSpec("pieces", "int", 2, minimum=1),), _maxout_shape,
    torch=lambda s, v, t: Torch("Maxout", (t["pieces"],), (), "Maxout"), base_name="maxout",
    channels=lambda s, c, t: c // t["pieces"])


RULES: dict[str, LayerRule] = {}
for _rule in (CONV, MAXPOOL, AVGPOOL, MINPOOL, ADAPTIVE_AVGPOOL, ADAPTIVE_MAXPOOL, GLOBAL_AVGPOOL,
              FC, FLATTEN, DROPOUT, BATCHNORM, LRN, RELU, LEAKY_RELU, ELU, SIGMOID, TANH, SOFTMAX,
              MAXOUT, IDENTITY):
    RULES[_rule.kind] = _rule
    for _alias in _rule.aliases:
        RULES[_alias] = _rule

def shortcut_stride(in_shape: Shape, out_shape: Shape) -> int:
    """The stride that takes a shortcut from the residual's input to its body's output size."""
    return max(1, -(-in_shape[1] // out_shape[1]))


def subsampled(shape: Shape, stride: int) -> Shape:
    """Every stride-th pixel (`x[:, :, ::stride, ::stride]`, the pad shortcut's subsampling)."""
    c, h, w = shape
    return (c, -(-h // stride), -(-w // stride))


# Residual shortcuts: `projection`, a 1x1 convolution and batch norm where the shapes
# differ (ResNet's option B); `pad`, subsampling and zero channels (option A, no
# parameters); `identity`. Not layers: `passes/shapes.py` builds the projection from
# CONV and BATCHNORM above.
SHORTCUTS = ("projection", "identity", "pad")


def lookup(name: str) -> LayerRule | None:
    """Exact name first, then the notes' upper-case spelling (RELU, CONV, FC)."""
    return RULES.get(name) or RULES.get(name.lower())
