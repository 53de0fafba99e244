"""Whether two uses of a block give the same class body, found without building the second.

Uses of one block that differ by an argument the class takes as a parameter (EfficientNet's
stochastic depth rate, a GoogLeNet BasicConv2d's width, a DenseNet layer's input channels)
each have an IR of their own, so `Generator.block_class` meets each as a new use. Building
the class's members and forward for every use is most of the code generator's time; this
module gives each use a key (`use_key`) of everything that building reads of its body, so
that uses with equal keys get the members and forward built once, found by a dict lookup:

- every field of every node exactly (names, kinds, conditions, skips, flags, the loop),
  but for spans (read by no generated line), stats, a layer's arguments and a block use's;
  and the shape of the tree (how many children each field holds);
- of the stats, only what the generated class reads (`stats_key`);
- of a layer's arguments, their names, the arguments that the forward reads itself
  (`upsample(like=...)`), and the constructor that `LayerRule.construction` gives;
- of a block use inside, its call (`Generator.instance_call`), which makes its class, in
  the order the build would make them; its body belongs to that class, not to this one.

A node kind this module does not know is keyed by all its fields but those; a key that
differs only means the use is built as before.
"""

from __future__ import annotations

from operator import attrgetter, itemgetter

from .. import ir
from ..node import field_names

# The layer arguments the forward reads itself, of a layer with `like` (an interpolate to its size):
# another layer's `mode` (stochastic depth's) is read by its construction alone.
FORWARD_ARGS = frozenset(("like", "mode", "align_corners"))
_FIELDS: dict[type, tuple] = {}  # a class -> (its children, a getter of its other fields)


# Fields keyed otherwise: a layer's arguments by its constructor, a block use's arguments and
# body by its call.
_OWN = {ir.Layer: ("args",), ir.BlockInstance: ("args", "body")}


def _fields_of(kind: type) -> tuple[tuple[str, ...], object]:
    """A node class's children, keyed in turn, and a getter of its other fields, keyed as
    they are."""
    found = _FIELDS.get(kind)
    if found is None:
        own = ("span", "stats", "condition") + _OWN.get(kind, ())  # a condition: keyed by `_plain`
        children = tuple(name for name in kind._fields if name not in own)
        rest = tuple(name for name in field_names(kind) if name not in children and name not in own)
        found = _FIELDS[kind] = (children, attrgetter(*rest) if rest else (lambda node: None))
    return found


def stats_key(s: ir.Stats | None, parts: dict) -> tuple | None:
    """What a block's class reads of a node's stats: the shape comments' symbolic channels
    and dims and whether the tensor is channels last (layout.ShapeNotes), the input's rank
    (layout.block_input), a flatten's input (layout.flattened), whether it holds weights (a
    flat concat branch's local is named after its first member that does), the input
    channels (a block use's call). Layers' constructors are keyed by `use_key`. Each value
    as its kind and text, which is what `Expr.__eq__` compares: the key of a use then hashes
    and compares without a call of Expr's `__hash__` and `__eq__` for each value in it.
    The channels and dims are few objects, shared by the stats of a block's uses: `parts`
    (the caller's, while they live) holds the key of each trio by identity, made once, as a
    number (`serial`): a use's key then hashes and compares each trio as one int."""
    if s is None:
        return None
    channels, inner, dims, flatten, out_shape, in_shape, params = _STATS_READ(s)
    found = parts.get((id(channels), id(inner), id(dims))) or _trio(s, parts)
    return found[3], flatten, type(out_shape), len(out_shape), len(in_shape), in_shape if flatten else None, bool(params)


def _trio(s: ir.Stats, parts: dict) -> tuple:
    """`stats_key`'s entry in `parts` for the channels and dims of `s`, made: held with the
    key, so that no id is reused while it lives."""
    channels, inner, dims = s.channels, s.in_channels, s.dims
    found = parts[id(channels), id(inner), id(dims)] = (channels, inner, dims, serial(parts, (
        type(channels), channels.text, type(inner), inner.text,
        None if dims is None else (tuple(map(type, dims)), tuple(map(_text, dims))))))
    return found


def serial(parts: dict, value: tuple) -> int:
    """The number of a key's part in `parts`: equal values, one number, made the first time.
    `parts` holds them beside the entries of `_trio`, whose keys (three ids) are never equal
    to a value numbered here (a trio's, led by a class; a layer's, led by a string); the
    numbers are distinct, as `parts` grows by one for each. A value that does not hash
    stands for itself (the key of the use then does not hash: `Generator.block_scope`)."""
    try:
        found = parts.get(value)
    except TypeError:
        return value
    if found is None:
        found = parts[value] = len(parts)
    return found


_text = attrgetter("text")
_STATS_READ = attrgetter("channels", "in_channels", "dims", "flatten_before", "out_shape", "in_shape", "params")


