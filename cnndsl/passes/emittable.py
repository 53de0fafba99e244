"""The last pass, emittable: what the code generator needs of a named network, checked where
`check` and the language server see it, so that whatever `compile` or `build` would
reject is a diagnostic first.

- `side(name)` reads a member that the network's own forward calls: a layer, a block or
  a named group of the network's scope (a residual's or a gate's body is in that scope), not a
  member inside a concat branch or a block's class, whose output the forward never holds
  alone; inside a named group (an nn.Sequential) it reads by its path, `side(backbone.layer3)`.
- A concat branch is a layer, a block or a chain: not a concat, a residual or a gate by itself.
- `concat(enc4)` and `upsample(like=enc4)` stand in the forward of a network or block
  (not inside a named group or a concat branch) and read a member that forward calls.
- A parameter (of the network or of a block it uses) is not named like a block class:
  inside `__init__` the parameter would hide the class it constructs.
- A layer that is a learned tensor of its class (`layer_scale`, torchvision's
  `features.1.0.layer_scale`) is a member of a block or the network, not of a named group:
  an nn.Sequential holds modules only.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import attrgetter, is_not

from .. import ir
from ..diagnostics import Diagnostic
from ..layers import RULES
from ..traverse import children, walk
from .context import Context, alone, finish

_CALLED = (ir.Layer, ir.BlockInstance, ir.Seq)


def check_emittable(network: ir.Network | None, context: Context | None = None) -> ir.Network | None:
    """The network unchanged; every problem found goes to the context."""
    context, own = alone(context)
    if network is not None:
        sides, concats, groups, reads, tensors = _found(context.by_type(network.body))
        context.extend(_side_sources(network, sides) + _concat_branches(concats) + _parameters(network)
                       + (_reads(network, context.nodes(network.body)) if reads else [])
                       + (_tensor_members(groups) if tensors else []) + _outputs(network))
    return finish(network, context, own)


def _found(by_type: dict) -> tuple[list, list, list, bool, bool]:
    """Of the body's nodes by class (`Context.by_type`): the side outputs, the concats and
    the named groups, in order; whether anything reads an earlier element (`concat(enc4)`,
    `upsample(like=enc4)`, `from(low)`, `reads(backbone.4)`), which `_reads` then checks;
    whether any layer is a learned tensor, which `_tensor_members` checks."""
    layers, sides, concats, seqs, calls = (by_type.get(kind, []) for kind in _FOUND)
    groups = list(compress(seqs, map(is_not, map(_NAME, seqs), repeat(None))))
    reads = (not _READERS.isdisjoint(map(_KIND, layers))
             and any(layer.kind in _READERS and layer.values.get("like") is not None for layer in layers)) \
        or any(node.skips or node.sources for node in concats) \
        or any(node.reads for node in calls)  # concat(enc4), from(low); Head() reads(backbone.4)
    return sides, concats, groups, reads, not _TENSORS.isdisjoint(map(_KIND, layers))


_FOUND = (ir.Layer, ir.Side, ir.Concat, ir.Seq, ir.BlockInstance)
_NAME, _KIND = attrgetter("name"), attrgetter("kind")
_READERS = frozenset(kind for kind, rule in RULES.items() if any(spec.name == "like" for spec in rule.args))
_TENSORS = frozenset(kind for kind, rule in RULES.items() if rule.parameter)


def _scope_items(seq: ir.Seq):
    """The items of the network's forward scope, in order: residual and gate bodies are in
    it, named groups, concat branches and block bodies are not."""
    for item in ir.members(seq):
        if isinstance(item, (ir.Residual, ir.Gate)):
            yield from _scope_items(item.body)
        else:
            yield item


def _scope_members(seq: ir.Seq):
    """The members the network's forward calls by name, in order."""
    for item in _scope_items(seq):
        if isinstance(item, _CALLED) and item.name is not None:
            yield item


def _called_before(seq: ir.Seq) -> dict[int, frozenset[str]]:
    """Each side output of the network's own scope (by id): the names of the members the
    forward calls before it."""
    called: set[str] = set()
    before: dict[int, frozenset[str]] = {}
    for item in _scope_items(seq):
        if type(item) is ir.Side:
            before[id(item)] = frozenset(called)
        elif isinstance(item, _CALLED) and item.name is not None:
            called.add(item.name)
    return before


