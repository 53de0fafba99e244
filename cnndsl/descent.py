"""The parser's fast path: a recursive-descent reader of well-formed files.

`parse.py` asks `read(source)` first. It reads the grammar of `grammar/cnn.lark` with the
same lexer rules, the same post-lexer (`parse._Continuation`: which newlines continue a
line) and the same spans as Lark's LALR parser with `lower.py`, straight into `ast`
nodes, some five times faster: no parse tree is built and walked again. It reads only
what it is sure of. At anything else (a syntax error, a limit, a number too large, a
misplaced `input`, a backslash or a carriage return, any construct whose span Lark would
place otherwise) it returns None, and `parse.py` parses the file with Lark, which gives
the diagnostics. So the grammar file stays the definition of the language and the one
source of every syntax error; `tests/test_descent.py` checks that both read every spec
alike, node for node and span for span.
"""

from __future__ import annotations

import re
import string
from itertools import accumulate, compress, count, repeat
from operator import attrgetter, itemgetter, sub

from . import ast
from .source import SourceFile, Span
from .text import label_pieces

MAX_DEPTH = 120  # lower.MAX_DEPTH: deeper trees are refused (by the Lark path)
MAX_DIGITS = 18  # lower.MAX_DIGITS
MAX_TOKENS = 20_000  # parse.MAX_TOKENS
MAX_NESTING = 48  # parse.MAX_NESTING
# A comment, then a continuation, is the longest run of matches that are blanks to Lark:
# this many matches hold MAX_TOKENS tokens at least.
_MAX_MATCHES = 3 * MAX_TOKENS + 2

# Lark's basic lexer tries the terminals in this order (priority, then width): CONT (line
# breaks before `->`), SHAPE, FLOAT, NAME (a NAME equal to a keyword is that keyword), INT,
# STRING, COMMENT, NL, COMPARE, the punctuation; the first that matches wins. The
# blanks between tokens (Lark's ignored WS) are taken as the start of the next token's
# match; END takes those at the end of the text. The pattern matches the same texts with
# the alternatives in another order, the commonest first: NAME and the punctuation begin
# with characters no other begins with, once the punctuation leaves `==` to COMPARE and
# `.5` to FLOAT; a number's digits are read once, then what makes it a SHAPE or a FLOAT;
# CONT and NL match the same text (a CONT is the one before `->`). BAD takes a character
# that begins no token, so that the matches cover the text. The pattern has no group:
# `findall` gives the matches' texts alone, and `_lex` tells each token's terminal by its
# text (`_KIND`) or else by its first character (`_CLASS`), which no two terminals share
# but those `_numbers` and `_newlines` tell apart.
_TOKEN = re.compile(r"""[\t \f]*+(?:
 [A-Za-z_][A-Za-z0-9_]*                                            # NAME
|->|//|\*\*|[,(){}:*?\[\]+\-/%]|=(?!=)|\.(?!\d)                       # the punctuation
|\d+(?:(?:x\d+)+|[eE][-+]?\d+|\.\d*(?:[eE][-+]?\d+)?)?|\.\d+(?:[eE][-+]?\d+)?   # SHAPE, FLOAT, INT
|(?:\n[\t \f]*(?:\#[^\n]*)?)+                                           # NL, CONT
|"[^"\\\n]*"                                                       # STRING
|\#[^\n]*                                                          # COMMENT
|==|!=|<=|>=|<|>                                                   # COMPARE
|\Z                                                                # END
|[\s\S]                                                            # BAD
)""", re.VERBOSE)
_KEYWORDS = frozenset({"from", "import", "let", "def", "block", "network", "outputs", "x", "input", "for",
                       "concat", "split", "residual", "gate", "side", "shortcut", "if", "else", "or", "and",
                       "not", "true", "false", "init", "add", "mul", "reads"})
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())
_PUNCT = ("->", "//", "**", *",=(){}:*?[]+-/%.")  # the punctuation
_VALUE = attrgetter("value")  # an argument's value
# The tokens whose text says their kind: a keyword's or a punctuation mark's kind is its
# text; `"` or `!` alone is BAD (a string or a `!=` that is not one).
_KIND = {**{text: text for text in (*_KEYWORDS, *_PUNCT)}, **dict.fromkeys(("==", "!=", "<=", ">=", "<", ">"), "COMPARE"),
         '"': "BAD", "!": "BAD"}
# The kind of any other token, by its first character: a number's (an INT, or a FLOAT that
# starts with `.`) and a line break's (a NL) are refined by `_numbers` and `_newlines`.
_CLASS = {**dict.fromkeys(string.ascii_letters + "_", "NAME"), **dict.fromkeys(string.digits, "INT"), ".": "FLOAT",
          '"': "STRING", "#": "COMMENT", "\n": "NL"}
