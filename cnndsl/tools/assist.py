"""The editing help behind `cnndsl lsp`: completion, signature help, document symbols,
rename, semantic tokens, quick fixes and inlay hints, as plain Python over the text, the
layer table and the compiler's results. Nothing here knows LSP; `lsp.py` wraps it.

Most of it reads a tolerant token stream (`scan`) rather than the syntax tree, so that
it keeps working while the file does not parse: a half-typed `conv(` still gets its
signature, and the outline of a file with a syntax error is still there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import ir
from ..expr import FUNCTIONS
from ..layers import REQUIRED, RULES, SHORTCUTS, ArgSpec, lookup
from ..passes import inits

KEYWORDS = ("let", "block", "network", "input", "outputs", "x", "concat", "split", "residual", "shortcut", "side",
            "gate", "true", "false")
KEYWORDS += ("def", "if", "else", "and", "or", "not", "for", "from", "import")  # issue 11: values, repetition, imports
KEYWORDS += ("init",)  # a network's weight initialisation
KEYWORDS += ("add", "mul", "reads")  # heads with two inputs: add { ... }, mul { ... }, reads(low)
_DEFINERS = {"let": "let", "block": "block", "network": "network"}
_DEFINERS["def"] = "def"
_TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<string>"[^"\\\n]*"?)
  | (?P<number>\d+(?:x\d+)+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?|\d+)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>->|//|\*\*|==|!=|<=|>=|[-+*/%=?:,(){}\[\]<>])
  | (?P<newline>\n)
  | (?P<other>[^\s])
""", re.X)


@dataclass
class Tok:
    """One token: where it is (1-based line and column), what it is, what it means."""

    kind: str  # comment, string, number, name, op, newline
    text: str
    line: int
    column: int
    role: str = ""  # for names: keyword, layer, block, let, param, label, kwarg, switch, network, name
    definition: bool = False
    owner: int = -1  # the index of the `block`/`network` definition it sits in (-1: none)
    call: str | None = None  # the call whose parentheses it is inside

    @property
    def end(self) -> int:
        return self.column + len(self.text)


@dataclass
class Definition:
    keyword: str  # let, block, network
    name: str
    line: int
    column: int
    end_line: int
    end_column: int
    name_token: Tok
    body: tuple[int, int] = (10**9, 0)  # where its `{` is: before it, the parameters
    params: list[str] = field(default_factory=list)
    labels: list[Tok] = field(default_factory=list)


@dataclass
class Scan:
    tokens: list[Tok]
    definitions: list[Definition]

    def at(self, line: int, column: int) -> Tok | None:
        """The name or number token under (or just after) the cursor."""
        for tok in self.tokens:
            if tok.line == line and tok.kind in ("name", "number") and tok.column <= column <= tok.end:
                return tok
        return None

    def owner_at(self, line: int, column: int) -> Definition | None:
        for d in self.definitions:
            if d.keyword not in ("let", "def") and (d.line, d.column) <= (line, column) <= (d.end_line, d.end_column):
                return d
        return None

    def names(self, keyword: str) -> list[str]:
        return [d.name for d in self.definitions if d.keyword == keyword]


def _lex(text: str) -> list[Tok]:
    tokens, line, line_start = [], 1, 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        tokens.append(Tok(kind, match.group(), line, match.start() - line_start + 1))
        if kind == "newline":
            line, line_start = line + 1, match.end()
    return tokens


def code_tokens(text: str) -> list[tuple[str, int, int]]:
    """The tokens that are not comments, with where they are."""
    return [(t.text, t.line, t.column) for t in _lex(text) if t.kind not in ("comment", "newline")]


def scan(text: str) -> Scan:
    """Tokens with what each name means, and the file's definitions, for any text."""
    tokens = _lex(text)
    code = [t for t in tokens if t.kind not in ("comment", "newline")]
    definitions: list[Definition] = []
    _definitions(code, definitions)
    _roles(code, definitions)
    return Scan(tokens, definitions)


_NOTHING = Tok("op", "", 0, 0)


def _definer(code: list[Tok], i: int) -> Definition | None:
    """`let NAME`, `block NAME` or `network NAME` starting at code[i]."""
    tok = code[i]
    name = code[i + 1] if i + 1 < len(code) else _NOTHING
    if tok.kind != "name" or tok.text not in _DEFINERS or name.kind != "name":
        return None
    name.role, name.definition = tok.text, True
    return Definition(tok.text, name.text, tok.line, tok.column, 10**9, 10**9, name)


