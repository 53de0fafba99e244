"""`traverse.walk` for the checked IR, quicker where the code generator walks a whole
network (the network's side outputs and skips, the layers an init loop picks): the same
nodes in the same order, reading the children of the commonest nodes (layers, which have
none, chains and block uses) without the generic look at each field."""

from __future__ import annotations

from typing import Iterator

from .. import ir
from ..traverse import children


def nodes(root) -> Iterator:
    """`root` and every node under it, depth first, parents first, as `traverse.walk`."""
    stack = [root]
    pop, push, append = stack.pop, stack.extend, stack.append
    while stack:
        node = pop()
        yield node
        kind = type(node)
        if kind is ir.Layer:
            continue
        if kind is ir.Seq:  # its items, every one a node
            push(node.items[::-1])
        elif kind is ir.BlockInstance:
            append(node.body)
        else:
            below = children(node)
            if below:
                below.reverse()
                push(below)