_FIRST = itemgetter(0)
_INT = frozenset({"INT"})
_NEWLINE_RULE = frozenset({"NL", "def", "COMMENT", *_OPEN, *_CLOSE})  # the tokens _newlines looks at
_NETWORK_ONLY = (ast.InputDecl, ast.Outputs, ast.Init)  # lines of a network's body alone


class _Decline(Exception):
    """Not read here: Lark reads the file (and reports what is wrong with it)."""


class _Tokens:
    """A file's tokens, as lists side by side: each token's kind, its text, and where its
    span starts (line, column) and ends (end line, end column); lists made in C (`_lex`
    makes them all by `map`), indexed by the token's number."""

    __slots__ = ("kinds", "texts", "lines", "columns", "end_lines", "end_columns")

    def __init__(self, kinds: list[str], texts: list[str], lines: list[int], columns: list[int],
                 end_lines: list[int], end_columns: list[int]):
        self.kinds, self.texts, self.lines, self.columns = kinds, texts, lines, columns
        self.end_lines, self.end_columns = end_lines, end_columns


def _lex(source: SourceFile, start: int = 0, end: int | None = None, opened: list | None = None) -> _Tokens:
    """The tokens the parser sees in `source.text[start:end]`: Lark's lexer, then the
    post-lexer's newline rule. One `findall` matches them all; each token's text, kind
    and place are then read off the matches' texts by `map`, in C. A token ends where the
    matches' lengths add up to; its line is the first line plus the line breaks in the
    tokens before it, its end column its end less the offset of its line's start, its
    column that less its length (but for a NL or CONT, which may span lines)."""
    text = source.text
    end = len(text) if end is None else end
    matches = _TOKEN.findall(text, start, end)
    if len(matches) >= _MAX_MATCHES:
        raise _Decline  # MAX_TOKENS tokens at least
    del matches[-1]  # END: nothing, at the end of the text
    if matches and not matches[-1].strip(" \t\f"):
        del matches[-1]  # END too: the blanks before it (a match of blanks alone is END)
    texts = list(map(str.lstrip, matches, repeat(" \t\f")))
    kinds = list(map(_KIND.get, texts, map(_CLASS.get, map(_FIRST, texts), repeat("BAD"))))
    if "BAD" in kinds:
        raise _Decline  # a character that begins no token
    _numbers(kinds, texts)
    breaks: list[int] = []  # where the line breaks are: NL and CONT tokens
    kept = _newlines(kinds, [] if opened is None else opened, breaks)
    if len(kinds) >= MAX_TOKENS and len(kinds) - kinds.count("CONT") - kinds.count("COMMENT") >= MAX_TOKENS:
        raise _Decline
    ends = list(accumulate(map(len, matches), initial=start))
    del ends[0]
    steps = [0] * len(kinds)  # the line breaks in each token: only NL and CONT hold any
    for at in breaks:
        steps[at] = texts[at].count("\n")
    lines = list(accumulate(steps, initial=source.position(start)[0] if start else 1))
    end_lines = lines[1:]  # a token ends on the line the next one starts on
    del lines[-1]
    origins = list(source.origins)  # origins[line]: the offset just before its column 1 (a list's
    # __getitem__ is a plain method, a tuple's a slot wrapper that `map` calls at twice the cost)
    end_columns = list(map(sub, ends, map(origins.__getitem__, end_lines)))
    columns = list(map(sub, end_columns, map(len, texts)))  # a token on one line; a break's below
    for at in breaks:
        columns[at] = ends[at] - len(texts[at]) - origins[lines[at]]
    places = (lines, columns, end_lines, end_columns)
    if kept is None:
        return _Tokens(kinds, texts, *places)
    return _Tokens(*(list(compress(column, kept)) for column in (kinds, texts, *places)))


def _numbers(kinds: list[str], texts: list[str]) -> None:
    """A number is an INT, a SHAPE (`3x32x32`) or a FLOAT: its first character made it an
    INT (a digit) or a FLOAT (`.5`); those of other digits than a plain INT's are told here."""
    for at in compress(count(), map(_INT.__contains__, kinds)):
        number = texts[at]
        if not number.isdigit():
            kinds[at] = "SHAPE" if "x" in number else "FLOAT"


