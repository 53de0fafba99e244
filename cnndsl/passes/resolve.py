"""Pass 1, resolve: every name in the syntax tree means one thing, and is safe to emit.

Checks, on the syntax tree and before any value is computed: definitions are unique;
every called or referenced name is a layer kind, a `let`, a block or (in the first
position of a network) `INPUT`; keyword arguments and labels are names the generated
Python can use; blocks and lets do not use themselves, directly or in a cycle.
Every problem found goes to the context (an unknown name once); the program is returned
unchanged.
"""

from __future__ import annotations

import builtins
import difflib
import functools
import keyword
from operator import attrgetter

from .. import ast, namespace
from ..expr import FUNCTIONS
from ..layers import RULES, SHORTCUTS, lookup
from ..traverse import Visitor, walk_by_type
from .context import Context, alone, finish

MAX_NAME = 64
_NAME = attrgetter("name")

# Names the generated module uses itself, and nn.Module's own attributes: a parameter,
# label or class with one of these names would break or hijack the generated code.
GENERATED_NAMES = namespace.GENERATED_NAMES
MODULE_ATTRIBUTES = namespace.MODULE_ATTRIBUTES


@functools.lru_cache(maxsize=4096)  # a family's variants repeat its parameters; the namer asks again
def unsafe_name_reason(name: str, kind: str) -> str | None:
    """Why `name` cannot appear in generated Python as a `kind`, or None if it can."""
    if not name.isidentifier() or not name.isascii():
        return f"{name!r} is not a Python identifier"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"{name!r} is a Python keyword"
    if len(name) > MAX_NAME:
        return f"a name of {len(name)} characters is longer than {MAX_NAME}"
    if name.startswith("__") or name.endswith("__"):
        return f"{name!r} is a dunder name"
    if name in GENERATED_NAMES and not (kind == "network parameter" and name == "in_channels"):
        return f"{name!r} is used by the generated code itself"
    if name in vars(builtins):  # hasattr, without the AttributeError it raises and drops for most names
        return f"{name!r} would shadow Python's built-in {name}"
    if kind == "label" and (name in MODULE_ATTRIBUTES or name.startswith("_")):
        return f"{name!r} is an attribute of torch.nn.Module" if name in MODULE_ATTRIBUTES \
            else f"{name!r} starts with an underscore, which PyTorch treats as private"
    return None


def quoted_label_reason(name: str) -> str | None:
    """Why a quoted label (any key: `"block1-0"`, `"if"`) cannot be a state_dict key, or None."""
    if not name:
        return "a label cannot be empty"
    if len(name) > MAX_NAME:
        return f"a name of {len(name)} characters is longer than {MAX_NAME}"
    if "." in name:
        return f"{name!r} holds a '.', which separates the parts of a state_dict key"
    if any(not c.isprintable() or c in "\"'\\" for c in name) or not name.isascii():
        return f"{name!r} holds a quote, a backslash or a character that is not printable ASCII"
    if name in MODULE_ATTRIBUTES or name.startswith("_"):
        return f"{name!r} is an attribute of torch.nn.Module" if name in MODULE_ATTRIBUTES \
            else f"{name!r} starts with an underscore, which PyTorch treats as private"
    return None