def _enclosing(network: ir.Network) -> dict[str, str]:
    """Each label inside a container the forward does not open: what that container is."""
    where: dict[str, str] = {}
    for node in walk(network.body):
        if isinstance(node, ir.Seq) and node.name is not None:
            inside = f"the group {node.name!r} (an nn.Sequential)"
        elif isinstance(node, ir.BlockInstance):
            inside = f"block {node.block}"
        elif isinstance(node, ir.Concat):
            inside = "a concat branch"
        else:
            continue
        for inner in walk(node):
            if inner is not node and getattr(inner, "name", None):
                where.setdefault(inner.name, inside)
    return where


def _side_sources(network: ir.Network, sides: list) -> list[Diagnostic]:
    if all(node.source is None for node in sides):
        return []
    called = {member.name for member in _scope_members(network.body)}
    before = _called_before(network.body)
    where = None
    errors = []
    for node in sides:
        # a side of the network's own scope reads a member called before it: a label inside a
        # group can be spelt like a later member's own name (a residual's `conv2`)
        if node.source is None or node.source.split(".")[0] in before.get(id(node), called):
            continue
        if "." in node.source and node.stats is None:  # the shape pass said what the path misses
            continue
        where = where if where is not None else _enclosing(network)
        inside = where.get(node.source.split(".")[0], "a concat, a residual or a side output")
        path = _group_paths(network.body).get(node.source)
        errors.append(Diagnostic.error(
            node.span, f"side({node.source}) reads {node.source!r} inside {inside}, whose output the "
            "generated forward never holds by itself",
            f"read it by its path in the group: side({path})" if path else
            "read a layer, block or named group of the network itself (the group that holds it, say)",
            "side"))
    return errors


def _group_paths(seq: ir.Seq, prefix: str = "") -> dict[str, str]:
    """Each label inside the network's named groups (nn.Sequentials, not blocks): its path,
    `backbone.layer3`, the outermost first."""
    paths: dict[str, str] = {}
    members = _scope_members(seq) if not prefix else ir.members(seq)
    for item in members:
        if isinstance(item, ir.Seq) and item.name is not None:
            path = f"{prefix}{item.name}"
            for name, inner in _group_paths(item, path + ".").items():
                paths.setdefault(name, inner)
            if prefix:
                paths.setdefault(str(item.name), path)
        elif prefix and getattr(item, "name", None):
            paths.setdefault(str(item.name), f"{prefix}{item.name}")
    return paths


def _opened(seq: ir.Seq):
    """The nodes one forward handles itself, statement by statement."""
    for item in ir.members(seq):
        if isinstance(item, (ir.Residual, ir.Gate)):
            yield from _opened(item.body)
        else:
            yield item


def _in_scope(seq: ir.Seq):
    """Every node of one class's scope, not those inside the blocks it uses."""
    stack = [seq]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ir.BlockInstance):
            stack.extend(children(node))


def _trailing_resizes(seq: ir.Seq) -> set[int]:
    """The `upsample(like=...)` layers that end a named concat branch of this scope: the
    generated cat resizes that branch's output (ASPP's pooling branch)."""
    found = set()
    for node in _in_scope(seq):
        if isinstance(node, ir.Side) and isinstance(node.node, ir.Seq) and node.node.items:
            last = node.node.items[-1]  # the aux head's, to the input's size
            if node.node.name and len(node.node.items) > 1 and isinstance(last, ir.Layer) and \
                    last.values.get("like") is not None:
                found.add(id(last))
        if isinstance(node, ir.Concat):
            for branch in node.branches:
                last = branch.items[-1] if branch.items else None
                if branch.name and len(branch.items) > 1 and isinstance(last, ir.Layer) and \
                        last.values.get("like") is not None:
                    found.add(id(last))
    return found


def _reads(network: ir.Network, nodes: list) -> list[Diagnostic]:
    """Each `concat(name)` and `upsample(like=name)` stands in a forward and reads a member of it."""
    errors: dict = {}
    scopes = [(network.body, ())] + [(node.body, tuple(name for name, _ in node.reads))
                                     for node in nodes if isinstance(node, ir.BlockInstance)]
    labels = {getattr(node, "name", None) for node in nodes}  # an unknown name the shape pass reported
    for seq, inputs in scopes:
        opened = {id(node) for node in _opened(seq)} | _trailing_resizes(seq)
        called = {node.name for node in _opened(seq) if isinstance(node, _CALLED) and node.name} | {"input"}
        called |= set(inputs)  # a block's reads(low)
        for node in _in_scope(seq):
            what, names = _read_names(node)
            if not names:
                continue
            unheld = _unheld_path(node, names, called if seq is network.body else set())
            if unheld is not None:
                errors.setdefault(node.span, Diagnostic.error(
                    node.span, f"{what} reads {unheld!r}, inside a group that the generated forward calls "
                    "as one nn.Sequential", "read a member of a named group of the network itself by its path, "
                    "or label the member in this chain and read it by name", "skip"))
                continue
            if id(node) not in opened:
                errors.setdefault(node.span, Diagnostic.error(
                    node.span, f"{what} stands inside a named group or a concat branch, whose forward "
                    "the generated code does not write out", "move it into the chain of the network or "
                    "block itself", "skip"))
                continue
            for name in names:
                if name not in called and name in labels:
                    errors.setdefault(node.span, Diagnostic.error(
                        node.span, f"{what} reads {name!r}, inside a named group, a concat or a block, whose "
                        "output the generated forward never holds by itself",
                        "name an element of this chain itself (the group that holds it, say)", "skip"))
    return list(errors.values())