def _definitions(code: list[Tok], definitions: list[Definition]) -> None:
    """The file's definitions and their extents, from `let`/`block`/`network` to the `}`
    that closes it (a `let`: its line; one not closed yet: up to the next definition)."""
    depth, current = 0, None
    for i, tok in enumerate(code):
        found = _definer(code, i) if depth == 0 else None
        if found is not None:
            definitions.append(found)
            current = found if found.keyword != "let" else None
        elif tok.text == "=" and depth == 0 and current is not None and current.keyword == "def":
            current.body = (tok.line, tok.column)  # a def's parameters end at its `=`
        elif tok.kind == "op" and tok.text in ("{", "[", "("):
            if tok.text == "{" and depth == 0 and current is not None and current.body[0] == 10**9:
                current.body = (tok.line, tok.column)
            depth += 1
        elif tok.kind == "op" and tok.text in ("}", "]", ")"):
            depth = max(0, depth - 1)
            if depth == 0 and tok.text == "}" and current is not None:
                current.end_line, current.end_column, current = tok.line, tok.end, None
    _close(definitions)


def _close(definitions: list[Definition]) -> None:
    for d, after in zip(definitions, definitions[1:] + [None]):
        if d.keyword == "let":
            d.end_line, d.end_column = d.line, 10**9
        elif d.end_line == 10**9 and after is not None:
            d.end_line = after.line - 1


def _inside(d: Definition, tok: Tok) -> bool:
    return (d.line, d.column) <= (tok.line, tok.column) <= (d.end_line, d.end_column)


def _roles(code: list[Tok], definitions: list[Definition]) -> None:
    known = {"block": {d.name for d in definitions if d.keyword == "block"},
             "let": {d.name for d in definitions if d.keyword == "let"},
             "def": {d.name for d in definitions if d.keyword == "def"}}
    owners = [(i, d) for i, d in enumerate(definitions) if d.keyword != "let"]
    calls: list[str | None] = []  # the name before each open parenthesis
    padded = [_NOTHING] + code + [_NOTHING]
    for prev, tok, nxt in zip(padded, padded[1:], padded[2:]):
        tok.owner = next((index for index, d in owners if _inside(d, tok)), -1)
        _track_call(calls, prev, tok)
        if tok.kind == "name" and not tok.role:
            owner = definitions[tok.owner] if tok.owner >= 0 else None
            tok.role = _defining_role(tok, prev, nxt, owner) or _using_role(tok, prev, nxt, owner, known)


def _track_call(calls: list, prev: Tok, tok: Tok) -> None:
    tok.call = calls[-1] if calls else None
    if tok.kind == "op" and tok.text == "(":
        calls.append(prev.text if prev.kind == "name" else None)
    elif tok.kind == "op" and tok.text == ")" and calls:
        calls.pop()


def _defining_role(tok: Tok, prev: Tok, nxt: Tok, owner: Definition | None) -> str:
    """A parameter in a definition's header, or a label (`conv1:`); "" for neither."""
    if tok.text in KEYWORDS or owner is None:
        return ""
    if prev.text in ("(", ",") and (tok.line, tok.column) < owner.body:
        if tok.text not in owner.params:
            owner.params.append(tok.text)
        tok.definition = True
        return "param"
    if nxt.text == ":" and tok.call is None:
        owner.labels.append(tok)
        tok.definition = True
        return "label"
    return ""


def _using_role(tok: Tok, prev: Tok, nxt: Tok, owner: Definition | None, known: dict) -> str:
    if nxt.text == "=" and tok.call is not None:
        return "kwarg"  # prelu(init=0.25): the keyword `init` names an argument there
    if tok.text in KEYWORDS:
        return "keyword"
    if prev.text == "?":
        return "switch"
    if tok.call == "side" or nxt.text == ":":
        return "label"
    if owner is not None and tok.text in owner.params:
        return "param"
    for role in ("let", "block", "def"):
        if tok.text in known[role]:
            return role
    return "layer" if lookup(tok.text) is not None or tok.text in SHORTCUTS else "name"


# -- completion and signature help ---------------------------------------------------

@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # layer, block, let, param, label, keyword, argument, builtin
    detail: str = ""
    documentation: str = ""
    insert: str | None = None  # a snippet, LSP syntax (`conv(${1:filters}, ${2:size})`)


def show(value) -> str:
    if value is REQUIRED:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def arg_label(spec: ArgSpec) -> str:
    return spec.name if spec.default is REQUIRED else f"{spec.name}={show(spec.default)}"


def signature_of(kind: str) -> str:
    rule = lookup(kind)
    return f"{kind}({', '.join(arg_label(a) for a in rule.args)})"


