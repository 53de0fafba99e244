"""`traverse.walk` for the checked IR, quicker where the code generator walks a whole
network (the network's side outputs and skips, the layers an init loop picks): the same
nodes in the same order, without asking a layer, which has none, for its children."""

from __future__ import annotations

from typing import Iterator

from .. import ir
from ..traverse import children


def nodes(root) -> Iterator:
    """`root` and every node under it, depth first, parents first, as `traverse.walk`."""
    stack = [root]
    pop, push, layer = stack.pop, stack.extend, ir.Layer
    while stack:
        node = pop()
        yield node
        if type(node) is not layer:
            below = children(node)
            if below:
                below.reverse()
                push(below)
