"""One traversal of the syntax tree (`ast.py`) and of the IR (`ir.py`), as CPython's `ast`
module does it: every node class names its children in `_fields`, and everything here
works from those names alone, so a new node kind is walked, visited and rebuilt as soon
as it declares them.

    children(node)    the child nodes, in order (a tuple field gives each of its items)
    walk(node)        the node and everything under it, depth first, parents first
    Visitor           `visit(node, *args)` calls `visit_<Kind>(node, *args)`, else
                      `generic_visit`, which visits the children and returns None
    Transformer       a Visitor whose `generic_visit` returns the node rebuilt from its
                      transformed children (the same object where nothing changed)
    of_type(nodes, kind)   those of one class among a list of nodes, in order
    walk_by_type(node)     the nodes of `walk(node)` by class, each class's in order
    walk_nodes, walk_elements   the syntax tree's nodes and elements under some chains
    dump(node)        a stable, readable text of a tree, for the per-pass golden tests
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from itertools import compress, repeat
from operator import is_
from typing import Iterable, Iterator

from . import ast, ir
from .node import field_names, is_node_class


class _Kinds(dict):
    """A class -> whether its instances are tree nodes (a `@node` class with `_fields`),
    worked out at the first instance of each class: `_NODE_TYPES[type(value)]`."""

    def __missing__(self, kind: type) -> bool:
        known = self[kind] = hasattr(kind, "_fields") and is_node_class(kind)
        return known


_NODE_TYPES = _Kinds()


_is_node_type = _NODE_TYPES.__getitem__  # runs `__missing__` for a class not met yet, as `[]` does


def is_node(value) -> bool:
    return _NODE_TYPES[type(value)]


def children(node) -> list:
    """The child nodes of `node`, in the order its class declares them. A tuple field is
    filtered by `compress` over its items' kinds: no bytecode per item, where every pass
    walks every node of the tree."""
    found = []
    state = node.__dict__
    for name in node._fields:
        value = state[name]
        if type(value) is tuple:
            found += compress(value, map(_is_node_type, map(type, value)))
        elif value is not None and _is_node_type(type(value)):
            found.append(value)
    return found


def evolve(node, /, **changes):
    """`dataclasses.replace` for the tree's frozen records (`node.py`), a few times faster: a copy of
    `node` with `changes`, made without running `__init__` (the node classes have no
    `__post_init__` nor cached properties). The passes call it once per node per pass:
    on a network of 20,000 layers that is most of dataclasses.replace's cost."""
    new = _new(type(node))
    new.__dict__.update(node.__dict__, **changes)
    return new


_new = object.__new__
_IR_SEQ, _LAYERS_ONLY = ir.Seq, frozenset({ir.Layer})


def walk(node) -> Iterator:
    """`node` and every node under it, depth first and parents before children (as the
    source reads). Iterative: the depth of a tree does not meet Python's recursion limit."""
    stack = [node]
    pop, push, append = stack.pop, stack.extend, stack.append
    while stack:
        current = pop()
        yield current
        names = current._fields
        if names:  # half the IR's nodes are layers, which have no children; `children`, inlined, last first
            if type(current) is _IR_SEQ:  # a third are chains, whose items are all nodes: no filter
                items = current.items
                if _LAYERS_ONLY.issuperset(map(type, items)):  # layers, childless: in order, without the stack
                    yield from items
                else:
                    push(items[::-1])
                continue
            state = current.__dict__
            for name in reversed(names):
                value = state[name]
                if type(value) is tuple:
                    value = value[::-1]
                    push(compress(value, map(_is_node_type, map(type, value))))
                elif value is not None and _is_node_type(type(value)):
                    append(value)


