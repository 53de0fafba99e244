"""Receptive fields for the shape pass, and the reuse of a block body's inferred shapes.

A block used many times with the same arguments at the same input shape (ResNet-152's 36
Bottlenecks of layer3, EfficientNet's MBConvs) has one expanded body (`passes/expand.py`
shares it), and everything the shape pass works out for it is the same at each use but
the receptive field and the jump, which grow along the network. So the pass infers such a
body once (`ShapeInference.block_body`) and, at each later use, `rebase` gives the same
tree with every node's receptive field and jump recomputed from that use's: the window
of each layer (`windows`, kept when the layer was inferred) through the same arithmetic
(`receptive`, `widest`) as the first inference.
"""

from __future__ import annotations

from operator import attrgetter, itemgetter

from .. import ir
from ..expr import Name
from ..layers import RULES, pair
from ..traverse import children, evolve
from .leaves import _LEAF_KINDS, leaf_args
from .values import PENDING


def receptive(rf, jump, extent, stride, upscale: int = 1) -> tuple:
    """The receptive field and jump after a window of `extent` at `stride` (an upsampling
    by `upscale` divides the jump), per axis: an int where both axes agree, (height, width)
    where they differ."""
    if type(rf) is int and type(jump) is int and type(extent) is int and type(stride) is int:
        return rf + (extent - 1) * jump, max(1, jump * stride // upscale)
    axes = [(r + (e - 1) * j, max(1, j * s // upscale))
            for r, j, e, s in zip(pair(rf), pair(jump), pair(extent), pair(stride))]
    return tuple(_one(axis) for axis in zip(*axes))


def _one(axes: tuple):
    return axes[0] if axes[0] == axes[1] else tuple(axes)


def widest(values) -> object:
    """The largest of several receptive fields (or jumps), per axis."""
    values = tuple(values)
    if _INT.issuperset(map(type, values)):  # the same on both axes, each
        return max(values)
    return _one(tuple(max(axis) for axis in zip(*(pair(v) for v in values))))


_INT = frozenset({int})


class Chains:
    """What the shape pass needs to know of an expanded chain before it reuses its inference:
    `facts(seq)` is (whether a layer or block call of it, not inside the blocks it uses,
    has a pending value: one computed from the enclosing values; whether `Rebase` can give
    its inferred tree at another receptive field: no side output, no concat of earlier
    elements, no element that failed to expand). `reads(seq)` is (whether it or a block it
    uses reads an earlier element: a side output's source, a block's `reads`, a branch's
    `from(...)`, a layer's `like=`, a concat's `concat(enc4)`; whether one of those is a
    member of a group, `side(stage.conv)`). Worked out once for each chain object, and the
    last three of a block body that expand made from another by putting in other leaf values
    (`leaf_copies`, as `Context.leaf_copies`) are the other's: a leaf is a shapeless argument
    (EfficientNet's stochastic depth), which reads no element and moves no field."""

    def __init__(self, leaf_copies: dict | None = None) -> None:
        self.known: dict = {}  # id(chain) -> (chain, pending, rebasable, reads, taps): the chain kept alive with its id
        self.leaf_copies = leaf_copies or {}

    def facts(self, root: ir.Seq) -> tuple[bool, bool]:
        return self.all(root)[1:3]

    def reads(self, root: ir.Seq) -> tuple[bool, bool]:
        return self.all(root)[3:]

    def all(self, root: ir.Seq) -> tuple:
        """Recursive over the chains under `root`: no deeper than the shape pass's own visit."""
        found = self.known.get(id(root))
        if found is not None:
            return found
        nested, bodies, pending, rebasable, reads, taps = _scan(root)
        for seq in nested:
            _, inner_pending, inner_rebasable, inner_reads, inner_taps = self.all(seq)
            pending = pending or inner_pending
            rebasable = rebasable and inner_rebasable
            reads, taps = reads or inner_reads, taps or inner_taps
        for body in bodies:  # its values are computed in its own arguments: its pending ones are its own
            made = self.leaf_copies.get(id(body))
            _, _, inner_rebasable, inner_reads, inner_taps = self.all(body if made is None else made[1])
            rebasable = rebasable and inner_rebasable
            reads, taps = reads or inner_reads, taps or inner_taps
        found = self.known[id(root)] = (root, pending, rebasable, reads, taps)
        return found


def _scan(seq: ir.Seq) -> tuple[list, list, bool, bool, bool, bool]:
    """A chain's own part of `Chains.all`: the chains it holds, the bodies of the blocks it
    uses, whether its own layers and calls have a pending value, whether its own nodes
    rebase, whether they read an earlier element, and whether one it names is a group's member."""
    nested, bodies, pending, rebasable, reads, paths = [], [], False, True, False, []
    stack = list(seq.items)
    pop, push = stack.pop, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is _LAYER:
            pending = pending or has_pending(node.args)
            if not reads and node.kind in _READER_KINDS:  # a kind with an element argument (`like=`)
                reads = any(value.value is not None for name, value in node.args if name in _ELEMENT_ARGS)
        elif kind is _SEQ:
            nested.append(node)
        elif kind is _CALL:
            pending = pending or has_pending(node.args)
            bodies.append(node.body)
            if node.reads:
                rebasable = False
                paths.extend(source for _, source in node.reads)
        elif kind is _RESIDUAL:  # its children, without a `children` call: the body and the shortcut's layers
            nested.append(node.body)
            push(node.shortcut.layers)
        elif kind is _GATE:
            nested.append(node.body)
        else:
            if kind in _EARLIER:
                unmoved, by_place = _reads_earlier(node, kind, paths)
                rebasable, reads = rebasable and not unmoved, reads or by_place
            push(children(node))
    return nested, bodies, pending, rebasable, reads or bool(paths), any("." in path for path in paths)


def _reads_earlier(node, kind: type, paths: list) -> tuple[bool, bool]:
    """Of a side output, a concat or an element that failed to expand: whether `Rebase`
    cannot move it (what it reads of an earlier element has that element's receptive
    field), and whether it reads one by its place (a concat's skips, `concat(enc4)`); the
    earlier elements it reads by name go to `paths`."""
    if kind is ir.Side:
        if node.source:
            paths.append(node.source)
        return True, False
    if kind is ir.Concat:
        paths.extend(source for source in node.sources if source)
        return bool(node.skips or any(node.sources)), bool(node.skips)
    return True, False  # an element that failed to expand


_EARLIER = frozenset({ir.Side, ir.Concat, ir.Unknown})


def has_pending(args: tuple) -> bool:
    """Whether a layer's or call's (name, value) arguments hold a pending value: `PENDING in`
    the values, which `==` cannot mistake (a number, a string, a tuple is never equal to it),
    without a bytecode per argument."""
    return PENDING in map(_VALUE, map(_SECOND, args))


_ELEMENT_ARGS = frozenset(spec.name for rule in RULES.values() for spec in rule.args if spec.type == "element")
# The kinds (and aliases) that have one: a layer's arguments are its kind's (expand checks them)
_READER_KINDS = frozenset(kind for kind, rule in RULES.items() if any(spec.type == "element" for spec in rule.args))
_SEQ, _LAYER, _CALL, _RESIDUAL, _GATE, _CONCAT = ir.Seq, ir.Layer, ir.BlockInstance, ir.Residual, ir.Gate, ir.Concat
_FIRST, _SECOND, _VALUE = itemgetter(0), itemgetter(1), attrgetter("value")


class Rebase:
    """`seq(chain, rf, jump)`: an inferred chain (of a `replayable` body) with the receptive
    field and jump that each node has where its input has `rf` and `jump`; and its output's.
    With `leaves` (a block body's leaf values, `passes/leaves.py`), the body's layers (not
    those of the blocks it uses) take them too, as `with_leaves` gives them, and `releafed`
    lists those that did, for the shape pass to check."""

    def __init__(self, windows: dict, leaves: dict | None = None, orders: dict | None = None) -> None:
        self.windows = windows  # id(inferred layer) -> (extent, stride, upscale)
        self.leaves = leaves
        self.releafed: list[ir.Layer] = []
        self.orders = {} if orders is None else orders  # for `shifted`: (id(chain), leaf names) -> `_order`

    def moved(self, node: ir.Seq, was: tuple, rf, jump):
        """`seq(node, rf, jump)` for a chain inferred where its input had the field and jump
        `was`. Where both jumps are one and the same number and both fields a number, each
        node's field is its own moved by the difference (a window adds what the jump
        decides, a gate or a concat takes the widest of fields moved alike), and `shifted`
        copies the tree so, without a window's arithmetic."""
        was_rf, was_jump = was
        if type(rf) is int and type(was_rf) is int and type(jump) is int and jump == was_jump:
            moved = self.shifted(node, rf - was_rf)
            return moved, moved.stats.rf, moved.stats.jump
        return self.seq(node, rf, jump)

    def shifted(self, node: ir.Seq, delta: int) -> ir.Seq:
        """The chain with every receptive field `delta` wider (and the leaves put in): each
        node copied in one loop over `_order`'s list, a node's children taken from the
        stack of the copies made before it."""
        leaves = self.leaves
        key = (id(node), frozenset(leaves) if leaves else None)
        found = self.orders.get(key)
        if found is None or found[0] is not node:
            found = self.orders[key] = (node, _order(node, self.windows, key[1]))  # the chain kept: its id stays its own
        windows, releafed = self.windows, self.releafed
        stack: list = []
        push = stack.append
        for item, kind, count, window in found[1]:
            stats = _new(_STATS)
            fields = stats.__dict__
            fields.update(item.stats.__dict__)
            rf = fields["rf"]
            fields["rf"] = rf + delta if type(rf) is int else (rf[0] + delta, rf[1] + delta)
            new = _new(kind)
            fields = new.__dict__
            fields.update(item.__dict__)
            fields["stats"] = stats
            if kind is _LAYER:
                windows[id(new)] = window  # a body that holds this one may be rebased in turn
                if count:  # it reads a leaf that this body changes
                    fields["args"] = leaf_args(item, leaves)
                    releafed.append(new)
            elif kind is _SEQ or kind is _CONCAT:
                fields["items" if kind is _SEQ else "branches"] = tuple(stack[len(stack) - count:])
                del stack[len(stack) - count:]
            elif kind is _RESIDUAL:  # the body, then a projection's layers
                if count > 1:
                    fields["shortcut"] = evolve(item.shortcut, layers=tuple(stack[len(stack) - count + 1:]))
                fields["body"] = stack[len(stack) - count]
                del stack[len(stack) - count:]
            else:  # a gate, a block's use
                fields["body"] = stack.pop()
            push(new)
        return stack[0]

    def seq(self, node: ir.Seq, rf, jump):
        items, rf, jump = self.items(node.items, rf, jump)
        stats = _new(_STATS)  # `_moved(node, rf, jump, "items", items)`, written out for the most common node
        fields = stats.__dict__
        fields.update(node.stats.__dict__)
        fields["rf"] = rf
        fields["jump"] = jump
        new = _new(_SEQ)
        fields = new.__dict__
        fields.update(node.__dict__)
        fields["items"] = items
        fields["stats"] = stats
        return new, rf, jump

    def items(self, nodes: tuple, rf, jump) -> tuple[tuple, object, object]:
        """`nodes` one after another from `rf` and `jump` (a chain's items, a shortcut's
        layers), and the field and jump after the last. A layer, most of a body's items, is
        copied here, without a call: with the field and jump it has after its window
        (`receptive`'s arithmetic, written out where every number is one for both axes)."""
        items = []
        append = items.append
        windows, leaves = self.windows, self.leaves
        for item in nodes:
            if type(item) is not _LAYER:
                item, rf, jump = _REBASES[type(item)](self, item, rf, jump)
                append(item)
                continue
            window = windows[id(item)]
            if window is not POINT:  # most layers (a norm, an activation, a 1x1 conv) keep the field and the jump
                extent, stride, upscale = window
                if type(rf) is int and type(jump) is int and type(extent) is int and type(stride) is int:
                    rf, jump = rf + (extent - 1) * jump, max(1, jump * stride // upscale)
                else:
                    rf, jump = receptive(rf, jump, extent, stride, upscale)
            stats = _new(_STATS)
            fields = stats.__dict__
            fields.update(item.stats.__dict__)
            fields["rf"] = rf
            fields["jump"] = jump
            new = _new(_LAYER)
            fields = new.__dict__
            fields.update(item.__dict__)
            fields["stats"] = stats
            if leaves and item.kind in _LEAF_KINDS:  # a leaf is a whole argument, of a few kinds
                args = leaf_args(item, leaves)
                if args is not None:
                    fields["args"] = args
                    self.releafed.append(new)
            windows[id(new)] = window  # a body that holds this one may be rebased in turn
            append(new)
        return tuple(items), rf, jump

    def residual(self, node: ir.Residual, rf, jump):
        body, out_rf, out_jump = self.seq(node.body, rf, jump)
        shortcut = node.shortcut
        if shortcut.layers:  # a projection: its conv reads the residual's input, its norm the conv's output
            shortcut = evolve(shortcut, layers=self.items(shortcut.layers, rf, jump)[0])
        new = _moved(node, out_rf, out_jump, "body", body)
        new.__dict__["shortcut"] = shortcut
        return new, out_rf, out_jump

    def gate(self, node: ir.Gate, rf, jump):
        body, out_rf, _ = self.seq(node.body, rf, jump)
        end_rf = max(rf, out_rf) if type(rf) is int and type(out_rf) is int else widest((rf, out_rf))
        return _moved(node, end_rf, jump, "body", body), end_rf, jump

    def concat(self, node: ir.Concat, rf, jump):
        branches, rfs, jumps = [], [], []
        for branch in node.branches:  # each reads the concat's input (a split's share: the same field)
            branch, out_rf, out_jump = self.seq(branch, rf, jump)
            branches.append(branch)
            rfs.append(out_rf)
            jumps.append(out_jump)
        if not branches:
            rfs, jumps = [rf], [jump]
        end_rf, end_jump = widest(rfs), widest(jumps)
        return _moved(node, end_rf, end_jump, "branches", tuple(branches)), end_rf, end_jump

    def block(self, node: ir.BlockInstance, rf, jump):
        leaves, self.leaves = self.leaves, None  # a leaf parameter is never a block's argument
        body, rf, jump = self.seq(node.body, rf, jump)
        self.leaves = leaves
        return _moved(node, rf, jump, "body", body), rf, jump


def _order(root: ir.Seq, windows: dict, leaves: frozenset | None) -> list[tuple]:
    """The nodes of an inferred chain in the order `Rebase.shifted` copies them, children
    first: each as (the node, its kind, how many copies before it are its children, for a
    layer whether it reads one of `leaves` (not in a block it uses), its window)."""
    order: list[tuple] = []
    add = order.append

    def visit(node, own: bool) -> None:
        kind = type(node)
        if kind is _LAYER:
            reads = own and leaves is not None and node.kind in _LEAF_KINDS and any(
                type(value.expr) is Name and value.expr.name in leaves for _, value in node.args)
            add((node, kind, reads, windows[id(node)]))
            return
        if kind is _SEQ or kind is _CONCAT:
            inner = node.items if kind is _SEQ else node.branches
        elif kind is _RESIDUAL:
            inner = (node.body, *node.shortcut.layers)
        else:  # a gate, or a block's use: its body's layers take no leaf
            inner = (node.body,)
            own = own and kind is not _CALL
        for child in inner:
            visit(child, own)
        add((node, kind, len(inner), None))

    visit(root, True)
    del visit  # it calls itself through its cell: a cycle the collector would be left to free
    return order


# What `Rebase.items` calls for each kind of node in a chain but a layer
_REBASES = {ir.Seq: Rebase.seq, ir.Residual: Rebase.residual, ir.Gate: Rebase.gate, ir.Concat: Rebase.concat,
            ir.BlockInstance: Rebase.block}
_new, _STATS = object.__new__, ir.Stats
# A window of one pixel at stride 1, no upscaling: `receptive` gives the field it is given. The
# shape pass keeps this object for every such window, so that `is` tells one.
POINT = (1, 1, 1)


def _moved(node, rf, jump, field: str, value):
    """A copy of `node` with `value` as its `field` and its stats at another receptive field
    and jump (`traverse.evolve` twice, for the one case)."""
    stats = _new(_STATS)
    fields = stats.__dict__
    fields.update(node.stats.__dict__)
    fields["rf"] = rf
    fields["jump"] = jump
    new = _new(type(node))
    fields = new.__dict__
    fields.update(node.__dict__)
    fields[field] = value
    fields["stats"] = stats
    return new


__all__ = ["POINT", "Chains", "Rebase", "has_pending", "receptive", "widest"]
