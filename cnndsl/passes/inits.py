"""`init { ... }`: a network's weight initialisation, checked against the named IR.

Each rule names its targets and the weight's init (and `bias=`'s), nn.init's functions
without the underscore:

    init {
        conv: kaiming_normal(mode="fan_out", nonlinearity="relu")
        batchnorm, groupnorm: ones, bias=zeros
        fc: normal(0, 0.01), bias=zeros
        "classifier.1": normal(0, 0.01)             # the module at a label path
        "backbone" conv: kaiming_normal()           # the convs inside one element
        last_norm?(zero_init_residual): zeros       # the last norm of each residual body
    }

A target is a layer kind with weights, `last_norm`, a quoted label path, or a path and a
kind. The arguments are numbers, strings, the network's parameters and the module's own
attributes (`uniform(-1 / sqrt(out_features), 1 / sqrt(out_features))`). Every problem is
a diagnostic at the rule: an unknown function or argument, a target that names no layer of
the network, a tensor the layer does not have. The result is `ir.Network.init_steps`,
what `codegen/init.py` writes as torchvision does (a loop over `self.modules()`).
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from itertools import chain

from .. import ast, ir
from ..expr import FUNCTIONS as EXPR_FUNCTIONS
from ..layers import lookup
from ..node import replace
from ..traverse import children, walk
from .context import Context, alone, finish
from .resolve import suggest

LAST_NORM = "last_norm"
REQUIRED = object()


@dataclass(frozen=True)
class InitFunction:
    torch: str  # nn.init's name
    params: tuple[tuple[str, object], ...]  # name, default (REQUIRED: must be given)
    doc: str


_KAIMING = (("a", 0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu"))
FUNCTIONS: dict[str, InitFunction] = {
    "kaiming_normal": InitFunction("kaiming_normal_", _KAIMING,
                                   "He et al.: normal, std gain / sqrt(fan), gain from the nonlinearity"),
    "kaiming_uniform": InitFunction("kaiming_uniform_", _KAIMING,
                                    "He et al.: uniform in +-gain * sqrt(3 / fan)"),
    "xavier_normal": InitFunction("xavier_normal_", (("gain", 1.0),),
                                  "Glorot: normal, std gain * sqrt(2 / (fan_in + fan_out))"),
    "xavier_uniform": InitFunction("xavier_uniform_", (("gain", 1.0),),
                                   "Glorot: uniform in +-gain * sqrt(6 / (fan_in + fan_out))"),
    "normal": InitFunction("normal_", (("mean", 0.0), ("std", 1.0)), "normal(mean, std)"),
    "trunc_normal": InitFunction("trunc_normal_", (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
                                 "normal(mean, std), redrawn outside [a, b]"),
    "uniform": InitFunction("uniform_", (("a", 0.0), ("b", 1.0)), "uniform in [a, b]"),
    "constant": InitFunction("constant_", (("val", REQUIRED),), "every value val"),
    "zeros": InitFunction("zeros_", (), "every value 0"),
    "ones": InitFunction("ones_", (), "every value 1"),
}
FUNCTIONS_BY_TORCH = {f.torch: f for f in FUNCTIONS.values()}
CHOICES = {"mode": ("fan_in", "fan_out"),
           "nonlinearity": ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")}
# The tensors each kind's module has, and the attributes an argument may read (m.out_features).
_CONV = ("in_channels", "out_channels", "groups", "kernel_size", "fan_in", "fan_out")
_NORM = ("num_features",)
TENSORS = {"conv": ("weight", "bias"), "conv_transpose": ("weight", "bias"), "fc": ("weight", "bias"),
           "batchnorm": ("weight", "bias"), "groupnorm": ("weight", "bias"), "instancenorm": ("weight", "bias"),
           "layernorm": ("weight", "bias"), "prelu": ("weight",)}
ATTRIBUTES = {"conv": _CONV, "conv_transpose": _CONV[:-2], "fc": ("in_features", "out_features", "fan_in", "fan_out"),
              "batchnorm": _NORM, "instancenorm": _NORM, "groupnorm": ("num_groups", "num_channels"),
              "layernorm": (), "prelu": ("num_parameters",)}
MATH = ("sqrt",) + tuple(EXPR_FUNCTIONS)
# A fan an argument reads is a local computed first, as torchvision's RegNet writes it.
FANS = {"fan_in": {"conv": "{m}.kernel_size[0] * {m}.kernel_size[1] * {m}.in_channels // {m}.groups",
                   "fc": "{m}.in_features"},
        "fan_out": {"conv": "{m}.kernel_size[0] * {m}.kernel_size[1] * {m}.out_channels",
                    "fc": "{m}.out_features"}}


def has_tensor(layer: ir.Layer, tensor: str) -> bool:
    """Whether the layer's module holds `tensor` (a conv without bias, a norm without affine)."""
    kind = canonical(layer.kind)
    if tensor not in TENSORS.get(kind, ()):
        return False
    values = layer.values
    if tensor == "bias" and "bias" in values:
        return bool(values["bias"])
    return bool(values.get("affine", True))


