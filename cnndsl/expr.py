"""Symbolic values: the expressions the compiler carries from the spec to the code.

A layer argument written `planes * 4` in a block, the channels `in_channels + 32`
that flow out of a concat, the condition `stride != 1 or in_channels != planes * 4`
under which a projection shortcut is built: each is a small tree of `Const`, `Name`,
`Unary` and `Binary` nodes, with `Call` (a built-in function: `max(8, c // 2)`),
`Index` (`cfg[i]`), `Items` (a list or tuple `(a, b)`) and `Cond` (`a if c else b`). The passes build them (`passes/expand.py`), substitute a
block's arguments into them and fold constants (`passes/shapes.py`), and the code
generator reads the names they use and renders them as Python source with as few
brackets as the operators' precedence allows (`a - (b - c)` keeps its brackets,
`(a * b) * c` loses them).

Every node computes its source text, its precedence and the names it reads once, when
it is made, from those of its children: nothing here recurses, so a chain of thousands
of layers inside one block is as safe as a short one. Two expressions are equal when
they render the same.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Mapping


class Prec(IntEnum):
    """Python's operator precedence, loosest first, for the operators a value can hold."""

    COND = 1  # a if c else b
    OR = 2
    AND = 3
    NOT = 4  # not x
    COMPARE = 5  # == != < <= > >=
    SUM = 6  # + -
    PRODUCT = 7  # * / // %
    UNARY = 8  # -x
    POWER = 9  # a ** b
    POSTFIX = 10  # f(x), xs[i]
    ATOM = 11  # a name, a literal, a bracketed expression or list


def _or(a, b):
    return a or b


def _and(a, b):
    return a and b


# operator -> (precedence, Python function)
BINARY: dict[str, tuple[Prec, Callable]] = {
    "or": (Prec.OR, _or), "and": (Prec.AND, _and),
    "==": (Prec.COMPARE, operator.eq), "!=": (Prec.COMPARE, operator.ne),
    "<": (Prec.COMPARE, operator.lt), "<=": (Prec.COMPARE, operator.le),
    ">": (Prec.COMPARE, operator.gt), ">=": (Prec.COMPARE, operator.ge),
    "+": (Prec.SUM, operator.add), "-": (Prec.SUM, operator.sub),
    "*": (Prec.PRODUCT, operator.mul), "/": (Prec.PRODUCT, operator.truediv),
    "//": (Prec.PRODUCT, operator.floordiv), "%": (Prec.PRODUCT, operator.mod),
    "**": (Prec.POWER, operator.pow),
}
# operator -> (precedence, Python function)
UNARY: dict[str, tuple[Prec, Callable]] = {"-": (Prec.UNARY, operator.neg), "not": (Prec.NOT, operator.not_)}


def _min(*args):
    return min(args[0]) if len(args) == 1 else min(args)


def _max(*args):
    return max(args[0]) if len(args) == 1 else max(args)


def _sum_of(items):
    return sum(items)


@dataclass(frozen=True)
class Function:
    """A built-in function of the language: its Python spelling (`math.ceil` needs
    `import math` in the generated module), its implementation and how many arguments it takes."""

    source: str
    function: Callable
    least: int
    most: int
    module: str | None = None


# name -> Function: the functions an expression may call (and user `def`s besides)
FUNCTIONS: dict[str, Function] = {
    "min": Function("min", _min, 1, 64), "max": Function("max", _max, 1, 64),
    "ceil": Function("math.ceil", math.ceil, 1, 1, "math"),
    "floor": Function("math.floor", math.floor, 1, 1, "math"),
    "round": Function("round", round, 1, 2), "int": Function("int", int, 1, 1),
    "float": Function("float", float, 1, 1),
    "pow": Function("pow", pow, 2, 2), "log": Function("math.log", math.log, 1, 2, "math"),
    "len": Function("len", len, 1, 1), "abs": Function("abs", abs, 1, 1),
    "sum": Function("sum", _sum_of, 1, 1),
}


class ExprError(ValueError):
    """An expression that cannot be evaluated: a name without a value, a zero divisor."""


# Blocks are used many times with the same arguments (and the language server compiles
# on every keystroke): a substitution is computed once. Bounded, and cleared when full.
_SUBSTITUTED: dict = {}
_SUBSTITUTED_MAX = 8192


_NO_NAMES: frozenset[str] = frozenset()  # a constant's names: one set for them all (each set costs the collector)


