"""Whether two uses of a block give the same class body, found without building the second.

Uses of one block that differ by an argument the class takes as a parameter (EfficientNet's
stochastic depth rate, a GoogLeNet BasicConv2d's width, a DenseNet layer's input channels)
each have an IR of their own, so `Generator.block_class` meets each as a new use. Building
the class's members and forward for every use is most of the code generator's time; this
module compares a use's body with the body of the block's last use built, node by node,
on everything that building reads, and where all of it is equal the members and forward
built for that use are the ones this use would get:

- every field of every node exactly (names, kinds, conditions, skips, flags, the loop),
  but for spans (read by no generated line), stats, a layer's arguments and a block use's;
- of the stats, only what the generated class reads (`same_stats`);
- of a layer's arguments, their names, the arguments that the forward reads itself
  (`upsample(like=...)`), and the constructor that `LayerRule.construction` gives;
- of a block use inside, its call (`Generator.instance_call`), which makes its class, in
  the order the build would make them; its body belongs to that class, not to this one.

Anything else (a node kind this module does not know, a field that differs) is compared
exactly; a difference only means the use is built as before.
"""

from __future__ import annotations

from dataclasses import fields
from operator import attrgetter

from .. import ir

_FORWARD_ARGS = ("like", "mode", "align_corners")  # layer arguments the forward reads (interpolate)
_FIELDS: dict[type, tuple] = {}  # a class -> (its children, a getter of its other fields)