def any_tensor(layers, tensor: str) -> bool:
    """`any(has_tensor(layer, tensor) for layer in layers)`, for a rule's layers (often all
    without it: EfficientNet's convs have no bias): whether a kind's module has the tensor
    looked up once for each kind, a layer's flag read from its arguments, not a dict of all
    its values."""
    holds: dict[str, bool] = {}
    for layer in layers:
        kind = layer.kind
        can = holds.get(kind)
        if can is None:
            can = holds[kind] = tensor in TENSORS.get(canonical(kind), ())
        if can:
            args = dict(layer.args)
            flag = args.get("bias") if tensor == "bias" and "bias" in args else args.get("affine")
            if flag is None or flag.value:
                return True
    return False


def canonical(kind: str) -> str:
    try:
        return _CANONICAL[kind]
    except KeyError:
        rule = lookup(kind)
        found = _CANONICAL[kind] = rule.kind if rule is not None else kind
        return found


_CANONICAL: dict[str, str] = {}  # a layer kind or alias -> the table's kind


def module_events(node, path=(), owner=None, rel=()):
    """(path, module, owner block instance or None, path from the owner) of each named
    module under `node` (the network's body, a named group or a block instance), in order,
    and ("residual", node, owner, rel) for each residual on the way. One walk, without a
    generator per named group: entering one pushes the enclosing (path, owner, rel) under
    its children, to be taken back when the walk comes to it."""
    stack = children(node)[::-1]
    pop, push, append = stack.pop, stack.extend, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is tuple:  # the end of a named group's or block instance's children
            path, owner, rel = item
        elif kind is _RESIDUAL:
            yield "residual", item, owner, rel
            push(children(item)[::-1])
        elif (kind is _LAYER or kind is _CALL or (kind is _SEQ and item.name)) and item.name is not None:
            at, inner = path + (item.name,), rel + (item.name,)
            yield at, item, owner, inner
            if kind is not _LAYER:
                append((path, owner, rel))
                push(children(item)[::-1])
                path, owner, rel = (at, item, ()) if kind is _CALL else (at, owner, inner)
        elif kind is not _LAYER and kind is not _SHORTCUT:
            push(children(item)[::-1])


_LAYER, _CALL, _SEQ, _RESIDUAL, _SHORTCUT = ir.Layer, ir.BlockInstance, ir.Seq, ir.Residual, ir.Shortcut