def suggest(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def resolve(program: ast.Program, context: Context | None = None) -> ast.Program:
    """Check the program's names (see the module's docstring); the program is unchanged."""
    context, own = alone(context)
    before = len(context.errors)
    definitions = _definitions(program, context)
    _signatures(program, context)
    names = _Names(definitions, context)
    uses: dict[str, set[str]] = {}
    for owners, chains in bodies(program):
        used = names.check(chains)
        uses.update((owner, used) for owner in owners)
    _cycles(uses, definitions, context)
    _defs(program, definitions, context)
    if len(context.errors) - before > len(names.unknown):
        context.stop()  # a cycle would expand forever, a name defined twice means two things
    # An unknown layer name alone lets the pipeline go on: the expander makes each use an
    # ir.Unknown (said once, here), so the shapes around it are still known.
    return finish(program, context, own)


def bodies(program: ast.Program) -> list[tuple[list[str], tuple]]:
    """Each body of the program once (a let's chain, a block's or a network's body), with the
    names of the definitions it is the body of: a family's variants share the family's."""
    found: dict[int, tuple[list[str], tuple]] = {}  # by id: the bodies are the program's, alive
    for name, body in [*((d.name, (d.chain,)) for d in program.lets),
                       *((d.name, d.body) for d in (*program.blocks, *program.networks))]:
        found.setdefault(id(body), ([], body))[0].append(name)
    return list(found.values())


def _definitions(program: ast.Program, context: Context) -> dict:
    """The lets and blocks by name; each name defined once, and not a layer's."""
    found: dict[str, ast.LetDef | ast.BlockDef] = {}
    defined_spans = {}
    for definition in (*program.defs, *program.lets, *program.blocks, *program.networks):
        if definition.name in defined_spans:
            context.error(definition.span, f"{definition.name!r} is defined twice",
                          f"the first definition is at line {defined_spans[definition.name].line}; rename one")
            continue
        defined_spans[definition.name] = definition.span
        if not isinstance(definition, ast.NetworkDef):
            found[definition.name] = definition
            if definition.name in RULES:
                context.error(definition.span, f"{definition.name!r} is the name of a built-in layer",
                              "choose another name (upper-case CONV or POOL are fine)")
            elif definition.name in FUNCTIONS and isinstance(definition, ast.DefDef):
                context.error(definition.name_span, f"{definition.name!r} is a built-in function",
                              "choose another name for your def")
    return found


def _signatures(program: ast.Program, context: Context) -> None:
    """Class names and parameter names that the generated Python can use."""
    for definition in (*program.blocks, *program.networks):
        reason = unsafe_name_reason(definition.name, "class")
        if reason:
            context.error(definition.name_span, f"cannot name a class {definition.name!r}: {reason}",
                          "choose a plain name such as ResNet or Bottleneck")
        seen = set()
        kind = "network parameter" if isinstance(definition, ast.NetworkDef) else "parameter"
        for param in definition.params:
            reason = unsafe_name_reason(param.name, kind)
            if reason:
                hint = "rename the parameter"
                if param.name == "in_channels":
                    hint = "a block's input channels come from where it is used; rename the parameter"
                context.error(param.span, f"parameter {param.name!r}: {reason}", hint)
            if param.name in seen:
                context.error(param.span, f"parameter {param.name!r} is listed twice", None)
            seen.add(param.name)


class _Names(Visitor):
    """Labels and the names that chains call or refer to. An unknown name is reported
    once, where it is first used."""

    def __init__(self, definitions: dict, context: Context) -> None:
        self.definitions = definitions
        self.context = context
        self.known = set(RULES) | set(definitions)
        self.unknown: set[str] = set()
        self.uses: set[str] = set()

    def check(self, chains) -> set[str]:
        """The lets and blocks these chains use."""
        self.uses = set()
        for chain in chains:
            self.visit(chain)
        return self.uses

    def visit_Element(self, element: ast.Element) -> None:
        if element.quoted and element.template is None:
            reason = quoted_label_reason(element.label)
            if reason:
                self.context.error(element.label_span or element.span, f"cannot name a layer {element.label!r}: "
                                   f"{reason}", 'a quoted label is a state_dict key: "block1-0" or "denselayer1"')
        elif element.label is not None and not element.quoted:
            self.label(element.label, element.label_span or element.span, "layer", "conv1 or features")
        # INPUT stands alone: an unlabelled element, not called, repeated, made optional or a side.
        if element.label is None and type(element.node) is ast.Ref:
            self.name(element.node, plain=True)
        else:
            self.visit(element.node)

    def visit_Chain(self, chain: ast.Chain) -> None:
        for element in chain.elements:
            self.visit_Element(element)

    def visit_Repeat(self, node: ast.Repeat | ast.Optional) -> None:
        """A repetition or an optional: its count or condition is an expression, which
        names no layer, block or let."""
        self.visit(node.node)

    visit_Optional = visit_Repeat

    def visit_Residual(self, node: ast.Residual) -> None:
        if node.shortcut is not None and node.shortcut.label is not None:  # a module attribute too
            self.label(node.shortcut.label, node.shortcut.span, "shortcut", "downsample")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self.name(node, plain=False)

    def visit_Ref(self, node: ast.Ref) -> None:
        self.name(node, plain=False)

    def label(self, name: str, span, what: str, example: str) -> None:
        reason = unsafe_name_reason(name, "label")
        if reason:
            self.context.error(span, f"cannot name a {what} {name!r}: {reason}",
                               f"choose another name, such as {example}")

    def name(self, node: ast.Call | ast.Ref, plain: bool) -> None:
        name = node.name
        if isinstance(self.definitions.get(name), ast.DefDef):
            written = name + ("(...)" if self.definitions[name].params is not None else "")
            self.context.error(node.span, f"{name!r} is a value (a def), not a layer or block",
                               f"use it in an argument: conv({written}, 3)", "type")
        elif name in self.definitions:
            self.uses.add(name)
        elif name == "INPUT" and not plain:
            self.context.error(node.span, "INPUT only marks the start of a network's chain",
                               "write it alone, first in the network: INPUT -> conv(32, 3)")
        elif not (lookup(name) is not None or name in SHORTCUTS or name == "INPUT" or name in self.unknown):
            self.unknown.add(name)
            self.context.error(node.name_span if isinstance(node, ast.Call) else node.span,
                               f"unknown layer or block {name!r}", self.unknown_hint(name), "unknown-name")

    def unknown_hint(self, name: str) -> str:
        guess = suggest(name, self.known)
        if name[:1].isupper() and guess is None:
            return f"define it first: `let {name} = conv(32, 3, pad=1)`, or a `block {name}(...)`"
        return f"did you mean {guess!r}?" if guess else "see `cnndsl list --layers` for the layer kinds"


def _defs(program: ast.Program, definitions: dict, context: Context) -> None:
    """A def's parameters are listed once, and no def reaches itself through the defs it
    calls or reads (a value would need itself to be computed)."""
    uses: dict[str, set[str]] = {}
    for definition in program.defs:
        params = [p.name for p in definition.params or ()]
        for param in definition.params or ():
            if params.count(param.name) > 1:
                context.error(param.span, f"parameter {param.name!r} is listed twice", None)
        hidden = set(params)
        read = set()  # the names the body and the defaults read or call
        for root in (definition.body, *(p.default for p in definition.params or () if p.default is not None)):
            found = walk_by_type(root)
            read.update(map(_NAME, found.get(ast.Var, ())), map(_NAME, found.get(ast.FuncCall, ())))
        uses[definition.name] = {name for name in read - hidden if isinstance(definitions.get(name), ast.DefDef)}
    _cycles(uses, {d.name: d for d in program.defs}, context,
            "a def cannot use itself, directly or through another def; write the values out, or use a list")


def _cycles(uses: dict[str, set[str]], definitions: dict, context: Context,
            hint: str = "a block or let cannot contain itself; repeat it with *N instead") -> None:
    """A block or let that reaches itself would expand forever."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(definitions):
        if state.get(root):
            continue
        stack = [(root, iter(sorted(uses.get(root, ()))))]
        path = [root]
        state[root] = 1
        while stack:
            name, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[name] = 2
                continue
            if state.get(child) == 1:
                cycle = path[path.index(child):] + [child]
                definition = definitions[child]
                context.error(getattr(definition, "name_span", definition.span),
                              f"{child!r} uses itself: {' -> '.join(cycle)}", hint, "recursion")
                state[child] = 2
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(uses.get(child, ())))))