def _union(names: frozenset[str], more: frozenset[str]) -> frozenset[str]:
    """The names of two operands, one operand's own set where the other reads none of
    its own (`cfg[k]`, `c if j == 0 else 4`); a new set only where both add names."""
    if not more or more is names or more <= names:
        return names
    return more if not names or names <= more else names | more


class Expr:
    """A node; subclasses set `text`, `precedence` and `names` in their constructor."""

    __slots__ = ("text", "precedence", "names")
    text: str
    precedence: Prec
    names: frozenset[str]

    children: tuple["Expr", ...] = ()

    def render(self) -> str:
        """Python source for the expression, with the fewest brackets."""
        return self.text

    def substitute(self, mapping: Mapping[str, "Expr"]) -> "Expr":
        """The expression with each name in `mapping` replaced, simplified by `binary`
        (which takes names for whole numbers)."""
        used = self.names & mapping.keys()
        if not used:
            return self
        key = (self, tuple(sorted((n, mapping[n]) for n in used)))  # equal by text: a pure function of both
        found = _SUBSTITUTED.get(key)
        if found is None:
            if len(_SUBSTITUTED) >= _SUBSTITUTED_MAX:
                _SUBSTITUTED.clear()
            found = _SUBSTITUTED[key] = _fold_tree(
                self, lambda leaf: mapping.get(leaf.name, leaf) if isinstance(leaf, Name) else leaf)
        return found

    def evaluate(self, env: Mapping[str, object] | None = None) -> object:
        """The value, reading each name from `env`, as Python would compute the source."""
        env = env or {}
        missing = self.names - env.keys()
        if missing:
            raise ExprError(f"no value for {', '.join(sorted(missing))}")
        return _evaluate_tree(self, env)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.text == self.text  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"

    def __str__(self) -> str:
        return self.text

    # Building: operators fold constants (`const(2) * 3` is `const(6)`).
    def __add__(self, other) -> "Expr":
        return binary("+", self, lift(other))

    def __sub__(self, other) -> "Expr":
        return binary("-", self, lift(other))

    def __mul__(self, other) -> "Expr":
        return binary("*", self, lift(other))

    def __floordiv__(self, other) -> "Expr":
        return binary("//", self, lift(other))

    def __truediv__(self, other) -> "Expr":
        return binary("/", self, lift(other))

    def __mod__(self, other) -> "Expr":
        return binary("%", self, lift(other))

    def __neg__(self) -> "Expr":
        return unary("-", self)


class Const(Expr):
    """A literal: an int, float, bool, string or None."""

    __slots__ = ("value",)

    def __init__(self, value: object):
        self.value = value
        self.text = literal(value)
        negative = isinstance(value, (int, float)) and not isinstance(value, bool) and self.text.startswith("-")
        self.precedence = Prec.UNARY if negative else Prec.ATOM
        self.names = _NO_NAMES


