"""The network's weight initialisation (`init { ... }`, checked into `ir.Network.init_steps`
by passes/inits.py) as torchvision writes it at the end of `__init__`: a loop over
`self.modules()` that picks each module by `isinstance` and calls `nn.init`'s functions,
then the modules named by their labels, then the last norms of the residual bodies.
"""

from __future__ import annotations

from .. import ir
from ..layers import RULES
from ..passes.inits import FANS, has_tensor, module_events, module_text, needs_math, render
from .nodes import by_kind

WRAP = 92  # model.WRAP: the generated code's width


def init_lines(network: ir.Network, class_of, layers: list | None = None,
               made=lambda layer: None) -> tuple[list[str], frozenset[str], bool]:
    """The lines (indented from `__init__`'s body), the network parameters they read and
    whether they call math.sqrt. `class_of(instance)` names the generated class of a block
    instance; `layers`, where given, are the network's layers in walk order; `made(layer)`,
    the callee of a layer's construction where the caller has made it already, else None."""
    params = {name for name, _ in network.params}
    out = _Lines(params, made, frozenset(kind for step in network.init_steps for kind in step.kinds))
    if layers is not None:
        out.indexes[id(network.body)] = _LayerIndex(layers, made, out.kinds)
    out.math = any(needs_math(step) for step in network.init_steps)
    for group in _groups(network.init_steps):
        step = group[0]
        if step.condition is not None and not step.condition.names and not step.condition.value:
            continue  # a condition known false here
        indent = ""
        if step.condition is not None and step.condition.names:
            out.names |= step.condition.names
            out.add(f"if {step.condition.text}:")
            indent = "    "
        if step.last_norm:
            out.last_norms(step, indent, class_of)
        elif step.kinds:
            out.loop(network, group, indent)
        else:
            layer = _module(network, step.path)
            for tensor, call in (("weight", step.weight), ("bias", step.bias)):
                if call is not None and has_tensor(layer, tensor):
                    out.call(call, module_text(step.path), tensor, indent, RULES[layer.kind].kind)
    return out.lines, frozenset(out.names), out.math


class _Lines:
    def __init__(self, params, made, kinds: frozenset[str]):
        self.params = params
        self.made = made  # init_lines's: a layer's callee, where made already
        self.kinds = kinds  # the rules' kinds that the init's loops pick
        self.lines: list[str] = []
        self.names: set[str] = set()
        self.math = False
        self.indexes: dict[int, _LayerIndex] = {}  # id(root) -> its layers, walked once

    def add(self, line: str) -> None:
        self.lines.append(line)

    def call(self, call: ir.InitCall, module: str, tensor: str, indent: str, kind: str) -> None:
        parts = [f"{module}.{tensor}"]
        fans = []
        for key, value in call.args:
            text, names = render(value, module, self.params)
            self.names |= names - set(FANS)
            fans += [name for name in FANS if name in names - self.params and name not in fans]
            parts.append(text if key is None else f"{key}={text}")
        for fan in fans:  # fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            self.add(f"{indent}{fan} = {FANS[fan][kind].format(m=module)}")
        line = f"{indent}nn.init.{call.function}({', '.join(parts)})"
        if len(line) + 8 > WRAP:  # one argument a line, as the constructors wrap
            self.add(f"{indent}nn.init.{call.function}(")
            self.lines.extend(f"{indent}    {part}," for part in parts)
            line = f"{indent})"
        self.add(line)

    def loop(self, network: ir.Network, group, indent: str) -> None:
        """`for m in self.modules():` and one `if isinstance(m, ...)` branch a rule."""
        root = _module(network, group[0].path) if group[0].path else network.body
        index = self.indexes.get(id(root))
        if index is None:
            index = self.indexes[id(root)] = _LayerIndex(by_kind(root)[ir.Layer], self.made, self.kinds)
        self.add(f"{indent}for m in {module_text(group[0].path)}.modules():")
        for at, step in enumerate(group):
            facts = index.facts(step.kinds)  # (callee, its tensors) of each distinct layer
            classes = list(dict.fromkeys(callee for callee, _ in facts))
            test = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
            self.add(f"{indent}    {'if' if at == 0 else 'elif'} isinstance(m, {test}):")
            for tensor, call in (("weight", step.weight), ("bias", step.bias)):
                if call is None:
                    continue
                if all(tensor in tensors for _, tensors in facts):
                    self.call(call, "m", tensor, indent + "        ", step.kinds[0])
                else:  # some have none: a conv with bias=false, a norm with affine=false
                    self.add(f"{indent}        if m.{tensor} is not None:")
                    self.call(call, "m", tensor, indent + "            ", step.kinds[0])

    def last_norms(self, step: ir.InitStep, indent: str, class_of) -> None:
        """The norm ending each residual body: in the network's own scope by its path, in a
        block's class by `isinstance` of the class, as torchvision zero-inits `m.bn3.weight`."""
        by_class: dict[str, list[tuple[str, ...]]] = {}
        for owner, rel in step.norms:
            if owner is None:
                self.tensors(step, module_text(rel), indent)
            else:
                paths = by_class.setdefault(class_of(owner), [])
                if rel not in paths:
                    paths.append(rel)
        if not by_class:
            return
        self.add(f"{indent}for m in self.modules():")
        for at, (name, paths) in enumerate(by_class.items()):
            self.add(f"{indent}    {'if' if at == 0 else 'elif'} isinstance(m, {name}):")
            for rel in paths:
                self.tensors(step, module_text(rel, "m"), indent + "        ")

    def tensors(self, step: ir.InitStep, module: str, indent: str) -> None:
        for tensor, call in (("weight", step.weight), ("bias", step.bias)):
            if call is not None:
                self.call(call, module, tensor, indent, "batchnorm")


