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
from itertools import compress
from operator import attrgetter

from .. import ast, ir
from ..expr import NONE, Const, Name
from ..diagnostics import Diagnostic
from ..layers import REQUIRED, SHORTCUTS, LayerRule, axis_exprs, lookup
from ..node import replace
from ..source import Span
from ..traverse import Visitor, children, evolve, of_type, walk
from .context import Context, alone, finish
from .cost import ExpansionCost
from .leaves import ALL_KINDS, is_shapeless, leaf_params, with_leaves
from .resolve import bodies, quoted_label_reason, suggest
from .values import MAX_VALUE, PENDING, Evaluating, Scope as _Scope, describe as _describe, fresh_value, \
    names_and_shape

_keyword = attrgetter("name")  # an argument's keyword, None for a positional one

# Layers (and joins that hold none) after expansion: 10,000 is some 15 times the deepest
# torchvision model (DenseNet-201, EfficientNet-V2-L), and keeps the worst input that check
# accepts (`[relu]*9999`) to about 0.8 s of CPU for compile and generate together.
MAX_LAYERS = 10_000
MAX_NESTING = 64
# Elements visited while expanding: lets and blocks that use each other twice over double
# the work at each level even where they add no layer (an optional switched off, `*0`).
MAX_STEPS = 60_000

class _Fail(Exception):
    """Stop expanding one element; its diagnostic is already recorded."""


class _Stop(Exception):
    """Stop expanding the network (a limit, no input line); its diagnostic is recorded."""


def switch_name(element: ast.Element) -> str | None:
    if isinstance(element.node, ast.Optional) and element.node.condition is not None:
        return None  # X?(condition) is decided by its condition, not a switch
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
    chains = [chain for _, body in bodies(program) for chain in body]
    for element in _chain_elements(chains):
        if isinstance(element.node, ast.Optional) and element.node.condition is None:
            name = switch_name(element)
            if name is not None:
                found.setdefault(name, element.span)
    return found


# What holds no element: an argument and the expressions (a call's, a repetition's count)
_NO_ELEMENTS = (ast.Arg, ast.Num, ast.Str, ast.Bool, ast.Var, ast.BinOp, ast.Neg, ast.Not, ast.IfElse, ast.Index,
                ast.FuncCall, ast.ListExpr, ast.InputAttr)
_USES = frozenset((ast.Call, ast.Ref))  # the nodes of a chain that may name a let
_UNNAMED = frozenset((ast.Concat, ast.Residual, ast.Gate))  # what a label cannot name (a listed concat aside)


def _chain_elements(chains):
    """`walk_elements(chains)`, in the same order, without going into expressions."""
    stack = list(reversed(chains))
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is ast.Element:
            yield node
            inner = node.node  # (its one child: `Element._fields`)
            if type(inner) not in _USES:  # a layer's or a block's call holds arguments alone
                stack.append(inner)
            continue
        below = [c for c in children(node) if not isinstance(c, _NO_ELEMENTS)]
        if below:
            below.reverse()
            stack.extend(below)