def same_stats(a: ir.Stats | None, b: ir.Stats | None) -> bool:
    """Whether two nodes' stats read alike in a block's class: the shape comments' symbolic
    channels and dims and whether the tensor is channels last (layout.ShapeNotes), the
    input's rank (layout.block_input), a flatten's input (layout.flattened), whether it
    holds weights (a flat concat branch's local is named after its first member that
    does), the input channels (a block use's call). Layers' constructors are compared by
    `same_constructor`."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    return _same_expr(a.channels, b.channels) and _same_expr(a.in_channels, b.in_channels) and \
        (a.dims is b.dims or a.dims == b.dims) and a.flatten_before == b.flatten_before and \
        type(a.out_shape) is type(b.out_shape) and len(a.out_shape) == len(b.out_shape) and \
        len(a.in_shape) == len(b.in_shape) and (not a.flatten_before or a.in_shape == b.in_shape) and \
        bool(a.params) == bool(b.params)


def _same_expr(a, b) -> bool:
    return a is b or a == b


# Fields compared otherwise: a layer's arguments by its constructor (`same_layer`), a block
# use's arguments and body by its call (`same_call`).
_OWN = {ir.Layer: ("args",), ir.BlockInstance: ("args", "body")}


def _fields_of(kind: type) -> tuple[tuple[str, ...], object]:
    """A node class's children to compare pairwise, and a getter of its other fields, to
    compare exactly."""
    found = _FIELDS.get(kind)
    if found is None:
        own = ("span", "stats") + _OWN.get(kind, ())
        children = tuple(name for name in kind._fields if name not in own)
        rest = tuple(f.name for f in fields(kind) if f.name not in children and f.name not in own)
        found = _FIELDS[kind] = (children, attrgetter(*rest) if rest else (lambda node: None))
    return found


def same_use(generator, built: ir.BlockInstance, use: ir.BlockInstance) -> bool:
    """Whether `use` gives the members and forward that `built`, a use of the same block,
    gave: see the module's docstring. The structure first; then the block uses inside, in
    the order the build calls them, and the constructors."""
    if built.block != use.block or [k for k, _ in built.args] != [k for k, _ in use.args] or \
            len(built.stats.in_shape) != len(use.stats.in_shape):
        return False
    layers: list = []
    calls: list = []
    pairs = [(built.body, use.body)]
    while pairs:
        a, b = pairs.pop()
        if _PLAIN_LAYER and type(a) is ir.Layer and type(b) is ir.Layer:  # the commonest node, without children
            if a is not b and not _same_layer(a, b, layers):
                return False
            continue
        below = _same_node(a, b, layers, calls)
        if below is None:
            return False
        pairs.extend(reversed(below))
    return all(same_call(generator, a, b) for a, b in calls) and \
        all(same_constructor(generator, a, b) for a, b in layers)


# A layer's fields as `_same_layer` compares them (else the generic comparison does).
_PLAIN_LAYER = {f.name for f in fields(ir.Layer)} == {"kind", "args", "name", "span", "stats"} and not ir.Layer._fields


def _same_layer(a: ir.Layer, b: ir.Layer, layers: list) -> bool:
    """`_same_node` for two layers."""
    if a.kind != b.kind or a.name != b.name:
        return False
    if not same_stats(a.stats, b.stats):
        return False
    same = same_arguments(a, b)
    if same is None:
        layers.append((a, b))
        return True
    return same


def _same_node(a, b, layers: list, calls: list) -> list | None:
    """The pairs of children to compare next, or None where the two differ here; the layers
    whose constructors and the block uses whose calls are left to compare go to `layers`
    and `calls`."""
    if a is b:
        return []
    kind = type(a)
    if type(b) is not kind:
        return None
    if not hasattr(kind, "_fields"):
        return [] if a == b else None
    children, rest = _fields_of(kind)
    stats = getattr(a, "stats", None), getattr(b, "stats", None)
    if rest(a) != rest(b) or not same_stats(*stats):
        return None
    if kind is ir.Layer:
        same = same_arguments(a, b)
        if same is None:
            layers.append((a, b))
        elif not same:
            return None
    elif kind is ir.BlockInstance:
        calls.append((a, b))
    return _child_pairs(a, b, children)


def _child_pairs(a, b, children: tuple[str, ...]) -> list | None:
    """The children of two nodes of one class, paired; None where their numbers differ."""
    pairs = []
    for name in children:
        x, y = getattr(a, name), getattr(b, name)
        if type(x) is tuple:
            if type(y) is not tuple or len(x) != len(y):
                return None
            pairs.extend(zip(x, y))
        elif x is None or y is None:
            if x is not y:
                return None
        else:
            pairs.append((x, y))
    return pairs


def same_arguments(a: ir.Layer, b: ir.Layer) -> bool | None:
    """Whether two layers' arguments read alike in the class (the other fields and the
    stats are compared by the caller): True where they construct alike for certain, False
    where their names or those the forward reads differ, None: compare the constructors."""
    if a.args is b.args and type(a.stats.in_shape) is type(b.stats.in_shape) and a.stats.in_shape == b.stats.in_shape:
        return True
    if [k for k, _ in a.args] != [k for k, _ in b.args]:
        return False
    for (key, x), (_, y) in zip(a.args, b.args):
        if key in _FORWARD_ARGS and x != y:
            return False
    return None


def same_constructor(generator, a: ir.Layer, b: ir.Layer) -> bool:
    first, second = generator.block_layer(a), generator.block_layer(b)
    return first.code == second.code and first.names == second.names


def same_call(generator, a: ir.BlockInstance, b: ir.BlockInstance) -> bool:
    """The same call of a block use inside: its class and arguments as the call passes them.
    Calling it makes its class where the build would."""
    first, second = generator.instance_call(a), generator.instance_call(b)
    return first.code == second.code and first.names == second.names


def stats_key(s: ir.Stats | None) -> tuple | None:
    """What `same_stats` compares, as a value: equal keys, stats that read alike."""
    if s is None:
        return None
    return (s.channels, s.in_channels, s.dims, s.flatten_before, type(s.out_shape), len(s.out_shape),
            len(s.in_shape), s.in_shape if s.flatten_before else None, bool(s.params))


def use_key(generator, use: ir.BlockInstance) -> tuple:
    """What `same_use` compares of one use, as a hashable value, computed once a use: two
    uses with equal keys give the same members and forward, so a block's built scopes are
    found by a dict lookup (`Generator.block_scope` builds a use whose key does not hash)."""
    head = [use.block, tuple(k for k, _ in use.args), len(use.stats.in_shape)]
    calls: list = []
    stack = [use.body]
    while stack:
        node = stack.pop()
        kind = type(node)
        if not hasattr(kind, "_fields"):
            head.append((kind, node))
            continue
        children, rest = _fields_of(kind)
        head.append((kind, rest(node), stats_key(getattr(node, "stats", None))))
        if kind is ir.Layer:
            ctor = generator.block_layer(node)
            head.append((tuple(k for k, _ in node.args), tuple((k, v) for k, v in node.args if k in _FORWARD_ARGS),
                         ctor.code, ctor.names))
        elif kind is ir.BlockInstance:
            calls.append(node)
        below = _children_of(node, children, head)
        below.reverse()
        stack.extend(below)
    for node in calls:  # in the order the build calls them, as `same_use` does
        call = generator.instance_call(node)
        head.append((call.code, call.names))
    return tuple(head)


def _children_of(node, children: tuple[str, ...], head: list) -> list:
    """A node's children in order, their shape (a tuple's length, an absent child) noted in `head`."""
    below = []
    for name in children:
        value = getattr(node, name)
        if type(value) is tuple:
            head.append(len(value))
            below.extend(value)
        elif value is None:
            head.append(None)
        else:
            head.append("child")
            below.append(value)
    return below
