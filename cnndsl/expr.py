"""Symbolic values: the expressions the compiler carries from the spec to the code.

A layer argument written `planes * 4` in a block, the channels `in_channels + 32`
that flow out of a concat, the condition `stride != 1 or in_channels != planes * 4`
under which a projection shortcut is built: each is a small tree of `Const`, `Name`,
`Unary` and `Binary` nodes. The passes build them (`passes/expand.py`), substitute a
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

import operator
from enum import IntEnum
from typing import Callable, Mapping


class Prec(IntEnum):
    """Python's operator precedence, loosest first, for the operators a value can hold."""

    OR = 1
    AND = 2
    COMPARE = 3
    SUM = 4  # + -
    PRODUCT = 5  # * / // %
    UNARY = 6  # -x
    ATOM = 7  # a name, a literal, a bracketed expression


def _or(a, b):
    return a or b


def _and(a, b):
    return a and b


# operator -> (precedence, Python function)
BINARY: dict[str, tuple[Prec, Callable]] = {
    "or": (Prec.OR, _or), "and": (Prec.AND, _and),
    "==": (Prec.COMPARE, operator.eq), "!=": (Prec.COMPARE, operator.ne),
    "+": (Prec.SUM, operator.add), "-": (Prec.SUM, operator.sub),
    "*": (Prec.PRODUCT, operator.mul), "/": (Prec.PRODUCT, operator.truediv),
    "//": (Prec.PRODUCT, operator.floordiv), "%": (Prec.PRODUCT, operator.mod),
}
UNARY: dict[str, Callable] = {"-": operator.neg}


class ExprError(ValueError):
    """An expression that cannot be evaluated: a name without a value, a zero divisor."""


# Blocks are used many times with the same arguments (and the language server compiles
# on every keystroke): a substitution is computed once. Bounded, and cleared when full.
_SUBSTITUTED: dict = {}
_SUBSTITUTED_MAX = 8192


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
        self.names = frozenset()


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
        self.precedence = Prec.UNARY
        inner = operand.text if operand.precedence >= Prec.UNARY else f"({operand.text})"
        self.text = f"{op}{inner}"
        self.names = operand.names


class Binary(Expr):
    """`left op right`. Left-associative: the right operand is bracketed at equal precedence;
    comparisons bracket both (Python would chain `a != b != c`)."""

    __slots__ = ("op", "left", "right", "children")

    def __init__(self, op: str, left: Expr, right: Expr):
        if op not in BINARY:
            raise ValueError(f"unknown binary operator {op!r}")
        self.op, self.left, self.right, self.children = op, left, right, (left, right)
        prec = self.precedence = BINARY[op][0]
        left_bare = left.precedence > prec or (left.precedence == prec and prec != Prec.COMPARE)
        ltext = left.text if left_bare else f"({left.text})"
        rtext = right.text if right.precedence > prec else f"({right.text})"
        self.text = f"{ltext} {op} {rtext}"
        self.names = left.names | right.names if right.names else left.names


def literal(value: object) -> str:
    """Python source for a constant."""
    if isinstance(value, (bool, str, float)) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value)
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
    if isinstance(left, Const) and isinstance(right, Const) and _whole(left.value) and _whole(right.value) \
            and op in ("+", "-", "*", "//", "%") and (right.value != 0 or op in ("+", "-", "*")):
        return Const(BINARY[op][1](left.value, right.value))
    if op in ("+", "-"):
        return _sum(Binary(op, left, right))
    if op == "*" and isinstance(left, Const) and left.value == 1 and _whole(left.value):
        return right
    if op in ("*", "//") and isinstance(right, Const) and right.value == 1 and _whole(right.value):
        return left
    return Binary(op, left, right)


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
    if isinstance(operand, Const) and _whole(operand.value):
        return Const(UNARY[op](operand.value))
    return Unary(op, operand)


def _postorder(root: Expr) -> list[Expr]:
    """Every node below `root` and `root`, children before parents, without recursion."""
    order: list[Expr] = []
    stack = [root]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(node.children)
    order.reverse()
    return order


def _fold_tree(root: Expr, leaf: Callable[[Expr], Expr]) -> Expr:
    done: dict[int, Expr] = {}
    for node in _postorder(root):
        if id(node) in done:
            continue
        if isinstance(node, Binary):
            new = binary(node.op, done[id(node.left)], done[id(node.right)])
        elif isinstance(node, Unary):
            new = unary(node.op, done[id(node.operand)])
        else:
            new = leaf(node)
        done[id(node)] = new
    return done[id(root)]


def _evaluate_tree(root: Expr, env: Mapping[str, object]) -> object:
    done: dict[int, object] = {}
    for node in _postorder(root):
        if isinstance(node, Binary):
            a, b = done[id(node.left)], done[id(node.right)]
            if node.op in ("/", "//", "%") and b == 0:
                raise ExprError(f"division by zero in {node.text}")
            done[id(node)] = BINARY[node.op][1](a, b)
        elif isinstance(node, Unary):
            done[id(node)] = UNARY[node.op](done[id(node.operand)])
        elif isinstance(node, Name):
            done[id(node)] = env[node.name]
        else:
            done[id(node)] = node.value  # type: ignore[attr-defined]
    return done[id(root)]


TRUE = Const(True)
FALSE = Const(False)
NONE = Const(None)

__all__ = ["BINARY", "Binary", "Const", "Expr", "ExprError", "FALSE", "NONE", "Name", "Prec", "TRUE",
           "Unary", "binary", "const", "lift", "literal", "name", "unary"]