def walk_by_type(node) -> dict:
    """The nodes of `walk(node)` by class, each class's in the walk's order: `of_type` of
    every class at once, sorted as the walk meets them (no pass over the whole list per class)."""
    found: dict = {}
    stack = [node]
    pop, push, append = stack.pop, stack.extend, stack.append
    while stack:
        current = pop()
        kind = type(current)
        try:
            found[kind].append(current)
        except KeyError:
            found[kind] = [current]
        names = current._fields
        if names:
            if kind is _IR_SEQ:
                items = current.items
                if items and _LAYERS_ONLY.issuperset(map(type, items)):  # childless layers: in order
                    try:
                        found[_IR_LAYER] += items
                    except KeyError:
                        found[_IR_LAYER] = list(items)
                else:
                    push(items[::-1])
                continue
            state = current.__dict__
            for name in reversed(names):
                value = state[name]
                if type(value) is tuple:
                    value = value[::-1]
                    push(compress(value, map(_is_node_type, map(type, value))))
                elif value is not None and _is_node_type(type(value)):
                    append(value)
    return found


_IR_LAYER = ir.Layer


def walk_ir_by_type(node) -> dict:
    """`walk_by_type(node)` for an IR tree: the same lists in the same order, each class of
    the IR's own read through the fields it declares (a layer has none, a block use's and a
    gate's child is its body, a residual's its body and shortcut, a shortcut's its layers)
    and put in its own list, without a lookup of its class's list nor a look at its fields;
    any other node (or an unexpected child) walked as `walk_by_type` walks it. check_inits
    and check_emittable read the named network so."""
    seq, layer, use, gate, residual, shortcut = _IR_SEQ, _IR_LAYER, ir.BlockInstance, ir.Gate, ir.Residual, ir.Shortcut
    seqs, layers, uses, gates, residuals, shortcuts = own = [], [], [], [], [], []
    found: dict = {}
    stack = [node]
    pop, push, append = stack.pop, stack.extend, stack.append
    while stack:
        current = pop()
        kind = type(current)
        if kind is layer:
            layers.append(current)
        elif kind is seq:
            seqs.append(current)
            items = current.items
            if items and _LAYERS_ONLY.issuperset(map(type, items)):  # childless layers: in order
                layers += items
            else:
                push(items[::-1])
        elif kind is use and type(current.body) is seq:
            uses.append(current)
            append(current.body)
        elif kind is residual and type(current.body) is seq and type(current.shortcut) is shortcut:
            residuals.append(current)
            append(current.shortcut)  # the body first
            append(current.body)
        elif kind is shortcut:
            shortcuts.append(current)
            if current.layers:
                push(reversed(children(current)))
        elif kind is gate and type(current.body) is seq:
            gates.append(current)
            append(current.body)
        else:
            try:
                found[kind].append(current)
            except KeyError:
                found[kind] = [current]
            push(reversed(children(current)))
    for kind, nodes in zip((seq, layer, use, gate, residual, shortcut), own):
        if nodes:  # as `walk_by_type`, which has a class's list only where it met one
            if kind in found:  # one met in an unexpected shape, walked above as any other node
                return walk_by_type(node)
            found[kind] = nodes
    return found


def of_type(nodes: list, kind: type, kinds: list | None = None) -> list:
    """The nodes of class `kind` among `nodes`, in order, picked in C (no bytecode per node);
    `kinds` is `list(map(type, nodes))`, made once where several classes are picked."""
    return list(compress(nodes, map(is_, map(type, nodes) if kinds is None else kinds, repeat(kind))))


def walk_all(roots: Iterable) -> Iterator:
    for root in roots:
        yield from walk(root)


def walk_nodes(chains) -> Iterator[ast.Node]:
    """Every chain node (call, reference, group, repetition, ...) under some chains,
    a residual's shortcut target included; not the elements, chains or expressions."""
    return (n for n in walk_all(chains) if isinstance(n, _AST_NODES))


def walk_elements(chains) -> Iterator[ast.Element]:
    """Every element under some chains, those inside groups, concats and residuals too."""
    return (n for n in walk_all(chains) if type(n) is ast.Element)


_AST_NODES = (ast.Call, ast.Ref, ast.Group, ast.Repeat, ast.Optional, ast.Concat, ast.Residual, ast.Gate,
              ast.Side)