class Expander(Evaluating, Visitor):
    """`evaluate(expr, scope)` gives a Value; `node(node, scope, label)` the IR nodes of a
    chain node (a let or a repetition gives several, an optional switched off none)."""

    def __init__(self, program: ast.Program, context: Context):
        self.program = program
        self.lets = {d.name: d for d in program.lets}
        self.defs = {d.name: d for d in program.defs}
        self.blocks = {d.name: d for d in program.blocks}
        self.overrides = dict(context.params)
        self.context = context
        self.unknown: set[tuple[str, str]] = set()  # (name, owner) already reported
        self.def_values: dict = {}  # (def, its arguments) -> its Value: see Evaluating.def_bound
        self.def_objects: dict = {}
        self.value_numbers, self.content_numbers, self.numbered = {}, {}, []  # Evaluating.content_number
        self.rule_names: dict = {}  # layer kind -> its argument names: see layer_args
        self.arg_checks: dict = {}  # (ids of a rule and its argument's spec, the value typed) -> its problem or None: check_type
        self.typed_lists: dict = {}  # see Evaluating.typed
        self.list_keys: dict = {}
        self.remembering, self.site_values = {}, {}  # Evaluating.remembered and memo
        self.repeating: list[str] = []  # see Evaluating.compile_site
        self.compiled: dict = {}  # id of an expression -> its closure: see Evaluating.compile
        self.call_runs: dict = {}  # id of a block's call -> its parameters and arguments' closures: see arg_runs
        self.call_nodes: list = []
        self.optional_inner: dict = {}  # id of an element X? -> (it, the element X, X is a block's use): _optional
        self.conditioned: ir.Value | None = None  # the condition of the block use being made: see _optional
        self.inner_values: dict = {}  # (parameter, value) -> its Value in a block's body: see inner_value
        self.layer_reads: dict = {}  # id of a layer's call -> the names its arguments read: see layer
        self.layer_nodes: list = []
        self.layers_made: dict = {}  # (id of the call, its label, ids of those names' values) -> (its Layer, the values)
        self.compiled_exprs: list = []
        self.let_nodes: dict = {}  # (let, the values it reads, ...) -> its nodes and counts: see let_items
        self.let_names: dict[str, frozenset[str]] = {}  # let -> the names it reads
        self.layers = 0
        self.depth = 0  # elements being expanded, one inside the other
        self.steps = 0
        self.cost = ExpansionCost(self.lets, self.blocks, MAX_STEPS)
        self.switches: dict[str, bool] = {}
        self.block_infos: dict[str, ir.BlockInfo] = {}
        self.block_names: dict[str, dict[str, Name]] = {}  # block -> its parameters' trees: see param_names
        self.bodies: dict = {}  # (block, argument values) -> (body, layers, steps, ...): see block_body
        self.block_leaves: dict[str, tuple] = {}  # block -> its leaf parameters (passes/leaves.py), and the others
        self.body_ids: dict = {}  # (block, ids of its other parameters' values) -> block_body's key: see body_key
        self.leaf_reads: dict = {}  # what the shared bodies' sub-trees read, their paths to leaves (leaves.with_leaves)
        self.dropped: set[str | None] = set()  # labels of optional elements switched off
        # The parameters a count, a condition or a label read, one set a scope being expanded
        # (innermost last): they decide the structure, which the generated class fixes.
        self.structure: list[set[str]] = [set()]

    def release(self) -> None:
        """Drops the expression closures, which hold the expander: no cycle keeps its memos alive."""
        self.compiled.clear()
        self.remembering.clear()
        self.call_runs.clear()

    def decides(self, value: ir.Value) -> ir.Value:
        """`value`, noted as deciding the structure (a count, a condition, a label's part)."""
        self.structure[-1].update(value.expr.names)
        return value

    def fail(self, span: Span, message: str, hint: str | None = None, code: str = "") -> _Fail:
        self.context.error(span, message, hint, code)
        return _Fail()

    def stop(self, span: Span, message: str, hint: str | None = None, code: str = "") -> _Stop:
        self.context.error(span, message, hint, code)
        return _Stop()

    @property
    def errors(self) -> list[Diagnostic]:
        return self.context.errors

    def error_count(self) -> int:
        """`len(self.errors)`, without making the list where nothing is reported (nearly always)."""
        return len(self.context.errors) if self.context.diagnostics else 0

    def fail_quietly(self) -> _Fail:
        """Stop the element without a new diagnostic (the problem is reported already)."""
        return _Fail()

    # -- arguments ---------------------------------------------------------------------
    def bind(self, names: list[str], call: ast.Call | None, scope: _Scope, what: str,
             span: Span, refs: frozenset[str] = frozenset(),
             torch_names: dict[str, str] | None = None) -> dict[str, tuple[ir.Value, Span]]:
        """The call's arguments by parameter name, evaluated; those in `refs` name an element
        (`like=enc4`, `like=input`) and stay names, for the shape pass to look up;
        `torch_names` (PyTorch's -> ours) gives the hint for a PyTorch habit."""
        args = call.args if call else ()
        if len(args) <= len(names) and not any(map(_keyword, args)):  # in order, none too many: the common call
            return {name: (self.reference(arg, what) if name in refs else self.evaluate(arg.value, scope),
                           arg.value.span) for name, arg in zip(names, args)}
        bound: dict[str, tuple[ir.Value, Span]] = {}
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
                    raise self.fail(arg.span, f"{what} has no parameter {name!r}", _unknown_hint(name, names, torch_names or {}),
                                    "unknown-parameter")
                if name in bound:
                    raise self.fail(arg.span, f"{name!r} is given twice", "give each argument once")
            bound[name] = (self.reference(arg, what) if name in refs else self.evaluate(arg.value, scope),
                           arg.value.span)
        return bound

    def reference(self, arg: ast.Arg, what: str) -> ir.Value:
        if not isinstance(arg.value, ast.Var):
            raise self.fail(arg.value.span, f"{what} {arg.name or 'argument'!r} names an element, not a value",
                            "write the label of an earlier element, or input: like=input", "type")
        return ir.Value(arg.value.name, Const(arg.value.name))

    def layer_args(self, rule: LayerRule, call: ast.Call | None, scope: _Scope, span: Span):
        names = self.rule_names.get(rule.kind)
        if names is None:  # a layer kind's argument names, references, PyTorch's names and defaults, once per expansion
            names = self.rule_names[rule.kind] = (
                [a.name for a in rule.args], frozenset(a.name for a in rule.args if a.type == "element"),
                rule.torch_names(), [None if a.default is REQUIRED else ir.Value(None, NONE) if a.default is None
                                     else ir.Value.constant(a.default) for a in rule.args])
        bound = self.bind(names[0], call, scope, rule.kind, span, names[1], names[2])
        out = []
        for spec, default in zip(rule.args, names[3]):
            if spec.name not in bound:
                if default is None:
                    example = {"conv": "conv(64, 3)", "fc": "fc(10)"}.get(rule.kind, f"{rule.kind}(...)")
                    raise self.fail(span, f"{rule.kind} needs its {spec.name!r} argument"
                                    + (f" ({spec.doc})" if spec.doc else ""), f"for example {example}", "missing")
                out.append((spec.name, default))
                continue
            value, arg_span = bound[spec.name]
            self.check_type(rule, spec, value, arg_span)
            out.append((spec.name, _square(value) if spec.type == "pair" else value))
        return tuple(out)

    def check_type(self, rule: LayerRule, spec, value: ir.Value, span: Span) -> None:
        """`arg_problem`, found once per argument spec and value in an expansion (`arg_checks`:
        EfficientNet's bodies give `bias=false`, `1` and `eps` again and again); a float by its
        repr (0.0 and -0.0 say themselves apart in a message), a list each time."""
        v = value.value
        if v is PENDING:
            return  # it reads input.channels: checked by the shape pass, where the input is known
        kind = type(v)
        if kind is tuple:
            problem = arg_problem(rule, spec, v)
        else:
            key = (id(rule), id(spec), kind, repr(v) if kind is float else v)  # (RULES': their ids stay theirs)
            problem = self.arg_checks.get(key, False)
            if problem is False:
                problem = self.arg_checks[key] = arg_problem(rule, spec, v)
        if problem:
            raise self.fail(span, *problem)

    # -- chains ------------------------------------------------------------------------
    def chains(self, chains, scope: _Scope, first_in_network: bool = False) -> list[ir.Node]:
        items: list[ir.Node] = []
        for chain_index, chain in enumerate(chains):
            for index, element in enumerate(chain.elements):
                node = element.node
                self.steps += 1
                if self.steps > MAX_STEPS:
                    raise self.too_many_steps(element.span)
                if type(node) is ast.Ref and node.name == "INPUT":
                    if not (first_in_network and chain_index == 0 and index == 0):
                        self.context.error(node.span, "INPUT marks the start of a network's chain",
                                           "write it first in the network, or leave it out")
                    continue
                try:
                    items.extend(self.element(element, scope))
                except _Fail:  # reported: what follows it has an unknown input
                    items.append(ir.Unknown(element.span))
        return items

    def too_many_steps(self, span: Span) -> _Stop:
        return self.stop(span, f"expanding the network takes more than {MAX_STEPS:,} steps",
                         "lets or blocks that use each other twice over grow exponentially; "
                         "use a repetition *N instead", "limit")

    def element(self, element: ast.Element, scope: _Scope) -> list[ir.Node]:
        # Blocks inside blocks inside groups: each level is a few frames here and in the
        # later passes, so the depth across block instances is capped, not only per definition.
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise self.fail(element.span, f"blocks and groups nested more than {MAX_NESTING} deep",
                                "flatten the spec: fewer blocks inside blocks", "limit")
            if element.template is not None:
                element = replace(element, label=self.label_text(element, scope), template=None)
            node = element.node
            kind = type(node)
            if kind is ast.Optional:
                return self._optional(element, node, scope)
            label = element.label
            listed = kind is ast.Concat and not node.split and node.op == "cat"  # a ModuleList
            if kind in _UNNAMED and label is not None and not listed:
                kind = node.op if isinstance(node, ast.Concat) and node.op != "cat" else type(node).__name__.lower()
                raise self.fail(element.label_span or element.span,
                                f"a{'n' if kind == 'add' else ''} {kind} cannot be named here",
                                "its parts take names of their own; to name the whole, make it a block")
            visit = self._dispatch.get(kind)  # `node`'s visit, without `Visitor.visit`'s frame once it is known
            made = visit(self, node, scope, label) if visit is not None else self.node(node, scope, label)
            if label is None:
                return made
            if listed:
                return [replace(made[0], name=label)]
            return _labelled(made, label, element.span)
        finally:
            self.depth -= 1

    def label_text(self, element: ast.Element, scope: _Scope) -> str:
        """The label `"denselayer{i + 1}"` with its expressions computed (whole numbers or strings)."""
        parts = []
        for piece in element.template or ():
            if isinstance(piece, str):
                parts.append(piece)
                continue
            # A label is structure, as a repetition count is: a value that reads a parameter
            # (a family's table) gives its number at each use, each use's class its own keys.
            value = self.decides(self.evaluate(piece, scope))
            if isinstance(value.value, bool) or not isinstance(value.value, (int, str)):
                raise self.fail(piece.span, f"a label's {{...}} must be a whole number or a string, got "
                                f"{_describe(value.value)}", "use the index of a repetition (X * n for i) or a "
                                "def's value", "type")
            parts.append(str(value.value))
        text = "".join(parts)
        reason = quoted_label_reason(text)
        if reason:
            raise self.fail(element.label_span or element.span, f"cannot name a layer {text!r}: {reason}", None)
        return text

    def _optional(self, element: ast.Element, node: ast.Optional, scope: _Scope) -> list[ir.Node]:
        """`X?(condition)` (kept or dropped by its value) and `name: X?` (a switch)."""
        label = element.label
        entry = self.optional_inner.get(id(element))
        if entry is None:  # what it makes when kept, once per element (kept with it: its id stays its own)
            kept = node.node
            entry = self.optional_inner[id(element)] = (
                element, ast.Element(label, kept, element.span, element.label_span),
                type(kept) in _USES and kept.name in self.blocks and kept.name not in self.lets)
        _, inner, a_use = entry
        if node.condition is not None:
            condition = self.condition(node.condition, scope)
            if not condition.value:
                self.dropped.add(label)
                return []
            # kept with its condition: the code generator writes one class for the uses where it
            # holds and those where it does not (codegen/toggles.py). A block's use (EfficientNet's
            # MBConv?(...)) is made with it (`instance` takes `conditioned`), not copied to add it.
            if a_use:
                self.conditioned = condition
                try:
                    return self.element(inner, scope)
                finally:
                    self.conditioned = None
            made = self.element(inner, scope)
            return [evolve(item, condition=condition) if type(item) in _CONDITIONAL else item for item in made]
        name = switch_name(element)
        if name is None:
            raise self.fail(node.span, "an optional group needs a name to make its switch",
                            "label it: extra: [conv(64, 3) -> relu]?")
        if not self.switch(name, element.span):
            self.dropped.add(label)
            return []
        return self.element(inner, scope)

    def condition(self, expr: ast.Expr, scope: _Scope) -> ir.Value:
        """`X?(condition)`'s condition, true or false, from the enclosing parameters."""
        condition = self.decides(self.remembered(expr, scope))  # EfficientNet's, each stage's for its blocks
        value = condition.value
        if not isinstance(value, bool):
            raise self.fail(expr.span, f"the condition of '?( )' must be true or false, got {_describe(value)}",
                            "compare something: X?(stride == 1), X?(expand != 1 and se)", "type")
        return condition

    def switch(self, name: str, span: Span) -> bool:
        value = self.overrides.get(name, True)
        if isinstance(value, ir.Value):
            value = value.value
        if not isinstance(value, bool):
            raise self.fail(span, f"switch {name!r} must be true or false, got {_describe(value)}",
                            f"--set {name}=false turns it off")
        self.switches[name] = value
        return value

    node = Visitor.visit  # node(node, scope, label): the visit of a chain node, without a frame of its own

    def visit_Group(self, node: ast.Group, scope: _Scope, label: str | None) -> list[ir.Node]:
        items = self.chains(node.chains, scope)
        return [ir.Seq(tuple(items), label, node.span)] if label else items

    def visit_Optional(self, node: ast.Optional, scope: _Scope, label: str | None) -> list[ir.Node]:
        raise self.fail(node.span, "an optional inside an optional", "one ? is enough")

    def visit_Concat(self, node: ast.Concat, scope: _Scope, label: str | None) -> list[ir.Node]:
        return [self.concat(node, scope)]

    def visit_Residual(self, node: ast.Residual, scope: _Scope, label: str | None) -> list[ir.Node]:
        return [self.residual(node, scope)]

    def visit_Gate(self, node: ast.Gate, scope: _Scope, label: str | None) -> list[ir.Node]:
        body = ir.Seq(tuple(self.chains(node.body, scope)), None, node.span)
        self.count(1, node.span)
        return [ir.Gate(body, node.span)]

    def visit_Side(self, node: ast.Side, scope: _Scope, label: str | None) -> list[ir.Node]:
        inner = self.node(node.node, scope, label)
        if len(inner) == 1 and getattr(inner[0], "name", None) == label:
            return [ir.Side(inner[0], node.span, source=node.source)]
        return [ir.Side(ir.Seq(tuple(inner), label, node.span), node.span, source=node.source)]

    def visit_Call(self, node: ast.Call | ast.Ref, scope: _Scope, label: str | None) -> list[ir.Node]:
        """A let, a block or a layer, called with arguments or (a Ref) without."""
        name = node.name
        call = node if type(node) is ast.Call else None
        name_span = node.name_span if call else node.span
        if (name in self.lets or name in self.blocks) and self.steps + self.cost.bound(name) > MAX_STEPS:
            raise self.too_many_steps(node.span)  # known before expanding it (passes/cost.py)
        if name in self.lets:
            if call is not None:
                raise self.fail(node.span, f"{name!r} is a let and takes no arguments",
                                f"to give it parameters, make it a block: block {name}(...) {{ ... }}")
            return self.let_items(name, scope)
        if name in self.blocks:
            return [self.instance(self.blocks[name], call, scope, node.span, label)]
        rule = lookup(name)
        if rule is None:
            if name in SHORTCUTS:
                raise self.fail(name_span, f"{name!r} is a residual shortcut, not a layer",
                                "use it after a residual body: residual { ... } shortcut projection")
            raise _Fail()  # an unknown name: resolve.py has reported it
        if call is not None and call.reads:
            raise self.fail(node.span, f"{name} is a layer: it reads its chain's value alone",
                            "reads(...) gives a block the inputs its own reads(...) names", "reads")
        return [self.layer(rule, node, call, scope, label)]

    visit_Ref = visit_Call

    def layer(self, rule: LayerRule, node: ast.Call | ast.Ref, call: ast.Call | None, scope: _Scope,
              label: str | None) -> ir.Layer:
        """A layer's IR node, remembered by its call, its label and the very values its
        arguments read (as `Evaluating.remembered`): a block's bodies that agree on those share
        it (EfficientNet's batch norms in every MBConv, its projection within a stage). An
        argument that reads the input's shape makes each use its own."""
        names = self.layer_reads.get(id(node))
        if names is None:
            read = [names_and_shape(arg.value) for arg in call.args] if call is not None else []
            names = False if any(shape for _, shape in read) else \
                tuple(sorted(set().union(*(found for found, _ in read))))
            self.layer_reads[id(node)] = names
            self.layer_nodes.append(node)  # kept, so that its id stays its own
        if names is False:
            made = ir.Layer(rule.kind, self.layer_args(rule, call, scope, node.span), label, node.span)
        else:
            get = scope.values.get
            key = (id(node), label, *map(id, map(get, names)))
            found = self.layers_made.get(key)
            if found is None:
                made = ir.Layer(rule.kind, self.layer_args(rule, call, scope, node.span), label, node.span)
                found = self.layers_made[key] = (made, tuple(map(get, names)))  # the values kept: their ids stay theirs
            made = found[0]
        self.layers += 1
        if self.layers > MAX_LAYERS:  # (`count`, which says so, without its call at every layer)
            self.count(0, node.span)
        return made

    def let_items(self, name: str, scope: _Scope) -> list[ir.Node]:
        """A let's IR nodes, in this scope. A let reads only some of the enclosing
        parameters (`let_reads`): equal values of those give the same (immutable) nodes, so
        a let used by every block of a stage is expanded once, its layers, steps and
        dropped optionals counted at each use."""
        reads = self.let_reads(name)
        # each value read by its content's number (`Evaluating.content_number`: its type, value,
        # tree's kind and text), found by its id
        numbered = self.content_number
        key = (name, scope.owner, self.depth, tuple([(n, numbered(v)) for n, v in scope.values.items() if n in reads]))
        found = self.let_nodes.get(key)
        if found is not None:
            items, layers, steps, dropped = found
            self.count(layers, self.lets[name].span)
            self.steps += steps
            if self.steps > MAX_STEPS:
                raise self.too_many_steps(self.lets[name].span)
            self.dropped |= dropped
            return list(items)
        before = (self.layers, self.steps, self.error_count(), set(self.dropped))
        items = self.chains((self.lets[name].chain,), scope)
        if self.error_count() == before[2]:
            self.let_nodes[key] = (tuple(items), self.layers - before[0], self.steps - before[1],
                                   frozenset(self.dropped - before[3]))
        return items

    def let_reads(self, name: str) -> frozenset[str]:
        """Every name a let's expressions read, through the lets it uses (a block's body is
        read in the block's own scope: only the arguments of its call count). Post-order over
        the lets it reaches, iteratively: a chain of a thousand lets is deeper than Python's
        recursion limit (the expansion itself stops such a chain at MAX_DEPTH, with an error)."""
        stack, opened = [(name, False)], set()
        direct: dict[str, tuple[set[str], list[str]]] = {}
        while stack:
            current, closing = stack.pop()
            if closing:
                names, uses = direct[current]
                for use in uses:  # one still open is a cycle (resolve.py reports it): it adds nothing
                    names |= self.let_names.get(use, frozenset())
                self.let_names[current] = frozenset(names)
            elif current not in self.let_names and current not in opened:
                opened.add(current)
                direct[current] = self._let_reads_itself(current)
                stack.append((current, True))
                stack.extend((use, False) for use in direct[current][1])
        return self.let_names[name]

    def _let_reads_itself(self, name: str) -> tuple[set[str], list[str]]:
        """The names a let's own expressions read, and the lets its chain names."""
        nodes = list(walk(self.lets[name].chain))  # its nodes picked by class in C, not one by one
        kinds = list(map(type, nodes))
        names = {node.name for node in of_type(nodes, ast.Var, kinds)}
        for element in of_type(nodes, ast.Element, kinds):
            for piece in element.template or ():
                if not isinstance(piece, str):
                    names.update(n.name for n in walk(piece) if type(n) is ast.Var)
        uses = [node.name for node in compress(nodes, map(_USES.__contains__, kinds)) if node.name in self.lets]
        return names, uses

    def count(self, n: int, span: Span) -> None:
        self.layers += n
        if self.layers > MAX_LAYERS:
            raise self.stop(span, f"the network expands to more than {MAX_LAYERS:,} layers",
                            "check the repetition counts", "limit")

    def visit_Repeat(self, node: ast.Repeat, scope: _Scope, label: str | None) -> list[ir.Node]:
        count = self.decides(self.evaluate(node.count, scope))
        n = count.value
        if n is PENDING:
            raise self.fail(node.count.span, "a repetition count cannot read the input's shape",
                            "pass the count as a parameter of the block", "type")
        if isinstance(n, bool) or not isinstance(n, int):
            raise self.fail(node.count.span, f"a repetition count must be a whole number, got {_describe(n)}",
                            "use // for integer division", "type")
        if n < 0:
            raise self.fail(node.count.span, f"a repetition count cannot be negative ({n})", None, "range")
        if node.index is not None:
            return self.indexed(node, n, scope, label)
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

    def indexed(self, node: ast.Repeat, n: int, scope: _Scope, label: str | None) -> list[ir.Node]:
        """`X * n for i`: n copies of X, copy k expanded with i = k."""
        if node.index in scope.values or node.index in self.defs:
            raise self.fail(node.index_span or node.span, f"the index {node.index!r} hides a parameter or a def "
                            "of that name", "name the index otherwise (i, j, k)")
        self.repeating.append(node.index)
        items: list[ir.Node] = []
        try:
            for k in range(n):
                inner = _Scope({**scope.values, node.index: ir.Value.constant(k)}, scope.owner)
                items.extend(self.node(node.node, inner, None))
        finally:
            self.repeating.pop()
        return [ir.Seq(tuple(items), label, node.span)] if label else items

    def concat(self, node: ast.Concat, scope: _Scope) -> ir.Concat:
        branches = []
        for chain in node.branches:
            elements = chain.elements
            name = None
            if len(elements) > 1 and elements[0].label is not None:
                # In a concat, a label at the head of a branch line names the whole branch.
                name = self.label_text(elements[0], scope) if elements[0].template else elements[0].label
                elements = (ast.Element(None, elements[0].node, elements[0].span),) + elements[1:]
            items = self.chains((ast.Chain(elements, chain.span),), scope)
            branches.append(ir.Seq(tuple(items), name, chain.span))
        if node.split and len(branches) < 2:
            raise self.fail(node.span, "a split needs at least two branches, one a line",
                            "split { identity\n    conv(...) }: each branch reads its share of the channels")
        if node.op != "cat" and len(branches) < 2:
            raise self.fail(node.span, f"a{'n' if node.op == 'add' else ''} {node.op} needs at least two branches, "
                            "one a line", f"{node.op} {{ a\n    b }}: each branch reads the input, or "
                            "from(name) an earlier element")
        if not branches and not node.skips:
            raise self.fail(node.span, f"a {'split' if node.split else 'concat'} needs at least one branch", None)
        if len(set(node.skips)) != len(node.skips):
            raise self.fail(node.span, "a concat names the same element twice",
                            "name each earlier element once: concat(enc3, enc4)")
        self.count(1, node.span)
        return ir.Concat(tuple(branches), node.span, skips=node.skips, split=node.split, op=node.op,
                         sources=node.sources)

    def residual(self, node: ast.Residual, scope: _Scope) -> ir.Residual:
        body = ir.Seq(tuple(self.chains(node.body, scope)), None, node.span)
        self.count(1, node.span)
        shortcut = node.shortcut
        if shortcut is None:
            return ir.Residual(body, ir.Shortcut("identity", None, node.span), node.span)
        target = shortcut.node
        if target.name not in SHORTCUTS:
            if lookup(target.name) is None and target.name not in self.lets and target.name not in self.blocks:
                raise _Fail()  # an unknown name: resolve.py has said so
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
        return ir.Residual(body, ir.Shortcut(target.name, shortcut.label, shortcut.span, bn=bn, first=shortcut.first),
                           node.span)

    def instance(self, block: ast.BlockDef, call: ast.Call | None, scope: _Scope, span: Span,
                 label: str | None) -> ir.BlockInstance:
        condition, self.conditioned = self.conditioned, None  # its `X?(condition)`'s, where it is X (`_optional`)
        values = self.block_args(block, call, scope, span)
        self.layers += 1
        if self.layers > MAX_LAYERS:  # (`count`, which says so)
            self.count(0, span)
        body, decided = self.block_body(block, values)
        structure = self.structure[-1]
        for param_name in decided & values.keys():  # what decides the block's structure decides the caller's
            structure.update(values[param_name].expr.names)  # (`decides`)
        reads = () if (call is None or not call.reads) and not block.reads else self.block_reads(block, call, span)
        return ir.BlockInstance(block.name, tuple(values.items()), body, label, span, condition=condition,
                                reads=reads)

    def block_args(self, block: ast.BlockDef, call: ast.Call | None, scope: _Scope,
                   span: Span) -> dict[str, ir.Value]:
        """A block use's argument values by parameter, in the block's order, its defaults where
        none is given. Arguments given in order (EfficientNet's 79 MBConv uses) are evaluated
        without `bind`'s checks, which only an argument by keyword or one too many needs."""
        info = self.block_info(block)
        names, runs = self.arg_runs(block, call, info)
        if runs is not None:
            given = dict(zip(names, [run(scope) for run in runs]))
            if len(given) == len(names):
                return given
        else:
            given = {name: bound[0] for name, bound in
                     self.bind(names, call, scope, f"block {block.name}", span).items()}
        values: dict[str, ir.Value] = {}
        for param_name, default in info.params:
            if param_name in given:
                values[param_name] = given[param_name]
            elif default is not None:
                values[param_name] = default
            else:
                raise self.fail(span, f"block {block.name} needs its {param_name!r} argument",
                                f"call it as {block.name}({', '.join(names)})", "missing")
        return values

    def param_names(self, block: ast.BlockDef) -> dict[str, Name]:
        """A block's parameters, each with the tree its body reads it by, made once per expansion."""
        found = self.block_names.get(block.name)
        if found is None:
            found = self.block_names[block.name] = {p.name: Name(p.name) for p in block.params}
        return found

    def arg_runs(self, block: ast.BlockDef, call: ast.Call | None, info: ir.BlockInfo) -> tuple[list[str], list | None]:
        """The block's parameter names and the closures of a call's argument values
        (`Evaluating.compile`) where it gives them in order and none too many (else None:
        `bind` checks them), found once per call (a use without arguments: once per block)."""
        key = id(call) if call is not None else block.name
        found = self.call_runs.get(key)
        if found is None:
            names = [name for name, _ in info.params]
            args = call.args if call else ()
            runs = [self.kept_run(arg.value) for arg in args] \
                if len(args) <= len(names) and not any(map(_keyword, args)) else None
            found = self.call_runs[key] = (names, runs)
            self.call_nodes.append(call)  # kept, so that its id stays its own
        return found

    def block_reads(self, block: ast.BlockDef, call: ast.Call | None, span: Span) -> tuple[tuple[str, str], ...]:
        """`Head(21) reads(backbone.4)`: each of the block's `reads(...)` inputs and what the use gives it."""
        given = call.reads if call is not None else ()
        if not given and not block.reads:  # the common use
            return ()
        if len(given) != len(block.reads):
            wanted = f"reads({', '.join(block.reads)})" if block.reads else "no reads(...)"
            raise self.fail(span, f"block {block.name} takes {wanted}, but this use gives "
                            f"{len(given)} element(s) to read",
                            f"write {block.name}(...) reads({', '.join('...' for _ in block.reads)})"
                            if block.reads else "remove the reads(...)", "reads")
        return tuple(zip(block.reads, given))

    def block_body(self, block: ast.BlockDef, values: dict[str, ir.Value]) -> tuple[ir.Seq, frozenset[str]]:
        """The body of a block with these argument values, and the block's parameters that
        decided its structure. The same values give the same (immutable) body: DenseNet's
        layers and ResNet's stages are expanded once, the layers and steps they count
        counted at each use. Uses that differ only in leaf parameters (passes/leaves.py:
        EfficientNet's stochastic depth) share it too, each with its own values put in."""
        leaves, others, shaped = self.leaves_of(block, values)
        key = self.body_key(block, values, others)
        found = self.bodies.get(key) if key is not None else None
        if found is not None:
            body, layers, steps, decided, made_with = found
            # each leaf whose value differs (`same_value`), as the body reads it: by its parameter's name
            changed = {}
            for n in leaves:
                now, then = values[n], made_with[n]
                if now is not then and (type(now.value) is not type(then.value) or not now.value == then.value):
                    changed[n] = fresh_value(now.value, self.param_names(block)[n])
            if not changed or self.leaves_fit(leaves, changed):
                self.count(layers, block.span)
                self.steps += steps
                if not changed:
                    return body, decided
                proper = shaped.isdisjoint(changed)  # else a shape changes
                copy = with_leaves(body, changed, self.leaf_reads, None if proper else ALL_KINDS)
                if copy is not body and proper:  # the shape pass infers it as `body` (Context.leaf_copies)
                    self.context.leaf_copies[id(copy)] = (copy, body, changed)
                return copy, decided
            key = None  # a leaf value its layer refuses: expanded, to say so where it is
        before_layers, before_steps, before_errors = self.layers, self.steps, self.error_count()
        scope = _Scope({n: self.inner_value(n, v.value) for n, v in values.items()}, f"block {block.name}")
        self.structure.append(set())
        try:
            items = self.chains(block.body, scope)
        finally:
            decided = frozenset(self.structure.pop())
        loop = self.body_loop(block, scope) if self.error_count() == before_errors else None
        if loop is not None:  # the class loops over its count: a parameter of the class, not its structure
            decided -= loop.count.names
        body = ir.Seq(tuple(items), None, block.span, loop=loop)
        if key is not None and self.error_count() == before_errors:
            self.bodies[key] = (body, self.layers - before_layers, self.steps - before_steps, decided,
                                {n: values[n] for n in leaves})
        return body, decided

    def inner_value(self, name: str, value) -> ir.Value:
        """A block parameter's value as its body reads it (by its name), one object for each
        name and value in an expansion: the memos keyed by the very values read (`layer`,
        `remembered`) meet it again in the block's other bodies."""
        key = (name, _exact(value))
        try:
            found = self.inner_values.get(key)
        except TypeError:  # a value no key holds: its own
            return fresh_value(value, Name(name))
        if found is None:
            found = self.inner_values[key] = fresh_value(value, Name(name))
        return found

    def body_key(self, block: ast.BlockDef, values: dict[str, ir.Value], others: tuple[str, ...]) -> tuple | None:
        """`block_body`'s key: the block and the typed values of its parameters but the leaves
        (`others`); None where a value is one no key holds. Found by those values' ids
        (`body_ids`): EfficientNet's uses of a stage give the very same objects but for their
        stochastic depth, a leaf."""
        same = (block.name, *map(id, map(values.__getitem__, others)))
        found = self.body_ids.get(same)
        if found is not None:
            return found[0]
        key = (block.name, tuple([(n, type(values[n].value), values[n].value) for n in others]))
        try:
            hash(key)
        except TypeError:  # a value no key holds
            return None
        self.body_ids[same] = (key, [values[n] for n in others])  # the values kept: their ids stay theirs
        return key

    def leaves_of(self, block: ast.BlockDef, values: dict[str, ir.Value]) -> tuple[dict, tuple[str, ...], frozenset]:
        """The block's leaf parameters (passes/leaves.py, those a layer reads whole) whose values
        here are plain, its other parameters, and the leaves that change a shape (not leaves
        proper): a use that differs from an earlier one only in those leaves gets its body."""
        found = self.block_leaves.get(block.name)
        if found is None:
            leaves = leaf_params(block, self.lets, self.blocks, shapeless=False)
            found = self.block_leaves[block.name] = (
                leaves, tuple(p.name for p in block.params if p.name not in leaves),
                frozenset(n for n, uses in leaves.items() if not is_shapeless(uses)))
        leaves = found[0]
        for n in leaves:
            v = values[n].value
            if type(v) not in _PLAIN_TYPES and not _plain_value(v):  # (rare) not plain: not a leaf here
                plain = {n: uses for n, uses in leaves.items() if _plain_value(values[n].value)}
                return plain, tuple(n for n in values if n not in plain), found[2]
        return found

    def leaves_fit(self, leaves: dict, changed: dict[str, ir.Value]) -> bool:
        """Whether each changed leaf value is one the layers that read it take (`arg_problem`)."""
        for n, value in changed.items():
            for rule, spec in leaves[n]:
                if arg_problem(rule, spec, value.value):
                    return False
        return True

    def body_loop(self, block: ast.BlockDef, scope: _Scope) -> ir.Loop | None:
        """The Loop of a block whose body is one unlabelled `X * n for i` with a count that
        reads its parameters (DenseNet's `concat { ... }*num_layers for i`), else None."""
        if len(block.body) != 1 or len(block.body[0].elements) != 1:
            return None
        element = block.body[0].elements[0]
        node = element.node
        if not isinstance(node, ast.Repeat) or node.index is None or element.label is not None or \
                element.template is not None:
            return None
        count = self.evaluate(node.count, scope)
        return ir.Loop(node.index, count) if count.names else None

    def block_info(self, block: ast.BlockDef) -> ir.BlockInfo:
        if block.name not in self.block_infos:
            params = []
            for param in block.params:
                default = None
                if param.default is not None:
                    default = self.evaluate(param.default, _Scope({}, f"the defaults of block {block.name}"))
                params.append((param.name, default))
            self.block_infos[block.name] = ir.BlockInfo(block.name, tuple(params), block.span, block.reads)
        return self.block_infos[block.name]

    # -- the network -------------------------------------------------------------------
    def network(self, network: ast.NetworkDef) -> ir.Network | None:
        """The network's IR; None when its parameters or input line are wrong (the chains
        would only fail again), or when a limit stops the expansion."""
        switches = switches_of(self.program)
        before = len(self.errors)  # resolve's unknown layer names come before
        try:
            self.check_overrides(network, switches)
            values = self.parameters(network, switches)
            scope = _Scope(values, f"network {network.name}")
            dims = self.input_dims(network, scope)
            if len(self.errors) > before:
                return None
            self.input_values = dims
            items = self.chains(network.body, scope, first_in_network=True)
        except _Stop:
            return None
        return ir.Network(
            name=network.name,
            input=tuple(d.value for d in dims),
            input_channels=dims[0],
            params=tuple(values.items()),
            body=ir.Seq(tuple(items), None, network.span),
            span=network.span,
            blocks=dict(self.block_infos),
            switches=tuple(sorted(self.switches.items())),
            source_path=self.context.source.path if self.context.source is not None else "",
            doc=_doc(network, self.context.source),
            input_span=network.input.span,
            outputs=self.outputs(network),
            structural=tuple(sorted(self.structure[0] & set(values))),
            init=self.init_rules(network, scope),
        )

    def init_rules(self, network: ast.NetworkDef, scope) -> tuple[ir.InitRule, ...]:
        """The `init { ... }` rules, each condition computed (true or false, in the parameters)."""
        if network.init is None:
            return ()
        rules = []
        for rule in network.init.rules:
            condition = None
            if rule.condition is not None:
                try:
                    condition = self.evaluate(rule.condition, scope)
                except _Fail:
                    continue
                if not isinstance(condition.value, bool):
                    self.context.error(rule.condition.span, "the condition of an init rule must be true or false, "
                                       f"got {ir.Value.constant(condition.value).text}", "compare it: n > 0", "type")
                    condition = None
            rules.append(ir.InitRule(rule.targets, rule.args, rule.span, condition))
        return tuple(rules)

    def outputs(self, network: ast.NetworkDef) -> tuple[ir.Output, ...]:
        """The named outputs that are on: an optional element switched off gives none."""
        if network.outputs is None:
            return ()
        seen: set[str] = set()
        out = []
        for item in network.outputs.items:
            if item.key in seen:
                self.context.error(item.span, f"output {item.key!r} is named twice", "give each output one key")
            seen.add(item.key)
            if item.element not in self.dropped:
                out.append(ir.Output(item.key, item.element, item.span))
        return tuple(out)

    def check_overrides(self, network: ast.NetworkDef, switches) -> None:
        """Every --set names a parameter or a switch of this network."""
        params = {p.name for p in network.params}
        known = sorted(params | set(switches))
        unknown = [name for name in self.overrides if name not in params and name not in switches]
        for name in unknown:
            guess = suggest(name, known)
            self.context.error(network.name_span, f"network {network.name} has no parameter or switch {name!r}",
                               (f"did you mean {guess!r}? " if guess else "")
                               + f"it has: {', '.join(known) or 'none'}", "unknown-parameter")
        if unknown:
            raise _Stop()

    def parameters(self, network: ast.NetworkDef, switches) -> dict[str, ir.Value]:
        """The network's parameters: the --set value, else the default."""
        values: dict[str, ir.Value] = {}
        for param in network.params:
            if param.name in self.overrides:
                value = self.override(network, param)
            elif param.default is not None:
                try:
                    value = self.evaluate(param.default, _Scope({}, f"the defaults of {network.name}")).value
                except _Fail:
                    continue
            else:
                self.context.error(param.span, f"parameter {param.name!r} has no default and no value",
                                   f"give it a default ({param.name} = 10) or pass --set {param.name}=VALUE",
                                   "missing")
                continue
            if value is _Fail:
                continue
            values[param.name] = ir.Value(value, Name(param.name))
            if param.name in switches:
                self.overrides[param.name] = value
        return values

    def override(self, network: ast.NetworkDef, param: ast.Param):
        """The --set value of a parameter, or `_Fail` (reported) if it is out of range."""
        value = self.overrides[param.name]
        value = _frozen(value.value if isinstance(value, ir.Value) else value)
        if not _plain_value(value):
            self.context.error(network.name_span, f"parameter {param.name!r} cannot be {value!r}",
                               "give a number, true/false, a string or a list of them", "type")
            return _Fail
        if isinstance(value, float) and not math.isfinite(value):  # --set N=nan, N=inf
            self.context.error(network.name_span, f"parameter {param.name!r} is {value}, not a finite number",
                               f"give {param.name} a finite value", "type")
            return _Fail
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
            self.context.error(  # the limit an expression in the spec has
                network.name_span, f"parameter {param.name!r} of {value:,} is too large",
                f"values stay below {MAX_VALUE:,}", "range")
            return _Fail
        return value

    def input_dims(self, network: ast.NetworkDef, scope: _Scope) -> list[ir.Value]:
        before = len(self.errors)
        if network.input is None:
            raise self.stop(network.name_span, f"network {network.name} has no input line",
                            "add one as the first line of its body: input 3x32x32")
        dims = []
        for dim in network.input.dims:
            try:
                value = self.evaluate(dim, scope)
            except _Fail:
                continue
            if isinstance(value.value, bool) or not isinstance(value.value, int) or value.value < 1:
                self.context.error(dim.span, "an input dimension must be a positive whole number, "
                                   f"got {_describe(value.value)}", None, "type")
                continue
            if value.value > 1 << 16:
                self.context.error(dim.span, f"input dimension {value.value:,} is too large", None, "range")
                continue
            dims.append(value)
        if len(self.errors) == before and len(dims) not in (1, 3):
            self.context.error(network.input.span, f"an input is CxHxW or a flat size, got {len(dims)} dimensions",
                               "write input 1x28x28 for a grey 28x28 image")
        return dims


