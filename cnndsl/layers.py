"""The one table of layer rules.

For each layer kind: its arguments and their types, its output shape, its parameter
count, its multiply-accumulates, its receptive-field step and its PyTorch constructor.
It also says how the layer is presented: its label as the summary, the diagram and the
notes' (cs231n) listing print it, its category and whether it is pointwise. The shape
checker (`passes/shapes.py`), the code generator and the readers (summary, pictures,
language server) read this table and nothing else; adding a layer kind means adding one
`LayerRule` here.

Shapes are tuples: `(C, H, W)` for a spatial volume, `(F,)` for a flat vector. The
formulas are the notes': `W2 = (W1 - F + 2P)/S + 1`, with a dilated filter spanning
`D*(F-1)+1`, floored as PyTorch floors it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import field
from typing import Any, Callable, Iterable

from .expr import Binary, Const, Expr, Prec, index
from .node import node
Shape = tuple[int, ...]
Dims = tuple[Expr, ...]
REQUIRED = object()


@node
class ArgSpec:
    name: str
    type: str  # "int", "float", "bool", "str"; "pair": an int for both axes or (height, width)
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    doc: str = ""
    # PyTorch's name for it where it differs (`padding` for pad): the keyword the generated
    # constructor passes, and the hint for a PyTorch habit (`conv(32, 3, padding=1)`).
    torch: str = ""
    # The value changes neither the output's shape nor the parameters nor the MACs (the shape
    # rule may still check it): a dropout's p, a norm's eps. Uses of a block that differ only
    # in parameters read here share one expanded body (passes/expand.py, `leaf_params`).
    shapeless: bool = False


# Bounds on what a spec may ask of PyTorch, per image and per layer: beyond them a build or
# a training step takes hours or all the memory, so the checker says so first. A stride past
# the padded input changes nothing in the output but costs PyTorch's CPU convolution
# backward time that grows with its square; up to IDLE_STRIDE is allowed (a spec written for
# larger inputs, a stride of 2 on a 1x1 map).
IDLE_STRIDE = 16
MAX_ELEMENTS = 1 << 28  # values in one layer's output, or in its parameters: 1 GiB of float32
MAX_MACS = 1 << 40  # multiply-accumulates of one layer, per image


def size_problem(out: Shape, params: int, macs: int) -> "ShapeProblem | None":
    """Why a layer with this output, parameter count and MACs is too large to run, or None."""
    values = math.prod(out)
    if values > MAX_ELEMENTS:
        return ShapeProblem(f"the output of {values:,} values per image is over the limit of {MAX_ELEMENTS:,}",
                            "use fewer filters, less padding or a smaller input")
    if params > MAX_ELEMENTS:
        return ShapeProblem(f"{params:,} parameters in one layer are over the limit of {MAX_ELEMENTS:,}",
                            "use fewer units or filters, or pool before a fully connected layer")
    if macs > MAX_MACS:
        return ShapeProblem(f"{macs:,} multiply-accumulates per image in one layer are over the limit of "
                            f"{MAX_MACS:,}", "use fewer or smaller filters, or a smaller input")
    return None


class ShapeProblem(Exception):
    """A rule cannot produce an output for this input: an error for the checker."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


@node
class Note:
    """A warning a rule attaches to a shape that it could compute."""

    message: str
    hint: str
    code: str


@node
class Torch:
    """How the code generator constructs the layer: `callee(*positional, **keywords)`."""

    callee: str
    positional: tuple[Expr, ...]
    keywords: tuple[tuple[str, Expr], ...] = ()
    helper: str | None = None  # a class the generated file must define (MinPool2d, Maxout)


class Shown:
    """A layer's arguments as a label prints them: `a("size")` is the text, `a.value("size")`
    the number. Concrete labels show numbers (`0.5`); a block's legend shows the source
    (`planes·4`)."""

    def __init__(self, args: Iterable[tuple[str, Any]], symbolic: bool = False) -> None:
        args = tuple(args)
        self.values = {name: v.value for name, v in args}
        self.texts = {name: _shown(v, symbolic) for name, v in args}
        self.axes = {name: _axes_shown(v, symbolic) for name, v in args}

    def __call__(self, name: str) -> str:
        return self.texts[name]

    def value(self, name: str) -> Any:
        return self.values[name]

    def stride(self) -> str:
        """A pool's stride as shown: its size where the spec leaves it out."""
        return self("size") if self.value("stride") is None else self("stride")

    def square(self, name: str, times: str = "x") -> str:
        """A per-axis argument as `3x3`: both axes, `3x5` where they differ."""
        return times.join(self.axes.get(name) or (self(name), self(name)))


def _shown(value, symbolic: bool) -> str:
    if symbolic:
        return value.text.replace(" * ", "·")
    if isinstance(value.value, tuple):
        return "x".join(map(str, value.value))
    return f"{value.value:g}" if isinstance(value.value, float) else str(value.value)


def _axes_shown(value, symbolic: bool) -> tuple[str, str] | None:
    """A pair's two texts, (height, width); None for one value for both axes."""
    if not isinstance(value.value, tuple):
        return None
    if symbolic:
        return tuple(e.text.replace(" * ", "·") for e in axis_exprs(value.expr))
    return tuple(map(str, value.value))


@node
class Listing:
    """How the notes' listing (`cnndsl summary --style cs231n`) names a layer: `CONV`, `MAX POOL`."""

    name: str
    caption: str = ""  # the listing's words after the name where nothing is computed