class _Checker:
    def __init__(self, tree: ir.Network, context: Context):
        self.tree = tree
        self.context = context
        self._events: tuple[dict, list] | None = None  # see `modules`
        self._kinds: dict[str, list[ir.Layer]] | None = None  # see `of_kind`
        self.params = {name for name, _ in tree.params}

    @property
    def modules(self) -> dict:
        """Each named module by its path (`module_events`), worked out where a rule needs it."""
        return self.events()[0]

    @property
    def residuals(self) -> list:
        """(residual, owner block instance or None, path from it) of each residual, in order."""
        return self.events()[1]

    def events(self) -> tuple[dict, list]:
        if self._events is None:
            modules, residuals = {}, []
            for path, node, owner, rel in module_events(self.tree.body):
                if path == "residual":
                    residuals.append((node, owner, rel))
                else:
                    modules[path] = node
            self._events = modules, residuals
        return self._events

    def error(self, span, message, hint=None, code="init"):
        self.context.error(span, message, hint, code)

    def rule(self, rule: ir.InitRule) -> list[ir.InitStep]:
        """The rule's steps: its kind targets of one path together (`conv, fc: ...` is one
        isinstance test), each label path and `last_norm` alone."""
        weight, bias = self.tensors(rule)
        steps, kinds = [], {}  # path -> [(target, kind, layers)]
        for target in rule.targets:
            found = self.target(target, rule, weight, bias)
            if isinstance(found, ir.InitStep):
                steps.append(found)
            elif found is not None:
                kinds.setdefault(found[1], []).append((target, *found))
        for path, group in kinds.items():
            layers = list(chain.from_iterable(found for *_, found in group))
            names = tuple(kind for _, kind, _, _ in group)
            attributes = tuple(a for a in ATTRIBUTES[names[0]] if all(a in ATTRIBUTES[kind] for kind in names)
                               and not (len(names) > 1 and a in FANS))  # a fan is computed as each kind has it
            calls = [self.call(value, tensor, layers, names, attributes, group[0][0]) if value is not None else None
                     for tensor, value in (("weight", weight), ("bias", bias))]
            steps.append(ir.InitStep(names, path, calls[0], calls[1], group[0][0].span, rule.condition))
        return steps

    def tensors(self, rule: ir.InitRule) -> tuple[tuple | None, tuple | None]:
        """The rule's (weight, bias) arguments: (function's call expression, its span) each."""
        weight = bias = None
        for arg in rule.args:
            if arg.name in (None, "weight"):
                if weight is not None:
                    self.error(arg.span, "the weight's init is given twice",
                               "write one init for the weight, then bias=...")
                weight = arg.value
            elif arg.name == "bias":
                bias = arg.value
            else:
                self.error(arg.span, f"an init rule has no {arg.name!r}",
                           "give the weight's init, then bias=...: conv: kaiming_normal(), bias=zeros")
        if weight is None and bias is None:
            self.error(rule.span, "an init rule sets nothing", "give an init after ':': conv: kaiming_normal()")
        return weight, bias

    def target(self, target: ast.InitTarget, rule: ir.InitRule, weight, bias):
        """A label path's or last_norm's step; for a kind, (kind, path, its layers); None on an error."""
        path = tuple(target.path.split(".")) if target.path is not None else ()
        if path and self.find(target, path) is None:
            return None
        if target.kind == LAST_NORM and not path:
            return self.last_norm(target, rule, weight, bias)
        if target.kind is not None:
            kind = self.kind(target, path)
            if kind is None:
                return None
            layers = self.of_kind(kind, path)
            if not layers:
                where = f"the element {target.path!r}" if path else f"network {self.tree.name}"
                self.context.warn(target.span, f"{where} has no {kind} layer: the rule sets nothing",
                                  "remove the rule, or name a kind the network has", "init")
                return None
            return kind, path, layers
        layer = self.modules[path]
        if not isinstance(layer, ir.Layer):
            self.error(target.span, f"{target.path!r} is a {_what(layer)}, not a layer",
                       f'name a layer in it, or its layers of a kind: "{target.path}" conv: ...')
            return None
        if canonical(layer.kind) not in TENSORS:
            self.error(target.span, f"{target.path!r} is a {layer.kind}, which has no weights to initialise",
                       "name a layer with weights: " + ", ".join(sorted(TENSORS)))
            return None
        attributes = ATTRIBUTES[canonical(layer.kind)]
        calls = [self.call(value, tensor, [layer], (), attributes, target) if value is not None else None
                 for tensor, value in (("weight", weight), ("bias", bias))]
        return ir.InitStep((), path, calls[0], calls[1], target.span, rule.condition)

    def find(self, target: ast.InitTarget, path: tuple[str, ...]):
        found = self.modules.get(path)
        if found is None:
            known = {p[len(path) - 1] for p in self.modules if len(p) == len(path) and p[:-1] == path[:-1]}
            guess = suggest(path[-1], known)
            where = ".".join(path[:-1])
            self.error(target.span, f"network {self.tree.name} has no element {target.path!r}",
                       (f"did you mean {'.'.join((*path[:-1], guess))!r}? " if guess else "")
                       + (f"{where!r} holds " if where else "its members are ")
                       + ", ".join(sorted(known)[:8]) if known else "a path names labels: \"classifier.1\"")
        return found

    def kind(self, target: ast.InitTarget, path) -> str | None:
        rule = lookup(target.kind)
        kind = rule.kind if rule is not None else None
        if kind is None or kind not in TENSORS:
            choices = sorted(TENSORS) + ([LAST_NORM] if not path else [])
            if kind is not None:
                self.error(target.span, f"{target.kind} has no weights to initialise",
                           "a rule names a kind with weights: " + ", ".join(choices))
            else:
                guess = suggest(target.kind, choices)
                self.error(target.span, f"unknown layer kind {target.kind!r} in an init rule",
                           (f"did you mean {guess!r}? " if guess else "") + "a rule names one of " + ", ".join(choices)
                           + ', or a label path in quotes: "classifier.1"')
            return None
        return kind

    def of_kind(self, kind: str, path) -> list[ir.Layer]:
        """The layers of `kind` under the module at `path` (the network for ()), in order."""
        if path:
            return [n for n in walk(self.modules[path]) if type(n) is ir.Layer and canonical(n.kind) == kind]
        if self._kinds is None:  # the network's layers by their kind as written, once for every rule
            self._kinds = {}
            for layer in self.context.by_type(self.tree.body).get(ir.Layer, ()):
                try:
                    self._kinds[layer.kind].append(layer)
                except KeyError:
                    self._kinds[layer.kind] = [layer]
        named = [name for name in self._kinds if canonical(name) == kind]  # the kind and its aliases
        if len(named) == 1:
            return list(self._kinds[named[0]])
        return [layer for layer in self.context.by_type(self.tree.body).get(ir.Layer, ()) if layer.kind in named]

    def last_norm(self, target, rule, weight, bias) -> ir.InitStep | None:
        norms, seen = [], set()
        for residual, owner, rel in self.residuals:
            found = None
            for path, node, inner_owner, inner in module_events(residual.body, (), owner, rel):
                if path != "residual" and isinstance(node, ir.Layer) and inner_owner is owner \
                        and lookup(node.kind).category == "norm" and canonical(node.kind) in TENSORS:
                    found = (owner, inner, node)
            if found is not None and (id(owner), found[1]) not in seen:
                seen.add((id(owner), found[1]))
                norms.append(found)
        if not norms:
            self.context.warn(target.span, f"network {self.tree.name} has no residual ending in a norm: "
                              "last_norm sets nothing", "remove the rule", "init")
            return None
        layers = [node for _, _, node in norms]
        calls = [self.call(value, name, layers, ("batchnorm",), (), target) if value is not None else None
                 for name, value in (("weight", weight), ("bias", bias))]
        return ir.InitStep((), (), calls[0], calls[1], target.span, rule.condition,
                           norms=tuple((owner, rel) for owner, rel, _ in norms), last_norm=True)

    def call(self, value, tensor: str, layers, kinds, attributes, target) -> ir.InitCall | None:
        if not any_tensor(layers, tensor):
            if kinds:  # a family's variant may have none (bias=false): said, and left out
                self.context.warn(target.span, f"no {kinds[0]} layer here has a {tensor}: its init sets nothing",
                                  f"leave out the {tensor}'s init", "init")
            else:
                self.error(target.span, f"the {layers[0].kind} {target.path!r} has no {tensor}",
                           f"leave out the {tensor}'s init")
            return None
        if isinstance(value, ast.Var):
            name, args, span = value.name, (), value.span
        elif isinstance(value, ast.FuncCall):
            name, args, span = value.name, value.args, value.name_span
        else:
            self.error(value.span, "an init is a function of nn.init: normal(0, 0.01), zeros, ...",
                       "one of " + ", ".join(FUNCTIONS))
            return None
        function = FUNCTIONS.get(name)
        if function is None:
            guess = suggest(name, FUNCTIONS)
            self.error(span, f"unknown init function {name!r}",
                       (f"did you mean {guess!r}? " if guess else "") + "one of " + ", ".join(FUNCTIONS))
            return None
        bound = self.bind(function, name, args, span, attributes)
        return None if bound is None else ir.InitCall(function.torch, bound)

    def bind(self, function: InitFunction, name: str, args, span, attributes):
        names = [p for p, _ in function.params]
        given: dict[str, object] = {}
        out = []
        for at, arg in enumerate(args):
            key = arg.name if arg.name is not None else (names[at] if at < len(names) else None)
            if key is None:
                self.error(arg.span, f"{name} takes at most {len(names)} argument(s), got {len(args)}",
                           f"{name}({', '.join(names)})")
                return None
            if key not in names:
                guess = suggest(key, names)
                self.error(arg.span, f"{name} has no argument {key!r}",
                           (f"did you mean {guess!r}? " if guess else "")
                           + (f"it takes {', '.join(names)}" if names else "it takes no arguments"))
                return None
            if key in given:
                self.error(arg.span, f"{name}'s {key!r} is given twice", None)
                return None
            if not self.value_ok(arg.value, key, attributes):
                return None
            given[key] = arg.value
            out.append((arg.name, arg.value))
        missing = [p for p, default in function.params if default is REQUIRED and p not in given]
        if missing:
            self.error(span, f"{name} needs its {missing[0]!r} argument", f"{name}({', '.join(names)})")
            return None
        return tuple(out)

    def value_ok(self, expr, key: str, attributes) -> bool:
        if key in CHOICES:
            if not isinstance(expr, ast.Str) or expr.value not in CHOICES[key]:
                shown = repr(expr.value) if isinstance(expr, ast.Str) else "an expression"
                guess = suggest(expr.value, CHOICES[key]) if isinstance(expr, ast.Str) else None
                self.error(expr.span, f"{key!r} must be one of {', '.join(map(repr, CHOICES[key]))}, got {shown}",
                           f"did you mean {guess!r}?" if guess else None, "type")
                return False
            return True
        for node in walk(expr):
            if isinstance(node, ast.Var) and node.name not in attributes and node.name not in self.params:
                guess = suggest(node.name, [*attributes, *self.params])
                self.error(node.span, f"unknown name {node.name!r} in an init",
                           (f"did you mean {guess!r}? " if guess else "") + "an init reads the layer's "
                           + (", ".join(attributes) if attributes else "nothing") + " and the network's parameters",
                           "unknown-name")
                return False
            if isinstance(node, (ast.Str, ast.ListExpr, ast.InputAttr, ast.Bool)) or \
                    (isinstance(node, ast.FuncCall) and node.name not in MATH):
                self.error(node.span, "an init's argument is a number: arithmetic of numbers, the network's "
                           "parameters and the layer's attributes", "for example std=1 / sqrt(out_features)", "type")
                return False
        return True