class Name(Expr):
    """A parameter of the enclosing block or network."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name
        self.text = name
        self.precedence = Prec.ATOM
        self.names = frozenset((name,))


class Unary(Expr):
    __slots__ = ("op", "operand", "children")

    def __init__(self, op: str, operand: Expr):
        if op not in UNARY:
            raise ValueError(f"unknown unary operator {op!r}")
        self.op, self.operand, self.children = op, operand, (operand,)
        prec = self.precedence = UNARY[op][0]
        inner = operand.text if operand.precedence >= prec else f"({operand.text})"
        self.text = f"{op} {inner}" if op.isalpha() else f"{op}{inner}"
        self.names = operand.names


class Binary(Expr):
    """`left op right`. Left-associative: the right operand is bracketed at equal precedence;
    comparisons bracket both (Python would chain `a != b != c`). `**` is right-associative
    and binds tighter than a unary minus on its left (`(-2) ** 2`), looser on its right (`2 ** -1`)."""

    __slots__ = ("op", "left", "right", "children")

    def __init__(self, op: str, left: Expr, right: Expr):
        try:
            self.precedence, left_least, right_least = _LAYOUT[op]
        except KeyError:
            raise ValueError(f"unknown binary operator {op!r}") from None
        self.op, self.left, self.right, self.children = op, left, right, (left, right)
        ltext = left.text if left.precedence >= left_least else f"({left.text})"
        rtext = right.text if right.precedence >= right_least else f"({right.text})"
        self.text = f"{ltext} {op} {rtext}"
        names, more = left.names, right.names
        # one operand's own set where the other adds nothing to it (`_union`, inline: a new
        # set only where both add names, `v + divisor / 2`)
        if not names:
            self.names = more
        elif not more or more is names or more <= names:
            self.names = names
        else:
            self.names = more if names <= more else names | more


def _layout(prec: Prec) -> tuple[Prec, int, int]:
    """An operator's precedence and the least precedence of a left and of a right operand
    written without brackets (see `Binary`)."""
    if prec == Prec.POWER:
        return prec, prec + 1, Prec.UNARY
    if prec == Prec.COMPARE:
        return prec, prec + 1, prec + 1
    return prec, prec, prec + 1


# operator -> its precedence, and the least precedence of each operand left bare
_LAYOUT = {op: _layout(prec) for op, (prec, _) in BINARY.items()}


class Call(Expr):
    """A built-in function of `FUNCTIONS` applied to its arguments: `max(8, c // 2)`."""

    __slots__ = ("function", "args", "children")

    def __init__(self, function: str, args: tuple[Expr, ...]):
        known = FUNCTIONS.get(function)
        if known is None:
            raise ValueError(f"unknown function {function!r}")
        args = tuple(args)
        self.function, self.args, self.children = function, args, args
        self.precedence = Prec.POSTFIX
        if len(args) == 1:  # nearly every call (`int(v)`, `len(cfg)`): its text and names directly
            only = args[0]
            self.text = f"{known.source}({only.text})"
            self.names = only.names
            return
        self.text = f"{known.source}({', '.join([a.text for a in args])})"
        names = _NO_NAMES
        for a in args:
            names = _union(names, a.names)
        self.names = names


class Index(Expr):
    """`base[index]`: an item of a list or tuple."""

    __slots__ = ("base", "index", "children")

    def __init__(self, base: Expr, index: Expr):
        self.base, self.index, self.children = base, index, (base, index)
        self.precedence = Prec.POSTFIX
        btext = base.text if base.precedence >= Prec.POSTFIX else f"({base.text})"
        self.text = f"{btext}[{index.text}]"
        names, more = base.names, index.names
        self.names = names if not more or more is names else _union(names, more)


class Items(Expr):
    """A list or tuple value with an item that reads a name, written as a tuple `(a, b * 2)`
    (a constant one is a `Const` of a tuple)."""

    __slots__ = ("items", "children")

    def __init__(self, items: tuple[Expr, ...]):
        self.items = self.children = tuple(items)
        self.precedence = Prec.ATOM
        inner = ", ".join(i.text for i in self.items)
        self.text = f"({inner},)" if len(self.items) == 1 else f"({inner})"
        names = _NO_NAMES
        for i in self.items:
            names = _union(names, i.names)
        self.names = names


class Cond(Expr):
    """`then if test else orelse`; only the branch the test picks is evaluated."""

    __slots__ = ("then", "test", "orelse", "children")

    def __init__(self, then: Expr, test: Expr, orelse: Expr):
        self.then, self.test, self.orelse = then, test, orelse
        self.children = (test, then, orelse)
        self.precedence = Prec.COND
        ttext = then.text if then.precedence > Prec.COND else f"({then.text})"
        ctext = test.text if test.precedence > Prec.COND else f"({test.text})"
        otext = orelse.text if orelse.precedence >= Prec.COND else f"({orelse.text})"
        self.text = f"{ttext} if {ctext} else {otext}"
        names, more, other = then.names, test.names, orelse.names
        if more and more is not names:
            names = _union(names, more)
        self.names = names if not other or other is names else _union(names, other)


def literal(value: object) -> str:
    """Python source for a constant."""
    if isinstance(value, (bool, str, float)) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"not a literal: {value!r}")


def lift(value) -> Expr:
    return value if isinstance(value, Expr) else Const(value)


def const(value: object) -> Const:
    return Const(value)


def name(text: str) -> Name:
    return Name(text)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def binary(op: str, left: Expr, right: Expr) -> Expr:
    """`left op right`, simplified as whole numbers allow: constants folded where the
    result is whole too (`64 + 128` is `192`, `64 / 2` stays), sums gathered into their
    terms and a constant (`x + 2 - 3` is `x - 1`, `in_channels + g + g` is
    `in_channels + g * 2`), `1 * x` and `x // 1` are `x`. The names are taken to be whole
    numbers, as the channels and sizes that the passes substitute into are."""
    if isinstance(left, Const) and isinstance(right, Const):
        folded = _folded(op, left.value, right.value)
        if folded is not None:
            return folded
    if op in ("+", "-"):
        return _sum(Binary(op, left, right))
    if op == "*" and isinstance(left, Const) and left.value == 1 and _whole(left.value):
        return right
    if op in ("*", "//") and isinstance(right, Const) and right.value == 1 and _whole(right.value):
        return left
    return Binary(op, left, right)


_ORDER = ("<", "<=", ">", ">=")


def _folded(op: str, a: object, b: object) -> Const | None:
    """`a op b` as a constant where the result is exact: whole-number arithmetic (a whole
    power), comparisons, `and`/`or` of true and false; None otherwise."""
    if _whole(a) and _whole(b):
        if op in ("+", "-", "*") or (op in ("//", "%") and b != 0) or (op == "**" and 0 <= b <= 64):
            return Const(BINARY[op][1](a, b))
    if op in ("==", "!=") and type(a) is type(b) and _plain(a) or op in _ORDER and _whole(a) and _whole(b):
        return Const(BINARY[op][1](a, b))
    if op in ("and", "or") and isinstance(a, bool) and isinstance(b, bool):
        return Const(BINARY[op][1](a, b))
    return None


def _coefficient(node: Expr) -> tuple[Expr, int, bool] | None:
    """`x * 4` as (x, 4, False), `4 * x` as (x, 4, True)."""
    if isinstance(node, Binary) and node.op == "*":
        if isinstance(node.right, Const) and _whole(node.right.value):
            return node.left, node.right.value, False
        if isinstance(node.left, Const) and _whole(node.left.value):
            return node.right, node.left.value, True
    return None


def _terms(expr: Expr) -> dict[Expr | None, list]:
    """A sum as [coefficient, coefficient first] for each term, in the order they come; the
    key None holds the constant."""
    terms: dict[Expr | None, list] = {}
    stack = [(expr, 1)]
    while stack:
        node, sign = stack.pop()
        scaled = _coefficient(node)
        if isinstance(node, Binary) and node.op in ("+", "-"):
            stack.append((node.right, sign if node.op == "+" else -sign))
            stack.append((node.left, sign))
        elif isinstance(node, Unary):
            stack.append((node.operand, -sign))
        elif isinstance(node, Const) and _whole(node.value):
            terms.setdefault(None, [0, False])[0] += sign * node.value
        elif scaled is not None:
            terms.setdefault(scaled[0], [0, scaled[2]])[0] += sign * scaled[1]
        else:
            terms.setdefault(node, [0, False])[0] += sign
    return terms


def _sum(expr: Expr) -> Expr:
    """A sum rebuilt from its terms: those added, in their order, then those taken away."""
    terms = _terms(expr)
    ordered = [(t, n, first) for t, (n, first) in terms.items() if n > 0] + \
        [(t, n, first) for t, (n, first) in terms.items() if n < 0]
    out: Expr | None = None
    for term, n, first in ordered:
        if term is None:
            part: Expr = Const(abs(n))
        elif abs(n) == 1:
            part = term
        else:
            part = Binary("*", Const(abs(n)), term) if first else Binary("*", term, Const(abs(n)))
        if out is None:
            out = part if n > 0 else unary("-", part)
        else:
            out = Binary("+" if n > 0 else "-", out, part)
    return Const(0) if out is None else out


def unary(op: str, operand: Expr) -> Expr:
    if isinstance(operand, Const) and (_whole(operand.value) if op == "-" else isinstance(operand.value, bool)):
        return Const(UNARY[op][1](operand.value))
    return Unary(op, operand)


def call(function: str, args: tuple[Expr, ...]) -> Expr:
    """`function(args)`, computed where every argument is a whole number or a tuple of them."""
    for a in args:  # (a loop, not all(): this runs at every call an evaluation makes)
        if not (isinstance(a, Const) and _plain(a.value)):
            return Call(function, args)
    try:
        value = FUNCTIONS[function].function(*(a.value for a in args))
    except (ValueError, TypeError, OverflowError, ZeroDivisionError):
        return Call(function, args)
    if _whole(value):
        return Const(value)
    return Call(function, args)


def index(base: Expr, at: Expr) -> Expr:
    """`base[at]`, taken where both are known and `at` is in range."""
    if isinstance(base, Const) and isinstance(base.value, tuple) and isinstance(at, Const) and _whole(at.value) \
            and -len(base.value) <= at.value < len(base.value):
        return Const(base.value[at.value])
    if isinstance(base, Items) and isinstance(at, Const) and _whole(at.value) \
            and -len(base.items) <= at.value < len(base.items):
        return base.items[at.value]
    return Index(base, at)


def items(parts: tuple[Expr, ...]) -> Expr:
    """A tuple of `parts`: a constant where every part is one."""
    if all(isinstance(p, Const) for p in parts):
        return Const(tuple(p.value for p in parts))
    return Items(parts)


def cond(then: Expr, test: Expr, orelse: Expr) -> Expr:
    """`then if test else orelse`, the branch taken where the test is known."""
    if isinstance(test, Const) and isinstance(test.value, bool):
        return then if test.value else orelse
    return Cond(then, test, orelse)


def _plain(value: object) -> bool:
    return _whole(value) or (isinstance(value, tuple) and all(_plain(v) for v in value))


def imports(root: Expr) -> frozenset[str]:
    """The modules the rendered source needs (`math` for ceil, floor, log)."""
    return frozenset(FUNCTIONS[node.function].module for node in _postorder(root)
                     if isinstance(node, Call) and FUNCTIONS[node.function].module)


def _postorder(root: Expr, lazy: bool = False) -> list[Expr]:
    """Every node below `root` and `root`, children before parents, without recursion;
    `lazy`: not the branches of a `Cond` (evaluated when the test has picked one)."""
    order: list[Expr] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend((node.test,) if lazy and isinstance(node, Cond) else node.children)
    order.reverse()
    return order


def _fold_tree(root: Expr, leaf: Callable[[Expr], Expr]) -> Expr:
    done: dict[int, Expr] = {}
    for node in _postorder(root):
        if id(node) in done:
            continue
        done[id(node)] = _rebuilt(node, done, leaf)
    return done[id(root)]


def _rebuilt(node: Expr, done: dict[int, Expr], leaf: Callable[[Expr], Expr]) -> Expr:
    """`node` made again from its children's new forms (in `done`), simplified."""
    if isinstance(node, Binary):
        return binary(node.op, done[id(node.left)], done[id(node.right)])
    if isinstance(node, Unary):
        return unary(node.op, done[id(node.operand)])
    if isinstance(node, Call):
        return call(node.function, tuple(done[id(a)] for a in node.args))
    if isinstance(node, Index):
        return index(done[id(node.base)], done[id(node.index)])
    if isinstance(node, Items):
        return items(tuple(done[id(i)] for i in node.items))
    if isinstance(node, Cond):
        return cond(done[id(node.then)], done[id(node.test)], done[id(node.orelse)])
    return leaf(node)