def _layer_items() -> list[Item]:
    items = []
    for kind, rule in RULES.items():
        required = [a for a in rule.args if a.default is REQUIRED]
        snippet = f"{kind}(" + ", ".join(f"${{{i + 1}:{a.name}}}" for i, a in enumerate(required)) + ")" \
            if required else kind
        alias = "" if kind == rule.kind else f" (the same as {rule.kind})"
        items.append(Item(kind, "layer", signature_of(kind), rule.doc + alias, snippet))
    return items


def _block_params(scan_: Scan, name: str) -> list[str]:
    return next((d.params for d in scan_.definitions if d.keyword == "block" and d.name == name), [])


def _open_call(scan_: Scan, line: int, column: int) -> tuple[str | None, list[Tok]] | None:
    """The call whose parentheses hold the cursor, and its argument tokens so far."""
    stack: list[tuple[str | None, list[Tok]]] = []
    prev = None
    for tok in scan_.tokens:
        if (tok.line, tok.column) >= (line, column):
            break
        if tok.kind in ("comment", "newline"):
            continue
        if tok.text == "(" and tok.kind == "op":
            stack.append((prev.text if prev is not None and prev.kind == "name" else None, []))
        elif tok.text == ")" and tok.kind == "op" and stack:
            stack.pop()
        elif tok.text in "{}" and tok.kind == "op":
            stack.clear()
        elif stack:
            stack[-1][1].append(tok)
        prev = tok
    return stack[-1] if stack else None


def _typed(scan_: Scan, line: int, column: int) -> str:
    tok = scan_.at(line, column)
    return tok.text[: column - tok.column] if tok is not None and tok.kind == "name" else ""


def complete(scan_: Scan, text: str, line: int, column: int, builtin_names=()) -> list[Item]:
    """What may be written at 1-based (line, column)."""
    before = text.split("\n")[line - 1][: column - 1] if line - 1 < len(text.split("\n")) else ""
    if re.match(r"\s*(import|from)\s+\S*$", before):
        return [Item(name, "builtin", "built-in spec") for name in builtin_names]
    opened = _open_call(scan_, line, column)
    owner = scan_.owner_at(line, column)
    if in_init(text, line, column):
        return _init_items(opened[0] if opened is not None else None)
    if opened is not None:
        call, args = opened
        if call == "side":
            labels = owner.labels if owner is not None else []
            return [Item(t.text, "label", f"the output of `{t.text}`") for t in labels]
        given = {t.text for i, t in enumerate(args) if t.kind == "name" and i + 1 < len(args)
                 and args[i + 1].text == "="}
        out = _argument_items(scan_, call, given)
        out += _value_items(scan_, owner)
        return out
    items = _layer_items()
    items += [Item(name, "block", f"{name}({', '.join(_block_params(scan_, name))})", "block",
                   f"{name}($1)") for name in scan_.names("block")]
    items += _value_items(scan_, owner)
    items += [Item(word, "keyword") for word in KEYWORDS]
    return items


def in_init(text: str, line: int, column: int) -> bool:
    """Whether (line, column) is inside a network's `init { ... }` section."""
    lines = text.split("\n")[:line]
    if not lines:
        return False
    lines[-1] = lines[-1][: column - 1]
    before = re.sub(r"#[^\n]*|\"[^\"\n]*\"", "", "\n".join(lines))
    opened = None
    for match in re.finditer(r"\binit\s*\{|[{}]", before):
        if match.group() not in ("{", "}"):
            opened = 1
        elif opened is not None:
            opened += 1 if match.group() == "{" else -1
            opened = opened or None
    return opened is not None


def _init_items(call: str | None) -> list[Item]:
    """In an init section: an init function's arguments, or the kinds, `last_norm` and the functions."""
    function = inits.FUNCTIONS.get(call or "")
    if function is not None:
        return [Item(f"{name}=", "argument", f"{name}={show(default) if default is not inits.REQUIRED else ''}",
                     f"nn.init.{function.torch}'s {name}", f"{name}=$1") for name, default in function.params]
    items = [Item(kind, "layer", f"every {kind} layer", "an init rule's target: " + RULES[kind].doc)
             for kind in sorted(inits.TENSORS)]
    items.append(Item(inits.LAST_NORM, "layer", "the last norm of each residual body",
                      "last_norm?(zero_init_residual): zeros starts each residual as the identity"))
    items += [Item(name, "builtin", f"nn.init.{f.torch}", f.doc, f"{name}($1)" if f.params else name)
              for name, f in inits.FUNCTIONS.items()]
    items.append(Item("bias=", "argument", "the bias's init", "conv: kaiming_normal(), bias=zeros", "bias=$1"))
    return items