def arg_problem(rule: LayerRule, spec, v) -> tuple[str, str | None, str] | None:
    """What is wrong with `v` as the layer argument `spec` (message, hint, code), or None."""
    if not _has_type(spec, v):
        return (f"{rule.kind} {spec.name!r} must be {_TYPE_WORDS[spec.type]}, got {_describe(v)}",
                _type_hint(spec, v), "type")
    if spec.choices and v not in spec.choices:
        guess = suggest(v, spec.choices)
        return (f"{rule.kind} {spec.name!r} must be one of {', '.join(repr(c) for c in spec.choices)}, got {v!r}",
                f"did you mean {guess!r}?" if guess else None, "type")
    for axis, n in _axes(spec, v) if spec.type == "pair" else (("", v),):
        if spec.minimum is not None and n is not None and n < spec.minimum:
            return f"{rule.kind} {spec.name!r} must be at least {spec.minimum:g}{axis}, got {n}", None, "range"
        if isinstance(n, int) and not isinstance(n, bool) and n > (1 << 24):
            return f"{rule.kind} {spec.name!r} of {n:,}{axis} is too large", None, "range"
    return None


def _doc(network: ast.NetworkDef, source) -> tuple[tuple[str, ...], ...]:
    """The network's account of itself: the file's opening comment; a variant's own
    comment (the lines above its declaration) in place of the file's first paragraph."""
    if source is None:
        return ()
    header = source.header_comment()
    own = source.comment_above(network.span.line) if network.variant is not None else ()
    return (own, *header[1:]) if own else header