def _unheld_path(node, names: tuple[str, ...], called: set) -> str | None:
    """The first group member's path (`backbone.4`) among what a node reads whose group the
    forward does not call member by member (one of the network's own chain, `called`)."""
    if node.stats is None:  # the shape pass said what is wrong
        return None
    return next((name for name in names if "." in name and name.split(".")[0] not in called), None)


def _read_names(node) -> tuple[str, tuple[str, ...]]:
    """What a node reads by name (a concat's skips and its branches' from(...), an upsample's
    like=, a block use's reads(...)), and how the diagnostics write it."""
    if isinstance(node, ir.Concat) and (node.skips or any(node.sources)):
        sources = tuple(source for source in node.sources if source)
        what = f"concat({', '.join(node.skips)})" if node.skips else f"from({sources[0]})"
        return what, node.skips + sources
    if isinstance(node, ir.Layer) and node.values.get("like") is not None:
        return f"{node.kind}(like={node.values['like']})", (node.values["like"],)
    if isinstance(node, ir.BlockInstance) and node.reads:
        sources = tuple(source for _, source in node.reads)
        return f"{node.block}(...) reads({', '.join(sources)})", sources
    return "", ()


def _outputs(network: ir.Network) -> list[Diagnostic]:
    """Each named output is a member the network's forward calls or one of its side outputs;
    with named outputs, every side output is one of them."""
    if not network.outputs:
        return []
    called = {node.name for node in _opened(network.body) if isinstance(node, _CALLED) and node.name}
    sides = {node.node.name: node for node in _opened(network.body) if isinstance(node, ir.Side)}
    errors = [Diagnostic.error(
        output.span, f"output {output.key!r} reads {output.element!r}, inside a named group, a concat or a "
        "block, whose output the generated forward never holds by itself",
        "name a layer, block, group or side output of the network's own chain", "output")
        for output in network.outputs if output.shape is not None and output.element not in called | set(sides)]
    listed = {output.element for output in network.outputs}
    errors += [Diagnostic.error(side.span, f"side output {name!r} is not among the network's outputs",
                                f"add it to the outputs: outputs(..., {name})", "output")
               for name, side in sides.items() if name not in listed]
    return errors


def _concat_branches(concats: list) -> list[Diagnostic]:
    errors = []
    for node in concats:
        for branch in node.branches:
            leaves = ir.members(branch)
            if branch.name is None and len(leaves) == 1 and isinstance(leaves[0], (ir.Concat, ir.Residual, ir.Gate)):
                kind = type(leaves[0]).__name__.lower()
                errors.append(Diagnostic.error(
                    leaves[0].span, f"a concat branch is a {kind} by itself",
                    "move that branch into a block and use the block here", "concat"))
    return errors


def _tensor_members(groups: list) -> list[Diagnostic]:
    errors = []
    for node in groups:
        for item in ir.members(node):
            if isinstance(item, ir.Layer) and RULES[item.kind].parameter:
                errors.append(Diagnostic.error(
                    item.span, f"{item.kind} is a learned tensor of its class, and the group {node.name!r} "
                    "is an nn.Sequential, which holds modules only",
                    f"put the {item.kind} after the group, in the block itself: "
                    f"{node.name}: [...] -> {item.kind}(...)", "parameter"))
    return errors


def _parameters(network: ir.Network) -> list[Diagnostic]:
    classes = set(network.blocks)
    errors = []
    owners = [(f"network {network.name}", network.span, [name for name, _ in network.params])]
    owners += [(f"block {name}", info.span, [p for p, _ in info.params]) for name, info in network.blocks.items()]
    for owner, span, params in owners:
        for param in params:
            if param in classes:
                errors.append(Diagnostic.error(
                    span, f"parameter {param!r} of {owner} has the name of block {param}, whose class "
                    "its generated __init__ would then not reach", "rename the parameter or the block",
                    "name"))
    return errors