def _groups(steps) -> list[list[ir.InitStep]]:
    """Consecutive kind rules of one scope and condition share a loop, unless a kind repeats
    (the later rule would never be reached in the if/elif); every other step stands alone."""
    groups: list[list[ir.InitStep]] = []
    for step in steps:
        last = groups[-1] if groups else None
        if last is not None and step.kinds and last[0].kinds and not last[0].last_norm and \
                last[0].path == step.path and _same(last[0].condition, step.condition) and \
                not any(set(s.kinds) & set(step.kinds) for s in last):
            last.append(step)
        else:
            groups.append([step])
    return groups


def _same(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.text == b.text)


def _module(network: ir.Network, path: tuple[str, ...]):
    for at, node, _, _ in module_events(network.body):
        if at == path:
            return node
    raise KeyError(path)


class _LayerIndex:
    """The layers under one root (in walk order) of the rules' `kinds` (those an init loop
    picks), for every rule of an init loop: by their rule's kind, each distinct construction
    once (the same kind, input and arguments: the same callee and tensors), with its callee
    (`made(layer)`'s where made: init_lines) and the tensors it has."""

    def __init__(self, layers: list[ir.Layer], made, kinds: frozenset[str]):
        self.made = made
        self.order: dict[str, dict[tuple, tuple[int, ir.Layer]]] = {}  # kind -> construction -> (at, first layer)
        self.tensors: dict[tuple, tuple] = {}  # (kind, id(args)) -> (args, the tensors its module holds)
        # The layers sharing their arguments (by identity: the expansion shares them) and input
        # construct alike; those with equal arguments of their own too, looked at apart: the
        # facts are each distinct callee and tensors, which they give again.
        firsts: dict[tuple, tuple[int, ir.Layer]] = {}  # construction -> (at, first layer); it holds the kind
        picked = {kind: rule.kind in kinds for kind, rule in RULES.items()}  # a layer's kind (or alias) -> its rule's picked
        for at, node in enumerate(layers):
            if not picked[node.kind]:
                continue
            stats = node.stats
            key = (node.kind, type(stats.in_shape), stats.in_shape, stats.in_channels.text, id(node.args))
            if key not in firsts:  # the layer held, so the id of its arguments stays theirs
                firsts[key] = (at, node)
        for key, first in firsts.items():  # by their rule's kind: each distinct construction, not each layer
            self.order.setdefault(RULES[key[0]].kind, {})[key] = first

    def facts(self, kinds) -> list[tuple[str, frozenset[str]]]:
        firsts = sorted(first for kind in kinds for first in self.order.get(kind, {}).values())
        return [(self.made(layer) or _callee(layer), self.held(layer)) for _, layer in firsts]

    def held(self, layer: ir.Layer) -> frozenset[str]:
        """The tensors of a layer's module (`has_tensor`: its kind and values decide), once for
        each kind and arguments object; the entry holds them, so that their id stays theirs."""
        key = (layer.kind, id(layer.args))
        found = self.tensors.get(key)
        if found is None:
            found = self.tensors[key] = (layer.args, frozenset(t for t in ("weight", "bias") if has_tensor(layer, t)))
        return found[1]


def _callee(layer: ir.Layer) -> str:
    exprs = {k: v.expr for k, v in layer.args}
    exprs["in"] = layer.stats.in_channels
    return RULES[layer.kind].construction(layer.stats.in_shape, layer.values, exprs).callee


__all__ = ["init_lines"]