def _unknown_hint(name: str, names: list[str], torch_names: dict[str, str]) -> str:
    """For an unknown keyword: ours where it is PyTorch's name for one (`padding` is `pad`,
    from the layer's ArgSpecs), else the nearest spelling, else the list."""
    ours = torch_names.get(name)
    if ours in names:
        return f"cnndsl calls it {ours!r}; {name!r} is PyTorch's name for it"
    guess = suggest(name, names)
    return f"did you mean {guess!r}?" if guess else f"its parameters are: {', '.join(names) or 'none'}"


_TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
               "pair": "a whole number or a pair (height, width)",
               "element": "the name of an earlier element"}


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _axes(spec, v) -> list:
    """A value's numbers, each with the axis it is for in a message (` on the width axis`)."""
    if spec.type == "pair" and isinstance(v, (tuple, list)):
        return [(" on the height axis", v[0]), (" on the width axis", v[1])]
    return [("", v)]


def _square(value: ir.Value) -> ir.Value:
    """A pair whose two axes agree is the one number (`(3, 3)` is `3`), as PyTorch prints it."""
    v = value.value
    if not isinstance(v, (tuple, list)) or v[0] != v[1]:
        return value
    height, width = axis_exprs(value.expr)
    return ir.Value(v[0], height) if height == width else value


