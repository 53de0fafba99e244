"""Pass 3, infer shapes: every node gets its input and output shape, parameter count,
multiply-accumulates and receptive field, all from the rules in `layers.py`.

Every error is reported (a filter larger than its padded input, a size of zero, channels
that disagree at a concat or residual add), none twice: after one, the element's output
shape is unknown (`Flow` None), the elements that read it stay silent and keep
`stats=None`, and the parts that do not (another branch of a concat, a side output that
reads an earlier element) are still checked. Warnings (filters that don't fit) go to the
context too. A residual's projection shortcut is built here, where the shapes it joins
are known.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, is_, itemgetter

from .. import ir
from ..diagnostics import ERROR
from ..expr import TRUE, Binary, Const, Expr, Name, binary
from ..layers import RULES, ChannelsLast, ShapeProblem, channels_last, shortcut_stride, size_problem, subsampled
from ..node import replace
from ..traverse import Visitor, evolve
from .context import Context, alone, finish
from .pending import PendingProblem, block_env, resolve_args, resolve_layer
from .receptive import POINT, Chains, Rebase, has_pending, receptive
from .values import PENDING
from .receptive import widest as _widest


@dataclass(frozen=True)
class Flow:
    """What travels along a chain: the shape, the channels as an expression, the receptive field;
    and `token`, a number for its shape, channels and dims (`ShapeInference.token`), None
    until it is asked for: a copy that changes one of those three leaves it out."""

    shape: ir.Shape
    channels: Expr
    rf: int | tuple[int, int] = 1  # (height, width) where the axes differ
    jump: int | tuple[int, int] = 1
    dims: tuple[Expr, ...] | None = ()  # H and W as expressions (of a block's input H, W); () once flat
    token: int | None = None


_new = object.__new__


def _flow(shape: ir.Shape, channels: Expr, rf, jump, dims, token: int | None = None) -> Flow:
    """`Flow(...)` without the frozen dataclass's `__init__`, for the flows made at each layer and
    block use: each field set by itself, no dict of keyword arguments to merge."""
    flow = _new(Flow)
    fields = flow.__dict__
    fields["shape"] = shape
    fields["channels"] = channels
    fields["rf"] = rf
    fields["jump"] = jump
    fields["dims"] = dims
    fields["token"] = token
    return flow


_IN_CHANNELS = Name("in_channels")  # a block's input channels, in its own names


def fmt_shape(shape: ir.Shape) -> str:
    """`64x56x56`; a channels-last volume as it is held, `56x56x64`."""
    if channels_last(shape):
        shape = tuple(shape[1:]) + tuple(shape[:1])
    return "x".join(str(d) for d in shape)


class OwnFacts:
    """What a layer object gives wherever it is used (`ShapeInference.own_facts`): once
    `facts` has read them, its values and its arguments' expressions (`_UNREAD` before,
    None where one is pending), and the output dims of the input dims it last read."""

    __slots__ = ("layer", "values", "exprs", "dims_in", "dims")

    def __init__(self, layer: ir.Layer) -> None:
        self.layer = layer
        self.values = self.exprs = _UNREAD
        self.dims_in = self.dims = _NO_DIMS


_NO_DIMS = object()  # not worked out yet (None is unknown dims)
_UNREAD = object()


class ShapeInference(Visitor):
    """`visit(node, flow)` gives the node with its stats and the flow after it; a flow of
    None is an unknown shape, after an error."""

    REUSE = True  # whether `reused` keeps inferred chains (tests/test_shapes_reuse.py compares both ways)

    def __init__(self, context: Context, env: dict | None = None) -> None:
        self.context = context
        # The values of the enclosing parameters, for pending values (`scope`): None in a block use
        # until they are read, made then from `env_of`, the use's (arguments, input shape)
        self.env: dict | None = env or {}
        self.env_of: tuple = ((), ())
        # For side(name), like=name and concat(name): what each named element gave; `input`,
        # the input of the network or block.
        self.named_outputs: dict[str, Flow | None] = {}
        self.in_block = False
        self.side_outputs: dict[str, Flow | None] = {}  # what each side output gives
        self.output_elements: frozenset[str] = frozenset()  # the network's named outputs' elements
        # (id(layer), the input's `token`) -> `facts`; id(layer) -> `OwnFacts`; (shape, channels,
        # dims) -> a flow's token
        self.layer_facts: dict = {}
        self.layer_objects: dict = {}
        self.flow_tokens: dict = {}
        self.sums: dict = {}  # (left, right) -> their sum, the channels of a concat: see `plus`
        self.projections: dict = {}  # (maker, its arguments) -> a projection's layer: see `made`
        # side(backbone.layer3): what each member of a named group gave, by its path; the
        # groups open around the visit (path, members' keys so far); the blocks met (path -> name).
        self.taps: dict[str, Flow | None] = {}
        self.groups: list[tuple[str, list[str]]] = []
        self.tapped_blocks: dict[str, str] = {}
        self.tapping = False  # only where some side reads inside a group
        # A block body inferred once for each input (see `block_body`): (its expanded body, the
        # input shape, the arguments) -> (the inferred body, its output, the receptive field and jump
        # it was inferred at); and each inferred layer's window, for `Rebase`.
        self.bodies: dict = {}
        self.windows: dict = {}
        self.orders: dict = {}  # the order in which `Rebase.shifted` copies a kept body
        self.chains = Chains(context.leaf_copies)
        self.reusing = False  # whether a named group's inference may be reused: nothing reads an element

    def error(self, span, message: str, hint: str | None, code: str = "shape") -> None:
        self.context.error(span, message, hint, code)

    # -- nodes -------------------------------------------------------------------------
    def visit_Seq(self, seq: ir.Seq, flow: Flow | None) -> tuple[ir.Seq, Flow | None]:
        if self.reusing and seq.name is not None and flow is not None:  # a named group: see `reused`
            return self.reused(seq, flow, self.chain)
        return self.chain(seq, flow)

    def chain(self, seq: ir.Seq, flow: Flow | None) -> tuple[ir.Seq, Flow | None]:
        start = flow
        items = []
        group = self.tapping and seq.name is not None
        if group:  # a named group, an nn.Sequential: its members' keys as names.py gives them
            outer = self.groups[-1][0] + "." if self.groups else ""
            self.groups.append((outer + str(seq.name), []))
        visit, visit_layer = self.visit, self.visit_Layer
        for item in seq.items:
            # most items are layers: their visit without `Visitor.visit`'s dispatch
            item, flow = visit_layer(item, flow) if type(item) is _LAYER else visit(item, flow)
            items.append(item)
            if getattr(item, "name", None):
                self.named_outputs[item.name] = flow
            if self.tapping and self.groups and not (isinstance(item, ir.Seq) and item.name is None):
                self.tap(item, flow)
        if group:
            self.groups.pop()
        return evolve(seq, items=tuple(items), stats=self.total(items, start, flow)), flow

    def tap(self, item, flow: Flow | None) -> None:
        """Keep what a member of the innermost open group gave, under its path (its label,
        or its place as PyTorch numbers it, an inserted flatten counted)."""
        path, keys = self.groups[-1]
        stats = getattr(item, "stats", None)
        if stats is not None and stats.flatten_before and keys:
            keys.append(str(len(keys)))  # names.py puts an nn.Flatten before it
        key = str(item.name) if getattr(item, "name", None) else str(len(keys))
        keys.append(key)
        self.taps[f"{path}.{key}"] = flow
        if isinstance(item, ir.BlockInstance):
            self.tapped_blocks[f"{path}.{key}"] = item.block

    def total(self, items, start: Flow | None, end: Flow | None) -> ir.Stats | None:
        if start is None or end is None:
            return None
        stats = list(map(_STATS_OF, items))
        if any(map(is_, stats, repeat(None))):
            return None
        return ir.Stats(start.shape, end.shape, sum(map(_PARAMS, stats)), sum(map(_MACS, stats)), end.rf, end.jump,
                        end.channels, dims=end.dims)

    def visit_Side(self, node: ir.Side, flow: Flow | None) -> tuple[ir.Side, Flow | None]:
        read = flow
        if node.source is not None:
            found = self.named_outputs if "." not in node.source else self.taps
            if node.source not in found:
                self.error(node.span, *self.unknown_tap(node.source))
                if getattr(node.node, "name", None):  # its output is unknown, not missing
                    self.side_outputs[node.node.name] = None
                return node, flow
            read = found[node.source]
        inner, out = self.visit(node.node, read)
        if getattr(inner, "name", None):
            self.side_outputs[inner.name] = out
        if flow is None or out is None or inner.stats is None:
            return evolve(node, node=inner), flow
        # Parameters count (they are in the state_dict); MACs do not: inference skips it,
        # unless it is a named output, computed in eval mode too.
        macs = inner.stats.macs if getattr(inner, "name", None) in self.output_elements else 0
        stats = ir.Stats(flow.shape, out.shape, inner.stats.params, macs, flow.rf, flow.jump, flow.channels,
                         dims=flow.dims)
        return evolve(node, node=inner, stats=stats), flow

    def unknown_tap(self, source: str) -> tuple[str, str]:
        """What is wrong with `side(source)` that names nothing earlier: the message and hint."""
        parts = source.split(".")
        if len(parts) == 1 or parts[0] not in self.named_outputs:
            return (f"side({source}) reads an element that is not named earlier in this chain",
                    "name the element it should read, before this line")
        for end in range(len(parts) - 1, 0, -1):
            inside = ".".join(parts[:end])
            if inside in self.tapped_blocks:
                return (f"side({source}) reads inside {inside!r}, a use of block {self.tapped_blocks[inside]}, "
                        "whose forward is its class's own", f"read the block's output: side({inside})")
        group = ".".join(parts[:-1])
        keys = [path.rpartition(".")[2] for path in self.taps if path.rpartition(".")[0] == group]
        if not keys:
            return (f"side({source}) reads inside {group!r}, which is not a named group of this network",
                    f"read its output, side({group})" if group in self.taps else
                    f"read a member of a named group (an nn.Sequential), or side({parts[0]}) itself")
        return (f"side({source}): the group {group!r} has no member {parts[-1]!r}",
                f"its members: {', '.join(keys)}")

    def visit_Unknown(self, node: ir.Unknown, flow: Flow | None) -> tuple[ir.Unknown, None]:
        return node, None  # its error is reported; what reads its output stays silent

    def visit_Layer(self, layer: ir.Layer, flow: Flow | None) -> tuple[ir.Layer, Flow | None]:
        if flow is None:
            return layer, None
        token = flow.token
        key = (id(layer), self.token(flow) if token is None else token)
        facts = self.layer_facts.get(key)
        if facts is None or facts[0] is not layer:
            facts = self.kept_facts(layer, flow, key)
            if facts is None:
                return layer, None
        layer, _, notes, window, made, out, channels, flattens, dims, token = facts
        for note in notes:  # a block used twice warns once: the context keeps one of each
            self.context.warn(layer.span, note.message, note.hint, note.code)
        shape = flow.shape
        rf, jump = flow.rf, flow.jump
        if window is not POINT:
            rf, jump = receptive(rf, jump, *window)
        if type(shape) is ChannelsLast:
            flattens, dims, token = False, flow.dims, None
        # ir.Stats(...), `evolve(layer, stats=stats)` and Flow(...) without the frozen __init__ (once per
        # layer per use), each field set by itself (no dict of keyword arguments to merge)
        stats = _new(_STATS)
        fields = stats.__dict__
        fields.update(made)
        fields["in_shape"] = shape
        fields["rf"] = rf
        fields["jump"] = jump
        fields["flatten_before"] = flattens and len(shape) == 3
        fields["in_channels"] = flow.channels
        fields["dims"] = dims
        new = _new(_LAYER)
        fields = new.__dict__
        fields.update(layer.__dict__)
        fields["stats"] = stats
        self.windows[id(new)] = window  # for `Rebase`, while the layer lives
        return new, _flow(out, channels, rf, jump, dims, token)

    def token(self, flow: Flow) -> int:
        """The number of the flow's shape, channels and dims, the same for equal ones, so that
        the keys of a layer's facts and of a body's inference hash no expression; kept in the
        flow."""
        token = self.flow_tokens.setdefault((flow.shape, flow.channels, flow.dims), len(self.flow_tokens))
        flow.__dict__["token"] = token  # frozen, and made once: a cache of what it holds
        return token

    def kept_facts(self, layer: ir.Layer, flow: Flow, key: tuple) -> tuple | None:
        """The layer's `facts`, worked out once for each layer object and input (`key`): a
        layer of a block used many times at the same input is one object. Equal layers of
        other objects are worked out again: few are (a block's uses that differ in a leaf
        value share its inferred body, `releafed`), and a key of their arguments costs more
        than the facts it would save."""
        facts = self.facts(layer, flow, self.own_facts(layer))
        if facts is not None and facts[1]:  # not an error, nor facts that hold for this place alone
            self.layer_facts[key] = facts
        return facts

    def own_facts(self, layer: ir.Layer) -> OwnFacts:
        """What a layer object gives wherever it is used, worked out at its first use."""
        known = self.layer_objects.get(id(layer))
        if known is None or known.layer is not layer:
            known = self.layer_objects[id(layer)] = OwnFacts(layer)  # the layer kept: its id stays its own
        return known

    def made(self, make, *key) -> ir.Layer:
        """A projection's conv or batch norm, one object for equal arguments (a shortcut of a
        block used many times), so that its facts are worked out once (`visit_Layer`)."""
        try:
            found = self.projections.get((make, *key))
        except TypeError:  # an unhashable argument: a layer of its own
            return make(*key)
        if found is None:
            found = self.projections[(make, *key)] = make(*key)
        return found

    def facts(self, layer: ir.Layer, flow: Flow, own: OwnFacts) -> tuple | None:
        """What a layer gives from its input, but for the receptive field: (the layer, whether
        the facts hold wherever it reads this input, its notes, its window, its stats' fields
        that hold at every use, its output shape, channels, whether it flattens, its output's
        dims); None after an error. A layer with a pending argument (it reads the block's
        input) comes back resolved, a new layer, and its facts are not kept (`kept_facts`), nor
        those of a layer that names an element."""
        resolved, values, exprs = layer, own.values, own.exprs
        if values is _UNREAD:
            values = layer.values
            if PENDING in values.values():  # `has_pending`, on the values read anyway
                own.values = own.exprs = values = exprs = None
            else:
                own.values, own.exprs = values, {k: v.expr for k, v in layer.args}
                exprs = own.exprs
        if values is None:  # a pending argument, computed in this use's input
            try:
                resolved = resolve_layer(layer, self.scope())
            except PendingProblem as problem:
                self.error(layer.span, problem.message, problem.hint, problem.code)
                return None
            values, exprs = resolved.values, {k: v.expr for k, v in resolved.args}
        rule = RULES[resolved.kind]
        if resolved.kind in _READERS:
            values = self.referenced(resolved, rule, values)
            if values is None:
                return None
        try:
            out, notes = _shape(resolved.kind, rule, flow.shape, values)
        except ShapeProblem as problem:
            self.error(resolved.span, f"{problem.message} (input {fmt_shape(flow.shape)})", problem.hint)
            return None
        extent, stride = rule.window(flow.shape, values)
        channels = rule.channels(flow.shape, flow.channels, exprs)
        params, macs = rule.params(flow.shape, values), rule.macs(flow.shape, out, values)
        problem = size_problem(out, params, macs)
        if problem:
            self.error(resolved.span, f"{resolved.kind}: {problem.message}", problem.hint, "limit")
            return None
        # where `like=` reads an element, the facts hold for this place alone
        keep = resolved is layer and resolved.kind not in _READERS
        window = extent, stride, rule.upscale(flow.shape, values)
        made = {"out_shape": out, "params": params, "macs": macs, "channels": channels}  # the stats' fields of any use
        if not keep:
            dims = rule.dims(flow.dims, values, exprs)
        elif own.dims_in is not _NO_DIMS and own.dims_in == flow.dims:
            dims = own.dims  # a rule's dims read no shape: DenseNet's first conv of a dense layer, for its 98 inputs
        else:
            own.dims_in, own.dims = flow.dims, rule.dims(flow.dims, values, exprs)
            dims = own.dims
        # the output's token, where it is channels first (`visit_Layer`): the input's where the layer
        # keeps its shape, channels and dims (a norm, an activation)
        token = flow.token
        if token is None or channels is not flow.channels or dims is not flow.dims or out != flow.shape:
            token = self.flow_tokens.setdefault((out, channels, dims), len(self.flow_tokens))
        return (resolved, keep, tuple(notes), POINT if window == POINT else window, made, out, channels,
                rule.flattens, dims, token)

    def outputs(self, network: ir.Network) -> tuple[ir.Output, ...]:
        """The named outputs with their shapes; an unknown element is an error at its key."""
        out = []
        for output in network.outputs:
            flows = self.side_outputs if output.element in self.side_outputs else self.named_outputs
            if output.element not in flows or output.element == "input":
                known = ", ".join(n for n in [*self.named_outputs, *self.side_outputs] if n != "input")
                self.error(output.span, f"output {output.key!r} names no element {output.element!r} of "
                           f"network {network.name}", f"name one of: {known}" if known else None, "output")
                continue
            flow = flows[output.element]
            out.append(evolve(output, shape=flow.shape if flow is not None else None))
        return tuple(out)

    def referenced(self, layer: ir.Layer, rule, values: dict) -> dict | None:
        """The layer's `values`, each element argument (`like=enc4`) replaced by the shape of
        the element it names; None after an error."""
        for spec in rule.args:
            name = values.get(spec.name) if spec.type == "element" else None
            if name is None:
                continue
            if name not in self.named_outputs:
                known = ", ".join(n for n in self.named_outputs if n != "input")
                self.error(layer.span, f"{layer.kind}({spec.name}={name}) names no element before it in this "
                           f"{'block' if self.in_block else 'network'}",
                           f"name one of: input, {known}" if known else "use input, or label an earlier element")
                return None
            target = self.named_outputs[name]
            if target is None:  # that element failed, and said so
                return None
            values = {**values, spec.name: target.shape}
        return values

    def visit_Concat(self, node: ir.Concat, flow: Flow | None) -> tuple[ir.Concat, Flow | None]:
        branches = []
        outs = []
        read = self.share(node, flow) if node.split else flow
        sources = node.sources or (None,) * len(node.branches)
        for branch, source in zip(node.branches, sources):  # each branch is checked, whatever the others give
            branch, out = self.visit_Seq(branch, read if source is None else self.source(node, source, read,
                                                                                         branch.span))
            branches.append(branch)
            outs.append(out)
        if node.op != "cat":
            return self.combine(node, branches, outs, flow)
        if not node.branches:  # concat(enc4): the skips, then the chain's value
            outs.append(flow)
        if flow is None or any(map(is_, outs, repeat(None))):
            return evolve(node, branches=tuple(branches)), None
        first = outs[0].shape
        if not self.agree(node, branches, outs):
            return evolve(node, branches=tuple(branches)), None
        skipped = self.skips(node, outs[0])
        if skipped is None:
            return evolve(node, branches=tuple(branches)), None
        flows, fits = skipped
        outs = flows + outs
        shape = (sum(o.shape[0] for o in outs),) + first[1:]
        channels = outs[0].channels
        for o in outs[1:]:
            channels = self.plus(channels, o.channels)
        dims = next((o.dims for o in reversed(outs) if o.dims is not None), None)  # a resized branch's: unknown
        end = _flow(shape, channels, _widest(map(_RF, outs)), _widest(map(_JUMP, outs)), dims)
        stats = self.total(branches, flow, end) if branches else ir.Stats(
            flow.shape, shape, 0, 0, end.rf, end.jump, channels, dims=end.dims)
        return evolve(node, branches=tuple(branches), stats=stats, fits=fits), end

    def plus(self, left: Expr, right: Expr) -> Expr:
        """`binary("+", left, right)`, worked out once for each pair: DenseNet's dense blocks
        each add growth_rate to the same sums, in_channels + growth_rate * 2 and on."""
        key = (left, right)
        found = self.sums.get(key)
        if found is None:
            found = self.sums[key] = binary("+", left, right)
        return found

    def source(self, node: ir.Concat, source: str, flow: Flow | None, span) -> Flow | None:
        """What a branch `from(source)` reads: the named earlier element (or a block's
        `reads` input, or a member of a named group by its path); None after an error."""
        found = self.taps if "." in source else self.named_outputs
        if source not in found or source == "input":
            what = f"{'an add' if node.op == 'add' else 'a ' + node.op} branch from({source})"
            if source == "input":
                self.error(span, f"{what} reads the input: every branch does that already",
                           "leave out from(input)", "skip")
                return None
            message, hint = self.unknown_tap(source) if "." in source else (
                f"{what} names no element before it in this {'block' if self.in_block else 'network'}",
                f"name one of: {', '.join(n for n in self.named_outputs if n != 'input')}")
            self.error(span, message.replace(f"side({source})", f"from({source})"), hint, "skip")
            return None
        return found[source] if flow is not None else None

    def combine(self, node: ir.Concat, branches: list, outs: list, flow: Flow | None):
        """`add { ... }` / `mul { ... }`: the branches' outputs summed or multiplied. Each size
        of each output is 1 or the largest of them (PyTorch's broadcast over a volume), so
        the result has the largest sizes."""
        if flow is None or any(o is None for o in outs):
            return evolve(node, branches=tuple(branches)), None
        shapes = [o.shape for o in outs]
        widest = _broadcast(shapes)
        if widest is None:
            self.not_broadcast(node, branches, shapes)
            return evolve(node, branches=tuple(branches)), None
        full = next((o for o in outs if o.shape == widest), outs[0])
        end = Flow(widest, full.channels, _widest(o.rf for o in outs), _widest(o.jump for o in outs), full.dims)
        return evolve(node, branches=tuple(branches), stats=self.total(branches, flow, end)), end

    def not_broadcast(self, node: ir.Concat, branches: list, shapes: list) -> None:
        """The error of an add or mul whose branches' outputs do not broadcast, at the first
        branch that does not fit the others, with what to change."""
        bad = next((b for b, x in zip(branches[1:], shapes[1:]) if _broadcast([shapes[0], x]) is None),
                   branches[-1])  # the first that does not fit the first
        listing = f" {'+' if node.op == 'add' else '*'} ".join(fmt_shape(x) for x in shapes)
        channels = sorted({x[0] for x in shapes if len(x) == 3 and x[0] != 1})
        hint = (f"end every branch with the same channels (they end with {', '.join(map(str, channels))})"
                if len(channels) > 1 else "each size must be 1 or the others': upsample(like=...) the "
                "smaller branch to the other's height and width")
        self.error(bad.span, f"{'an add' if node.op == 'add' else 'a mul'} of {listing}: the branches' "
                   "outputs do not broadcast", hint, "shape")

    def agree(self, node: ir.Concat, branches: list, outs: list[Flow]) -> bool:
        """Whether the branches give volumes of one HxW, channels first (an error where not)."""
        first = outs[0].shape
        for branch, out in zip(branches[1:], outs[1:]):
            if len(out.shape) != 3 or len(first) != 3 or out.shape[1:] != first[1:] or \
                    channels_last(out.shape) or channels_last(first):
                listing = ", ".join(fmt_shape(o.shape) for o in outs)
                self.error(branch.span, f"{'split' if node.split else 'concat'} branches disagree on their size: "
                           f"{listing}", "every branch must keep the same HxW; check strides and padding")
                return False
        return True

    def share(self, node: ir.Concat, flow: Flow | None) -> Flow | None:
        """What each branch of a split reads: its equal share of the channels; None after an error."""
        if flow is None:
            return None
        n, shape = len(node.branches), flow.shape
        if len(shape) != 3 or channels_last(shape):
            self.error(node.span, f"a split divides the channels of a CxHxW volume, but its input is "
                       f"{fmt_shape(shape)}" + (" (channels last)" if channels_last(shape) else ""),
                       "split a volume, channels first, before any fc or flatten", "split")
            return None
        if shape[0] % n:
            self.error(node.span, f"a split of {shape[0]} channels into {n} branches cannot share them equally "
                       f"(input {fmt_shape(shape)})",
                       f"give the layer before it a multiple of {n} channels, or as many branches as divide "
                       f"{shape[0]}", "split")
            return None
        return evolve(flow, shape=(shape[0] // n,) + tuple(shape[1:]), channels=binary("//", flow.channels, Const(n)),
                      token=None)

    def skips(self, node: ir.Concat, target: Flow) -> tuple[list[Flow], tuple[str, ...]] | None:
        """The flows of a concat's skips (`concat(enc4)`) and how each is fitted to the
        target's HxW: "" (it fits), "crop" (centre crop, U-Net's) or "pad" (zeros around)."""
        flows, fits = [], []
        for name in node.skips:
            if name not in self.named_outputs or name == "input":
                known = ", ".join(n for n in self.named_outputs if n != "input")
                self.error(node.span, f"concat({name}) names no element before it in this "
                           f"{'block' if self.in_block else 'network'}",
                           f"name one of: {known}" if known else "label an earlier element: enc1: conv(64, 3)",
                           "skip")
                return None
            skip = self.named_outputs[name]
            if skip is None:
                return None
            if len(skip.shape) != 3 or len(target.shape) != 3:
                self.error(node.span, f"concat({name}) joins {name}'s {fmt_shape(skip.shape)} and "
                           f"{fmt_shape(target.shape)}: both must be CxHxW volumes", None, "skip")
                return None
            dh, dw = skip.shape[1] - target.shape[1], skip.shape[2] - target.shape[2]
            if dh * dw < 0:
                self.error(node.span, f"concat({name}) cannot fit {name}'s {fmt_shape(skip.shape)} to the "
                           f"chain's {fmt_shape(target.shape)}: larger on one axis and smaller on the other, "
                           "so neither a crop nor a pad reconciles them",
                           f"make both sides the same HxW shape, e.g. upsample(like={name}) before the concat",
                           "skip")
                return None
            fits.append("" if dh == dw == 0 else "crop" if dh >= 0 and dw >= 0 else "pad")
            flows.append(evolve(skip, dims=target.dims, token=None))
        return flows, tuple(fits)

    def visit_Residual(self, node: ir.Residual, flow: Flow | None) -> tuple[ir.Residual, Flow | None]:
        body, out = self.visit_Seq(node.body, flow)
        if flow is None or out is None:
            return evolve(node, body=body), None
        shortcut = self.shortcut(node, body, flow, out)
        if shortcut is None:
            return evolve(node, body=body), None
        if body.stats is None:  # a side output in the body failed; the sum's shape is known
            return evolve(node, body=body, shortcut=shortcut), out
        params = body.stats.params + shortcut.stats.params
        macs = body.stats.macs + shortcut.stats.macs
        stats = ir.Stats(flow.shape, out.shape, params, macs, out.rf, out.jump, out.channels, dims=out.dims)
        return evolve(node, body=body, shortcut=shortcut, stats=stats), out

    def visit_Gate(self, node: ir.Gate, flow: Flow | None) -> tuple[ir.Gate, Flow | None]:
        """The input times the body's output: each size of the body's output is 1 (broadcast)
        or the input's, so the product keeps the input's shape."""
        body, out = self.visit_Seq(node.body, flow)
        # The product has the input's shape whatever the body gives: after an error in the
        # body, what follows the gate is still checked.
        if flow is None or out is None:
            return evolve(node, body=body), flow
        if not broadcasts(out.shape, flow.shape):
            self.error(node.span, f"gate multiplies its input {fmt_shape(flow.shape)} by its body's output "
                       f"{fmt_shape(out.shape)}, which does not broadcast over it",
                       f"each size of the body's output must be 1 or the input's; end the body with "
                       f"{flow.shape[0]} channels (conv({flow.shape[0]}, 1)) after a global_avgpool")
            return evolve(node, body=body), flow
        end = Flow(flow.shape, flow.channels, _widest((flow.rf, out.rf)), flow.jump, flow.dims)
        if body.stats is None:  # a side output in the body failed; the product's shape is known
            return evolve(node, body=body), end
        stats = ir.Stats(flow.shape, flow.shape, body.stats.params, body.stats.macs, end.rf, end.jump,
                         flow.channels, dims=flow.dims)
        return evolve(node, body=body, stats=stats), end

    def shortcut(self, node: ir.Residual, body: ir.Seq, flow: Flow, out: Flow) -> ir.Shortcut | None:
        """The shortcut with its stats (and layers, for a projection); None after an error."""
        shortcut = node.shortcut
        if shortcut.kind == "pad":
            return self.zero_pad(shortcut, flow, out)
        if shortcut.kind != "identity":
            return self.projection(shortcut, body, flow, out)
        if out.shape != flow.shape or channels_last(out.shape) != channels_last(flow.shape):
            self.error(node.span, f"residual add of {fmt_shape(out.shape)} (the body) and "
                       f"{fmt_shape(flow.shape)} (the identity shortcut)",
                       "make the body keep its input's shape, or add `shortcut projection`")
            return None
        return evolve(shortcut, stats=ir.Stats(flow.shape, flow.shape))

    def zero_pad(self, shortcut: ir.Shortcut, flow: Flow, out: Flow) -> ir.Shortcut | None:
        """Option A: take every stride-th pixel, add zero channels; no parameters."""
        if len(flow.shape) != 3 or len(out.shape) != 3:
            self.error(shortcut.span, "a pad shortcut joins two CxHxW volumes", None)
            return None
        stride = shortcut_stride(flow.shape, out.shape)
        if out.shape[0] < flow.shape[0] or subsampled(flow.shape, stride)[1:] != out.shape[1:]:
            self.error(shortcut.span, f"a pad shortcut cannot take {fmt_shape(flow.shape)} to "
                       f"{fmt_shape(out.shape)}", "it subsamples by a whole stride and only adds channels; "
                       "use `shortcut projection` instead")
            return None
        applied = out.shape != flow.shape
        return evolve(shortcut, applied=applied, stats=ir.Stats(flow.shape, out.shape))

    def projection(self, shortcut: ir.Shortcut, body: ir.Seq, flow: Flow, out: Flow) -> ir.Shortcut | None:
        if len(flow.shape) != 3 or len(out.shape) != 3:
            self.error(shortcut.span, "a projection shortcut joins two CxHxW volumes",
                       "keep the residual before the first fc")
            return None
        stride_value = _stride_of(body)
        if stride_value is None:
            stride_value = ir.Value.constant(shortcut_stride(flow.shape, out.shape))
        needed = out.shape != flow.shape
        parts = _projection_tests(stride_value, flow, out)
        applies = (stride_value.value != 1) or (flow.shape[0] != out.shape[0])
        if parts and needed and not applies:
            self.error(shortcut.span, "cannot tell from the parameters where the projection applies",
                       "make the body's stride a single layer's stride argument")
            return None
        if parts:
            # the parameters decide, as the generated code does: a stride of 2 on a 1x1 map
            # changes no shape, and the projection still applies (checked below)
            needed = applies
        conv, mid = self.visit_Layer(self.made(_projection_conv, out.shape[0], out.channels, stride_value,
                                               shortcut.span), flow)
        if mid is None:
            return None
        if needed and mid.shape != out.shape:
            self.error(shortcut.span, f"the projection gives {fmt_shape(mid.shape)} but the body gives "
                       f"{fmt_shape(out.shape)}", "the body must shrink HxW by a whole stride")
            return None
        bn, _ = self.visit_Layer(self.made(_projection_bn, shortcut.span), mid)
        layers = (conv, bn) if shortcut.bn else (conv,)
        condition = TRUE
        for index, part in enumerate(parts):
            condition = part if index == 0 else Binary("or", condition, part)
        params = sum(layer.stats.params for layer in layers) if needed else 0
        macs = conv.stats.macs if needed else 0
        return evolve(shortcut, layers=layers, condition=ir.Value(applies, condition), applied=needed,
                       stats=ir.Stats(flow.shape, out.shape, params, macs))

    def visit_BlockInstance(self, node: ir.BlockInstance, flow: Flow | None) -> tuple[ir.BlockInstance, Flow | None]:
        if flow is None:
            return node, None
        try:
            if has_pending(node.args):
                node = evolve(node, args=resolve_args(node.args, self.scope()))
        except PendingProblem as problem:
            self.error(node.span, problem.message, problem.hint, problem.code)
            return node, None
        outer = self.env, self.env_of
        self.env, self.env_of = None, (node.args, flow.shape)
        try:
            return self.block_instance(node, flow)
        finally:
            self.env, self.env_of = outer

    def scope(self) -> dict:
        """The enclosing values (`env`), made at their first read in a block use: most uses
        of a block read none (no pending value in its body, no body inferred anew)."""
        env = self.env
        if env is None:
            env = self.env = block_env(*self.env_of)
        return env

    def block_instance(self, node: ir.BlockInstance, flow: Flow) -> tuple[ir.BlockInstance, Flow | None]:
        height, width = dim_names(node)
        inner = _flow(flow.shape, _IN_CHANNELS, flow.rf, flow.jump,
                      _dim_exprs(height, width) if len(flow.shape) == 3 else ())
        read = self.block_reads(node) if node.reads else []
        if read is None:
            return node, None
        body, out = self.block_body(node, inner, read)
        if out is None:
            return evolve(node, body=body), None
        # Outside, the block's output channels are its inner formula with the call's arguments,
        # constants folded: 64 + 128 + 32 + 32 reads better as 256.
        dims = None
        if type(out.channels) is Name and not read and (out.dims is None or flow.dims is None):
            channels = self.argument(node, flow, out.channels)  # most often one of the parameters
        else:
            mapping = self.arguments(node, flow)
            if read:
                mapping.update((f"{name}_channels", given.channels) for (name, _), given in zip(node.reads, read))
                node = replace(node, read_channels=tuple(ir.Value(given.shape[0], given.channels) for given in read))
            channels = _substituted(out.channels, mapping)
            if out.dims is not None and flow.dims is not None:
                mapping.update(zip((height, width), flow.dims))
                dims = tuple(_substituted(d, mapping) for d in out.dims)
        end = _flow(out.shape, channels, out.rf, out.jump, dims)
        if body.stats is None:  # a side output inside failed; the block's output is known
            return evolve(node, body=body), end
        stats = ir.Stats(flow.shape, out.shape, body.stats.params, body.stats.macs, out.rf, out.jump, channels,
                         in_channels=flow.channels, dims=dims)
        return evolve(node, body=body, stats=stats), end

    def block_body(self, node: ir.BlockInstance, inner: Flow, read: list[Flow]) -> tuple[ir.Seq, Flow | None]:
        """The block's body inferred from `inner` and its `reads` (see `reused`), in the block's
        own names."""
        def infer(body: ir.Seq, flow: Flow) -> tuple[ir.Seq, Flow | None]:
            return self.own_names(body, flow, node.reads, read)

        if self.tapping or node.reads:  # taps are kept by path; reads bring receptive fields of their own
            return infer(node.body, inner)
        return self.reused(node.body, inner, infer)

    def own_names(self, body: ir.Seq, inner: Flow, reads, read: list[Flow]) -> tuple[ir.Seq, Flow | None]:
        outside, in_block, groups = self.named_outputs, self.in_block, self.groups
        self.named_outputs = {"input": inner}  # a block's member names are its own
        for (name, _), given in zip(reads, read):  # `reads(low)`: its other inputs, channels its own
            self.named_outputs[name] = Flow(given.shape, Name(f"{name}_channels"), given.rf, given.jump, None)
        self.in_block, self.groups = True, []
        try:
            return self.chain(body, inner)
        finally:
            self.named_outputs, self.in_block, self.groups = outside, in_block, groups

    def reused(self, seq: ir.Seq, flow: Flow, infer) -> tuple[ir.Seq, Flow | None]:
        """`infer(seq, flow)`, worked out once for each expanded chain (one object for a block's
        body with one set of arguments, or a `let` with one set of values), input and, where
        the chain reads its input's shape, enclosing values: a later use gets the tree of the
        first rebased to its own receptive field (`receptive.Rebase`), and a block body made
        from an earlier one by putting in other leaf values, the earlier one's (`releafed`).
        Only a tree without errors and of the kinds `Rebase` knows is kept."""
        if not self.REUSE:
            return infer(seq, flow)
        made = self.context.leaf_copies.get(id(seq))
        found = self.releafed(made[1], made[2], flow) if made is not None else None
        if found is not None:
            return found
        pending, rebasable = self.chains.facts(seq)
        if not rebasable:
            return infer(seq, flow)
        key = self.body_key(seq, flow, pending)
        found = self.bodies.get(key)
        if found is not None:
            body, out, rf, jump = found
            if (rf, jump) == (flow.rf, flow.jump):
                return body, out
            moved, rf, jump = Rebase(self.windows, None, self.orders).moved(body, (rf, jump), flow.rf, flow.jump)
            self.context.rebased[id(moved)] = (moved, body)
            return moved, evolve(out, rf=rf, jump=jump)
        reported = len(self.context.diagnostics)
        body, out = infer(seq, flow)
        if out is not None and body.stats is not None and (len(self.context.diagnostics) == reported or all(
                d.severity != ERROR for d in self.context.diagnostics[reported:])):
            self.bodies[key] = (body, out, flow.rf, flow.jump)
        return body, out

    def body_key(self, seq: ir.Seq, flow: Flow, pending: bool) -> tuple:
        return id(seq), self.token(flow) if flow.token is None else flow.token, self.env_key() if pending else None

    def releafed(self, origin: ir.Seq, leaves: dict, flow: Flow) -> tuple[ir.Seq, Flow] | None:
        """The tree of a block body that expand made from `origin` by putting in other leaf
        values (`Context.leaf_copies`): `origin`'s, where it is kept for this input, rebased
        to this use's receptive field with the values put in; a leaf value changes no shape
        (`ArgSpec.shapeless`). None where `origin`'s is not kept, or where a layer's shape
        rule refuses or notes its new value (a stochastic depth's p above 1): that body is
        inferred afresh, to say so."""
        pending, rebasable = self.chains.facts(origin)
        found = self.bodies.get(self.body_key(origin, flow, pending)) if rebasable else None
        if found is None:
            return None
        rebase = Rebase(self.windows, leaves, self.orders)
        body, rf, jump = rebase.moved(found[0], found[2:], flow.rf, flow.jump)
        if not all(map(_fits, rebase.releafed)):
            return None
        self.context.rebased[id(body)] = (body, found[0])
        return body, evolve(found[1], rf=rf, jump=jump)

    def env_key(self):
        """The enclosing values, for a chain with a value computed from them; a new object,
        never equal, where one is not hashable (a list)."""
        key = tuple((name, type(value), value) for name, value in self.scope().items())
        try:
            hash(key)
        except TypeError:
            return object()
        return key

    def block_reads(self, node: ir.BlockInstance) -> list[Flow] | None:
        """What the use's `reads(...)` give the block: each element's (or group member's)
        output; None after an error."""
        flows = []
        for name, source in node.reads:
            found = self.taps if "." in source else self.named_outputs
            if source not in found or source == "input":
                message, hint = self.unknown_tap(source) if "." in source and source != "input" else (
                    f"reads({source}) names no element before it in this {'block' if self.in_block else 'network'}",
                    f"name one of: {', '.join(n for n in self.named_outputs if n != 'input')}")
                self.error(node.span, message.replace(f"side({source})", f"reads({source})"), hint, "reads")
                return None
            if found[source] is None:
                return None
            flows.append(found[source])
        return flows

    def argument(self, node: ir.BlockInstance, flow: Flow, name: Name) -> Expr:
        """What one name of the block stands for at this use (`arguments`, for one name)."""
        if name.name == "in_channels":
            return flow.channels
        value = dict(node.args).get(name.name)
        return name if value is None else value.expr

    def arguments(self, node: ir.BlockInstance, flow: Flow) -> dict[str, Expr]:
        """What the block's parameters and `in_channels` stand for at this use."""
        mapping = dict(zip(map(_FIRST, node.args), map(_EXPR, map(_SECOND, node.args))))  # name -> value.expr
        mapping["in_channels"] = flow.channels
        return mapping


def _shape(kind: str, rule, shape: ir.Shape, values: dict):
    """The rule's output shape and notes; a channels-last input only where the rule reads one."""
    if channels_last(shape) and not rule.channels_last:
        raise ShapeProblem(f"{kind} reads channels first, but its input is channels last "
                           "(after permute(0, 2, 3, 1))", f"permute back with permute(0, 3, 1, 2) before the {kind}")
    return rule.shape(shape, values)


def _substituted(expr: Expr, mapping: dict) -> Expr:
    """`expr.substitute(mapping)`, where a name (a block's output channels are often one of
    its parameters, its H and W the input's) is what `mapping` gives it, without the key
    that `Expr.substitute` hashes for its memo."""
    if type(expr) is Name:
        return mapping.get(expr.name, expr)
    return expr.substitute(mapping)


def _fits(layer: ir.Layer) -> bool:
    """Whether an inferred layer given another leaf value (`ShapeInference.releafed`) still
    gives its output shape, with no note; a rule that reads an element is not asked."""
    rule = RULES[layer.kind]
    if layer.kind in _READERS:
        return False
    try:
        out, notes = _shape(layer.kind, rule, layer.stats.in_shape, layer.values)
    except ShapeProblem:
        return False
    return out == layer.stats.out_shape and not notes


_FIRST, _SECOND, _EXPR = itemgetter(0), itemgetter(1), attrgetter("expr")
_STATS, _LAYER = ir.Stats, ir.Layer
_STATS_OF, _PARAMS, _MACS = attrgetter("stats"), attrgetter("params"), attrgetter("macs")
_RF, _JUMP = attrgetter("rf"), attrgetter("jump")
_READERS = frozenset(kind for kind, rule in RULES.items() if any(spec.type == "element" for spec in rule.args))


def _broadcast(shapes: list) -> ir.Shape | None:
    """The shape that volumes of these shapes broadcast to (each size 1 or the largest), or
    None where they do not (or one is channels last, or flat beside a volume)."""
    if len({len(x) for x in shapes}) != 1 or any(channels_last(x) for x in shapes):
        return None
    widest = tuple(max(sizes) for sizes in zip(*shapes))
    return widest if all(broadcasts(x, widest) for x in shapes) else None


def broadcasts(scale: ir.Shape, shape: ir.Shape) -> bool:
    """Whether `scale` broadcasts over `shape` without changing it: as many sizes, each 1 or equal."""
    return len(scale) == len(shape) and all(s in (1, d) for s, d in zip(scale, shape))


def _projection_tests(stride_value: ir.Value, flow: Flow, out: Flow) -> list[Expr]:
    """The tests, in the block's parameters, under which the projection is built."""
    parts: list[Expr] = []
    if stride_value.names or stride_value.value != 1:
        parts.append(Binary("!=", stride_value.expr, Const(1)))
    if flow.channels != out.channels:
        parts.append(Binary("!=", flow.channels, out.channels))
    return parts


def _projection_conv(filters: int, channels: Expr, stride_value: ir.Value, span) -> ir.Layer:
    return ir.Layer("conv", (
        ("filters", ir.Value(filters, channels)), ("size", ir.Value.constant(1)),
        ("stride", stride_value), ("pad", ir.Value.constant(0)), ("dilation", ir.Value.constant(1)),
        ("groups", ir.Value.constant(1)), ("bias", ir.Value.constant(False)),
        ("padding_mode", ir.Value.constant("zeros")),
        # A 1x1 conv at stride s subsamples by design (the body reads every pixel): no fit warning.
        ("floor", ir.Value.constant(True))), None, span)


def _projection_bn(span) -> ir.Layer:
    return ir.Layer("batchnorm", (("eps", ir.Value.constant(1e-5)), ("momentum", ir.Value.constant(0.1)),
                                  ("affine", ir.Value.constant(True))), None, span)


class _Strides(Visitor):
    """The layer arguments that set a chain's stride, in its layers and unnamed or named
    groups (not inside blocks, concats or residuals)."""

    def __init__(self) -> None:
        self.found: list[ir.Value] = []

    def visit_Layer(self, node: ir.Layer) -> None:
        stride = dict(node.args).get("stride")
        if stride is not None and stride.value is not None and (stride.names or stride.value != 1):
            self.found.append(stride)

    def visit_Seq(self, node: ir.Seq) -> None:
        self.generic_visit(node)

    def leave(self, node) -> None:
        return None

    visit_Concat = visit_Residual = visit_Gate = visit_Side = visit_BlockInstance = leave


def _stride_of(body: ir.Seq) -> ir.Value | None:
    """The one layer argument that sets the body's stride, if there is exactly one."""
    strides = _Strides()
    strides.visit(body)
    return strides.found[0] if len(strides.found) == 1 else None


@functools.lru_cache(maxsize=64)
def _dim_exprs(height: str, width: str) -> tuple[Name, Name]:
    """A block's input H and W as expressions: one tuple for all its uses."""
    return Name(height), Name(width)


def dim_names(node: ir.BlockInstance) -> tuple[str, str]:
    """The names a block's comments give its input's height and width: H and W, unless
    the block has parameters of those names."""
    taken = set(map(_FIRST, node.args))
    height, width = "H", "W"
    while height in taken or width in taken:
        height, width = height + "_in", width + "_in"
    return height, width


def infer_shapes(network: ir.Network, context: Context | None = None) -> ir.Network:
    """The network with every node's stats; `stats=None` where a shape is unknown."""
    context, own = alone(context)
    inference = ShapeInference(context, {name: value.value for name, value in network.params})
    # The network's sizes are numbers (in out_shape); only a block's are expressions (of its H, W).
    start = Flow(network.input, network.input_channels.expr, dims=None)
    _input_order(network, context)
    inference.named_outputs["input"] = start
    inference.output_elements = frozenset(o.element for o in network.outputs)
    reads, inference.tapping = inference.chains.reads(network.body)
    inference.reusing = not (reads or network.outputs)
    body, _ = inference.visit_Seq(network.body, start)
    outputs = inference.outputs(network)
    context.leaf_copies.clear()  # read: the expanded bodies it holds are free to go, not left to the cycle collector
    return finish(evolve(network, body=body, outputs=outputs), context, own)


def _input_order(network: ir.Network, context: Context) -> None:
    """`input 32x32x3`: the notes write HxWxC; cnndsl reads channels first, so this is 32
    channels of 32x3. A square map with the channels last is warned about."""
    shape = network.input
    if len(shape) != 3 or network.input_span is None:
        return
    c, h, w = shape
    if c == h and w in (1, 3) and c > 4:
        context.warn(
            network.input_span, f"input {c}x{h}x{w} is read as {c} channels of {h}x{w}: cnndsl writes CxHxW, "
            "channels first (the notes write HxWxC)",
            f"for a {c}x{h} image with {w} channel(s) write input {w}x{c}x{h}", "input-order")