def use_key(generator, use: ir.BlockInstance, body: tuple | None = None) -> tuple:
    """What building a use's class body reads of it, as a value (the module's docstring): two
    uses with equal keys give the same members and forward, so a block's built scopes are
    found by a dict lookup (`Generator.block_scope` builds a use whose key does not hash).
    `body` is the use's `body_key` where the caller has it (the plan walked the body)."""
    head, calls = body if body is not None else body_key(generator, use)
    return head + tuple((call.code, call.names) for call in map(generator.instance_call, calls))


def body_key(generator, use: ir.BlockInstance) -> tuple[tuple, list]:
    """`use_key` but the calls of the block uses inside, and those uses, in the order the
    build calls them (`model.scope_uses(use.body)`, which the plan takes from this walk).
    Layers and chains, most of a body, are keyed each in one record, without the generic
    look at their fields (a layer has no children, a chain's are its items)."""
    head = [use.block, tuple(map(_first, use.args)), len(use.stats.in_shape)]
    append = head.append
    calls: list = []
    stack = [use.body]
    pop, push = stack.pop, stack.extend
    parts, layers = generator.stats_parts, generator.layer_parts
    while stack:
        node = pop()
        kind = type(node)
        if kind is ir.Layer:  # as (kind, its fields, stats_key, layer key), in one record
            channels, inner, dims, flatten, out_shape, in_shape, params = _STATS_READ(node.stats)
            found = layers.get((id(node.args), node.kind, id(channels), id(inner), id(dims), type(in_shape), in_shape))
            if found is None:
                found = layer_part(generator, node)
            condition = node.condition
            if condition is not None:
                condition = _plain(condition)
            append((kind, node.kind, node.name, condition, found[-1], flatten, type(out_shape), len(out_shape),
                    len(in_shape), in_shape if flatten else None, bool(params)))
        elif kind is ir.Seq:  # as (kind, its fields, stats_key, its length), in one record
            stats, condition = node.stats, node.condition
            if condition is not None:
                condition = _plain(condition)
            if stats is None:
                append((kind, node.name, node.loop, condition, None, len(node.items)))
            else:
                channels, inner, dims, flatten, out_shape, in_shape, params = _STATS_READ(stats)
                found = parts.get((id(channels), id(inner), id(dims))) or _trio(stats, parts)
                append((kind, node.name, node.loop, condition, found[3], flatten, type(out_shape),
                        len(out_shape), len(in_shape), in_shape if flatten else None, bool(params), len(node.items)))
            push(node.items[::-1])
        elif not hasattr(kind, "_fields"):
            append((kind, node))
        else:
            children, rest = _fields_of(kind)
            condition = getattr(node, "condition", None)
            if condition is not None:
                condition = _plain(condition)
            append((kind, rest(node), condition, stats_key(getattr(node, "stats", None), parts)))
            if kind is ir.BlockInstance:
                calls.append(node)
            below = _children_of(node, children, head)
            below.reverse()
            push(below)
    return tuple(head), calls


class _ValueTag:
    """Leads `_plain`'s tuples: no field of a node holds it, so none equals one."""


_VALUE = _ValueTag()


def _plain(value: ir.Value) -> tuple:
    """A condition's Value as a key that is equal where the Value is (its value, its
    expression's type and text: what `Value.__eq__` and `Expr.__eq__` compare) and hashes
    and compares without their Python-level `__hash__` and `__eq__`, about five a use."""
    return _VALUE, value.value, type(value.expr), value.expr.text


def layer_key(layer: ir.Layer, ctor) -> tuple:
    """What a use's key reads of a layer but its fields and stats: its kind, its arguments'
    names, those the forward reads itself (`upsample(like=...)`) and its constructor `ctor`
    (`Generator.block_layer`'s), which the layers sharing its arguments and input share
    (`Generator.layer_key` makes it once for them)."""
    names = tuple(map(_first, layer.args))
    read = () if "like" not in names else tuple((k, v) for k, v in layer.args if k in FORWARD_ARGS)
    return layer.kind, names, read, ctor.code, ctor.names


def layer_part(generator, layer: ir.Layer) -> tuple:
    """What a layer's record in `body_key` holds of its stats and arguments, made once for
    the layers sharing them (by identity) and their input: the trio of `stats_key` and the
    `layer_key`, as one number (`serial`); held with the objects whose ids key it
    (`Generator.layer_parts`)."""
    stats, parts = layer.stats, generator.stats_parts
    trio = (parts.get((id(stats.channels), id(stats.in_channels), id(stats.dims))) or _trio(stats, parts))[3]
    part = serial(parts, ("layer", trio, generator.layer_key(layer)))
    generator.layer_parts[id(layer.args), layer.kind, id(stats.channels), id(stats.in_channels), id(stats.dims),
                          type(stats.in_shape), stats.in_shape] = found = \
        (layer.args, stats.channels, stats.in_channels, stats.dims, part)
    return found


_first = itemgetter(0)  # an argument's name
_LAYER_REST = _fields_of(ir.Layer)[1]  # a layer's fields: it has no children (`_fields`)


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