def _what(node) -> str:
    if isinstance(node, ir.BlockInstance):
        return f"block {node.block}"
    return "group"


def check_inits(tree, context: Context | None = None):
    """The network's `init` rules checked and resolved into `init_steps`, in the order written."""
    context, own = alone(context)
    if not isinstance(tree, ir.Network) or not tree.init:
        return finish(tree, context, own)
    checker = _Checker(tree, context)
    switches = {name for name, _ in tree.switches}
    steps = []
    for rule in tree.init:
        condition = rule.condition
        if condition is not None and condition.names <= switches:  # known here: a switch, or no parameter
            if not condition.value:
                continue  # `"AuxLogits.fc"?(aux_logits)` with the aux head switched off
            rule = replace(rule, condition=None)
        steps.extend(checker.rule(rule))
    return finish(replace(tree, init_steps=tuple(steps)), context, own)


def module_text(path: tuple[str, ...], base: str = "self") -> str:
    """Python for the module at `path` under `base`: `self.classifier[1]`, `m.bn3`; a key that is
    not an identifier through get_submodule."""
    if not path:
        return base
    if all(part.isdigit() or (part.isidentifier() and not keyword.iskeyword(part)) for part in path):
        return base + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in path)
    return f'{base}.get_submodule("{".".join(path)}")'