def _newlines(kinds: list[str], opened: list, breaks: list[int]) -> list[bool] | None:
    """`parse._Continuation`, on the tokens' kinds: a newline inside the brackets of an
    expression, first, or after `->` or another newline, does not end a line; brackets
    nest at most MAX_NESTING deep. `opened` holds, per open bracket, whether it holds an
    expression. Which tokens stay: None where all do. A line break before `->` is a CONT
    (Lark's lexer drops it), the others NL; each one's place goes to `breaks`. Newlines,
    continuations and comments (blanks to Lark) are dropped. The lexer never yields two
    newlines in a row (were it to, the second would be dropped either way), nor a newline
    after a continuation (one comes before `->`), and a comment only before a newline or a
    continuation, so the token kept before a newline is the one before it, or before its
    comment. The brackets, the commonest of these tokens, are looked at first."""
    kept = None
    in_def = False  # inside a top-level `def`, every bracket holds an expression
    for at in compress(count(), map(_NEWLINE_RULE.__contains__, kinds)):
        kind = kinds[at]
        if kind in _CLOSE:
            if opened:
                opened.pop()
        elif kind in _OPEN:
            if len(opened) >= MAX_NESTING:
                raise _Decline
            opened.append(kind == "(" or in_def or (kind == "[" and bool(opened) and opened[-1]))
        elif kind == "NL":
            breaks.append(at)
            if _blank_break(kinds, at, opened):
                kept = kept or [True] * len(kinds)
                kept[at] = False
            elif not opened:
                in_def = False
        elif kind == "def":
            if not opened:
                in_def = True
        else:  # a comment
            kept = kept or [True] * len(kinds)
            kept[at] = False
    return kept


def _blank_break(kinds: list[str], at: int, opened: list) -> bool:
    """Whether the line break at `at` is a blank to Lark: a CONT (one before `->`, relabelled
    here), or a NL inside an expression's brackets, first, or after `->` or another newline."""
    if at + 1 < len(kinds) and kinds[at + 1] == "->":
        kinds[at] = "CONT"
        return True
    return bool(opened and opened[-1]) or _continued(kinds, at)


def _continued(kinds: list[str], at: int) -> bool:
    """Whether the newline at `at` comes first, or after `->` or another newline (past the
    comment that may end its line)."""
    before = at - 2 if at and kinds[at - 1] == "COMMENT" else at - 1
    return before < 0 or kinds[before] in ("->", "NL")