def _has_type(spec, v) -> bool:
    if spec.default is None and v is None:
        return True
    return _TYPE_CHECKS[spec.type](v)


def _is_pair(v) -> bool:
    return _whole(v) or (isinstance(v, (tuple, list)) and len(v) == 2 and all(map(_whole, v)))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_str(v) -> bool:
    return isinstance(v, str)


# an argument type -> whether a value is of it (an element is named by a string)
_TYPE_CHECKS = {"int": _whole, "pair": _is_pair, "float": _is_number, "bool": lambda v: isinstance(v, bool),
                "str": _is_str, "element": _is_str}


def _type_hint(spec, v) -> str | None:
    if spec.type == "pair" and isinstance(v, (tuple, list)):
        return f"give two whole numbers, (height, width): {spec.name}=(3, 5)"
    if spec.type in ("int", "pair") and isinstance(v, float):
        return "use // for integer division" if v == int(v) else "give a whole number"
    if spec.type == "bool":
        return "write true or false"
    if spec.type == "str":
        return f"write it in double quotes: {spec.name}=\"{spec.choices[0] if spec.choices else '...'}\""
    return None


def _exact(value):
    """A value as a key that tells apart what `==` does not: 1, 1.0 and true; 0.0 and -0.0."""
    if type(value) is tuple:
        return tuple(map(_exact, value))
    return (float, repr(value)) if type(value) is float else (type(value), value)


