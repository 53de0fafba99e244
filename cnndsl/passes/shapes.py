"""Pass 3, infer shapes: every node gets its input and output shape, parameter count,
multiply-accumulates and receptive field, all from the rules in `layers.py`.

Errors (a filter larger than its padded input, a size of zero, channels that disagree
at a concat or residual add) stop the pass; warnings (filters that don't fit) are
collected and returned beside the new tree. A residual's projection shortcut is built
here, where the shapes it joins are known.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import ir
from ..diagnostics import CompileError, Diagnostic
from ..expr import TRUE, Binary, Const, Expr, Name, binary
from ..layers import RULES, ShapeProblem, shortcut_stride, size_problem, subsampled


@dataclass(frozen=True)
class Flow:
    """What travels along a chain: the shape, the channels as an expression, the receptive field."""

    shape: ir.Shape
    channels: Expr
    rf: int = 1
    jump: int = 1
    dims: tuple[Expr, ...] | None = ()  # H and W as expressions (of a block's input H, W); () once flat


def fmt_shape(shape: ir.Shape) -> str:
    return "x".join(str(d) for d in shape)


class ShapeInference:
    def __init__(self) -> None:
        self.warnings: list[Diagnostic] = []
        self.named_outputs: dict[str, Flow] = {}  # for side(name): what each named element gave

    def error(self, span, message: str, hint: str | None, code: str = "shape") -> CompileError:
        return CompileError([Diagnostic.error(span, message, hint, code)] + self.warnings)

    # -- nodes -------------------------------------------------------------------------
    def seq(self, seq: ir.Seq, flow: Flow) -> tuple[ir.Seq, Flow]:
        start = flow
        items = []
        for item in seq.items:
            item, flow = self.node(item, flow)
            items.append(item)
            if getattr(item, "name", None):
                self.named_outputs[item.name] = flow
        return replace(seq, items=tuple(items), stats=self.total(items, start, flow)), flow

    def total(self, items, start: Flow, end: Flow) -> ir.Stats:
        return ir.Stats(start.shape, end.shape, sum(i.stats.params for i in items),
                        sum(i.stats.macs for i in items), end.rf, end.jump, end.channels, dims=end.dims)

    def node(self, node: ir.Node, flow: Flow) -> tuple[ir.Node, Flow]:
        if isinstance(node, ir.Layer):
            return self.layer(node, flow)
        if isinstance(node, ir.Seq):
            return self.seq(node, flow)
        if isinstance(node, ir.Concat):
            return self.concat(node, flow)
        if isinstance(node, ir.Residual):
            return self.residual(node, flow)
        if isinstance(node, ir.Side):
            read = flow
            if node.source is not None:
                if node.source not in self.named_outputs:
                    raise self.error(node.span, f"side({node.source}) reads an element that is not named "
                                     "earlier in this chain", "name the element it should read, before this line")
                read = self.named_outputs[node.source]
            inner, out = self.node(node.node, read)
            # Parameters count (they are in the state_dict); MACs do not: inference skips it.
            stats = ir.Stats(flow.shape, out.shape, inner.stats.params, 0, flow.rf, flow.jump, flow.channels,
                             dims=flow.dims)
            return replace(node, node=inner, stats=stats), flow
        return self.instance(node, flow)

    def layer(self, layer: ir.Layer, flow: Flow) -> tuple[ir.Layer, Flow]:
        rule = RULES[layer.kind]
        values = layer.values
        exprs = {k: v.expr for k, v in layer.args}
        try:
            out, notes = rule.shape(flow.shape, values)
        except ShapeProblem as problem:
            raise self.error(layer.span, f"{problem.message} (input {fmt_shape(flow.shape)})",
                             problem.hint) from None
        for note in notes:
            warning = Diagnostic.warning(layer.span, note.message, note.hint, note.code)
            if warning not in self.warnings:  # a block used twice warns once
                self.warnings.append(warning)
        extent, stride = rule.window(flow.shape, values)
        channels = rule.channels(flow.shape, flow.channels, exprs)
        params, macs = rule.params(flow.shape, values), rule.macs(flow.shape, out, values)
        problem = size_problem(out, params, macs)
        if problem:
            raise self.error(layer.span, f"{layer.kind}: {problem.message}", problem.hint, "limit")
        stats = ir.Stats(
            flow.shape, out, params, macs,
            flow.rf + (extent - 1) * flow.jump, flow.jump * stride, channels,
            flatten_before=rule.flattens and len(flow.shape) == 3, in_channels=flow.channels,
            dims=rule.dims(flow.dims, values, exprs))
        return replace(layer, stats=stats), Flow(out, channels, stats.rf, stats.jump, stats.dims)

    def concat(self, node: ir.Concat, flow: Flow) -> tuple[ir.Concat, Flow]:
        branches = []
        outs = []
        for branch in node.branches:
            branch, out = self.seq(branch, flow)
            branches.append(branch)
            outs.append(out)
        first = outs[0].shape
        for branch, out in zip(branches[1:], outs[1:]):
            if len(out.shape) != 3 or len(first) != 3 or out.shape[1:] != first[1:]:
                listing = ", ".join(fmt_shape(o.shape) for o in outs)
                raise self.error(branch.span, f"concat branches disagree on their size: {listing}",
                                 "every branch must keep the same HxW; check strides and padding")
        shape = (sum(o.shape[0] for o in outs),) + first[1:]
        channels = outs[0].channels
        for o in outs[1:]:
            channels = binary("+", channels, o.channels)
        end = Flow(shape, channels, max(o.rf for o in outs), max(o.jump for o in outs), outs[0].dims)
        return replace(node, branches=tuple(branches), stats=self.total(branches, flow, end)), end

    def residual(self, node: ir.Residual, flow: Flow) -> tuple[ir.Residual, Flow]:
        body, out = self.seq(node.body, flow)
        shortcut = node.shortcut
        same = out.shape == flow.shape
        if shortcut.kind == "identity":
            if not same:
                raise self.error(node.span, f"residual add of {fmt_shape(out.shape)} (the body) and "
                                 f"{fmt_shape(flow.shape)} (the identity shortcut)",
                                 "make the body keep its input's shape, or add `shortcut projection`")
            shortcut = replace(shortcut, stats=ir.Stats(flow.shape, flow.shape))
        elif shortcut.kind == "pad":
            shortcut = self.zero_pad(shortcut, flow, out)
        else:
            shortcut = self.projection(shortcut, body, flow, out)
        params = body.stats.params + shortcut.stats.params
        macs = body.stats.macs + shortcut.stats.macs
        stats = ir.Stats(flow.shape, out.shape, params, macs, out.rf, out.jump, out.channels, dims=out.dims)
        return replace(node, body=body, shortcut=shortcut, stats=stats), out

    def zero_pad(self, shortcut: ir.Shortcut, flow: Flow, out: Flow) -> ir.Shortcut:
        """Option A: take every stride-th pixel, add zero channels; no parameters."""
        if len(flow.shape) != 3 or len(out.shape) != 3:
            raise self.error(shortcut.span, "a pad shortcut joins two CxHxW volumes", None)
        stride = shortcut_stride(flow.shape, out.shape)
        if out.shape[0] < flow.shape[0] or subsampled(flow.shape, stride)[1:] != out.shape[1:]:
            raise self.error(shortcut.span, f"a pad shortcut cannot take {fmt_shape(flow.shape)} to "
                             f"{fmt_shape(out.shape)}", "it subsamples by a whole stride and only adds channels; "
                             "use `shortcut projection` instead")
        applied = out.shape != flow.shape
        return replace(shortcut, applied=applied, stats=ir.Stats(flow.shape, out.shape))

    def projection(self, shortcut: ir.Shortcut, body: ir.Seq, flow: Flow, out: Flow) -> ir.Shortcut:
        if len(flow.shape) != 3 or len(out.shape) != 3:
            raise self.error(shortcut.span, "a projection shortcut joins two CxHxW volumes",
                             "keep the residual before the first fc")
        stride_value = _stride_of(body)
        if stride_value is None:
            stride_value = ir.Value.constant(shortcut_stride(flow.shape, out.shape))
        needed = out.shape != flow.shape
        parts: list[Expr] = []
        if stride_value.names or stride_value.value != 1:
            parts.append(Binary("!=", stride_value.expr, Const(1)))
        if flow.channels != out.channels:
            parts.append(Binary("!=", flow.channels, out.channels))
        applies = (stride_value.value != 1) or (flow.shape[0] != out.shape[0])
        if parts and applies != needed:
            raise self.error(shortcut.span, "cannot tell from the parameters where the projection applies",
                             "make the body's stride a single layer's stride argument")
        conv = ir.Layer("conv", (
            ("filters", ir.Value(out.shape[0], out.channels)), ("size", ir.Value.constant(1)),
            ("stride", stride_value), ("pad", ir.Value.constant(0)), ("dilation", ir.Value.constant(1)),
            ("groups", ir.Value.constant(1)), ("bias", ir.Value.constant(False)),
            ("padding_mode", ir.Value.constant("zeros")),
            # A 1x1 conv at stride s subsamples by design (the body reads every pixel): no fit warning.
            ("floor", ir.Value.constant(True))), None, shortcut.span)
        bn = ir.Layer("batchnorm", (("eps", ir.Value.constant(1e-5)), ("momentum", ir.Value.constant(0.1)),
                                    ("affine", ir.Value.constant(True))), None, shortcut.span)
        conv, mid = self.layer(conv, flow)
        if needed and mid.shape != out.shape:
            raise self.error(shortcut.span, f"the projection gives {fmt_shape(mid.shape)} but the body gives "
                             f"{fmt_shape(out.shape)}", "the body must shrink HxW by a whole stride")
        bn, _ = self.layer(bn, mid)
        layers = (conv, bn) if shortcut.bn else (conv,)
        condition = TRUE
        for index, part in enumerate(parts):
            condition = part if index == 0 else Binary("or", condition, part)
        params = sum(layer.stats.params for layer in layers) if needed else 0
        macs = conv.stats.macs if needed else 0
        return replace(shortcut, layers=layers, condition=ir.Value(applies, condition), applied=needed,
                       stats=ir.Stats(flow.shape, out.shape, params, macs))

    def instance(self, node: ir.BlockInstance, flow: Flow) -> tuple[ir.BlockInstance, Flow]:
        height, width = dim_names(node)
        inner = Flow(flow.shape, Name("in_channels"), flow.rf, flow.jump,
                     (Name(height), Name(width)) if len(flow.shape) == 3 else ())
        outside = self.named_outputs
        self.named_outputs = {}  # a block's member names are its own
        body, out = self.seq(node.body, inner)
        self.named_outputs = outside
        # Outside, the block's output channels are its inner formula with the call's arguments,
        # constants folded: 64 + 128 + 32 + 32 reads better as 256.
        mapping = {name: value.expr for name, value in node.args}
        mapping["in_channels"] = flow.channels
        channels = out.channels.substitute(mapping)
        dims = None
        if out.dims is not None and flow.dims is not None:
            mapping.update(zip((height, width), flow.dims))
            dims = tuple(d.substitute(mapping) for d in out.dims)
        end = Flow(out.shape, channels, out.rf, out.jump, dims)
        stats = ir.Stats(flow.shape, out.shape, body.stats.params, body.stats.macs, out.rf, out.jump, channels,
                         in_channels=flow.channels, dims=dims)
        return replace(node, body=body, stats=stats), end


def _stride_of(body: ir.Seq) -> ir.Value | None:
    """The one layer argument that sets the body's stride, if there is exactly one."""
    found = []

    def visit(node):
        if isinstance(node, ir.Layer):
            stride = dict(node.args).get("stride")
            if stride is not None and stride.value is not None and (stride.names or stride.value != 1):
                found.append(stride)
        elif isinstance(node, ir.Seq):
            for item in node.items:
                visit(item)

    visit(body)
    return found[0] if len(found) == 1 else None


def dim_names(node: ir.BlockInstance) -> tuple[str, str]:
    """The names a block's comments give its input's height and width: H and W, unless
    the block has parameters of those names."""
    taken = {name for name, _ in node.args}
    height, width = "H", "W"
    while height in taken or width in taken:
        height, width = height + "_in", width + "_in"
    return height, width


def infer_shapes(network: ir.Network) -> tuple[ir.Network, list[Diagnostic]]:
    inference = ShapeInference()
    # The network's sizes are numbers (in out_shape); only a block's are expressions (of its H, W).
    start = Flow(network.input, network.input_channels.expr, dims=None)
    body, _ = inference.seq(network.body, start)
    return replace(network, body=body), inference.warnings