class _Reader:
    """One file's tokens to its `ast.Program`. Each method reads one rule of the grammar
    from `self.at` on; a node's span runs from the first to the last token of its rule."""

    def __init__(self, source: SourceFile, tokens: _Tokens):
        self.source, self.path = source, source.path
        end_line, end_column = (tokens.end_lines[-1], tokens.end_columns[-1]) if tokens.kinds else (0, 0)
        # the look-ahead may look past the end: three more tokens, where the last one ends
        # (added to the lists themselves, which are the reader's)
        self.kinds, self.texts = tokens.kinds, tokens.texts
        self.lines, self.end_lines = tokens.lines, tokens.end_lines
        self.columns, self.end_columns = tokens.columns, tokens.end_columns
        self.kinds += ["EOF"] * 3
        self.texts += [""] * 3
        self.lines += [end_line] * 3
        self.end_lines += [end_line] * 3
        self.columns += [end_column] * 3
        self.end_columns += [end_column] * 3
        self.at = 0
        self.depth: dict[int, int] = {}
        self.nesting = 0  # rules being read, one inside the other (right recursion)

    # -- helpers --------------------------------------------------------------------
    def peek(self, ahead: int = 0) -> str:
        return self.kinds[self.at + ahead]

    def take(self, kind: str) -> int:
        """The next token, which must be a `kind`: its number."""
        at = self.at
        if self.kinds[at] != kind:
            raise _Decline
        self.at = at + 1
        return at

    def word(self, kind: str) -> str:
        """The next token, which must be a `kind`: its text."""
        return self.texts[self.take(kind)]

    def skip(self, kind: str) -> bool:
        if self.kinds[self.at] == kind:
            self.at += 1
            return True
        return False

    def span(self, first: int) -> Span:
        """From the start of token `first` to the end of the last token read."""
        last = self.at - 1
        return Span(self.path, self.lines[first], self.columns[first], self.end_lines[last], self.end_columns[last])

    def tspan(self, token: int) -> Span:
        return Span(self.path, self.lines[token], self.columns[token], self.end_lines[token], self.end_columns[token])

    def offset(self, token: int) -> int:
        """Where a token starts in the file."""
        return self.source.origins[self.lines[token]] + self.columns[token]

    def made(self, node, *children):
        """`node`, its depth (1 + its deepest child's; a child not made here, or None,
        counts 0) noted: deeper than MAX_DEPTH declines. (A plain loop: a node has a child
        or two, for which `max` over `map`s costs twice as much.)"""
        get = self.depth.get
        deepest = 0
        for child in children:
            depth = get(id(child), 0)
            if depth > deepest:
                deepest = depth
        if deepest >= MAX_DEPTH:
            raise _Decline
        self.depth[id(node)] = deepest + 1
        return node

    def enter(self) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise _Decline

    # -- definitions ------------------------------------------------------------------
    def program(self) -> ast.Program:
        items: list = []
        while True:
            items.append(self.item())
            if not self.skip("NL") or self.peek() == "EOF":
                break
        span = self.span(0)  # to the last token, the newline after the last item included
        self.take("EOF")

        def of(kind):
            return tuple(i for i in items if isinstance(i, kind))

        return ast.Program(of(ast.LetDef), of(ast.BlockDef), of(ast.NetworkDef), span, defs=of(ast.DefDef),
                           variants=of(ast.VariantDef), imports=of(ast.ImportDef))

    def item(self):
        kind = self.peek()
        if kind == "network":
            return self.variant_def() if self.peek(2) == "=" else self.network_def()
        reader = _ITEMS.get(kind)
        if reader is None:
            raise _Decline
        return reader(self)

    def import_def(self) -> ast.ImportDef:
        first = self.at
        self.take("from")
        module = self.at
        if self.kinds[module] not in ("NAME", "STRING"):
            raise _Decline
        self.at += 1
        self.take("import")
        names = [self.take("NAME")]
        while self.skip(","):
            names.append(self.take("NAME"))
        quoted = self.kinds[module] == "STRING"
        text = self.texts[module]
        return ast.ImportDef(text[1:-1] if quoted else text, quoted,
                             tuple((self.texts[n], self.tspan(n)) for n in names), self.span(first),
                             self.tspan(module))

    def let_def(self) -> ast.LetDef:
        first = self.at
        self.take("let")
        name = self.take("NAME")
        self.take("=")
        chain = self.chain()
        return ast.LetDef(self.texts[name], chain, self.span(first))

    def def_def(self) -> ast.DefDef:
        first = self.at
        self.take("def")
        name = self.take("NAME")
        params = None
        if self.skip("("):
            params = self.params(")") or ()
            self.take(")")
        self.take("=")
        body = self.expr()
        return ast.DefDef(self.texts[name], params, body, self.span(first), self.tspan(name))

    def params(self, closer: str) -> tuple | None:
        """`[params]` before `closer`: None where there are none."""
        if self.peek() == closer:
            return None
        params = [self.param()]
        while self.skip(","):
            if self.peek() == closer:
                break
            params.append(self.param())
        return tuple(params)

    def param(self) -> ast.Param:
        first = self.at
        name = self.word("NAME")
        default = self.expr() if self.skip("=") else None
        return ast.Param(name, default, self.span(first))

    def header(self, keyword: str):
        first = self.at
        self.take(keyword)
        name = self.take("NAME")
        self.take("(")
        params = self.params(")")
        self.take(")")
        reads = self.reads() if keyword == "block" and self.peek() == "reads" else ()
        if any("." in r for r in reads) or len(set(reads)) != len(reads):
            raise _Decline  # Lark's path says what is wrong
        return first, name, params or (), self.body(), reads

    def block_def(self) -> ast.BlockDef:
        first, name, params, items, reads = self.header("block")
        if any(isinstance(c, _NETWORK_ONLY) for c in items):
            raise _Decline
        return ast.BlockDef(self.texts[name], params, items, self.span(first), self.tspan(name), reads)

    def network_def(self) -> ast.NetworkDef:
        first, name, params, items, _ = self.header("network")
        inputs = [c for c in items if isinstance(c, ast.InputDecl)]
        outputs = [c for c in items if isinstance(c, ast.Outputs)]
        inits = [c for c in items if isinstance(c, ast.Init)]
        if len(inputs) > 1 or len(outputs) > 1 or len(inits) > 1:
            raise _Decline
        chains = tuple(c for c in items if isinstance(c, ast.Chain))
        return ast.NetworkDef(self.texts[name], params, inputs[0] if inputs else None, chains, self.span(first),
                              self.tspan(name), outputs[0] if outputs else None, init=inits[0] if inits else None)

    def variant_def(self) -> ast.VariantDef:
        first = self.at
        self.take("network")
        name = self.take("NAME")
        self.take("=")
        family = self.take("NAME")
        args = self.call_args()
        return ast.VariantDef(self.texts[name], self.texts[family], args, self.span(first), self.tspan(name), self.tspan(family))

    # -- bodies -------------------------------------------------------------------------
    def body(self, branches: bool = False) -> tuple:
        """`{ statements }`: the statements (input lines, outputs lines and chains; with
        `branches`, a concat's lines, `from(name) chain` as (name, chain))."""
        self.take("{")
        self.skip("NL")
        items: list = []
        while not self.skip("}"):
            items.append(self.statement(branches))
            if not self.skip("NL") and self.peek() != "}":
                raise _Decline
        return tuple(items)

    def inner_body(self, branches: bool = False) -> tuple:
        """A body inside a chain, which may hold neither an input line nor outputs."""
        items = self.body(branches)
        if any(isinstance(c, _NETWORK_ONLY) for c in items):
            raise _Decline
        return items

    def statement(self, branches: bool = False):
        kind = self.peek()
        if kind == "from":
            if not branches:  # Lark reports the misplaced from(...)
                raise _Decline
            self.at += 1
            self.take("(")
            source = self.tap()
            self.take(")")
            return source, self.chain()
        if kind == "input":
            return self.input_decl()
        if kind == "outputs":
            return self.outputs_decl()
        if kind == "init":
            return self.init_decl()
        return self.chain()

    def init_decl(self) -> ast.Init:
        """`init { rules }`: a network's weight initialisation, one rule a line."""
        first = self.at
        self.take("init")
        self.take("{")
        self.skip("NL")
        rules: list = []
        while not self.skip("}"):
            rules.append(self.init_rule())
            if not self.skip("NL") and self.peek() != "}":
                raise _Decline
        return ast.Init(tuple(rules), self.span(first))

    def init_rule(self) -> ast.InitRule:
        first = self.at
        targets = [self.init_target()]
        while self.skip(","):
            targets.append(self.init_target())
        condition = None
        if self.skip("?"):
            self.take("(")
            condition = self.expr()
            self.take(")")
        self.take(":")
        args = [self.arg()]
        while self.skip(","):
            if self.peek() in ("NL", "}"):
                break
            args.append(self.arg())
        return ast.InitRule(tuple(targets), tuple(args), self.span(first), condition)

    def init_target(self) -> ast.InitTarget:
        first = self.at
        if self.peek() == "NAME":
            return ast.InitTarget(self.word("NAME"), None, self.span(first))
        path = self.word("STRING")[1:-1]
        kind = self.word("NAME") if self.peek() == "NAME" else None
        return ast.InitTarget(kind, path, self.span(first))

    def input_decl(self) -> ast.InputDecl:
        first = self.at
        self.take("input")
        if self.peek() == "SHAPE":
            dims = self.shape(self.take("SHAPE"))
        else:
            dims = [self.dim()]
            while self.skip("x"):
                dims.append(self.dim())
        return ast.InputDecl(tuple(dims), self.span(first))

    def shape(self, token: int) -> list:
        dims, offset = [], self.offset(token)
        for part in self.texts[token].split("x"):
            if len(part) > MAX_DIGITS:
                raise _Decline
            start = offset
            dims.append(ast.Num(int(part), self.source.span_at(start, start + len(part))))
            offset += len(part) + 1
        return dims

    def dim(self):
        if self.peek() in ("INT", "NAME"):
            return self.atom()
        return self.bracketed()

    def outputs_decl(self) -> ast.Outputs:
        first = self.at
        self.take("outputs")
        self.take("(")
        items = [self.output()]
        while self.skip(","):
            if self.peek() == ")":
                break
            items.append(self.output())
        self.take(")")
        return ast.Outputs(tuple(items), self.span(first))

    def output(self) -> ast.Output:
        first = self.at
        key = self.word("NAME")
        element = self.word("NAME") if self.skip("=") else key
        return ast.Output(key, element, self.span(first))

    # -- chains -----------------------------------------------------------------------
    def chain(self) -> ast.Chain:
        first = self.at
        elements = [self.element()]
        while self.skip("->"):
            elements.append(self.element())
        span = elements[0].span if len(elements) == 1 else self.span(first)  # one element: its span
        return self.made(ast.Chain(tuple(elements), span), *elements)

    def element(self) -> ast.Element:
        first = self.at
        if self.peek(1) == ":" and self.peek() in ("NAME", "STRING"):
            label = self.at
            self.at += 2
            node = self.postfix()
            if self.kinds[label] == "STRING":
                return self.quoted(label, node, self.span(first))
            return self.made(ast.Element(self.texts[label], node, self.span(first), self.tspan(label)), node)
        node = self.postfix()
        return self.made(ast.Element(None, node, node.span), node)  # its node's span, from first on

    def quoted(self, label: int, node, span: Span) -> ast.Element:
        """`"block1-0": X`, or `"denselayer{i + 1}": X` with its `{expr}` parts read."""
        text, where = self.texts[label][1:-1], self.tspan(label)
        if "{" not in text and "}" not in text:
            return self.made(ast.Element(text, node, span, where, quoted=True), node)
        if where.line < 2:
            raise _Decline  # Lark's path places these parts' spans otherwise
        parts = label_pieces(text)
        if parts is None:
            raise _Decline
        start = self.offset(label) + 1
        pieces = [p if isinstance(p, str) else self.label_expr(start + p[0], start + p[1]) for p in parts]
        exprs = [p for p in pieces if not isinstance(p, str)]
        return self.made(ast.Element(text, node, span, where, quoted=True,
                                     template=tuple(p for p in pieces if p != "")), node, *exprs)

    def label_expr(self, start: int, end: int):
        """The `{expr}` of a label, `text[start:end]`, read where it stands in the file, as
        inside brackets (Lark's path reads it apart: its depth does not count toward the label's)."""
        reader = _Reader(self.source, _lex(self.source, start, end, [True]))
        value = reader.expr()
        reader.take("EOF")
        return value

    def postfix(self):
        """A primary, then any `*count [for i]` and `?` / `?name` / `?(condition)`."""
        first = self.at
        node = self.primary()
        kinds = self.kinds
        while True:
            kind = kinds[self.at]
            if kind == "*":
                self.at += 1
                count = self.count()
                if self.skip("for"):
                    index = self.take("NAME")
                    node = self.made(ast.Repeat(node, count, self.span(first), self.texts[index], self.tspan(index)),
                                     node, count)
                else:
                    node = self.made(ast.Repeat(node, count, self.span(first)), node, count)
            elif kind == "?":
                self.at += 1
                node = self.optional(node, first)
            else:
                return node

    def optional(self, node, first: int):
        if self.peek() == "NAME":
            switch = self.word("NAME")
            return self.made(ast.Optional(node, self.span(first), switch), node)
        if self.skip("("):
            condition = self.expr()
            self.take(")")
            return self.made(ast.Optional(node, self.span(first), condition=condition), node, condition)
        return self.made(ast.Optional(node, self.span(first), None), node)

    def count(self):
        kind = self.peek()
        if kind == "NAME" and self.peek(1) == "(":
            return self.fcall()
        if kind in ("INT", "NAME"):
            return self.atom()
        return self.bracketed()

    def primary(self):
        kind = self.peek()
        if kind == "NAME":
            return self.call_or_ref()
        reader = _PRIMARIES.get(kind)
        if reader is None:
            raise _Decline
        return reader(self)

    def call_or_ref(self):
        first = self.at
        name = self.take("NAME")
        if self.peek() != "(":
            return ast.Ref(self.texts[name], self.span(first))
        args = self.call_args()
        reads = self.reads() if self.peek() == "reads" else ()
        return self.made(ast.Call(self.texts[name], args, self.span(first), self.tspan(name), reads),
                         *map(_VALUE, args))

    def reads(self) -> tuple[str, ...]:
        """`reads(low)`, `reads(backbone.4)`: a block's other inputs."""
        self.take("reads")
        self.take("(")
        taps = [self.tap()]
        while self.skip(","):
            taps.append(self.tap())
        self.take(")")
        return tuple(taps)

    def group(self) -> ast.Group:
        first = self.at
        self.take("[")
        self.skip("NL")
        chains = [self.chain()]
        while self.skip("NL"):
            if self.peek() == "]":
                break
            chains.append(self.chain())
        self.take("]")
        return self.made(ast.Group(tuple(chains), self.span(first)), *chains)

    def concat(self) -> ast.Concat:
        first = self.at
        self.take("concat")
        skips: list[str] = []
        if self.skip("("):
            skips.append(self.word("NAME"))
            while self.skip(","):
                skips.append(self.word("NAME"))
            self.take(")")
        if self.peek() != "{":
            return ast.Concat((), self.span(first), tuple(skips))
        items, sources = self.branches()
        return self.made(ast.Concat(items, self.span(first), tuple(skips), sources=sources), *items)

    def merge(self) -> ast.Concat:
        """`add { ... }` or `mul { ... }`: the branches summed or multiplied."""
        first = self.at
        op = self.kinds[self.at]
        self.at += 1
        items, sources = self.branches()
        return self.made(ast.Concat(items, self.span(first), op=op, sources=sources), *items)

    def branches(self) -> tuple[tuple, tuple]:
        """A body of branches, each line a chain or `from(name) chain`: the chains and, where
        some line has one, each line's source."""
        items = self.inner_body(branches=True)
        chains = tuple(c[1] if isinstance(c, tuple) else c for c in items)
        sources = tuple(c[0] if isinstance(c, tuple) else None for c in items)
        return chains, sources if any(x is not None for x in sources) else ()

    def split(self) -> ast.Concat:
        first = self.at
        self.take("split")
        items = self.inner_body()
        return self.made(ast.Concat(items, self.span(first), split=True), *items)

    def residual(self) -> ast.Residual:
        first = self.at
        self.take("residual")
        if self.peek() == "shortcut":
            shortcut = self.shortcut(first=True)
            items = self.inner_body()
        else:
            items = self.inner_body()
            shortcut = self.shortcut() if self.peek() == "shortcut" else None
        return self.made(ast.Residual(items, shortcut, self.span(first)), *items)

    def shortcut(self, first: bool = False) -> ast.Shortcut:
        start = self.at
        self.take("shortcut")
        label = None
        if self.peek() == "NAME" and self.peek(1) == ":":
            label = self.word("NAME")
            self.at += 1
        if self.peek() != "NAME":
            raise _Decline
        node = self.call_or_ref()
        return ast.Shortcut(label, node, self.span(start), first)

    def gate(self) -> ast.Gate:
        first = self.at
        self.take("gate")
        items = self.inner_body()
        return self.made(ast.Gate(items, self.span(first)), *items)

    def side(self) -> ast.Side:
        first = self.at
        self.take("side")
        source = None
        if self.skip("("):
            source = self.tap()
            self.take(")")
        self.enter()
        node = self.primary()
        self.nesting -= 1
        return self.made(ast.Side(node, self.span(first), source), node)

    def tap(self) -> str:
        """`backbone.layer3`, `backbone.4` (`.4` lexes as a number): the path of a member."""
        parts = [self.word("NAME")]
        while True:
            if self.skip("."):
                parts.append(self.word("NAME"))
            elif self.peek() == "FLOAT":
                text = self.word("FLOAT")
                if not (text.startswith(".") and text[1:].isdigit()):
                    raise _Decline
                parts.append(text[1:])
            else:
                return ".".join(parts)

    def call_args(self) -> tuple:
        """`( [args] )`: the arguments, () where there are none."""
        self.take("(")
        args: list = []
        kinds = self.kinds
        while kinds[self.at] != ")":
            args.append(self.arg())
            if kinds[self.at] != ",":
                break
            self.at += 1
        if kinds[self.at] != ")":
            raise _Decline
        self.at += 1
        return tuple(args)

    def arg(self) -> ast.Arg:
        first = self.at
        kinds = self.kinds
        at = first
        if kinds[first + 1] == "=" and kinds[first] in ("NAME", "init"):
            name = self.texts[first]
            self.at = at = first + 2
        else:
            name = None
        value = self.atom() if kinds[at + 1] in _AFTER_ATOM and kinds[at] in _ATOMS else self.expr()  # as in items
        return ast.Arg(name, value, value.span if self.at == first + 1 else self.span(first))  # one token: its span

    # -- expressions ------------------------------------------------------------------
    def expr(self):
        """`a if c else b`, right-associative, over `or`."""
        first = self.at
        kinds = self.kinds
        if kinds[first + 1] in _AFTER_ATOM and kinds[first] in _ATOMS:
            return self.atom()  # a name or a literal alone (`64`, `planes`): what the rules below give
        then = self.binary(0)
        if kinds[self.at] != "if":
            return then
        self.at += 1
        test = self.binary(0)
        self.take("else")
        self.enter()
        orelse = self.expr()
        self.nesting -= 1
        return self.made(ast.IfElse(then, test, orelse, self.span(first)), then, test, orelse)

    def binary(self, least: int = 0):
        """The operators that bind at least as tightly as level `least`: `or` (0), `and`
        (1), `not` (2, a prefix), a comparison (3: one, not chained), `+ -` (4), `* / // %`
        (5); read by precedence climbing, the binary ones left-associative."""
        first = self.at
        kinds = self.kinds
        if kinds[first] == "not" and least <= 2:
            self.at += 1
            self.enter()
            operand = self.binary(2)
            self.nesting -= 1
            left = self.made(ast.Not(operand, self.span(first)), operand)
        else:
            left = self.unary()
        while True:
            level = _LEVEL.get(kinds[self.at], -1)
            if level < least:
                return left
            op = self.texts[self.at]
            self.at += 1
            right = self.binary(level + 1)
            if level == 3 and kinds[self.at] == "COMPARE":
                raise _Decline
            left = self.made(ast.BinOp(op, left, right, self.span(first)), left, right)

    def unary(self):
        first = self.at
        kinds = self.kinds
        if kinds[first] == "-":
            self.at += 1
            self.enter()
            operand = self.unary()
            self.nesting -= 1
            return self.made(ast.Neg(operand, self.span(first)), operand)
        base = self.postfix_expr()
        if kinds[self.at] != "**":
            return base
        self.at += 1
        self.enter()
        power = self.unary()
        self.nesting -= 1
        return self.made(ast.BinOp("**", base, power, self.span(first)), base, power)

    def postfix_expr(self):
        first = self.at
        kinds = self.kinds
        node = self.fcall() if kinds[first] == "NAME" and kinds[first + 1] == "(" else self.atom()
        while kinds[self.at] == "[":
            self.at += 1
            at = self.expr()
            self.take("]")
            node = self.made(ast.Index(node, at, self.span(first)), node, at)
        return node

    def fcall(self) -> ast.FuncCall:
        first = self.at
        name = self.take("NAME")
        args = self.call_args()
        return self.made(ast.FuncCall(self.texts[name], args, self.span(first), self.tspan(name)), *map(_VALUE, args))

    def atom(self):
        """A name, a literal, `input` or `input.attr`, a list, a bracketed expression or a tuple."""
        at = self.at
        kind = self.kinds[at]
        if kind in _ATOMS:  # a literal or a name: one token
            text = self.texts[at]
            span = Span(self.path, self.lines[at], self.columns[at], self.end_lines[at], self.end_columns[at])
            self.at = at + 1
            if kind == "NAME":
                return ast.Var(text, span)
            if kind == "INT":
                if len(text) > MAX_DIGITS:
                    raise _Decline
                return ast.Num(int(text), span)
            if kind == "FLOAT":
                value = float(text)
                if len(text) > 40 or value in (float("inf"), float("-inf")):
                    raise _Decline
                return ast.Num(value, span)
            if kind == "STRING":
                return ast.Str(text[1:-1], span)
            return ast.Bool(kind == "true", span)
        if kind == "input":
            return self.input_ref()
        if kind == "[":
            return self.list_expr()
        if kind == "(":
            return self.bracketed(tuples=True)
        raise _Decline

    def input_ref(self):
        first = self.at
        self.take("input")
        if not self.skip("."):
            return ast.Var("input", self.span(first))
        attr = self.word("NAME")
        return ast.InputAttr(attr, self.span(first))

    def list_expr(self) -> ast.ListExpr:
        first = self.at
        self.take("[")
        items = self.items("]")
        self.take("]")
        return self.made(ast.ListExpr(items, "list", self.span(first)), *items)

    def items(self, closer: str) -> tuple:
        values: list = []
        kinds = self.kinds
        while kinds[self.at] != closer:
            at = self.at  # a lone name or literal read at once, as `expr` would
            values.append(self.atom() if kinds[at + 1] in _AFTER_ATOM and kinds[at] in _ATOMS else self.expr())
            if kinds[self.at] != ",":
                break
            self.at += 1
        return tuple(values)

    def bracketed(self, tuples: bool = False):
        """`( expr )`, or with `tuples` also `(a, b)`. A bare literal in brackets is left to
        Lark's path: Lark places its parent's span at the literal, not the bracket."""
        first = self.at
        self.take("(")
        value = self.expr()
        if tuples and self.skip(","):
            rest = self.items(")")
            self.take(")")
            items = (value, *rest)
            return self.made(ast.ListExpr(items, "tuple", self.span(first)), *items)
        self.take(")")
        if isinstance(value, (ast.Num, ast.Str)) and self.at - first == 3:
            raise _Decline
        return value