class Visitor:
    """Dispatch on the node's class name: `visit_Layer`, `visit_Seq`, `visit_Residual`...
    Extra arguments travel to the method (a flow, a prefix, a namer)."""

    _dispatch: dict  # per subclass: node class -> function

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls._dispatch = {}

    def visit(self, node, *args):
        try:
            method = self._dispatch[type(node)]
        except KeyError:
            method = getattr(type(self), f"visit_{type(node).__name__}", None) or type(self).generic_visit
            self._dispatch[type(node)] = method
        return method(self, node, *args)

    def generic_visit(self, node, *args):
        for child in children(node):
            self.visit(child, *args)
        return None


Visitor._dispatch = {}


class Transformer(Visitor):
    """A visitor that returns a new tree. In a tuple field, a visit that returns None
    drops the child and one that returns a list or tuple splices it in, as in CPython's
    `ast.NodeTransformer`; in a single field, the result takes the child's place."""

    def generic_visit(self, node, *args):
        changes = {}
        for name in node._fields:
            old = getattr(node, name)
            if type(old) is tuple:
                new = self._sequence(old, args)
                if len(new) != len(old) or any(a is not b for a, b in zip(new, old)):
                    changes[name] = new
            elif old is not None and is_node(old):
                new = self.visit(old, *args)
                if new is not old:
                    changes[name] = new
        return evolve(node, **changes) if changes else node

    def _sequence(self, items: tuple, args) -> tuple:
        out = []
        for item in items:
            if not is_node(item):
                out.append(item)
                continue
            new = self.visit(item, *args)
            if isinstance(new, (list, tuple)) and not is_node(new):
                out.extend(new)
            elif new is not None:
                out.append(new)
        return tuple(out)


# -- the dump ---------------------------------------------------------------------------

_HIDDEN = frozenset({"span", "name_span", "label_span", "input_span", "family_span"})


def dump(node, indent: str = "  ") -> str:
    """The tree as indented text: one node a line with its plain fields (spans left out,
    their line shown as `@line`), then its children below it, field by field."""
    lines: list[str] = []
    _dump(node, 0, indent, lines, "")
    return "\n".join(lines) + "\n"


def _dump(node, depth: int, indent: str, lines: list[str], lead: str) -> None:
    pad = indent * depth
    lines.append(f"{pad}{lead}{_head(node)}")
    for name in node._fields:
        value = getattr(node, name)
        if type(value) is tuple:
            if not value:
                continue
            lines.append(f"{pad}{indent}{name}:")
            for item in value:
                if is_node(item):
                    _dump(item, depth + 2, indent, lines, "")
                else:
                    lines.append(f"{pad}{indent * 2}{_plain(item)}")
        elif value is not None and is_node(value):
            _dump(value, depth + 1, indent, lines, f"{name}: ")


def _head(node) -> str:
    parts = []
    defaults = type(node).__node_defaults__
    for name in field_names(node):
        if name in node._fields or name in _HIDDEN:
            continue
        value, default = getattr(node, name), defaults.get(name)
        if value is None or value == () or value == {} or value == "" or value is False and default is False \
                or isinstance(value, str) and value == default:  # a concat's op="cat"
            continue
        parts.append(f"{name}={_plain(value)}")
    span = getattr(node, "span", None)
    where = f" @{span.line}" if span is not None and hasattr(span, "line") else ""
    return f"{type(node).__name__}{where}" + (f" {' '.join(parts)}" if parts else "")


def _plain(value) -> str:
    text = getattr(value, "dump_text", None)  # a value class may say how it reads
    if text is not None and not isinstance(value, type):
        return text()
    record = not isinstance(value, type) and (is_node_class(type(value)) or is_dataclass(value))
    if record:
        if is_node(value):
            return _head(value)
        names = field_names(value) if is_node_class(type(value)) else [f.name for f in fields(value)]
        inner = ", ".join(f"{name}={_plain(getattr(value, name))}" for name in names if name not in _HIDDEN)
        return f"{type(value).__name__}({inner})"
    if isinstance(value, tuple):
        if len(value) == 2 and isinstance(value[0], str):
            return f"{value[0]}={_plain(value[1])}"
        return "(" + ", ".join(_plain(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_plain(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(map(str, value))) + "}"
    return repr(value)


__all__ = ["Transformer", "Visitor", "children", "dump", "is_node", "of_type", "walk", "walk_all", "walk_by_type",
           "walk_elements", "walk_nodes"]