@node
class LayerRule:
    kind: str
    doc: str
    args: tuple[ArgSpec, ...]
    shape: Callable[[Shape, dict], tuple[Shape, list[Note]]]
    params: Callable[[Shape, dict], int] = lambda s, a: 0
    buffers: Callable[[Shape, dict], int] = lambda s, a: 0  # non-trainable state (batch norm's running stats)
    macs: Callable[[Shape, Shape, dict], int] = lambda i, o, a: 0
    window: Callable[[Shape, dict], tuple[int, int]] = lambda s, a: (1, 1)  # (extent, stride)
    # How many output pixels one input pixel becomes (an upsampling's scale): the jump between
    # neighbouring outputs shrinks by it. `window`'s extent is then in input pixels.
    upscale: Callable[[Shape, dict], int] = lambda s, a: 1
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
    # -- presentation: how the readers show the layer --
    category: str = "other"  # conv, pool, fc, norm, activation, dropout, reshape
    pointwise: bool = False  # keeps the shape, only transforms values: folded into the layer before it
    label: Callable[[Shown], str] | None = None  # the summary's `conv 3x3/2 64`; None: the kind
    figure: Callable[[Shown], str] | None = None  # the diagram's `conv 3×3/2, 64`; None: `label`
    listing: Listing | None = None  # None: left out of the notes' listing
    kernel: Callable[[Shape, dict], tuple[int, ...] | None] = lambda s, a: None  # its weight's or window's shape
    channels_last: bool = False  # reads a channels-last volume too (pointwise, per pixel)
    parameter: bool = False  # a learned tensor of the class itself (layer scale), not a module: `x = self.p * x`

    def summary_label(self, shown: Shown) -> str:
        return self.label(shown) if self.label else self.kind

    def figure_label(self, shown: Shown) -> str:
        return self.figure(shown) if self.figure else self.summary_label(shown)

    def arg(self, name: str) -> ArgSpec | None:
        return next((a for a in self.args if a.name == name), None)

    def construction(self, in_shape: Shape, values: dict, exprs: dict) -> Torch:
        """The PyTorch constructor: `torch`'s, its keywords in PyTorch's names (ArgSpec.torch)."""
        made = self.torch(in_shape, values, exprs)
        theirs = {a.name: a.torch for a in self.args if a.torch}
        if not theirs:
            return made
        return Torch(made.callee, made.positional, tuple((theirs.get(k, k), e) for k, e in made.keywords),
                     made.helper)

    def torch_names(self) -> dict[str, str]:
        """PyTorch's names of its arguments, theirs -> ours, where they differ."""
        return {a.torch: a.name for a in self.args if a.torch}


# -- shape arithmetic -----------------------------------------------------------------

class ChannelsLast(tuple):
    """A volume permuted to channels last (N, H, W, C), as ConvNeXt's blocks hold it between
    `permute(0, 2, 3, 1)` and `permute(0, 3, 1, 2)`. Its items stay in C, H, W order, as every
    shape here, so `shape[0]` is still the channels; readers print it H x W x C."""

    __slots__ = ()


def channels_last(shape: Shape) -> bool:
    return isinstance(shape, ChannelsLast)


def _spatial(shape: Shape, kind: str) -> tuple[int, int, int]:
    if channels_last(shape):
        raise ShapeProblem(f"{kind} needs channels first, but its input is channels last "
                           f"({shape[1]}x{shape[2]}x{shape[0]}, after permute(0, 2, 3, 1))",
                           f"permute back with permute(0, 3, 1, 2) before the {kind}")
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
    if stride > max(padded, IDLE_STRIDE):
        raise ShapeProblem(
            f"stride of {stride:,} is larger than its input of {size}"
            + (f" padded to {padded}" if pad else "") + f" on the {axis} axis: the window never moves",
            f"stride={padded} gives the same output (PyTorch's backward pass slows with the square of the stride)")
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
                f"{span / stride + 1:g} on the {axis} axis; PyTorch floors it to {out} and "
                f"never reads the last {lost} row(s)/column(s) of the input",
                f"choose pad or stride so that {size} - {extent} + 2*pad is a multiple of {stride}, "
                "or say floor=true if that is meant",
                "fit"))
    if out <= 0:
        raise ShapeProblem(f"{kind} output size is {out}", "use a smaller stride or more padding")
    return out


def pair(value) -> tuple:
    """A per-axis argument as (height, width): one value stands for both axes."""
    return (value[0], value[1]) if isinstance(value, (tuple, list)) else (value, value)


def axis_exprs(expr: Expr, value=None) -> tuple[Expr, Expr]:
    """A per-axis argument's expression as (height, width): `(3, 5)`, `(k, 1)`, `pad[0]` and
    `pad[1]` for a parameter whose `value` is a pair, or one expression for both."""
    if isinstance(expr, Const) and isinstance(expr.value, (tuple, list)):
        return Const(expr.value[0]), Const(expr.value[1])
    parts = getattr(expr, "items", None)
    if isinstance(parts, tuple) and len(parts) == 2:
        return parts
    if isinstance(value, (tuple, list)):
        return index(expr, Const(0)), index(expr, Const(1))
    return expr, expr


def _windowed(kind: str, in_shape: Shape, a: dict, extent, ceil: bool = False):
    c, h, w = _spatial(in_shape, kind)
    notes: list[Note] = []
    floor = a.get("floor", False)
    stride, pad = a["stride"], a["pad"]
    if h == w and type(extent) is int and type(stride) is int and type(pad) is int:
        # a square input and one number per argument: both axes alike, so the height's
        # output, error or note stands for both (the width's note would be left out below)
        out = window_output(kind, h, extent, stride, pad, ceil, notes, "height", floor)
        return (c, out, out), notes
    axes = tuple(zip((h, w), pair(extent), pair(a["stride"]), pair(a["pad"])))
    ho, wo = (window_output(kind, size, e, stride, pad, ceil, notes, axis, floor)
              for (size, e, stride, pad), axis in zip(axes, ("height", "width")))
    if len(notes) == 2 and axes[0] == axes[1]:
        notes = notes[:1]
    return (c, ho, wo), notes


def _extent(a: dict):
    """The span of a (dilated) window, D*(F-1)+1: an int, or (height, width) where the axes differ."""
    dilation, size = a.get("dilation", 1), a["size"]
    if type(dilation) is int and type(size) is int:
        return dilation * (size - 1) + 1
    spans = tuple(d * (f - 1) + 1 for d, f in zip(pair(a.get("dilation", 1)), pair(a["size"])))
    return spans[0] if spans[0] == spans[1] else spans


def _window_dims(in_dims: Dims | None, e: dict, v: dict, ceil: bool = False) -> Dims | None:
    """(W - F + 2P)/S + 1 on expressions, per axis, floored; None where ceil mode makes it
    depend on where the last window starts. Worked out once for each input dims, argument
    expressions and ceil (`_window_dims_known`): a value enters only as whether it is a pair."""
    if not in_dims:
        return None
    stride = e.get("stride")
    which = "size" if stride is None or stride == _NONE_EXPR else "stride"  # a pool's stride defaults to its size
    stride_value = v["size"] if which == "size" else v.get("stride")
    return _window_dims_known(in_dims, e["size"], e[which], e["pad"], e.get("dilation", _ONE_EXPR),
                              isinstance(v["size"], _PAIRS), isinstance(stride_value, _PAIRS),
                              isinstance(v["pad"], _PAIRS), isinstance(v.get("dilation", 1), _PAIRS), ceil)