def init_hover(network: ir.Network, line: int, column: int, path: str) -> str | None:
    """Markdown for an init rule's target at (line, column): what it sets, and with what."""
    for step in network.init_steps:
        span = step.span
        if span.file != path or not (span.line == line and span.column <= column <= span.end_column):
            continue
        what = ("the last norm of each residual body" if step.last_norm else
                f"every {', '.join(step.kinds)} layer" + (f" in `{'.'.join(step.path)}`" if step.path else "")
                if step.kinds else f"`{'.'.join(step.path)}`")
        lines = [f"**init** {what}", ""]
        for tensor, call in (("weight", step.weight), ("bias", step.bias)):
            if call is not None:
                lines.append(f"- {tensor}: `nn.init.{call.function}` ({inits.FUNCTIONS_BY_TORCH[call.function].doc})")
        return "\n".join(lines)
    return None


def _argument_items(scan_: Scan, call: str | None, given: set) -> list[Item]:
    rule = lookup(call) if call else None
    if rule is not None:
        return [Item(f"{a.name}=", "argument", arg_label(a), a.doc, f"{a.name}=$1") for a in rule.args
                if a.name not in given]
    return [Item(f"{p}=", "argument", f"parameter of {call}", "", f"{p}=$1")
            for p in _block_params(scan_, call or "") if p not in given]


def _value_items(scan_: Scan, owner: Definition | None) -> list[Item]:
    items = [Item(name, "let", "let", "") for name in scan_.names("let")]
    items += [Item(name, "let", "def", "") for name in scan_.names("def")]
    items += [Item(name, "builtin", "built-in function", "", f"{name}($1)") for name in FUNCTIONS]
    if owner is not None:
        items += [Item(p, "param", f"parameter of {owner.name}") for p in owner.params]
    return items


@dataclass(frozen=True)
class Signature:
    label: str
    parameters: tuple[str, ...]
    docs: tuple[str, ...]
    active: int
    documentation: str = ""


def signature_help(scan_: Scan, line: int, column: int) -> Signature | None:
    """Inside a layer's (or block's) parentheses: its arguments, the one being typed marked."""
    opened = _open_call(scan_, line, column)
    if opened is None or opened[0] is None:
        return None
    call, args = opened
    rule = lookup(call)
    if rule is not None:
        names = [a.name for a in rule.args]
        labels = [arg_label(a) for a in rule.args]
        docs = [a.doc for a in rule.args]
        doc = rule.doc
    else:
        names = _block_params(scan_, call)
        if not names and call not in scan_.names("block"):
            return None
        labels, docs, doc = list(names), [""] * len(names), f"block {call}"
    return Signature(f"{call}({', '.join(labels)})", tuple(labels), tuple(docs), _active(args, names), doc)


def _active(args: list[Tok], names: list[str]) -> int:
    depth, commas, keyword = 0, 0, None
    for i, tok in enumerate(args):
        if tok.text in "([":
            depth += 1
        elif tok.text in ")]":
            depth -= 1
        elif tok.text == "," and depth == 0:
            commas, keyword = commas + 1, None
        elif tok.kind == "name" and depth == 0 and i + 1 < len(args) and args[i + 1].text == "=":
            keyword = tok.text
    if keyword in names:
        return names.index(keyword)
    return min(commas, max(0, len(names) - 1))


# -- symbols and rename -----------------------------------------------------------

def symbols(scan_: Scan) -> list[Definition]:
    return scan_.definitions


def rename_targets(scan_: Scan, line: int, column: int) -> tuple[Tok, list[Tok]] | None:
    """The block, `let` or parameter under the cursor and every token that names it."""
    tok = scan_.at(line, column)
    if tok is None or tok.kind != "name" or tok.role not in ("block", "let", "def", "param"):
        return None
    names = [t for t in scan_.tokens if t.kind == "name" and t.text == tok.text]
    if tok.role in ("block", "let", "def"):
        return tok, [t for t in names if t.role == tok.role]
    owner = scan_.definitions[tok.owner]
    same = [t for t in names if t.role == "param" and t.owner == tok.owner]
    if owner.keyword == "block":  # `Res(16, stride=2)` names Res's parameter too
        same += [t for t in names if t.role == "kwarg" and t.call == owner.name]
    return tok, sorted(same, key=lambda t: (t.line, t.column))