def _frozen(value):
    """A list given from Python (`build(spec, cfg=[6, 12])`) as the tuple the language uses."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


_PLAIN_TYPES = frozenset((bool, int, float, str, type(None)))  # plain values that are not lists


def _plain_value(value) -> bool:
    if isinstance(value, tuple):
        return all(_plain_value(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


_CONDITIONAL = frozenset((ir.Residual, ir.Layer, ir.Seq, ir.BlockInstance, ir.Concat))


def _labelled(made: list[ir.Node], label: str, span: Span) -> list[ir.Node]:
    """The nodes of a labelled element: a single layer, block use or chain takes the label;
    a side output keeps its own; anything else is wrapped in a chain of that name."""
    if len(made) == 1 and type(made[0]) is ir.Side:
        return made
    if len(made) == 1 and type(made[0]) in _NAMED and getattr(made[0], "name", None) in (None, label):
        return made if made[0].name == label else [_renamed(made[0], label)]  # a layer made with its label
    return [ir.Seq(tuple(made), label, span)]

_NAMED = frozenset((ir.Layer, ir.BlockInstance, ir.Seq))  # what takes its element's label itself


def _renamed(node, name: str):
    return replace(node, name=name)


def select_network(program: ast.Program, name: str | None, context: Context) -> ast.NetworkDef | None:
    """The network to compile: the one named (a variant by its own name), else the file's
    last (variants included)."""
    if not program.networks:
        context.error(program.span, "no network in this file",
                      "add one: network Net(classes = 10) { input 3x32x32 ... }")
        return None
    if name is None:
        return max(program.networks, key=lambda n: (n.name_span.line, n.name_span.column))
    for network in program.networks:
        if name in (network.name, network.variant):
            return network
    names = [n.variant or n.name for n in program.networks]
    guess = suggest(name, names)
    context.error(program.span, f"no network named {name!r}",
                  f"did you mean {guess!r}?" if guess else f"this file has: {', '.join(names)}")
    return None


def expand(program: ast.Program, context: Context | None = None) -> ir.Network | None:
    """The IR of the network `context.network` names, with `context.params` set; None when
    there is none to build (the context says why)."""
    context, own = alone(context)
    chosen = select_network(program, context.network, context)
    network = None
    if chosen is not None:
        expander = Expander(program, context)
        network = expander.network(chosen)
        expander.release()
    if network is None and context.errors:
        context.stop()
    # Otherwise an element that failed stands as an ir.Unknown, whose output is unknown: the
    # shapes pass says nothing of what reads it, and infers the rest.
    return finish(network, context, own)


__all__ = ["arg_problem", "expand", "switches_of"]