def _evaluate_tree(root: Expr, env: Mapping[str, object]) -> object:
    done: dict[int, object] = {}
    for node in _postorder(root, lazy=True):
        done[id(node)] = _computed(node, done, env)
    return done[id(root)]


def _computed(node: Expr, done: dict[int, object], env: Mapping[str, object]) -> object:
    """The value of `node`, its children's values in `done`."""
    if isinstance(node, Binary):
        a, b = done[id(node.left)], done[id(node.right)]
        if node.op in ("/", "//", "%") and b == 0:
            raise ExprError(f"division by zero in {node.text}")
        return BINARY[node.op][1](a, b)
    if isinstance(node, Unary):
        return UNARY[node.op][1](done[id(node.operand)])
    if isinstance(node, Name):
        return env[node.name]
    if isinstance(node, Call):
        return FUNCTIONS[node.function].function(*(done[id(a)] for a in node.args))
    if isinstance(node, Index):
        base, at = done[id(node.base)], done[id(node.index)]
        if not -len(base) <= at < len(base):
            raise ExprError(f"index {at} out of range in {node.text}")
        return base[at]
    if isinstance(node, Items):
        return tuple(done[id(i)] for i in node.items)
    if isinstance(node, Cond):  # only the branch taken (the postorder left both out)
        return _evaluate_tree(node.then if done[id(node.test)] else node.orelse, env)
    return node.value  # type: ignore[attr-defined]


TRUE = Const(True)
FALSE = Const(False)
NONE = Const(None)

__all__ = ["BINARY", "Binary", "Call", "Cond", "Const", "Expr", "ExprError", "FALSE", "FUNCTIONS", "Function",
           "Index", "Items", "NONE", "Name", "Prec", "TRUE", "UNARY", "Unary", "binary", "call", "cond", "const",
           "imports", "index", "items", "lift", "literal", "name", "unary"]
