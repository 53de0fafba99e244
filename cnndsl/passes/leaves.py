"""A block's leaf parameters: those its body reads only as shapeless layer arguments
(`ArgSpec.shapeless`: a dropout's p, a norm's eps, a stochastic depth's probability).

EfficientNet's 55 MBConv uses differ in their stochastic depth alone where a stage repeats
a block, and ConvNeXt's in theirs and their layer scale, so each use's body was expanded
anew (efficientnet_b7: 63 bodies, 22 now). `Expander.block_body` expands a block once for
each value of its other parameters and gives a later use the body of an earlier one with
its own leaf values put in (`with_leaves`): the shape pass still checks each value (a p
above 1), and every reader (the summary's `stochastic_depth 0.0125`, the code generator)
sees each use's own.

A parameter is a leaf where every name in the body that reads it (the lets it uses
included) is a whole argument of a built-in layer whose spec is shapeless; one read
anywhere else (an expression, a condition, a count, a label, a block's or a def's
argument) or a repetition index of its name keeps it out.
"""

from __future__ import annotations

from typing import get_args

from .. import ast, ir
from ..expr import Name
from ..layers import RULES, LayerRule, lookup
from ..traverse import children, evolve, is_node
from .values import names_and_shape


def leaf_params(block: ast.BlockDef, lets: dict, blocks: dict,
                shapeless: bool = True) -> dict[str, tuple[tuple[LayerRule, object], ...]]:
    """The block's leaf parameters, each with the (rule, arg spec) pairs that read it.
    `shapeless=False`: also those read only as whole layer arguments of a plain type (`_PLAIN`)
    that change the shapes (SqueezeExcitation's squeeze channels, a conv's out channels):
    a body can be patched for them too (`with_leaves`), though not its inference."""
    reads = _Reads({p.name for p in block.params}, lets, blocks)
    stack: list = list(block.body)
    while stack:
        stack.extend(reads.node(stack.pop()))
    return {name: tuple(uses) for name, uses in reads.found.items() if uses and name not in reads.other
            and (not shapeless or all(spec.shapeless for _, spec in uses))}


def is_shapeless(uses: tuple[tuple[LayerRule, object], ...]) -> bool:
    """Whether every read of a parameter `leaf_params` found is shapeless (a leaf proper)."""
    return all(spec.shapeless for _, spec in uses)


class _Reads:
    """The names a body reads: `found`, each parameter's reads as a shapeless layer argument;
    `other`, every name read anywhere else."""

    def __init__(self, params: set[str], lets: dict, blocks: dict):
        self.params, self.lets, self.blocks = params, lets, blocks
        self.found: dict[str, list] = {name: [] for name in params}
        self.other: set[str] = set()
        self.seen: set[str] = set()  # the lets read so far

    def node(self, node) -> list:
        """Note what `node` reads by itself; the nodes to read below it. An expression (a
        condition, a count, a block's argument) is read whole: every name in it is `other`."""
        kind = type(node)
        if kind in _EXPRESSIONS:
            self.other.update(_names(node))
            return []
        below = []
        if kind is ast.Element and node.template:
            for piece in node.template:
                if not isinstance(piece, str):
                    self.other.update(_names(piece))
        elif kind is ast.Repeat and node.index is not None:
            self.other.add(node.index)
        elif kind in (ast.Call, ast.Ref) and node.name in self.lets and node.name not in self.seen:
            self.seen.add(node.name)  # a let reads the names of where it is used
            below.append(self.lets[node.name].chain)
        if kind is ast.Call and node.name not in self.lets and node.name not in self.blocks:
            rule = lookup(node.name)
            if rule is not None:
                self.layer(node, rule)
                return below
        return below + children(node)

    def layer(self, call: ast.Call, rule: LayerRule) -> None:
        for position, arg in enumerate(call.args):
            spec = rule.arg(arg.name) if arg.name is not None else \
                (rule.args[position] if position < len(rule.args) else None)
            value = arg.value
            if type(value) is ast.Var and value.name in self.params and spec is not None and \
                    (spec.shapeless or spec.type in _PLAIN):
                self.found[value.name].append((rule, spec))
            else:
                self.other.update(_names(value))


_EXPRESSIONS = frozenset(get_args(ast.Expr))
# the argument types a value is taken as it is (no pair made one number, no element named)
_PLAIN = frozenset(("int", "float", "bool", "str"))


def _names(expr) -> set[str]:
    return names_and_shape(expr)[0]


def same_value(a: ir.Value, b: ir.Value) -> bool:
    return type(a.value) is type(b.value) and a.value == b.value


def with_leaves(body: ir.Seq, changed: dict[str, ir.Value], memo: dict | None = None,
                kinds: frozenset | None = None) -> ir.Seq:
    """`body` with each layer argument that is a changed leaf parameter (its expression the
    parameter's name) given the new value; the rest of the tree shared. `memo`: what each
    sub-tree reads and, for a body and the leaves that change, the path down to the layers
    that read them (`_Leaves`), kept by the caller for the bodies it patches again and again
    (EfficientNet's MBConv, once per block of a stage). `kinds`: the layer kinds that may read
    a changed parameter (`leaf_args`: those with a shapeless argument where None, `ALL_KINDS`
    where one is not a leaf proper)."""
    memo = {} if memo is None else memo
    key = (id(body), frozenset(changed))
    found = memo.get(key)
    if found is None or found[0] is not body:
        path = _Leaves(changed, memo).path(body)
        found = memo[key] = (body, path, _spine(path))
    if found[2] is not None:
        return _along(body, found[2], changed, kinds)
    return _Leaves(changed, memo, kinds).patched(body, found[1])


