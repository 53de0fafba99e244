"""Pass 2, expand: the syntax tree of one network becomes the concrete IR.

Parameters get their values (defaults, then the user's `--set`), expressions are
evaluated, `let`s are substituted where they are used, blocks are instantiated,
`X*N` is expanded and `X?` is kept or dropped by its switch. Every layer's arguments
are bound and type-checked against its rule in `layers.py`.

How `?` binds to a switch: the switch of `X?` is named by the label of its element if
it has one (`pool: maxpool(2)?` is `pool`), else by the name it refers to (`POOL?` is
`POOL`). Switches are on unless `--set NAME=false`; a network parameter of the same
name is the switch (`network N(POOL = false)`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import ast, ir
from ..expr import BINARY, NONE, Binary, Name, Unary
from ..diagnostics import CompileError, Diagnostic
from ..layers import REQUIRED, SHORTCUTS, LayerRule, lookup
from ..source import Span
from ..traverse import walk_elements
from .resolve import suggest

MAX_LAYERS = 20_000
MAX_VALUE = 1 << 40
MAX_NESTING = 64
# Elements visited while expanding: lets and blocks that use each other twice over double
# the work at each level even where they add no layer (an optional switched off, `*0`).
MAX_STEPS = 60_000

class _Fail(Exception):
    """Stop expanding one element; its diagnostic is already recorded."""


@dataclass
class _Scope:
    values: dict[str, ir.Value]
    owner: str  # "network Foo" or "block Bar", for messages


def switch_name(element: ast.Element) -> str | None:
    if isinstance(element.node, ast.Optional) and element.node.switch:
        return element.node.switch
    if element.label is not None:
        return element.label
    node = element.node
    while isinstance(node, (ast.Optional, ast.Repeat)):
        node = node.node
    return node.name if isinstance(node, (ast.Call, ast.Ref)) else None


def switches_of(program: ast.Program) -> dict[str, Span]:
    """Every switch the program declares with `?`, found syntactically."""
    found: dict[str, Span] = {}
    chains = [d.chain for d in program.lets]
    for definition in (*program.blocks, *program.networks):
        chains.extend(definition.body)
    for element in walk_elements(chains):
        if isinstance(element.node, ast.Optional):
            name = switch_name(element)
            if name is not None:
                found.setdefault(name, element.span)
    return found


class Expander:
    def __init__(self, program: ast.Program, overrides: dict[str, object]):
        self.program = program
        self.lets = {d.name: d for d in program.lets}
        self.blocks = {d.name: d for d in program.blocks}
        self.overrides = dict(overrides)
        self.errors: list[Diagnostic] = []
        self.layers = 0
        self.depth = 0  # elements being expanded, one inside the other
        self.steps = 0
        self.switches: dict[str, bool] = {}
        self.block_infos: dict[str, ir.BlockInfo] = {}

    def fail(self, span: Span, message: str, hint: str | None = None, code: str = "") -> _Fail:
        self.errors.append(Diagnostic.error(span, message, hint, code))
        return _Fail()

    # -- expressions -------------------------------------------------------------------
    def evaluate(self, expr: ast.Expr, scope: _Scope) -> ir.Value:
        if isinstance(expr, ast.Num):
            return ir.Value.constant(expr.value)
        if isinstance(expr, ast.Str):
            return ir.Value.constant(expr.value)
        if isinstance(expr, ast.Bool):
            return ir.Value.constant(expr.value)
        if isinstance(expr, ast.Var):
            if expr.name in scope.values:
                return scope.values[expr.name]
            if expr.name in ("True", "False"):
                raise self.fail(expr.span, f"unknown name {expr.name!r}", f"booleans are written {expr.name.lower()}")
            guess = suggest(expr.name, scope.values)
            known = ", ".join(sorted(scope.values)) or "none"
            raise self.fail(expr.span, f"unknown name {expr.name!r} in {scope.owner}",
                            f"did you mean {guess!r}?" if guess else f"the parameters here are: {known}",
                            "unknown-name")
        if isinstance(expr, ast.Neg):
            inner = self.evaluate(expr.operand, scope)
            self.number(inner, expr.span, "'-'")
            if not inner.names:
                return ir.Value.constant(-inner.value)
            return ir.Value(-inner.value, Unary("-", inner.expr))
        assert isinstance(expr, ast.BinOp)
        left = self.evaluate(expr.left, scope)
        right = self.evaluate(expr.right, scope)
        self.number(left, expr.left.span, f"'{expr.op}'")
        self.number(right, expr.right.span, f"'{expr.op}'")
        a, b = left.value, right.value
        if expr.op in ("/", "//", "%") and b == 0:
            raise self.fail(expr.right.span, "division by zero", None)
        result = BINARY[expr.op][1](a, b)
        if abs(result) > MAX_VALUE:
            raise self.fail(expr.span, f"value {result:.3g} is too large", f"values stay below {MAX_VALUE:,}")
        if not left.names and not right.names:
            return ir.Value.constant(result)
        return ir.Value(result, Binary(expr.op, left.expr, right.expr))

    def number(self, value: ir.Value, span: Span, what: str) -> None:
        if isinstance(value.value, bool) or not isinstance(value.value, (int, float)):
            raise self.fail(span, f"{what} needs numbers, got {_describe(value.value)}", None, "type")

    # -- arguments ---------------------------------------------------------------------
    def bind(self, names: list[str], call: ast.Call | None, scope: _Scope, what: str,
             span: Span) -> dict[str, tuple[ir.Value, Span]]:
        bound: dict[str, tuple[ir.Value, Span]] = {}
        args = call.args if call else ()
        positional = [a for a in args if a.name is None]
        if len(positional) > len(names):
            extra = positional[len(names)]
            raise self.fail(extra.span, f"{what} takes at most {len(names)} positional argument(s), "
                            f"got {len(positional)}", f"its arguments are: {', '.join(names) or 'none'}")
        seen_keyword = False
        for index, arg in enumerate(args):
            if arg.name is None:
                if seen_keyword:
                    raise self.fail(arg.span, "a positional argument after a keyword argument",
                                    "put positional arguments first")
                name = names[index]
            else:
                seen_keyword = True
                name = arg.name
                if name not in names:
                    guess = suggest(name, names)
                    raise self.fail(arg.span, f"{what} has no parameter {name!r}",
                                    f"did you mean {guess!r}?" if guess else
                                    f"its parameters are: {', '.join(names) or 'none'}", "unknown-parameter")
                if name in bound:
                    raise self.fail(arg.span, f"{name!r} is given twice", "give each argument once")
            bound[name] = (self.evaluate(arg.value, scope), arg.value.span)
        return bound

    def layer_args(self, rule: LayerRule, call: ast.Call | None, scope: _Scope, span: Span):
        bound = self.bind([a.name for a in rule.args], call, scope, rule.kind, span)
        out = []
        for spec in rule.args:
            if spec.name not in bound:
                if spec.default is REQUIRED:
                    example = {"conv": "conv(64, 3)", "fc": "fc(10)"}.get(rule.kind, f"{rule.kind}(...)")
                    raise self.fail(span, f"{rule.kind} needs its {spec.name!r} argument"
                                    + (f" ({spec.doc})" if spec.doc else ""), f"for example {example}", "missing")
                value = ir.Value(None, NONE) if spec.default is None else ir.Value.constant(spec.default)
                out.append((spec.name, value))
                continue
            value, arg_span = bound[spec.name]
            self.check_type(rule, spec, value, arg_span)
            out.append((spec.name, value))
        return tuple(out)

    def check_type(self, rule: LayerRule, spec, value: ir.Value, span: Span) -> None:
        v = value.value
        ok = {
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "str": isinstance(v, str),
        }[spec.type]
        if spec.default is None and v is None:
            ok = True
        if not ok:
            hint = None
            if spec.type == "int" and isinstance(v, float):
                hint = "use // for integer division" if v == int(v) else "give a whole number"
            elif spec.type == "bool":
                hint = "write true or false"
            elif spec.type == "str":
                hint = f"write it in double quotes: {spec.name}=\"{spec.choices[0] if spec.choices else '...'}\""
            raise self.fail(span, f"{rule.kind} {spec.name!r} must be {_TYPE_WORDS[spec.type]}, "
                            f"got {_describe(v)}", hint, "type")
        if spec.choices and v not in spec.choices:
            raise self.fail(span, f"{rule.kind} {spec.name!r} must be one of "
                            f"{', '.join(repr(c) for c in spec.choices)}, got {v!r}",
                            f"did you mean {suggest(v, spec.choices)!r}?" if suggest(v, spec.choices) else None,
                            "type")
        if spec.minimum is not None and v is not None and v < spec.minimum:
            raise self.fail(span, f"{rule.kind} {spec.name!r} must be at least {spec.minimum:g}, got {v}",
                            None, "range")
        if isinstance(v, int) and not isinstance(v, bool) and v > (1 << 24):
            raise self.fail(span, f"{rule.kind} {spec.name!r} of {v:,} is too large", None, "range")

    # -- chains ------------------------------------------------------------------------
    def chains(self, chains, scope: _Scope, first_in_network: bool = False) -> list[ir.Node]:
        items: list[ir.Node] = []
        for chain_index, chain in enumerate(chains):
            for index, element in enumerate(chain.elements):
                node = element.node
                self.steps += 1
                if self.steps > MAX_STEPS:
                    raise CompileError(self.errors[:20] + [Diagnostic.error(
                        element.span, f"expanding the network takes more than {MAX_STEPS:,} steps",
                        "lets or blocks that use each other twice over grow exponentially; "
                        "use a repetition *N instead", "limit")])
                if isinstance(node, ast.Ref) and node.name == "INPUT":
                    if not (first_in_network and chain_index == 0 and index == 0):
                        self.errors.append(Diagnostic.error(
                            node.span, "INPUT marks the start of a network's chain",
                            "write it first in the network, or leave it out"))
                    continue
                try:
                    items.extend(self.element(element, scope))
                except _Fail:
                    continue
        return items

    def element(self, element: ast.Element, scope: _Scope) -> list[ir.Node]:
        # Blocks inside blocks inside groups: each level is a few frames here and in the
        # later passes, so the depth across block instances is capped, not only per definition.
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.fail(element.span, f"blocks and groups nested more than {MAX_NESTING} deep",
                                "flatten the spec: fewer blocks inside blocks", "limit")
            return self._element(element, scope)
        finally:
            self.depth -= 1

    def _element(self, element: ast.Element, scope: _Scope) -> list[ir.Node]:
        node = element.node
        label = element.label
        if isinstance(node, ast.Optional):
            name = switch_name(element)
            if name is None:
                raise self.fail(node.span, "an optional group needs a name to make its switch",
                                "label it: extra: [conv(64, 3) -> relu]?")
            on = self.switch(name, element.span)
            if not on:
                return []
            return self.element(ast.Element(label, node.node, element.span, element.label_span), scope)
        if isinstance(node, (ast.Concat, ast.Residual)) and label is not None:
            raise self.fail(element.label_span or element.span,
                            f"a {type(node).__name__.lower()} cannot be named here",
                            "its parts take names of their own; to name the whole, make it a block")
        made = self.node(node, scope, label)
        if label is None:
            return made
        if len(made) == 1 and isinstance(made[0], ir.Side):
            return made
        if len(made) == 1 and isinstance(made[0], (ir.Layer, ir.BlockInstance, ir.Seq)) and \
                getattr(made[0], "name", None) in (None, label):
            return [_renamed(made[0], label)]
        return [ir.Seq(tuple(made), label, element.span)]

    def switch(self, name: str, span: Span) -> bool:
        value = self.overrides.get(name, True)
        if isinstance(value, ir.Value):
            value = value.value
        if not isinstance(value, bool):
            raise self.fail(span, f"switch {name!r} must be true or false, got {_describe(value)}",
                            f"--set {name}=false turns it off")
        self.switches[name] = value
        return value

    def node(self, node: ast.Node, scope: _Scope, label: str | None) -> list[ir.Node]:
        if isinstance(node, ast.Group):
            items = self.chains(node.chains, scope)
            return [ir.Seq(tuple(items), label, node.span)] if label else items
        if isinstance(node, ast.Repeat):
            return self.repeat(node, scope, label)
        if isinstance(node, ast.Optional):
            raise self.fail(node.span, "an optional inside an optional", "one ? is enough")
        if isinstance(node, ast.Concat):
            return [self.concat(node, scope)]
        if isinstance(node, ast.Residual):
            return [self.residual(node, scope)]
        if isinstance(node, ast.Side):
            inner = self.node(node.node, scope, label)
            if len(inner) == 1 and getattr(inner[0], "name", None) == label:
                return [ir.Side(inner[0], node.span, source=node.source)]
            return [ir.Side(ir.Seq(tuple(inner), label, node.span), node.span, source=node.source)]
        name = node.name
        call = node if isinstance(node, ast.Call) else None
        name_span = node.name_span if call else node.span
        if name in self.lets:
            if call is not None:
                raise self.fail(node.span, f"{name!r} is a let and takes no arguments",
                                f"to give it parameters, make it a block: block {name}(...) {{ ... }}")
            items = self.chains((self.lets[name].chain,), scope)
            return items
        if name in self.blocks:
            return [self.instance(self.blocks[name], call, scope, node.span, label)]
        if name in SHORTCUTS and lookup(name) is None:
            raise self.fail(name_span, f"{name!r} is a residual shortcut, not a layer",
                            "use it after a residual body: residual { ... } shortcut projection")
        rule = lookup(name)
        assert rule is not None  # resolve.py has checked every name
        args = self.layer_args(rule, call, scope, node.span)
        self.count(1, node.span)
        return [ir.Layer(rule.kind, args, label, node.span)]

    def count(self, n: int, span: Span) -> None:
        self.layers += n
        if self.layers > MAX_LAYERS:
            raise CompileError(self.errors + [Diagnostic.error(
                span, f"the network expands to more than {MAX_LAYERS:,} layers",
                "check the repetition counts", "limit")])

    def repeat(self, node: ast.Repeat, scope: _Scope, label: str | None) -> list[ir.Node]:
        count = self.evaluate(node.count, scope)
        n = count.value
        if isinstance(n, bool) or not isinstance(n, int):
            raise self.fail(node.count.span, f"a repetition count must be a whole number, got {_describe(n)}",
                            "use // for integer division", "type")
        if n < 0:
            raise self.fail(node.count.span, f"a repetition count cannot be negative ({n})", None, "range")
        before = self.layers
        once = self.node(node.node, scope, None) if n > 0 else []
        if once and self.layers == before:  # named groups left empty hold no layer but still cost
            self.count(len(once), node.span)
        per_copy = self.layers - before
        if n > 1:
            if per_copy * (n - 1) + self.layers > MAX_LAYERS:
                self.count(per_copy * (n - 1), node.span)
            self.layers += per_copy * (n - 1)
        items = once * n
        return [ir.Seq(tuple(items), label, node.span)] if label else items

    def concat(self, node: ast.Concat, scope: _Scope) -> ir.Concat:
        branches = []
        for chain in node.branches:
            elements = chain.elements
            name = None
            if len(elements) > 1 and elements[0].label is not None:
                # In a concat, a label at the head of a branch line names the whole branch.
                name = elements[0].label
                elements = (ast.Element(None, elements[0].node, elements[0].span),) + elements[1:]
            items = self.chains((ast.Chain(elements, chain.span),), scope)
            branches.append(ir.Seq(tuple(items), name, chain.span))
        if not branches:
            raise self.fail(node.span, "a concat needs at least one branch", None)
        self.count(1, node.span)
        return ir.Concat(tuple(branches), node.span)

    def residual(self, node: ast.Residual, scope: _Scope) -> ir.Residual:
        body = ir.Seq(tuple(self.chains(node.body, scope)), None, node.span)
        self.count(1, node.span)
        shortcut = node.shortcut
        if shortcut is None:
            return ir.Residual(body, ir.Shortcut("identity", None, node.span), node.span)
        target = shortcut.node
        if target.name not in SHORTCUTS:
            raise self.fail(target.span, f"unknown shortcut {target.name!r}",
                            "a shortcut is identity, projection (1x1 conv + batch norm where shapes differ; "
                            "projection(bn=false) for the conv alone) or pad (option A: subsample and zero-pad)")
        bn = True
        if isinstance(target, ast.Call) and target.args:
            if target.name != "projection":
                raise self.fail(target.span, f"{target.name} takes no arguments", None)
            bound = self.bind(["bn"], target, scope, "projection", target.span)
            value = bound["bn"][0].value
            if not isinstance(value, bool):
                raise self.fail(bound["bn"][1], f"projection 'bn' must be true or false, got {_describe(value)}",
                                None, "type")
            bn = value
        return ir.Residual(body, ir.Shortcut(target.name, shortcut.label, shortcut.span, bn=bn), node.span)

    def instance(self, block: ast.BlockDef, call: ast.Call | None, scope: _Scope, span: Span,
                 label: str | None) -> ir.BlockInstance:
        info = self.block_info(block)
        names = [p.name for p in block.params]
        bound = self.bind(names, call, scope, f"block {block.name}", span)
        values: dict[str, ir.Value] = {}
        inner: dict[str, ir.Value] = {}
        for param_name, default in info.params:
            if param_name in bound:
                value = bound[param_name][0]
            elif default is not None:
                value = default
            else:
                raise self.fail(span, f"block {block.name} needs its {param_name!r} argument",
                                f"call it as {block.name}({', '.join(names)})", "missing")
            values[param_name] = value
            inner[param_name] = ir.Value(value.value, Name(param_name))
        self.count(1, span)
        items = self.chains(block.body, _Scope(inner, f"block {block.name}"))
        body = ir.Seq(tuple(items), None, block.span)
        return ir.BlockInstance(block.name, tuple(values.items()), body, label, span)

    def block_info(self, block: ast.BlockDef) -> ir.BlockInfo:
        if block.name not in self.block_infos:
            params = []
            for param in block.params:
                default = None
                if param.default is not None:
                    default = self.evaluate(param.default, _Scope({}, f"the defaults of block {block.name}"))
                params.append((param.name, default))
            self.block_infos[block.name] = ir.BlockInfo(block.name, tuple(params), block.span)
        return self.block_infos[block.name]

    # -- the network -------------------------------------------------------------------
    def network(self, network: ast.NetworkDef) -> ir.Network:
        switches = switches_of(self.program)
        params = {p.name: p for p in network.params}
        for name, value in self.overrides.items():
            if name not in params and name not in switches:
                known = sorted(set(params) | set(switches))
                guess = suggest(name, known)
                raise CompileError([Diagnostic.error(
                    network.name_span, f"network {network.name} has no parameter or switch {name!r}",
                    (f"did you mean {guess!r}? " if guess else "")
                    + f"it has: {', '.join(known) or 'none'}", "unknown-parameter")])
        values: dict[str, ir.Value] = {}
        for param in network.params:
            if param.name in self.overrides:
                value = self.overrides[param.name]
                value = value.value if isinstance(value, ir.Value) else value
                if isinstance(value, float) and not math.isfinite(value):  # --set N=nan, N=inf
                    self.errors.append(Diagnostic.error(
                        network.name_span, f"parameter {param.name!r} is {value}, not a finite number",
                        f"give {param.name} a finite value", "type"))
                    continue
                if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
                    self.errors.append(Diagnostic.error(  # the limit an expression in the spec has
                        network.name_span, f"parameter {param.name!r} of {value:,} is too large",
                        f"values stay below {MAX_VALUE:,}", "range"))
                    continue
            elif param.default is not None:
                try:
                    value = self.evaluate(param.default, _Scope({}, f"the defaults of {network.name}")).value
                except _Fail:
                    continue
            else:
                self.errors.append(Diagnostic.error(
                    param.span, f"parameter {param.name!r} has no default and no value",
                    f"give it a default ({param.name} = 10) or pass --set {param.name}=VALUE", "missing"))
                continue
            values[param.name] = ir.Value(value, Name(param.name))
            if param.name in switches:
                self.overrides[param.name] = value
        scope = _Scope(values, f"network {network.name}")
        if network.input is None:
            self.errors.append(Diagnostic.error(
                network.name_span, f"network {network.name} has no input line",
                "add one as the first line of its body: input 3x32x32"))
            raise CompileError(self.errors)
        dims = []
        for dim in network.input.dims:
            try:
                value = self.evaluate(dim, scope)
            except _Fail:
                continue
            if isinstance(value.value, bool) or not isinstance(value.value, int) or value.value < 1:
                self.errors.append(Diagnostic.error(
                    dim.span, f"an input dimension must be a positive whole number, got {_describe(value.value)}",
                    None, "type"))
                continue
            if value.value > 1 << 16:
                self.errors.append(Diagnostic.error(dim.span, f"input dimension {value.value:,} is too large",
                                                    None, "range"))
                continue
            dims.append(value)
        if not self.errors and len(dims) not in (1, 3):
            self.errors.append(Diagnostic.error(
                network.input.span, f"an input is CxHxW or a flat size, got {len(dims)} dimensions",
                "write input 1x28x28 for a grey 28x28 image"))
        if self.errors:
            raise CompileError(self.errors)
        items = self.chains(network.body, scope, first_in_network=True)
        if self.errors:
            raise CompileError(self.errors)
        return ir.Network(
            name=network.name,
            input=tuple(d.value for d in dims),
            input_channels=dims[0],
            params=tuple(values.items()),
            body=ir.Seq(tuple(items), None, network.span),
            span=network.span,
            blocks=dict(self.block_infos),
            switches=tuple(sorted(self.switches.items())),
        )


_TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string"}


def _describe(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def _renamed(node, name: str):
    from dataclasses import replace

    return replace(node, name=name)


def select_network(program: ast.Program, name: str | None, span: Span) -> ast.NetworkDef:
    if not program.networks:
        raise CompileError([Diagnostic.error(
            span, "no network in this file", "add one: network Net(classes = 10) { input 3x32x32 ... }")])
    if name is None:
        return program.networks[-1]
    for network in program.networks:
        if network.name == name:
            return network
    names = [n.name for n in program.networks]
    guess = suggest(name, names)
    raise CompileError([Diagnostic.error(
        span, f"no network named {name!r}",
        f"did you mean {guess!r}?" if guess else f"this file has: {', '.join(names)}")])


def expand(program: ast.Program, overrides: dict[str, object] | None = None,
           network: str | None = None) -> ir.Network:
    chosen = select_network(program, network, program.span)
    return Expander(program, overrides or {}).network(chosen)


__all__ = ["expand", "switches_of"]