_NONE_EXPR, _ONE_EXPR, _PAIRS = Const(None), Const(1), (tuple, list)


@functools.lru_cache(maxsize=1024)  # a block's layers, once for all its uses and for alike layers of other blocks
def _window_dims_known(in_dims: Dims, size: Expr, stride: Expr, pad: Expr, dilation: Expr, size_pair: bool,
                       stride_pair: bool, pad_pair: bool, dilation_pair: bool, ceil: bool) -> Dims | None:
    """`_window_dims`, each argument's expression given with whether its value is a pair
    (all `axis_exprs` reads of the value)."""
    per_axis = zip(*(axis_exprs(x, (0, 0) if is_pair else 0) for x, is_pair in (
        (size, size_pair), (stride, stride_pair), (pad, pad_pair), (dilation, dilation_pair))))
    out = [_window_dims_of((d,), *axis, ceil) for d, axis in zip(in_dims, per_axis)]
    return None if any(o is None for o in out) else tuple(o[0] for o in out)


@functools.lru_cache(maxsize=1024)  # a block's layers, once for all its uses
def _window_dims_of(in_dims: Dims, size: Expr, stride: Expr, pad: Expr, dilation: Expr, ceil: bool) -> Dims | None:
    if ceil and stride != Const(1):
        return None
    extent, doubled = _extent_expr(size, dilation), _doubled(pad)
    span = [d + doubled - extent for d in in_dims]
    return tuple(x + 1 if stride == Const(1) else x // stride + 1 for x in span)


@functools.lru_cache(maxsize=1024)  # the height's and the width's, alike for a square window
def _extent_expr(size: Expr, dilation: Expr) -> Expr:
    return dilation * (size - 1) + 1


@functools.lru_cache(maxsize=1024)
def _doubled(pad: Expr) -> Expr:
    return Const(2) * pad


def _pool_defaults(a: dict) -> dict:
    return {**a, "stride": a["stride"] if a.get("stride") is not None else a["size"]}


def _flat(shape: Shape) -> int:
    return math.prod(shape)


def _flat_channels(shape: Shape, channels: Expr) -> Expr:
    """The features of a flattened volume, `512 * 7 * 7` as torchvision writes it (the
    channels alone for a linear per pixel of a channels-last volume)."""
    if len(shape) == 1 or channels_last(shape):
        return channels
    c, h, w = shape
    if h == w == 1:
        return channels
    return Binary("*", Binary("*", channels, Const(h)), Const(w))


def _kw(values: dict, exprs: dict, spec: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Expr], ...]:
    """Keyword arguments for PyTorch, `(name, PyTorch's default)` each, leaving out those
    equal to PyTorch's default unless they read a parameter (`stride`), which the generated
    class must then pass on. Named as cnndsl names them: `LayerRule.construction` gives
    PyTorch's names, from the ArgSpecs' `torch`. The parameter is looked at first: a value
    written by one is then not read (`codegen.probe.ProbedValues`), so that a depthwise
    conv's construction, `groups=expanded`, serves the uses of every width."""
    out = []
    for entry in spec:
        if len(entry) != 2:
            raise TypeError(f"_kw takes (name, PyTorch's default) pairs, got {entry!r}: "
                            "PyTorch's name for an argument is its ArgSpec's torch=")
        ours, torch_default = entry
        if ours in values and (exprs[ours].names or values[ours] != torch_default):
            out.append((ours, exprs[ours]))
    return tuple(out)


# -- the rules --------------------------------------------------------------------------

def _conv_shape(s: Shape, a: dict):
    c = _spatial(s, "conv")[0]
    if a["groups"] < 1 or c % a["groups"] or a["filters"] % a["groups"]:
        raise ShapeProblem(
            f"groups={a['groups']} must divide both the input channels ({c}) and the filters ({a['filters']})",
            "choose groups as a common divisor of the two")
    for pad, size in zip(pair(a["pad"]), s[1:]) if a["padding_mode"] in ("reflect", "circular") else ():
        if a["padding_mode"] == "reflect" and pad >= size:
            raise ShapeProblem(f"reflect padding of {pad} needs an input larger than {pad}",
                               "use less padding or padding_mode=\"zeros\"")
        if a["padding_mode"] == "circular" and pad > size:  # PyTorch wraps around once at most
            raise ShapeProblem(f"circular padding of {pad} needs an input of at least {pad}",
                               "use less padding or padding_mode=\"zeros\"")
    (_, ho, wo), notes = _windowed("conv", s, a, _extent(a))
    return (a["filters"], ho, wo), notes


def _conv_params(s: Shape, a: dict) -> int:
    return a["filters"] * (s[0] // a["groups"]) * _area(a["size"]) + (a["filters"] if a["bias"] else 0)


def _area(size) -> int:
    """A window's height times its width."""
    height, width = pair(size)
    return height * width


def _conv_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.Conv2d", (t["in"], t["filters"]), (("size", t["size"]),) + _kw(v, t, (
        ("stride", 1), ("pad", 0), ("dilation", 1), ("groups", 1), ("bias", True), ("padding_mode", "zeros"))))


def _conv_label(a: Shown) -> str:
    return (f"conv {a.square('size')}/{a('stride')} {a('filters')}"
            + (f" pad {a('pad')}" if a.value("pad") else "")
            + (f" groups {a('groups')}" if a.value("groups") != 1 else ""))


def _conv_figure(a: Shown) -> str:
    stride = a("stride")
    return (f"conv {a.square('size', '×')}" + (f"/{stride}" if stride != "1" else "") + f", {a('filters')}"
            + (f", groups {a('groups')}" if a.value("groups") != 1 else ""))