def _spine(path) -> tuple | None:
    """A `_Leaves.path` that leads to one layer (EfficientNet's stochastic depth, under its
    residual) as its steps down, (field, index in a tuple field or None); None where it
    branches or leads nowhere."""
    steps = []
    while path is not None:
        if len(path) != 1:
            return None
        name, index, path = path[0]
        steps.append((name, index))
    return tuple(steps)


def _along(body, spine: tuple, changed: dict[str, ir.Value], kinds: frozenset | None = None):
    """`_Leaves.patched` along a spine, without recursion: the layer at its end with the
    changed leaves put in, and each node above it copied with its new child."""
    nodes, node = [], body
    for name, index in spine:
        nodes.append(node)
        value = node.__dict__[name]
        node = value if index is None else value[index]
    args = leaf_args(node, changed, kinds)
    if args is None:
        return body
    new = _copied(node, "args", args)
    for (name, index), parent in zip(reversed(spine), reversed(nodes)):
        if index is not None:
            old = parent.__dict__[name]
            new = old[:index] + (new,) + old[index + 1:]
        new = _copied(parent, name, new)
    return new


def _copied(node, name: str, value):
    """`evolve(node, **{name: value})` for one field: its fields' dict copied and given to the
    copy whole (a spine's nodes are copied once per use of a body: EfficientNet's 73)."""
    new = _new(type(node))
    fields = node.__dict__.copy()
    fields[name] = value
    _set(new, "__dict__", fields)
    return new


_new, _set = object.__new__, object.__setattr__  # (the frozen records' own __setattr__ refuses)


def leaf_args(layer: ir.Layer, changed: dict[str, ir.Value], kinds: frozenset | None = None) -> tuple | None:
    """The layer's arguments with each that is a changed leaf parameter given the new value;
    None where none is (for `with_leaves`, and the shape pass's reuse of an inferred body).
    A leaf is read only as a shapeless argument: the other kinds' layers are not looked into
    (`kinds`: those looked into, where a changed parameter is not a leaf proper; any where None)."""
    if layer.kind not in (_LEAF_KINDS if kinds is None else kinds):
        return None
    args = None
    for position, (name, value) in enumerate(layer.args):
        expr = value.expr
        if type(expr) is Name and expr.name in changed:
            args = args or list(layer.args)
            args[position] = (name, changed[expr.name])
    return None if args is None else tuple(args)


_LEAF_KINDS = frozenset(kind for kind, rule in RULES.items() if any(spec.shapeless for spec in rule.args))


class _Leaves:
    """Rebuilds only the spine down to the layers that read a changed leaf: a sub-tree whose
    layers read none of them is the same object (MBConv's expansion, depthwise and SE). The
    spine is found once for a body and the leaves that change (`path`); each use of the
    body follows it (`patched`), not a walk of every child."""

    def __init__(self, changed: dict[str, ir.Value], memo: dict, kinds: frozenset | None = None):
        self.changed = changed
        self.kinds = kinds
        self.reads = memo  # id of a node -> (the node, kept so that its id stays its own; the names read)

    def path(self, node):
        """Where the layers under `node` that read a changed leaf are: None for such a layer
        itself, else each child that holds one, as (field, index in a tuple field or None,
        its own path)."""
        if type(node) is ir.Layer:
            return None
        steps = []
        state = node.__dict__
        for name in node._fields:
            old = state[name]
            if type(old) is tuple:
                steps.extend((name, index, self.path(item)) for index, item in enumerate(old)
                             if is_node(item) and not self.read(item).isdisjoint(self.changed))
            elif old is not None and is_node(old) and not self.read(old).isdisjoint(self.changed):
                steps.append((name, None, self.path(old)))
        return tuple(steps)

    def patched(self, node, path):
        """`node` with the changed leaves put in along `path` (the same object where none is)."""
        if path is None:
            args = leaf_args(node, self.changed, self.kinds)
            return node if args is None else evolve(node, args=args)
        changes: dict = {}
        state = node.__dict__
        for name, index, below in path:
            old = state[name] if index is None else state[name][index]
            new = self.patched(old, below)
            if new is old:
                continue
            if index is None:
                changes[name] = new
            else:
                changes.setdefault(name, list(state[name]))[index] = new
        if not changes:
            return node
        return evolve(node, **{name: tuple(v) if type(v) is list else v for name, v in changes.items()})

    def read(self, node) -> frozenset[str]:
        """The parameter names that layers under `node` take as a whole argument; a block
        use's body is in its own block's names, so it reads none."""
        found = self.reads.get(id(node))
        if found is not None and found[0] is node:
            return found[1]
        kind = type(node)
        if kind is ir.Layer:
            names = frozenset([v.expr.name for _, v in node.args if type(v.expr) is Name]) or _READS_NONE
        elif kind is ir.BlockInstance:
            names = _READS_NONE
        else:  # a child's own set where the others add nothing to it (fewer sets kept in the memo)
            names = _READS_NONE
            for more in map(self.read, children(node)):
                if more and more is not names and not more <= names:
                    names = more if not names or names <= more else names | more
        self.reads[id(node)] = (node, names)
        return names


_READS_NONE: frozenset[str] = frozenset()  # what a sub-tree without such a layer reads
ALL_KINDS = frozenset(RULES)  # `with_leaves`' kinds for a changed parameter that is not a leaf proper

__all__ = ["ALL_KINDS", "is_shapeless", "leaf_args", "leaf_params", "same_value", "with_leaves"]
