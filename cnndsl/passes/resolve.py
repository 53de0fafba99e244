"""Pass 1, resolve: every name in the syntax tree means one thing, and is safe to emit.

Checks, on the syntax tree and before any value is computed: definitions are unique;
every called or referenced name is a layer kind, a `let`, a block or (in the first
position of a network) `INPUT`; keyword arguments and labels are names the generated
Python can use; blocks and lets do not use themselves, directly or in a cycle.
Returns the program unchanged, or raises `CompileError` with every problem found.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
from .. import ast
from ..diagnostics import CompileError, Diagnostic
from ..layers import RULES, SHORTCUTS, lookup
from ..traverse import walk_elements, walk_nodes

MAX_NAME = 64

# Names the generated module uses itself, and nn.Module's own attributes: a parameter,
# label or class with one of these names would break or hijack the generated code.
GENERATED_NAMES = frozenset({
    "self", "x", "identity", "torch", "nn", "OrderedDict", "MinPool2d", "Maxout", "zero_pad_shortcut",
    "in_channels", "annotations", "__all__",
})
MODULE_ATTRIBUTES = frozenset({
    "training", "forward", "eval", "train", "parameters", "named_parameters", "buffers", "children",
    "named_children", "modules", "named_modules", "state_dict", "load_state_dict", "to", "cuda", "cpu",
    "float", "double", "half", "bfloat16", "type", "apply", "zero_grad", "register_buffer",
    "register_parameter", "register_module", "add_module", "get_submodule", "get_parameter",
    "get_buffer", "extra_repr", "requires_grad_", "share_memory", "dump_patches", "call_super_init",
    "compile", "ipu", "xpu", "mtia", "to_empty", "named_buffers", "register_forward_hook",
    "register_forward_pre_hook", "register_backward_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_state_dict_pre_hook", "set_extra_state", "get_extra_state", "T_destination",
})


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
    if hasattr(builtins, name):
        return f"{name!r} would shadow Python's built-in {name}"
    if kind == "label" and (name in MODULE_ATTRIBUTES or name.startswith("_")):
        return f"{name!r} is an attribute of torch.nn.Module" if name in MODULE_ATTRIBUTES \
            else f"{name!r} starts with an underscore, which PyTorch treats as private"
    return None


def suggest(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def resolve(program: ast.Program) -> ast.Program:
    errors: list[Diagnostic] = []
    lets = {}
    blocks = {}
    defined_spans = {}
    for definition in (*program.lets, *program.blocks, *program.networks):
        if definition.name in defined_spans:
            errors.append(Diagnostic.error(
                definition.span, f"{definition.name!r} is defined twice",
                f"the first definition is at line {defined_spans[definition.name].line}; rename one"))
            continue
        defined_spans[definition.name] = definition.span
        if isinstance(definition, ast.LetDef):
            lets[definition.name] = definition
        elif isinstance(definition, ast.BlockDef):
            blocks[definition.name] = definition
        if definition.name in RULES and not isinstance(definition, ast.NetworkDef):
            errors.append(Diagnostic.error(
                definition.span, f"{definition.name!r} is the name of a built-in layer",
                "choose another name (upper-case CONV or POOL are fine)"))
    for definition in (*program.blocks, *program.networks):
        span = definition.name_span
        reason = unsafe_name_reason(definition.name, "class")
        if reason:
            errors.append(Diagnostic.error(span, f"cannot name a class {definition.name!r}: {reason}",
                                           "choose a plain name such as ResNet or Bottleneck"))
        seen = set()
        kind = "network parameter" if isinstance(definition, ast.NetworkDef) else "parameter"
        for param in definition.params:
            reason = unsafe_name_reason(param.name, kind)
            if reason:
                hint = "rename the parameter"
                if param.name == "in_channels":
                    hint = "a block's input channels come from where it is used; rename the parameter"
                errors.append(Diagnostic.error(param.span, f"parameter {param.name!r}: {reason}", hint))
            if param.name in seen:
                errors.append(Diagnostic.error(param.span, f"parameter {param.name!r} is listed twice", None))
            seen.add(param.name)

    known = set(RULES) | set(lets) | set(blocks)
    bodies = [(d.name, (d.chain,)) for d in program.lets] + [(d.name, d.body) for d in program.blocks]
    bodies += [(d.name, d.body) for d in program.networks]
    uses: dict[str, set[str]] = {}
    for owner, chains in bodies:
        uses[owner] = set()
        for element in walk_elements(chains):
            if element.label is not None:
                reason = unsafe_name_reason(element.label, "label")
                if reason:
                    errors.append(Diagnostic.error(
                        element.label_span or element.span, f"cannot name a layer {element.label!r}: {reason}",
                        "choose another name, such as conv1 or features"))
        for node in walk_nodes(chains):  # a shortcut's label is a module attribute too
            if isinstance(node, ast.Residual) and node.shortcut is not None and node.shortcut.label is not None:
                reason = unsafe_name_reason(node.shortcut.label, "label")
                if reason:
                    errors.append(Diagnostic.error(
                        node.shortcut.span, f"cannot name a shortcut {node.shortcut.label!r}: {reason}",
                        "choose another name, such as downsample"))
        # INPUT stands alone: an unlabelled element, not called, repeated, made optional or a side.
        plain_refs = {id(e.node) for e in walk_elements(chains) if isinstance(e.node, ast.Ref) and e.label is None}
        for node in walk_nodes(chains):
            if not isinstance(node, (ast.Call, ast.Ref)):
                continue
            name = node.name
            if name in lets or name in blocks:
                uses[owner].add(name)
                continue
            if name == "INPUT" and id(node) not in plain_refs:
                errors.append(Diagnostic.error(
                    node.span, "INPUT only marks the start of a network's chain",
                    "write it alone, first in the network: INPUT -> conv(32, 3)"))
                continue
            if lookup(name) is not None or name in SHORTCUTS or name == "INPUT":
                continue
            guess = suggest(name, known)
            span = node.name_span if isinstance(node, ast.Call) else node.span
            if name[:1].isupper() and guess is None:
                hint = f"define it first: `let {name} = conv(32, 3, pad=1)`, or a `block {name}(...)`"
            else:
                hint = f"did you mean {guess!r}?" if guess else "see `cnndsl list --layers` for the layer kinds"
            errors.append(Diagnostic.error(span, f"unknown layer or block {name!r}", hint, "unknown-name"))

    errors += _cycles(uses, {**lets, **blocks})
    if errors:
        raise CompileError(errors)
    return program


def _cycles(uses: dict[str, set[str]], definitions: dict) -> list[Diagnostic]:
    """A block or let that reaches itself would expand forever."""
    errors = []
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
                errors.append(Diagnostic.error(
                    getattr(definition, "name_span", definition.span),
                    f"{child!r} uses itself: {' -> '.join(cycle)}",
                    "a block or let cannot contain itself; repeat it with *N instead", "recursion"))
                state[child] = 2
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(uses.get(child, ())))))
    return errors