# A lone atom: one of these tokens followed by one that no rule of an expression continues with
_ATOMS = frozenset({"NAME", "INT", "FLOAT", "STRING", "true", "false"})
_AFTER_ATOM = frozenset({",", ")", "]", "NL", "}", "->", "EOF"})
# The readers of a definition and of a primary (other than a call or a name), by the first token
_ITEMS = {"let": _Reader.let_def, "def": _Reader.def_def, "block": _Reader.block_def, "from": _Reader.import_def}
_PRIMARIES = {"[": _Reader.group, "concat": _Reader.concat, "split": _Reader.split, "residual": _Reader.residual,
              "gate": _Reader.gate, "side": _Reader.side, "add": _Reader.merge, "mul": _Reader.merge}
_LEVEL = {"or": 0, "and": 1, "COMPARE": 3, "+": 4, "-": 4, "*": 5, "/": 5, "//": 5, "%": 5}  # see `binary`


def read(source: SourceFile) -> ast.Program | None:
    """The program of a well-formed file, or None: Lark's path reads it instead."""
    text = source.text
    if "\\" in text or "\r" in text or not text or text.isspace():
        return None
    try:
        tokens = _lex(source)
        if not tokens.kinds:
            return None
        return _Reader(source, tokens).program()
    except (_Decline, RecursionError):
        return None


__all__ = ["read"]
