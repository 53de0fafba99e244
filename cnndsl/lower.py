"""Lark parse tree to `ast` nodes: the only module besides `parse` that knows Lark.

A non-recursive transformer, so a deep tree cannot overflow the Python stack; the
depth of every node is tracked and a tree deeper than `MAX_DEPTH` is refused, which
keeps the (recursive) passes safe.
"""

from __future__ import annotations

from lark import Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import VisitError

from . import ast
from .diagnostics import CompileError, Diagnostic
from .node import replace
from .source import SourceFile, Span
from .text import label_pieces

MAX_DEPTH = 120
MAX_DIGITS = 18


def _binop(op: str):
    """One transformer method per arithmetic operator."""

    @v_args(meta=True)
    def method(self, meta, children):
        left, right = children
        return self.made(ast.BinOp(op, left, right, self.span(meta)), left, right)

    return method


class _Lower(Transformer_NonRecursive):
    def __init__(self, source: SourceFile, parse_expr=None):
        super().__init__()
        self.source = source
        self.parse_expr = parse_expr  # (text, line, column, span) -> the parse tree of `def _ = text`
        self.depth: dict[int, int] = {}

    # -- helpers --------------------------------------------------------------------
    def span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return self.source.whole
        return Span(self.source.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def tspan(self, token: Token) -> Span:
        return Span(self.source.path, token.line, token.column, token.end_line, token.end_column)

    def made(self, node, *children):
        depth = 1 + max((self.depth.get(id(c), 0) for c in children if c is not None), default=0)
        if depth > MAX_DEPTH:
            raise CompileError([Diagnostic.error(
                node.span, f"expression or chain nested more than {MAX_DEPTH} deep",
                "split it into smaller parts (a block, or parameters)")])
        self.depth[id(node)] = depth
        return node

    # -- terminals --------------------------------------------------------------------
    def INT(self, token: Token):
        if len(token) > MAX_DIGITS:
            raise CompileError([Diagnostic.error(self.tspan(token), "number too large",
                                                 f"integers have at most {MAX_DIGITS} digits")])
        return ast.Num(int(token), self.tspan(token))

    def FLOAT(self, token: Token):
        if len(token) > 40:
            raise CompileError([Diagnostic.error(self.tspan(token), "number too long", None)])
        value = float(token)
        if value in (float("inf"), float("-inf")):
            raise CompileError([Diagnostic.error(self.tspan(token), "number too large", None)])
        return ast.Num(value, self.tspan(token))

    def STRING(self, token: Token):
        return ast.Str(str(token)[1:-1], self.tspan(token))

    # -- expressions ------------------------------------------------------------------
    @v_args(meta=True)
    def var(self, meta, children):
        (token,) = children
        if isinstance(token, Token):
            return ast.Var(str(token), self.tspan(token))
        return token

    @v_args(meta=True)
    def input_ref(self, meta, children):
        """`like=input`: the input of the enclosing network or block, as an element's name."""
        return ast.Var("input", self.span(meta))

    @v_args(meta=True)
    def true(self, meta, children):
        return ast.Bool(True, self.span(meta))

    @v_args(meta=True)
    def false(self, meta, children):
        return ast.Bool(False, self.span(meta))

    @v_args(meta=True)
    def neg(self, meta, children):
        return self.made(ast.Neg(children[0], self.span(meta)), children[0])

    add, sub, mul = _binop("+"), _binop("-"), _binop("*")
    div, floordiv, mod = _binop("/"), _binop("//"), _binop("%")
    pow, or_, and_ = _binop("**"), _binop("or"), _binop("and")

    @v_args(meta=True)
    def input_attr(self, meta, children):
        return ast.InputAttr(str(children[0]), self.span(meta))

    @v_args(meta=True)
    def compare(self, meta, children):
        left, op, right = children
        return self.made(ast.BinOp(str(op), left, right, self.span(meta)), left, right)

    @v_args(meta=True)
    def not_(self, meta, children):
        return self.made(ast.Not(children[0], self.span(meta)), children[0])

    @v_args(meta=True)
    def ifelse(self, meta, children):
        then, test, orelse = children
        return self.made(ast.IfElse(then, test, orelse, self.span(meta)), then, test, orelse)

    @v_args(meta=True)
    def index(self, meta, children):
        base, at = children
        return self.made(ast.Index(base, at, self.span(meta)), base, at)

    @v_args(meta=True)
    def fcall(self, meta, children):
        name, args = children
        args = args or ()
        return self.made(ast.FuncCall(str(name), args, self.span(meta), self.tspan(name)),
                         *(a.value for a in args))

    def items(self, children):
        return tuple(children)

    @v_args(meta=True)
    def list(self, meta, children):
        items = children[0] or ()
        return self.made(ast.ListExpr(items, "list", self.span(meta)), *items)

    @v_args(meta=True)
    def tuple(self, meta, children):
        first, rest = children
        items = (first, *(rest or ()))
        return self.made(ast.ListExpr(items, "tuple", self.span(meta)), *items)

    # -- chains -----------------------------------------------------------------------
    @v_args(meta=True)
    def kwarg(self, meta, children):
        name, value = children
        return ast.Arg(str(name), value, self.span(meta))

    @v_args(meta=True)
    def arg(self, meta, children):
        return ast.Arg(None, children[0], self.span(meta))

    def args(self, children):
        return tuple(children)

    @v_args(meta=True)
    def call(self, meta, children):
        name, args, reads = children
        args = args or ()
        return self.made(ast.Call(str(name), args, self.span(meta), self.tspan(name), reads or ()),
                         *(a.value for a in args))

    def reads(self, children):
        return tuple(children)

    @v_args(meta=True)
    def from_chain(self, meta, children):
        source, chain = children
        return _From(source, chain, self.span(meta))

    @v_args(meta=True)
    def ref(self, meta, children):
        return ast.Ref(str(children[0]), self.span(meta))

    @v_args(meta=True)
    def group(self, meta, children):
        return self.made(ast.Group(tuple(children), self.span(meta)), *children)

    @v_args(meta=True)
    def repeat(self, meta, children):
        node, count, index = children
        if index is None:
            return self.made(ast.Repeat(node, count, self.span(meta)), node, count)
        return self.made(ast.Repeat(node, count, self.span(meta), str(index), self.tspan(index)), node, count)

    @v_args(meta=True)
    def optional(self, meta, children):
        node, switch = children
        if switch is not None and not isinstance(switch, Token):  # X?(condition)
            return self.made(ast.Optional(node, self.span(meta), condition=switch), node, switch)
        return self.made(ast.Optional(node, self.span(meta), str(switch) if switch else None), node)

    @v_args(meta=True)
    def tap(self, meta, children):
        """`backbone.layer3`: the path of a member, each part a name or a number."""
        parts = []
        for child in children:
            if isinstance(child, ast.Num):  # `.4`, lexed as a number: its text, as written
                span = child.span
                text = self.source.line_text(span.line)[span.column - 1:span.end_column - 1]
                if not text[1:].isdigit():
                    raise CompileError([Diagnostic.error(span, f"cannot read {text!r} in a member's path",
                                                         "each part is a name or a number: backbone.layer3.0")])
                parts.append(text[1:])
            else:
                parts.append(str(child))
        return ".".join(parts)

    @v_args(meta=True)
    def side(self, meta, children):
        source, node = children
        return self.made(ast.Side(node, self.span(meta), str(source) if source else None), node)

    @v_args(meta=True)
    def body(self, meta, children):
        return _Body(tuple(children), self.span(meta))

    def plain(self, body) -> "_Body":
        """A body whose lines may not start with `from(...)` (only a concat's, add's or mul's branches may)."""
        found = next((c for c in body.items if isinstance(c, _From)), None)
        if found is not None:
            raise CompileError([Diagnostic.error(found.span, _FROM_MESSAGE, _FROM_HINT)])
        return body

    @v_args(meta=True)
    def concat(self, meta, children):
        *skips, body = children
        skips = tuple(str(s) for s in skips if s is not None)
        if body is None:
            return ast.Concat((), self.span(meta), skips)
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            raise CompileError([Diagnostic.error(inputs[0].span, _misplaced(inputs[0]), None)])
        branches, sources = _branches(body.items)
        return self.made(ast.Concat(branches, self.span(meta), skips, sources=sources), *branches)

    @v_args(meta=True)
    def add_merge(self, meta, children):
        return self.merge(meta, children[0], "add")

    @v_args(meta=True)
    def mul_merge(self, meta, children):
        return self.merge(meta, children[0], "mul")

    def merge(self, meta, body, op: str) -> ast.Concat:
        """`add { ... }`, `mul { ... }`: the branches' outputs summed or multiplied."""
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            raise CompileError([Diagnostic.error(inputs[0].span, _misplaced(inputs[0]), None)])
        branches, sources = _branches(body.items)
        return self.made(ast.Concat(branches, self.span(meta), op=op, sources=sources), *branches)

    @v_args(meta=True)
    def split(self, meta, children):
        body = self.plain(children[0])
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            raise CompileError([Diagnostic.error(inputs[0].span, _misplaced(inputs[0]), None)])
        return self.made(ast.Concat(body.items, self.span(meta), split=True), *body.items)

    @v_args(meta=True)
    def residual(self, meta, children):
        body, shortcut = children
        body = self.plain(body)
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            raise CompileError([Diagnostic.error(inputs[0].span, _misplaced(inputs[0]), None)])
        return self.made(ast.Residual(body.items, shortcut, self.span(meta)), *body.items)

    @v_args(meta=True)
    def residual_first(self, meta, children):
        """`residual shortcut proj: projection { body }`: the shortcut's modules registered
        first, as torchvision's RegNet registers `proj` before `f`."""
        shortcut, body = children
        body = self.plain(body)
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            raise CompileError([Diagnostic.error(inputs[0].span, _misplaced(inputs[0]), None)])
        return self.made(ast.Residual(body.items, replace(shortcut, first=True), self.span(meta)), *body.items)

    @v_args(meta=True)
    def gate(self, meta, children):
        body = self.plain(children[0])
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            raise CompileError([Diagnostic.error(inputs[0].span, _misplaced(inputs[0]), None)])
        return self.made(ast.Gate(body.items, self.span(meta)), *body.items)

    @v_args(meta=True)
    def shortcut(self, meta, children):
        if len(children) == 2:
            label, node = children
            return ast.Shortcut(str(label), node, self.span(meta))
        return ast.Shortcut(None, children[0], self.span(meta))

    @v_args(meta=True)
    def element(self, meta, children):
        if len(children) == 2:
            label, node = children
            if isinstance(label, ast.Str):
                return self.quoted(label, node, self.span(meta))
            return self.made(ast.Element(str(label), node, self.span(meta), self.tspan(label)), node)
        return self.made(ast.Element(None, children[0], self.span(meta)), children[0])

    def quoted(self, label: ast.Str, node, span: Span) -> ast.Element:
        """`"block1-0": X`, or `"denselayer{i + 1}": X` with its `{expr}` parts parsed."""
        text, where = label.value, label.span
        if "{" not in text and "}" not in text:
            return self.made(ast.Element(text, node, span, where, quoted=True), node)
        parts = label_pieces(text)
        if parts is None:
            raise CompileError([Diagnostic.error(where, "a label's {...} holds an expression: "
                                                 "a '{' and a '}' around it", 'for example "denselayer{i + 1}"')])
        pieces = [p if isinstance(p, str) else self.expression(text[p[0]:p[1]], where.line, where.column + p[0] + 1,
                                                                where) for p in parts]
        exprs = [p for p in pieces if not isinstance(p, str)]
        return self.made(ast.Element(text, node, span, where, quoted=True,
                                     template=tuple(p for p in pieces if p != "")), node, *exprs)

    def expression(self, text: str, line: int, column: int, where: Span):
        """An expression written inside a label, parsed where it stands in the file."""
        if self.parse_expr is None:
            raise CompileError([Diagnostic.error(where, "a label with {...} parts cannot be read here", None)])
        tree = self.parse_expr(text, line, column, where)
        return lower(tree, self.source, self.parse_expr).defs[0].body  # its errors unwrapped, as the file's

    @v_args(meta=True)
    def chain(self, meta, children):
        elements = tuple(c for c in children if isinstance(c, ast.Element))  # the arrows only separate
        return self.made(ast.Chain(elements, self.span(meta)), *elements)

    @v_args(meta=True)
    def input_decl(self, meta, children):
        dims: list = []
        for child in children:
            if isinstance(child, Token) and child.type == "SHAPE":
                base = child.start_pos
                offset = 0
                for part in str(child).split("x"):
                    start = base + offset
                    span = self.source.span_at(start, start + len(part))
                    if len(part) > MAX_DIGITS:  # int() of thousands of digits raises ValueError
                        raise CompileError([Diagnostic.error(span, "number too large",
                                                             f"integers have at most {MAX_DIGITS} digits")])
                    dims.append(ast.Num(int(part), span))
                    offset += len(part) + 1
            elif isinstance(child, Token):
                dims.append(ast.Var(str(child), self.tspan(child)))
            else:
                dims.append(child)
        return ast.InputDecl(tuple(dims), self.span(meta))

    # -- definitions ------------------------------------------------------------------
    @v_args(meta=True)
    def param(self, meta, children):
        name, default = children
        return ast.Param(str(name), default, self.span(meta))

    def params(self, children):
        return tuple(children)

    @v_args(meta=True)
    def def_def(self, meta, children):
        name, params, body = children
        return ast.DefDef(str(name), params, body, self.span(meta), self.tspan(name))

    def def_params(self, children):
        return children[0] or ()

    @v_args(meta=True)
    def let_def(self, meta, children):
        name, chain = children
        return ast.LetDef(str(name), chain, self.span(meta))

    @v_args(meta=True)
    def block_def(self, meta, children):
        name, params, reads, body = children
        body = self.plain(body)
        bad = next((r for r in reads or () if "." in r), None)
        if bad is not None:
            raise CompileError([Diagnostic.error(self.span(meta), f"reads({bad}): a block names its other inputs, "
                                                 "each by one name", "write reads(low); the use says what it is: "
                                                 "Head() reads(backbone.4)")])
        if len(set(reads or ())) != len(reads or ()):
            raise CompileError([Diagnostic.error(self.span(meta), "reads(...) names an input twice",
                                                 "give each input its own name")])
        inputs = [c for c in body.items if isinstance(c, _NETWORK_ONLY)]
        if inputs:
            if isinstance(inputs[0], ast.Outputs):
                raise CompileError([Diagnostic.error(
                    inputs[0].span, "a block has one output, the end of its chain",
                    "move outputs(...) into the network")])
            if isinstance(inputs[0], ast.Init):
                raise CompileError([Diagnostic.error(
                    inputs[0].span, "a block's weights are initialised by the network that uses it",
                    "move 'init { ... }' into the network; \"label\" conv: ... sets the layers inside one element")])
            raise CompileError([Diagnostic.error(
                inputs[0].span, "a block takes its input from where it is used",
                "move 'input' into the network")])
        return ast.BlockDef(str(name), params or (), body.items, self.span(meta), self.tspan(name), reads or ())

    @v_args(meta=True)
    def network_def(self, meta, children):
        name, params, body = children
        body = self.plain(body)
        inputs = [c for c in body.items if isinstance(c, ast.InputDecl)]
        outputs = [c for c in body.items if isinstance(c, ast.Outputs)]
        chains = tuple(c for c in body.items if isinstance(c, ast.Chain))
        inits = [c for c in body.items if isinstance(c, ast.Init)]
        if len(inits) > 1:
            raise CompileError([Diagnostic.error(inits[1].span, "a second 'init' section",
                                                 "write every rule in one init { ... }")])
        if len(inputs) > 1:
            raise CompileError([Diagnostic.error(inputs[1].span, "a second 'input' line",
                                                 "a network has one input; remove this line")])
        if len(outputs) > 1:
            raise CompileError([Diagnostic.error(outputs[1].span, "a second 'outputs' line",
                                                 "name every output in one outputs(...)")])
        return ast.NetworkDef(str(name), params or (), inputs[0] if inputs else None, chains,
                              self.span(meta), self.tspan(name), outputs[0] if outputs else None,
                              init=inits[0] if inits else None)

    @v_args(meta=True)
    def init_decl(self, meta, children):
        return ast.Init(tuple(c for c in children if isinstance(c, ast.InitRule)), self.span(meta))

    @v_args(meta=True)
    def init_rule(self, meta, children):
        *targets, condition, args = children
        return ast.InitRule(tuple(targets), args or (), self.span(meta), condition)

    @v_args(meta=True)
    def init_target(self, meta, children):
        first, kind = (*children, None)[:2]
        if isinstance(first, ast.Str):
            return ast.InitTarget(str(kind) if kind is not None else None, first.value, self.span(meta))
        return ast.InitTarget(str(first), None, self.span(meta))

    @v_args(meta=True)
    def outputs_decl(self, meta, children):
        return ast.Outputs(tuple(children), self.span(meta))

    @v_args(meta=True)
    def output(self, meta, children):
        key, element = children
        return ast.Output(str(key), str(element if element is not None else key), self.span(meta))

    @v_args(meta=True)
    def variant_def(self, meta, children):
        name, family, args = children
        return ast.VariantDef(str(name), str(family), args or (), self.span(meta), self.tspan(name),
                              self.tspan(family))

    @v_args(meta=True)
    def start(self, meta, children):
        return ast.Program(
            tuple(c for c in children if isinstance(c, ast.LetDef)),
            tuple(c for c in children if isinstance(c, ast.BlockDef)),
            tuple(c for c in children if isinstance(c, ast.NetworkDef)),
            self.span(meta),
            defs=tuple(c for c in children if isinstance(c, ast.DefDef)),
            variants=tuple(c for c in children if isinstance(c, ast.VariantDef)),
            imports=tuple(c for c in children if isinstance(c, ast.ImportDef)),
        )

    @v_args(meta=True)
    def import_def(self, meta, children):
        module, *names = children
        if isinstance(module, ast.Str):
            text, quoted, where = module.value, True, module.span
        else:
            text, quoted, where = str(module), False, self.tspan(module)
        return ast.ImportDef(text, quoted, tuple((str(n), self.tspan(n)) for n in names), self.span(meta), where)


class _Body:
    def __init__(self, items, span):
        self.items = items
        self.span = span


class _From:
    """`from(name) chain`, a line of a body: a branch that reads `name`."""

    def __init__(self, source: str, chain, span: Span):
        self.source, self.chain, self.span = source, chain, span


_FROM_MESSAGE = "from(...) starts a branch of a concat, an add or a mul"
_FROM_HINT = "put the line in add { ... }, mul { ... } or concat { ... }, one branch a line"


def _branches(items) -> tuple[tuple, tuple]:
    """A concat's, add's or mul's lines: the branches, and what each reads (() where every
    branch reads the input they share)."""
    branches = tuple(c.chain if isinstance(c, _From) else c for c in items)
    sources = tuple(c.source if isinstance(c, _From) else None for c in items)
    return branches, sources if any(s is not None for s in sources) else ()


_NETWORK_ONLY = (ast.InputDecl, ast.Outputs, ast.Init)  # lines of a network's body alone


def _misplaced(node) -> str:
    word = {ast.Outputs: "outputs", ast.Init: "init"}.get(type(node), "input")
    return f"'{word}' belongs in a network body"


def lower(tree: Tree, source: SourceFile, parse_expr=None) -> ast.Program:
    """The program of a parse tree; `parse_expr` parses the `{expr}` parts of quoted labels."""
    try:
        program = _Lower(source, parse_expr).transform(tree)
    except VisitError as exc:  # Lark wraps what a transformer method raises
        if isinstance(exc.orig_exc, CompileError):
            raise exc.orig_exc from None
        raise
    if isinstance(program, Tree):  # an empty file
        program = ast.Program((), (), (), source.whole)
    return program