def check_new_name(new: str) -> str | None:
    """Why `new` cannot be a name, or None."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", new):
        return f"{new!r} is not a name: use letters, digits and _, not starting with a digit"
    if new in KEYWORDS:
        return f"{new!r} is a keyword"
    if lookup(new) is not None:
        return f"{new!r} is a layer kind"
    return None


# -- semantic tokens -------------------------------------------------------------------

TOKEN_TYPES = ("keyword", "function", "class", "variable", "parameter", "property", "number", "string",
               "comment", "operator", "enumMember", "namespace")
TOKEN_MODIFIERS = ("declaration", "defaultLibrary")
_TYPE_OF_ROLE = {"keyword": "keyword", "layer": "function", "block": "class", "network": "namespace",
                 "let": "variable", "def": "function", "param": "parameter", "label": "property", "kwarg": "parameter",
                 "switch": "enumMember"}


def semantic_tokens(scan_: Scan) -> list[tuple[int, int, int, str, tuple[str, ...]]]:
    """(line, column, length, type, modifiers) for every token worth colouring."""
    out = []
    for tok in scan_.tokens:
        if tok.kind in ("comment", "string", "number"):
            kind = tok.kind
        elif tok.kind == "op" and tok.text in ("->", "*", "?", "+", "-", "/", "//", "%", "="):
            kind = "operator"
        elif tok.kind == "name" and tok.role in _TYPE_OF_ROLE:
            kind = _TYPE_OF_ROLE[tok.role]
        else:
            continue
        modifiers = ("declaration",) if tok.definition else ("defaultLibrary",) if tok.role == "layer" else ()
        out.append((tok.line, tok.column, len(tok.text), kind, modifiers))
    return out


# -- quick fixes ---------------------------------------------------------------------

@dataclass(frozen=True)
class Fix:
    title: str
    line: int  # 1-based; the edit replaces [column, end_column) on that line
    column: int
    end_column: int
    new_text: str


_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def fixes(source_lines: list[str], message: str, hint: str | None, line: int, column: int,
          end_line: int, end_column: int) -> list[Fix]:
    """The edits that the hint names: "did you mean 'x'?", "add `shortcut projection`"."""
    hint = hint or ""
    out = []
    guess = re.search(r"did you mean '([^']+)'\?", hint)
    if guess and line - 1 < len(source_lines):
        text = source_lines[line - 1]
        stop = end_column if end_line == line else len(text) + 1
        for wrong in _QUOTED.findall(message):
            at = _word(text, wrong, column - 1, stop - 1)
            if at is not None:
                out.append(Fix(f"Change {wrong!r} to {guess.group(1)!r}", line, at + 1, at + 1 + len(wrong),
                               guess.group(1)))
                break
    if "add `shortcut projection`" in hint and end_line - 1 < len(source_lines):
        text = source_lines[end_line - 1]
        if text[: end_column - 1].rstrip().endswith("}"):
            at = len(text[: end_column - 1].rstrip())
            out.append(Fix("Add `shortcut projection`", end_line, at + 1, at + 1, " shortcut projection"))
    return out


def _word(text: str, word: str, start: int, stop: int) -> int | None:
    for match in re.finditer(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", text):
        if start <= match.start() and match.end() <= max(stop, start + len(word)):
            return match.start()
    return None


# -- inlay hints -----------------------------------------------------------------------

def hwc(shape: ir.Shape) -> str:
    """The notes' `[55x55x96]` (height x width x channels); a vector as `[4096]`."""
    if len(shape) == 3:
        c, h, w = shape
        return f"[{h}x{w}x{c}]"
    return "[" + "x".join(map(str, shape)) + "]"


def line_shapes(nodes, path: str) -> dict[int, list[ir.Shape]]:
    """For each line, the output shape of what ends last on it, one per instance.

    `nodes` are (span, stats, size) triples from every compiled network: on each line the
    node that ends furthest right, and among those the outermost, gives the line's value."""
    best: dict[tuple, tuple] = {}  # (line, instance key) -> (end column, size, shape)
    for key, span, stats, size in nodes:
        if span.file != path or stats is None:
            continue
        slot = (span.end_line, key)
        rank = (span.end_column, size)
        if slot not in best or rank > best[slot][:2]:
            best[slot] = (span.end_column, size, stats.out_shape)
    out: dict[int, list[ir.Shape]] = {}
    for (line, _), (_, _, shape) in sorted(best.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        out.setdefault(line, [])
        if shape not in out[line]:
            out[line].append(shape)
    return out


def inlay_label(shapes: list[ir.Shape], most: int = 3) -> str:
    shown = " | ".join(hwc(s) for s in shapes[:most])
    return shown + (f" | ... ({len(shapes)} shapes)" if len(shapes) > most else "")


__all__ = ["Fix", "Item", "Scan", "Signature", "complete", "fixes", "inlay_label", "line_shapes",
           "rename_targets", "scan", "semantic_tokens", "signature_help", "symbols"]