CONV = LayerRule(
    "conv", "2-D convolution: `filters` FxF filters at `stride`, zero-padded by `pad` "
    "(each of size, stride, pad and dilation one number or (height, width))",
    (ArgSpec("filters", "int", minimum=1, doc="number of filters K (output channels)", torch="out_channels"),
     ArgSpec("size", "pair", minimum=1, doc="filter size F, or (height, width)", torch="kernel_size"),
     ArgSpec("stride", "pair", 1, minimum=1, doc="stride S, or (height, width)"),
     ArgSpec("pad", "pair", 0, minimum=0, doc="zero padding P on each side, or (height, width)", torch="padding"),
     ArgSpec("dilation", "pair", 1, minimum=1),
     ArgSpec("groups", "int", 1, minimum=1),
     ArgSpec("bias", "bool", True),
     ArgSpec("padding_mode", "str", "zeros", choices=("zeros", "reflect", "replicate", "circular")),
     FLOOR),
    _conv_shape, _conv_params,
    macs=lambda i, o, a: o[0] * o[1] * o[2] * (i[0] // a["groups"]) * _area(a["size"]),
    window=lambda s, a: (_extent(a), a["stride"]),
    torch=_conv_torch, base_name="conv", channels=lambda s, c, t: t["filters"], fresh_output=True,
    kernel=lambda s, a: (a["filters"], s[0] // a["groups"]) + pair(a["size"]),
    category="conv", label=_conv_label, figure=_conv_figure, listing=Listing("CONV"),
    dims=lambda d, v, t: _window_dims(d, t, v))


def _pool_rule(kind: str, callee: str, doc: str, extra: tuple[ArgSpec, ...], kw_extra, listing: str,
               helper=None) -> LayerRule:
    args = (ArgSpec("size", "pair", minimum=1, doc="window size F, or (height, width)", torch="kernel_size"),
            ArgSpec("stride", "pair", None, minimum=1, doc="stride S (default: the size)"),
            ArgSpec("pad", "pair", 0, minimum=0, torch="padding")) + extra + (
        ArgSpec("ceil", "bool", False, torch="ceil_mode"), FLOOR)

    def shape(s: Shape, a: dict):
        a = _pool_defaults(a)
        for pad, size in zip(pair(a["pad"]), pair(a["size"])):
            if pad * 2 > size:
                raise ShapeProblem(f"{kind} pad of {pad} is more than half its window of {size}",
                                   f"use pad <= {size // 2}")
        return _windowed(kind, s, a, _extent(a), a["ceil"])

    def torch(s: Shape, v: dict, t: dict) -> Torch:
        v = _pool_defaults(v)
        if t.get("stride") is None or t["stride"] == Const(None):
            t = {**t, "stride": t["size"]}
        kws = _kw(v, t, (("pad", 0),) + kw_extra + (("ceil", False),))
        if v["stride"] != v["size"]:
            kws = (("stride", t["stride"]),) + kws
        return Torch(callee, (t["size"],), kws, helper)

    return LayerRule(kind, doc, args, shape,
                     window=lambda s, a: (_extent(_pool_defaults(a)), _pool_defaults(a)["stride"]),
                     torch=torch, base_name="pool", fresh_output=True, category="pool",
                     label=lambda a: f"{kind} {a.square('size')}/{a.stride()}",
                     figure=lambda a: f"{kind} {a.square('size', '×')}" + (
                         f"/{a.stride()}" if a.stride() != "1" else ""),
                     listing=Listing(listing), kernel=lambda s, a: pair(a["size"]),
                     dims=lambda d, v, t: _window_dims(d, t, v, v["ceil"]))


MAXPOOL = _pool_rule("maxpool", "nn.MaxPool2d", "max pooling over FxF windows",
                     (ArgSpec("dilation", "pair", 1, minimum=1),), (("dilation", 1),), "MAX POOL")
AVGPOOL = _pool_rule("avgpool", "nn.AvgPool2d", "average pooling over FxF windows",
                     (ArgSpec("count_include_pad", "bool", True),),
                     (("count_include_pad", True),), "AVG POOL")
MINPOOL = _pool_rule("minpool", "MinPool2d", "min pooling over FxF windows (the notes' third kind)",
                     (), (), "MIN POOL", helper="MinPool2d")


def _adaptive_window(s: Shape, a: dict):
    """The receptive window of one output of an adaptive pool, per axis: ceil(in / out) wide,
    floor(in / out) apart (a number where both axes agree)."""
    if len(s) != 3:
        return 1, 1
    sizes = tuple(zip(s[1:], pair(a["size"])))
    extent = tuple(-(-d // o) for d, o in sizes)
    stride = tuple(max(1, d // o) for d, o in sizes)
    return (extent[0] if extent[0] == extent[1] else extent), (stride[0] if stride[0] == stride[1] else stride)


def _adaptive(kind: str, callee: str, doc: str, listing: str) -> LayerRule:
    def shape(s: Shape, a: dict):
        c, h, w = _spatial(s, kind)
        oh, ow = pair(a["size"])
        notes = []
        if oh > h or ow > w:
            notes.append(Note(f"{kind} to {oh}x{ow} enlarges a {h}x{w} input",
                              "pool to a size no larger than the input", "upsample"))
        return (c, oh, ow), notes

    return LayerRule(kind, doc, (ArgSpec("size", "pair", minimum=1, doc="output size, or (height, width)"),),
                     shape, window=_adaptive_window,
                     torch=lambda s, v, t: Torch(callee, (t["size"],)),
                     base_name="pool", fresh_output=True, category="pool",
                     label=lambda a: f"{kind} {a.square('size')}",
                     figure=lambda a: f"{kind.replace('_', ' ')} → {a.square('size', '×')}",
                     listing=Listing(listing),
                     dims=lambda d, v, t: axis_exprs(t["size"], v["size"]))


ADAPTIVE_AVGPOOL = _adaptive("adaptive_avgpool", "nn.AdaptiveAvgPool2d", "average pooling to a fixed output size",
                             "ADAPTIVE AVG POOL")
ADAPTIVE_MAXPOOL = _adaptive("adaptive_maxpool", "nn.AdaptiveMaxPool2d", "max pooling to a fixed output size",
                             "ADAPTIVE MAX POOL")

GLOBAL_AVGPOOL = LayerRule(
    "global_avgpool", "average over each whole activation map: CxHxW to Cx1x1", (),
    lambda s, a: ((_spatial(s, "global_avgpool")[0], 1, 1), []),
    window=lambda s, a: (s[1] if len(s) == 3 else 1, s[1] if len(s) == 3 else 1),
    torch=lambda s, v, t: Torch("nn.AdaptiveAvgPool2d", (Const(1),)), base_name="pool", fresh_output=True,
    category="pool", figure=lambda a: "global avgpool", listing=Listing("GLOBAL AVG POOL"),
    dims=lambda d, v, t: (Const(1), Const(1)))


def _fc_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.Linear", (_flat_channels(s, t["in"]), t["units"]), _kw(v, t, (("bias", True),)))


def _fc_shape(s: Shape, a: dict):
    if channels_last(s):  # nn.Linear acts on the last axis: each pixel's channels
        return ChannelsLast((a["units"],) + tuple(s[1:])), []
    return (a["units"],), []


def _fc_inputs(s: Shape) -> int:
    return s[0] if channels_last(s) else _flat(s)


FC = LayerRule(
    "fc", "fully connected; flattens a volume before it, as the notes draw it; on a channels-last "
    "volume (after permute(0, 2, 3, 1)) a linear per pixel, over its channels",
    (ArgSpec("units", "int", minimum=1, doc="output features", torch="out_features"), ArgSpec("bias", "bool", True)),
    _fc_shape,
    params=lambda s, a: _fc_inputs(s) * a["units"] + (a["units"] if a["bias"] else 0),
    macs=lambda i, o, a: _flat(i) * a["units"],
    window=lambda s, a: (s[1] if len(s) == 3 else 1, 1),
    torch=_fc_torch, base_name="fc", flattens=True, aliases=("linear",), channels=lambda s, c, t: t["units"],
    fresh_output=True, kernel=lambda s, a: (a["units"], _fc_inputs(s)), channels_last=True,
    category="fc", label=lambda a: f"fc {a('units')}", listing=Listing("FC"),
    dims=lambda d, v, t: ())

FLATTEN = LayerRule(
    "flatten", "CxHxW to a vector of C*H*W", (), lambda s, a: ((_flat(s),), []),
    torch=lambda s, v, t: Torch("nn.Flatten", ()), base_name="flatten",
    channels=lambda s, c, t: _flat_channels(s, c), category="reshape",
    dims=lambda d, v, t: ())


def _dropout_shape(s: Shape, a: dict):
    if a["p"] >= 1:
        raise ShapeProblem(f"dropout probability {a['p']} is not below 1", "use a p in [0, 1)")
    return s, []


DROPOUT = LayerRule(
    "dropout", "zeroes each element with probability p while training",
    (ArgSpec("p", "float", 0.5, minimum=0.0, shapeless=True),), _dropout_shape,
    torch=lambda s, v, t: Torch("nn.Dropout", (), _kw(v, t, (("p", 0.5),))),
    base_name="dropout", category="dropout", pointwise=True, channels_last=True,
    label=lambda a: f"dropout {a('p')}" if a("p")[:1].isdigit() else f"dropout p={a('p')}")


def _bn_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.BatchNorm2d" if len(s) == 3 else "nn.BatchNorm1d", (t["in"],), _kw(v, t, (
        ("eps", 1e-5), ("momentum", 0.1), ("affine", True))))


BATCHNORM = LayerRule(
    "batchnorm", "batch normalization over channels (or features, after an fc)",
    (ArgSpec("eps", "float", 1e-5, minimum=0.0, shapeless=True),
     ArgSpec("momentum", "float", 0.1, minimum=0.0, shapeless=True), ArgSpec("affine", "bool", True)),
    lambda s, a: (s, []), params=lambda s, a: 2 * s[0] if a["affine"] else 0,
    buffers=lambda s, a: 2 * s[0],  # running mean and variance (and a step count PyTorch keeps besides)
    torch=_bn_torch, base_name="bn", aliases=("bn",), fresh_output=True,
    kernel=lambda s, a: (s[0],) if a["affine"] else None,
    category="norm", pointwise=True, figure=lambda a: "bn", listing=Listing("BN", "Batch normalization"))

LRN = LayerRule(
    "lrn", "local response normalization across `size` neighbouring channels (AlexNet's NORM)",
    (ArgSpec("size", "int", 5, minimum=1), ArgSpec("alpha", "float", 1e-4),
     ArgSpec("beta", "float", 0.75), ArgSpec("k", "float", 1.0)),
    lambda s, a: (s, []),
    torch=lambda s, v, t: Torch("nn.LocalResponseNorm", (t["size"],), _kw(v, t, (
        ("alpha", 1e-4), ("beta", 0.75), ("k", 1.0)))),
    base_name="norm", aliases=("norm",),
    category="norm", pointwise=True, figure=lambda a: "LRN", listing=Listing("NORM", "Normalization layer"))


def _activation(kind: str, callee: str, doc: str, args: tuple[ArgSpec, ...] = (), kw=(),
                aliases: tuple[str, ...] = (), inplace: bool = False, figure: str | None = None) -> LayerRule:
    return LayerRule(kind, doc, args, lambda s, a: (s, []),
                     torch=lambda s, v, t: Torch(callee, (), _kw(v, t, kw)), base_name=kind, aliases=aliases,
                     inplace=inplace, category="activation", pointwise=True,
                     figure=(lambda a: figure) if figure else None, channels_last=kind != "softmax")


RELU = _activation("relu", "nn.ReLU", "max(0, x)", inplace=True)
LEAKY_RELU = _activation("leaky_relu", "nn.LeakyReLU", "max(slope*x, x)",
                         (ArgSpec("slope", "float", 0.01, torch="negative_slope"),), (("slope", 0.01),),
                         figure="leaky relu")
ELU = _activation("elu", "nn.ELU", "x if x > 0 else alpha*(exp(x) - 1)",
                  (ArgSpec("alpha", "float", 1.0),), (("alpha", 1.0),))
SIGMOID = _activation("sigmoid", "nn.Sigmoid", "1/(1 + exp(-x))")
TANH = _activation("tanh", "nn.Tanh", "tanh(x)")
SOFTMAX = _activation("softmax", "nn.Softmax", "exp(x_i)/sum_j exp(x_j) over channels",
                      (ArgSpec("dim", "int", 1),), (("dim", None),))
IDENTITY = _activation("identity", "nn.Identity", "x", figure="id")
# MobileNet's and EfficientNet's activations, as torchvision uses them: in place after a
# convolution and batch norm, not where their input is read again (a gate's scale).
RELU6 = _activation("relu6", "nn.ReLU6", "min(max(0, x), 6)", inplace=True)
SILU = _activation("silu", "nn.SiLU", "x * sigmoid(x) (swish)", inplace=True)
HARDSWISH = _activation("hardswish", "nn.Hardswish", "x * relu6(x + 3) / 6", inplace=True, figure="hard swish")
HARDSIGMOID = _activation("hardsigmoid", "nn.Hardsigmoid", "relu6(x + 3) / 6", figure="hard sigmoid")


def _stochastic_depth_shape(s: Shape, a: dict):
    if a["p"] > 1:
        raise ShapeProblem(f"stochastic depth probability {a['p']} is above 1", "use a p in [0, 1]")
    return s, []


STOCHASTIC_DEPTH = LayerRule(
    "stochastic_depth", "drops the whole input of a sample (mode \"row\") or of the batch (\"batch\") with "
    "probability p while training, scaling the rest by 1/(1 - p); the identity in eval mode "
    "(torchvision.ops.StochasticDepth)",
    (ArgSpec("p", "float", minimum=0.0, doc="drop probability", shapeless=True),
     ArgSpec("mode", "str", "row", choices=("row", "batch"), doc="drop per sample (row) or per batch")),
    _stochastic_depth_shape,
    torch=lambda s, v, t: Torch("StochasticDepth", (t["p"], t["mode"]), (), "StochasticDepth"),
    base_name="stochastic_depth", category="dropout", pointwise=True,
    label=lambda a: f"stochastic_depth {a('p')}" + (" batch" if a.value("mode") == "batch" else ""),
    figure=lambda a: f"stochastic depth {a('p')}" + (" batch" if a.value("mode") == "batch" else ""))


def _maxout_shape(s: Shape, a: dict):
    if a["pieces"] < 1 or s[0] % a["pieces"]:
        raise ShapeProblem(f"maxout of {a['pieces']} pieces needs channels divisible by it, got {s[0]}",
                           "give the layer before it a multiple of pieces as its width")
    return (s[0] // a["pieces"],) + s[1:], []


MAXOUT = LayerRule(
    "maxout", "max over groups of `pieces` consecutive channels: max(w1.x + b1, w2.x + b2)",
    (ArgSpec("pieces", "int", 2, minimum=1),), _maxout_shape,
    torch=lambda s, v, t: Torch("Maxout", (t["pieces"],), (), "Maxout"), base_name="maxout",
    channels=lambda s, c, t: c // t["pieces"], category="activation")


# -- ConvNeXt's and ShuffleNet's layers, and the norms over channels ---------------------

class Source(Expr):
    """Python source that the code generator prints as it is (`torch.ones(dim, 1, 1) * 1e-06`),
    made from the expressions it reads."""

    __slots__ = ()

    def __init__(self, text: str, parts: tuple[Expr, ...]):
        self.text = text
        self.precedence = Prec.ATOM
        self.names = frozenset().union(*(p.names for p in parts))


GELU = _activation("gelu", "nn.GELU", "x * P(X <= x) for a standard normal X; approximate=\"tanh\" for its "
                   "tanh approximation", (ArgSpec("approximate", "str", "none", choices=("none", "tanh")),),
                   (("approximate", "none"),))
MISH = _activation("mish", "nn.Mish", "x * tanh(softplus(x))")


def _prelu_shape(s: Shape, a: dict):
    if a["num_parameters"] not in (1, s[0]):
        raise ShapeProblem(f"prelu with {a['num_parameters']} slopes needs one, or one per channel ({s[0]})",
                           f"use num_parameters=1 or num_parameters={s[0]}")
    return s, []


PRELU = LayerRule(
    "prelu", "max(0, x) + a * min(0, x) with a learned slope a: one, or one per channel",
    (ArgSpec("num_parameters", "int", 1, minimum=1, doc="1, or the input channels for a slope per channel"),
     ArgSpec("init", "float", 0.25, doc="the slopes' first value", shapeless=True)),
    _prelu_shape, params=lambda s, a: a["num_parameters"],
    torch=lambda s, v, t: Torch("nn.PReLU", (), _kw(v, t, (("num_parameters", 1), ("init", 0.25)))),
    base_name="prelu", kernel=lambda s, a: (a["num_parameters"],), category="activation", pointwise=True)


def _layernorm_torch(s: Shape, v: dict, t: dict) -> Torch:
    kws = _kw(v, t, (("eps", 1e-5), ("affine", True)))
    if len(s) == 3 and not channels_last(s):  # over the channels of each pixel of an NCHW tensor
        return Torch("LayerNorm2d", (t["in"],), kws, "LayerNorm2d")
    return Torch("nn.LayerNorm", (t["in"],), kws)


LAYERNORM = LayerRule(
    "layernorm", "layer normalization over the channels of each pixel (ConvNeXt's LayerNorm2d; "
    "nn.LayerNorm on a channels-last volume or a vector)",
    (ArgSpec("eps", "float", 1e-5, minimum=0.0, shapeless=True),
     ArgSpec("affine", "bool", True, doc="a learned scale and shift", torch="elementwise_affine")),
    lambda s, a: (s, []), params=lambda s, a: 2 * s[0] if a["affine"] else 0,
    torch=_layernorm_torch, base_name="norm", kernel=lambda s, a: (s[0],) if a["affine"] else None,
    category="norm", pointwise=True, figure=lambda a: "ln", channels_last=True, fresh_output=True)


def _groupnorm_shape(s: Shape, a: dict):
    if s[0] % a["groups"]:
        raise ShapeProblem(f"groupnorm of {a['groups']} groups needs channels divisible by it, got {s[0]}",
                           "choose groups as a divisor of the channels")
    return s, []


GROUPNORM = LayerRule(
    "groupnorm", "group normalization: the channels in `groups` groups, each normalized over its "
    "channels and pixels",
    (ArgSpec("groups", "int", minimum=1, doc="number of groups (divides the channels)"),
     ArgSpec("eps", "float", 1e-5, minimum=0.0, shapeless=True), ArgSpec("affine", "bool", True)),
    _groupnorm_shape, params=lambda s, a: 2 * s[0] if a["affine"] else 0,
    torch=lambda s, v, t: Torch("nn.GroupNorm", (t["groups"], t["in"]), _kw(v, t, (("eps", 1e-5), ("affine", True)))),
    base_name="norm", kernel=lambda s, a: (s[0],) if a["affine"] else None, category="norm", pointwise=True,
    label=lambda a: f"groupnorm {a('groups')}", figure=lambda a: f"gn {a('groups')}", fresh_output=True)


def _instancenorm_shape(s: Shape, a: dict):
    _spatial(s, "instancenorm")
    return s, []


INSTANCENORM = LayerRule(
    "instancenorm", "instance normalization: each channel of each image over its pixels",
    (ArgSpec("eps", "float", 1e-5, minimum=0.0, shapeless=True),
     ArgSpec("momentum", "float", 0.1, minimum=0.0, shapeless=True),
     ArgSpec("affine", "bool", False), ArgSpec("track_running_stats", "bool", False)),
    _instancenorm_shape, params=lambda s, a: 2 * s[0] if a["affine"] else 0,
    buffers=lambda s, a: 2 * s[0] if a["track_running_stats"] else 0,
    torch=lambda s, v, t: Torch("nn.InstanceNorm2d", (t["in"],), _kw(v, t, (
        ("eps", 1e-5), ("momentum", 0.1), ("affine", False), ("track_running_stats", False)))),
    base_name="norm", kernel=lambda s, a: (s[0],) if a["affine"] else None, category="norm", pointwise=True,
    figure=lambda a: "in", fresh_output=True)


def _layer_scale_torch(s: Shape, v: dict, t: dict) -> Torch:
    ones = Source(f"torch.ones({t['in'].text}, 1, 1)", (t["in"],))
    return Torch("nn.Parameter", (Binary("*", ones, t["init"]),))


LAYER_SCALE = LayerRule(
    "layer_scale", "a learned scale per channel (ConvNeXt's layer scale): a parameter of shape Cx1x1, "
    "first `init`, that multiplies its input",
    (ArgSpec("init", "float", 1e-6, doc="the scales' first value", shapeless=True),),
    lambda s, a: (_spatial(s, "layer_scale"), []), params=lambda s, a: s[0],
    torch=_layer_scale_torch, base_name="layer_scale", kernel=lambda s, a: (s[0], 1, 1), category="norm",
    pointwise=True, parameter=True, label=lambda a: f"layer_scale {a('init')}", figure=lambda a: "scale")

_TO_LAST, _TO_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def _permute_shape(s: Shape, a: dict):
    order = tuple(a[f"d{i}"] for i in range(4))
    if order == _TO_LAST and len(s) == 3 and not channels_last(s):
        return ChannelsLast(s), []
    if order == _TO_FIRST and channels_last(s):
        return tuple(s), []
    where = "channels last" if channels_last(s) else "a flat vector" if len(s) != 3 else "channels first"
    wanted = "permute(0, 3, 1, 2)" if channels_last(s) else "permute(0, 2, 3, 1)"
    raise ShapeProblem(f"permute{order} of a volume that is {where}",
                       f"a permute moves channels last, permute(0, 2, 3, 1), or back, permute(0, 3, 1, 2); "
                       f"here {wanted}" if len(s) == 3 else "permute a CxHxW volume")


def _permute_torch(s: Shape, v: dict, t: dict) -> Torch:
    parts = tuple(t[f"d{i}"] for i in range(4))
    return Torch("Permute", (Source(f"[{', '.join(p.text for p in parts)}]", parts),), (), "Permute")


PERMUTE = LayerRule(
    "permute", "reorders the axes (batch, channels, height, width): permute(0, 2, 3, 1) moves channels last, "
    "so that fc and layernorm act per pixel; permute(0, 3, 1, 2) moves them back",
    tuple(ArgSpec(f"d{i}", "int", minimum=0, doc=f"the input axis that becomes axis {i}") for i in range(4)),
    _permute_shape, torch=_permute_torch, base_name="permute", category="reshape", channels_last=True,
    label=lambda a: f"permute {','.join(a(f'd{i}') for i in range(4))}",
    figure=lambda a: "channels last" if a.value("d1") == 2 else "channels first")


def _shuffle_shape(s: Shape, a: dict):
    c = _spatial(s, "shuffle")[0]
    if c % a["groups"]:
        raise ShapeProblem(f"shuffle of {a['groups']} groups needs channels divisible by it, got {c}",
                           "give the layer before it a multiple of groups as its width")
    return s, []


SHUFFLE = LayerRule(
    "shuffle", "channel shuffle (ShuffleNet): the channels as `groups` groups, interleaved",
    (ArgSpec("groups", "int", minimum=1, doc="number of groups (divides the channels)"),),
    _shuffle_shape, torch=lambda s, v, t: Torch("nn.ChannelShuffle", (t["groups"],)),
    base_name="shuffle", category="reshape", label=lambda a: f"shuffle {a('groups')}")

CHANNEL_RULES = (GELU, MISH, PRELU, LAYERNORM, GROUPNORM, INSTANCENORM, LAYER_SCALE, PERMUTE, SHUFFLE)


# -- upsampling --------------------------------------------------------------------------

def _transposed_out(kind: str, size: int, a: dict, axis: str) -> int:
    """One axis through a transposed convolution: the notes' W2 = (W1 - F + 2P)/S + 1 solved
    for W1, as PyTorch's ConvTranspose2d: (W - 1)*S - 2P + D*(F - 1) + output_padding + 1."""
    out = (size - 1) * a["stride"] - 2 * a["pad"] + _extent(a) + a["output_padding"]
    if out <= 0:
        raise ShapeProblem(f"{kind} output size is {out} on the {axis} axis",
                           "use less padding, a larger filter or a larger stride")
    return out


def _conv_transpose_shape(s: Shape, a: dict):
    c, h, w = _spatial(s, "conv_transpose")
    if a["groups"] < 1 or c % a["groups"] or a["filters"] % a["groups"]:
        raise ShapeProblem(
            f"groups={a['groups']} must divide both the input channels ({c}) and the filters ({a['filters']})",
            "choose groups as a common divisor of the two")
    if a["output_padding"] >= max(a["stride"], a["dilation"]):
        raise ShapeProblem(f"output_padding of {a['output_padding']} must be smaller than the stride "
                           f"({a['stride']}) or the dilation ({a['dilation']})",
                           "output_padding only picks among the sizes a stride could have come from: "
                           "use output_padding < stride")
    return (a["filters"], _transposed_out("conv_transpose", h, a, "height"),
            _transposed_out("conv_transpose", w, a, "width")), []


def _conv_transpose_torch(s: Shape, v: dict, t: dict) -> Torch:
    return Torch("nn.ConvTranspose2d", (t["in"], t["filters"]), (("size", t["size"]),) + _kw(v, t, (
        ("stride", 1), ("pad", 0), ("output_padding", 0), ("groups", 1), ("bias", True), ("dilation", 1))))


def _conv_transpose_dims(d: Dims | None, t: dict) -> Dims | None:
    if not d:
        return None
    extent = t["dilation"] * (t["size"] - 1) + 1
    return tuple((x - 1) * t["stride"] - Const(2) * t["pad"] + extent + t["output_padding"] for x in d)


CONV_TRANSPOSE = LayerRule(
    "conv_transpose", "transposed convolution (PyTorch's ConvTranspose2d): the conv's arithmetic inverted, "
    "(W - 1)*S - 2P + F + output_padding",
    (ArgSpec("filters", "int", minimum=1, doc="number of filters K (output channels)", torch="out_channels"),
     ArgSpec("size", "int", minimum=1, doc="filter size F", torch="kernel_size"),
     ArgSpec("stride", "int", 1, minimum=1, doc="stride S: the factor it enlarges by"),
     ArgSpec("pad", "int", 0, minimum=0, doc="the padding P of the conv it inverts: trimmed from each side",
             torch="padding"),
     ArgSpec("output_padding", "int", 0, minimum=0, doc="extra rows and columns on one side, < stride"),
     ArgSpec("dilation", "int", 1, minimum=1),
     ArgSpec("groups", "int", 1, minimum=1),
     ArgSpec("bias", "bool", True)),
    _conv_transpose_shape,
    params=lambda s, a: s[0] * (a["filters"] // a["groups"]) * a["size"] ** 2 + (a["filters"] if a["bias"] else 0),
    macs=lambda i, o, a: i[0] * i[1] * i[2] * (a["filters"] // a["groups"]) * a["size"] ** 2,
    window=lambda s, a: (-(-_extent(a) // a["stride"]), 1), upscale=lambda s, a: a["stride"],
    torch=_conv_transpose_torch, base_name="upconv", channels=lambda s, c, t: t["filters"], fresh_output=True,
    kernel=lambda s, a: (s[0], a["filters"] // a["groups"], a["size"], a["size"]), aliases=("upconv",),
    category="conv", label=lambda a: f"upconv {a('size')}x{a('size')}/{a('stride')} {a('filters')}",
    figure=lambda a: f"up-conv {a('size')}×{a('size')}" + (f"/{a('stride')}" if a("stride") != "1" else "")
    + f", {a('filters')}", listing=Listing("UPCONV", "Transposed convolution"),
    dims=lambda d, v, t: _conv_transpose_dims(d, t))


def _upsample_shape(s: Shape, a: dict):
    c, h, w = _spatial(s, "upsample")
    given = [k for k in ("scale", "size", "like") if a.get(k) is not None]
    if len(given) != 1:
        raise ShapeProblem("upsample takes one of scale, size and like" + (
            f", got {' and '.join(given)}" if given else ""),
            "upsample(scale=2), upsample(size=64) or upsample(like=input) (the size of a named element)")
    if a["align_corners"] and a["mode"] == "nearest":
        raise ShapeProblem("align_corners applies to mode=\"bilinear\" only",
                           "leave align_corners out, or use mode=\"bilinear\"")
    if a.get("like") is not None:
        target = a["like"]
        if len(target) != 3:
            raise ShapeProblem(f"upsample(like=...) needs a CxHxW element to take its size from, got a flat "
                               f"vector of {target[0]}", "name an element before the first fc or flatten")
        return (c, target[1], target[2]), []
    if a.get("size") is not None:
        return (c, a["size"], a["size"]), []
    if a["scale"] <= 0:
        raise ShapeProblem(f"upsample scale must be positive, got {a['scale']:g}", "upsample(scale=2) doubles HxW")
    out = (c, int(h * a["scale"]), int(w * a["scale"]))  # PyTorch floors H * scale
    if min(out[1:]) < 1:
        raise ShapeProblem(f"upsample scale {a['scale']:g} takes {h}x{w} to {out[1]}x{out[2]}",
                           "use a larger scale")
    return out, []


def _upsample_torch(s: Shape, v: dict, t: dict) -> Torch:
    keywords = (("size", t["size"]),) if v.get("size") is not None else (("scale", t["scale"]),)
    keywords += _kw(v, t, (("mode", "nearest"),))
    if v["mode"] == "bilinear":
        keywords += (("align_corners", t["align_corners"]),)
    return Torch("nn.Upsample", (), keywords)


def _upsample_dims(d: Dims | None, v: dict, t: dict) -> Dims | None:
    if not d or v.get("like") is not None:
        return None
    if v.get("size") is not None:
        return (t["size"], t["size"])
    if isinstance(v["scale"], int):
        return tuple(x * t["scale"] for x in d)
    return None


def _upsample_label(a: Shown) -> str:
    by = (f"x{a('scale')}" if a.value("scale") is not None else
          f"to {a('size')}x{a('size')}" if a.value("size") is not None else f"to {a('like')}")
    return f"upsample {by} {a('mode')}"


UPSAMPLE = LayerRule(
    "upsample", "nearest or bilinear upsampling by a scale, to a size, or to the size of a named earlier "
    "element or of the input (like=input)",
    (ArgSpec("scale", "float", None, doc="the factor HxW grow by", torch="scale_factor"),
     ArgSpec("size", "int", None, minimum=1, doc="the output's height and width"),
     ArgSpec("like", "element", None, doc="a named earlier element, or input: take its height and width"),
     ArgSpec("mode", "str", "nearest", choices=("nearest", "bilinear")),
     ArgSpec("align_corners", "bool", False, doc="bilinear only: align the corner pixels (PyTorch's default: no)")),
    _upsample_shape,
    upscale=lambda s, a: max(1, int(a["scale"])) if a.get("scale") is not None else 1,
    torch=_upsample_torch, base_name="upsample", category="pool", label=_upsample_label,
    figure=lambda a: _upsample_label(a).replace("x", "×", 1) if a.value("scale") is not None else _upsample_label(a),
    listing=Listing("UPSAMPLE"), dims=_upsample_dims)


RULES: dict[str, LayerRule] = {}
for _rule in (CONV, MAXPOOL, AVGPOOL, MINPOOL, ADAPTIVE_AVGPOOL, ADAPTIVE_MAXPOOL, GLOBAL_AVGPOOL,
              FC, FLATTEN, DROPOUT, BATCHNORM, LRN, RELU, LEAKY_RELU, ELU, SIGMOID, TANH, SOFTMAX,
              MAXOUT, IDENTITY, RELU6, SILU, HARDSWISH, HARDSIGMOID, STOCHASTIC_DEPTH,
              CONV_TRANSPOSE, UPSAMPLE, *CHANNEL_RULES):
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


def label(kind: str, args: Iterable[tuple[str, Any]]) -> str:
    """The layer as the summary and the language server print it: `conv 3x3/2 64 pad 1`.
    `args` pairs names with IR values (`.value`, `.text`)."""
    return RULES[kind].summary_label(Shown(args))


def figure_label(kind: str, args: Iterable[tuple[str, Any]], symbolic: bool = False) -> str:
    """The layer as the diagram prints it: `conv 3×3/2, 64`; `symbolic` shows the source
    (`planes·4`), as a block's legend does."""
    return RULES[kind].figure_label(Shown(args, symbolic))


def lookup(name: str) -> LayerRule | None:
    """Exact name first, then the notes' upper-case spelling (RELU, CONV, FC)."""
    return RULES.get(name) or RULES.get(name.lower())