def render(expr, module: str, params) -> tuple[str, frozenset[str]]:
    """An init argument as Python: the layer's attributes read off `module`, `sqrt` as
    math.sqrt; and the network parameters it reads."""
    names: set[str] = set()
    text = _render(expr, module, params, names)
    return text, frozenset(names)


_PREC = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "+": 5, "-": 5,
         "*": 6, "/": 6, "//": 6, "%": 6, "**": 8}


def _render(expr, module, params, names, outer: int = 0, right: bool = False) -> str:
    if isinstance(expr, ast.Num):
        return repr(expr.value)
    if isinstance(expr, ast.Str):
        return repr(expr.value)
    if isinstance(expr, ast.Var):
        if expr.name in params or expr.name in FANS:
            names.add(expr.name)
            return expr.name
        return f"{module}.{expr.name}"
    if isinstance(expr, ast.Neg):
        text = "-" + _render(expr.operand, module, params, names, 7)
        return f"({text})" if outer > 7 else text
    if isinstance(expr, ast.BinOp):
        prec = _PREC[expr.op]
        text = (f"{_render(expr.left, module, params, names, prec)} {expr.op} "
                f"{_render(expr.right, module, params, names, prec + 1)}")
        return f"({text})" if prec < outer else text
    if isinstance(expr, ast.Index):
        return f"{_render(expr.base, module, params, names, 9)}[{_render(expr.index, module, params, names)}]"
    if isinstance(expr, ast.FuncCall):
        callee = "math.sqrt" if expr.name == "sqrt" else EXPR_FUNCTIONS[expr.name].source
        inner = ", ".join(_render(a.value, module, params, names) for a in expr.args)
        return f"{callee}({inner})"
    raise ValueError(f"an init argument of {type(expr).__name__} reached the code generator")


def needs_math(step: ir.InitStep) -> bool:
    calls = [c for c in (step.weight, step.bias) if c is not None]
    return any(isinstance(n, ast.FuncCall) and (n.name == "sqrt" or EXPR_FUNCTIONS[n.name].module)
               for call in calls for _, value in call.args for n in walk(value))


__all__ = ["CHOICES", "FANS", "FUNCTIONS", "LAST_NORM", "check_inits", "has_tensor", "module_text", "needs_math", "render"]
