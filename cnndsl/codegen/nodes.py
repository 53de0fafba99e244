"""`traverse.walk` for the checked IR, quicker where the code generator walks a whole
network (the network's side outputs and skips, the layers an init loop picks): the same
nodes in the same order, reading the children of the commonest nodes (layers, which have
none, chains, block uses, residuals, gates, identity shortcuts) without the generic look
at each field, and handed over sorted by class."""

from __future__ import annotations

from collections import defaultdict

from .. import ir
from ..traverse import children


def by_kind(root) -> dict[type, list]:
    """`root` and every node under it by their class, each class's in walk order (depth
    first, parents first, as `traverse.walk`): one walk, with no generator step per node,
    for a reader of a few kinds (`Generator`: the layers, side outputs, concats and block
    uses; an init loop: the layers under its module)."""
    found: defaultdict[type, list] = defaultdict(list)
    stack = [root]
    pop, push, append = stack.pop, stack.extend, stack.append
    layer, seq, use, residual, gate, shortcut = ir.Layer, ir.Seq, ir.BlockInstance, ir.Residual, ir.Gate, ir.Shortcut
    while stack:
        node = pop()
        kind = type(node)
        found[kind].append(node)
        if kind is layer:
            continue
        if kind is seq:
            push(node.items[::-1])
        elif kind is use or kind is gate:
            append(node.body)
        elif kind is residual and type(node.shortcut) is shortcut:  # its body, then its shortcut
            append(node.shortcut)
            append(node.body)
        elif kind is shortcut and not node.layers:  # the identity: no layers
            continue
        else:
            below = children(node)
            if below:
                below.reverse()
                push(below)
    return found
