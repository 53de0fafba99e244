"""Values of expressions, for the expand pass: numbers, booleans, strings and lists
(tuples), with operators, comparisons, `a if c else b`, indexing, the built-in functions
of `expr.FUNCTIONS` and the user's top-level `def`s.

Each result is an `ir.Value`: the number and the `cnndsl.expr` tree that computes it from
the enclosing block's or network's parameters, so that the generated code can write it in
those terms. A `def` is inlined: its body is evaluated with its parameters bound to the
caller's values (whose trees are the caller's), so what it computes is written in the
caller's parameters. Each def is evaluated once per distinct argument list in one expansion
(`Evaluating.def_values`). Every misuse is a diagnostic at the expression that causes it.
"""

from __future__ import annotations

import math
from functools import partial
from itertools import repeat
from operator import attrgetter
from typing import get_args

from .. import ast, ir
from ..expr import BINARY, FUNCTIONS, Binary, Call, Name, Unary, call, cond, index, items
from ..layers import lookup
from ..source import Span
from .resolve import suggest

MAX_VALUE = 1 << 40
MAX_DEF_DEPTH = 32  # defs calling defs; resolve.py refuses recursion, this is the backstop
MAX_ITEMS = 4096

_NUMBERS = (int, float)  # exactly: a bool is not a number here
_NUMBER_TYPES = frozenset(_NUMBERS)
_ARITHMETIC = ("+", "-", "*", "/", "//", "%", "**")
_ORDER = ("<", "<=", ">", ">=")
# the operators but a power -> their Python functions, for two numbers (a divisor not zero)
_FAST = {op: BINARY[op][1] for op in ("+", "-", "*", "/", "//", "%", "<", "<=", ">", ">=", "==", "!=")}
_DIVIDING = frozenset(("/", "//", "%"))
_COMPARISONS = frozenset(("<", "<=", ">", ">=", "==", "!="))  # (on two numbers: true or false)
_new = object.__new__
_constant = ir.Value.constant
_name, _value_of = attrgetter("name"), attrgetter("value")  # of a parameter or an argument


def fresh_value(value, expr) -> ir.Value:
    """`ir.Value(value, expr)`, made without the frozen dataclass's `__init__` (a third of
    the cost of an evaluation step): its fields set once, as `traverse.evolve` does."""
    made = _new(ir.Value)
    state = made.__dict__
    state["value"] = value
    state["expr"] = expr
    return made


class _Pending:
    """The value of an expression that reads the shape of a block's input (`input.channels`):
    unknown until the shape pass, which computes it from the expression."""

    def __repr__(self) -> str:
        return "a value of the input's shape"


PENDING = _Pending()
# the names input.channels, input.height and input.width stand for in a block
INPUT_NAMES = {"channels": "in_channels", "height": "input_height", "width": "input_width"}


class Scope:
    """The names an expression can read: the enclosing parameters (or a def's)."""

    __slots__ = ("values", "owner")

    def __init__(self, values: dict[str, ir.Value], owner: str):
        self.values = values
        self.owner = owner  # "network Foo", "block Bar" or "def f", for messages


def describe(value) -> str:
    if value is PENDING:
        return "a value of the input's shape"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return f"the list [{', '.join(_item_text(v) for v in value)}]"
    return repr(value)


def _item_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return f"[{', '.join(_item_text(v) for v in value)}]"
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pending(operands: tuple[ir.Value, ...], build) -> ir.Value | None:
    """Where an operand reads the input's shape, the result does too: its tree, no value yet."""
    for operand in operands:  # a loop, not any(): this runs at every step of an evaluation
        v = operand.value
        if v is PENDING or (type(v) is tuple and PENDING in v):
            return ir.Value(PENDING, build())
    return None


def _in_scope(run, scope: Scope):
    """`run` as a closure of a caller's scope that evaluates in `scope` instead (a default's own)."""
    return lambda caller: run(scope)


def _numbers(values: list) -> bool:
    return _NUMBER_TYPES.issuperset(map(type, values))


def _a_list(values: list) -> bool:
    return type(values[0]) is tuple and PENDING not in values[0]


def _numbers_listed(values: list) -> bool:
    return type(values[0]) is tuple and bool(values[0]) and _NUMBER_TYPES.issuperset(map(type, values[0]))


def _made(result, operands: tuple[ir.Value, ...], build) -> ir.Value:
    """A constant where no operand reads a name, else the value with its tree `build()`."""
    for operand in operands:
        if operand.expr.names:
            return fresh_value(result, build())
    return ir.Value.constant(result)


class Evaluating:
    """The expression half of the Expander (a mixin): `evaluate(expr, scope)` gives a Value.
    The Expander provides `fail`, `unknown` and `defs`."""

    defs: dict[str, ast.DefDef]
    def_depth: int = 0
    # A def is a pure function of its arguments' values and trees: (def, arguments) -> its
    # Value, for one expansion (EfficientNet calls blocks_before(...) with equal arguments
    # for every block of a stage)
    def_values: dict  # (def, parameter names, its arguments' content numbers) -> its Value (`def_bound`)
    def_objects: dict  # (def, parameter names, ids of argument values) -> (its Value, those values)
    value_numbers: dict  # id of an argument value -> its content's number (`content_number`)
    content_numbers: dict  # a value's content -> its number
    numbered: list  # the values numbered, kept so that their ids stay their own
    typed_lists: dict  # id of a list value -> (the list, its key)
    list_keys: dict  # a list's content, typed -> its key (`typed`)
    remembering: dict  # id of an expression -> its closure, remembered (`remembered`)
    repeating: list  # the indices of the repetitions being expanded, innermost last
    site_values: dict  # (id of the call, ids of those names' values) -> (its Value, the values)
    compiled: dict  # id of an expression -> its closure (`compile`)
    compiled_exprs: list

    def evaluate(self, expr: ast.Expr, scope: Scope) -> ir.Value:
        return (self.compiled.get(id(expr)) or self.compile(expr))(scope)

    def compile(self, expr: ast.Expr):
        """`expr` as a closure, scope -> its Value, made once per expansion (the 79 blocks of
        efficientnet_v2_l evaluate the same argument expressions): the kind of each node, its
        operator, a def's parameters and a call's arity are read here once, not at every
        evaluation. Each closure takes the common case (numbers, a table's row, a taken branch)
        directly and hands anything else, with the operands it computed, to the method that
        checks it and says what is wrong (`binary`, `chosen`, `item_of`, `applied`). A node's
        closure makes its operands' (`operand`), held by it alone."""
        made = self.compiled[id(expr)] = _COMPILERS[type(expr)](self, expr)
        self.compiled_exprs.append(expr)  # kept, so that its id stays its own
        return made

    def operand(self, expr: ast.Expr):
        """The closure of an operand, for the closure of the node above it (which alone calls it)."""
        return _COMPILERS[type(expr)](self, expr)

    def compile_literal(self, expr: ast.Num | ast.Str | ast.Bool):
        value = _constant(expr.value)
        return lambda scope: value

    def compile_Var(self, expr: ast.Var):
        name, other = expr.name, self.other_name

        def run(scope: Scope) -> ir.Value:
            value = scope.values.get(name)  # a parameter: the most common expression
            return value if value is not None else other(expr, scope)
        return run

    def compile_visit(self, expr: ast.Expr):
        """The kinds without a common case of their own: their visit, each time."""
        return partial(getattr(self, f"visit_{type(expr).__name__}"), expr)

    def other_name(self, expr: ast.Var, scope: Scope) -> ir.Value:
        """A name that is not a parameter here: a def without parameters, else an error."""
        definition = self.defs.get(expr.name)
        if definition is not None:
            if definition.params is not None:
                raise self.fail(expr.span, f"{expr.name!r} is a function", f"call it: {expr.name}(...)", "type")
            return self.call_def(definition, (), scope, expr.span)
        if expr.name in FUNCTIONS:
            raise self.fail(expr.span, f"{expr.name!r} is a built-in function", f"call it: {expr.name}(...)",
                            "type")
        return self.unknown_name(expr, scope)

    def unknown_name(self, expr: ast.Var, scope: Scope) -> ir.Value:
        if (expr.name, scope.owner) in self.unknown:  # said once, where it is first used
            raise self.fail_quietly()
        self.unknown.add((expr.name, scope.owner))
        if expr.name in ("True", "False"):
            raise self.fail(expr.span, f"unknown name {expr.name!r}", f"booleans are written {expr.name.lower()}")
        constants = [name for name, d in self.defs.items() if d.params is None]
        guess = suggest(expr.name, [*scope.values, *constants])
        known = ", ".join(sorted(scope.values)) or "none"
        raise self.fail(expr.span, f"unknown name {expr.name!r} in {scope.owner}",
                        f"did you mean {guess!r}?" if guess else f"the parameters here are: {known}",
                        "unknown-name")

    def number(self, value: ir.Value, span: Span, what: str) -> None:
        if not _number(value.value):
            raise self.fail(span, f"{what} needs numbers, got {describe(value.value)}", None, "type")

    def truth(self, value: ir.Value, span: Span, what: str) -> None:
        if not isinstance(value.value, bool):
            raise self.fail(span, f"{what} needs true or false, got {describe(value.value)}",
                            "compare it: n > 0, or write true / false", "type")

    def checked(self, result, span: Span) -> object:
        if isinstance(result, complex):
            raise self.fail(span, "a negative number to a fractional power has no real value", None, "range")
        if _number(result) and not (math.isfinite(result) and abs(result) <= MAX_VALUE):
            raise self.fail(span, f"value {result:.3g} is too large", f"values stay below {MAX_VALUE:,}", "range")
        return result

    def visit_InputAttr(self, expr: ast.InputAttr, scope: Scope) -> ir.Value:
        if expr.attr not in INPUT_NAMES:
            raise self.fail(expr.span, f"the input has no {expr.attr!r}", "it has channels, height and width", "type")
        if scope.owner.startswith("block "):
            return ir.Value(PENDING, Name(INPUT_NAMES[expr.attr]))
        dims = getattr(self, "input_values", None)
        if not scope.owner.startswith("network ") or not dims:
            raise self.fail(expr.span, f"input.{expr.attr} is the shape of a block's or a network's input",
                            "use it in a block's or a network's body; pass it to a def as an argument", "type")
        if len(dims) != 3 and expr.attr != "channels":
            raise self.fail(expr.span, f"the input is flat: it has no {expr.attr}", None, "type")
        return dims[("channels", "height", "width").index(expr.attr)]

    # -- operators ---------------------------------------------------------------------
    def visit_Neg(self, expr: ast.Neg, scope: Scope) -> ir.Value:
        inner = self.evaluate(expr.operand, scope)
        pending = _pending((inner,), lambda: Unary("-", inner.expr))
        if pending:
            return pending
        self.number(inner, expr.span, "'-'")
        return _made(-inner.value, (inner,), lambda: Unary("-", inner.expr))

    def visit_Not(self, expr: ast.Not, scope: Scope) -> ir.Value:
        inner = self.evaluate(expr.operand, scope)
        pending = _pending((inner,), lambda: Unary("not", inner.expr))
        if pending:
            return pending
        self.truth(inner, expr.operand.span, "'not'")
        return _made(not inner.value, (inner,), lambda: Unary("not", inner.expr))

    def compile_BinOp(self, expr: ast.BinOp):
        """Two numbers by an operator of `_FAST` whose result is in range: its Value here."""
        op = expr.op
        if op in ("and", "or"):
            return partial(self.logic, expr)
        left_run, right_run, binary = self.operand(expr.left), self.operand(expr.right), self.binary
        function, divides = _FAST.get(op), op in _DIVIDING
        if function is None:  # a power: its checks, each time
            return lambda scope: binary(expr, left_run(scope), right_run(scope))
        if type(expr.right) is ast.Num and (expr.right.value or not divides):
            return self.by_number(expr, left_run, function)
        constant = self.constant_of(op)

        def run(scope: Scope) -> ir.Value:
            left, right = left_run(scope), right_run(scope)
            a, b = left.value, right.value
            if type(a) in _NUMBERS and type(b) in _NUMBERS and (b or not divides):
                result = function(a, b)
                if -MAX_VALUE <= result <= MAX_VALUE:  # (a comparison's true or false is within)
                    if left.expr.names or right.expr.names:
                        return fresh_value(result, Binary(op, left.expr, right.expr))
                    return constant(result)
            return binary(expr, left, right)
        return run

    def by_number(self, expr: ast.BinOp, left_run, function):
        """`x op 2`, the number on the right known here: the left operand's type alone to check."""
        right = _constant(expr.right.value)
        b, op, binary, constant = right.value, expr.op, self.binary, self.constant_of(expr.op)

        def run(scope: Scope) -> ir.Value:
            left = left_run(scope)
            a = left.value
            if type(a) in _NUMBERS:
                result = function(a, b)
                if -MAX_VALUE <= result <= MAX_VALUE:
                    if left.expr.names:
                        return fresh_value(result, Binary(op, left.expr, right.expr))
                    return constant(result)
            return binary(expr, left, right)
        return run

    def constant_of(self, op: str):
        """How an operator's closure makes the constant of its result: a comparison's true or
        false is one of two Values, found once per expansion (EfficientNet's `j == 0` at every
        block), any other by `Value.constant`."""
        if op not in _COMPARISONS:
            return _constant
        truths = self.__dict__.get("truths")
        if truths is None:
            truths = self.truths = {True: _constant(True), False: _constant(False)}
        return truths.__getitem__

    def binary(self, expr: ast.BinOp, left: ir.Value, right: ir.Value) -> ir.Value:
        """`left op right` checked: the input's shape, the operands' types, a zero divisor, the range."""
        pending = _pending((left, right), lambda: Binary(expr.op, left.expr, right.expr))
        if pending:
            return pending
        if expr.op in _ARITHMETIC or expr.op in _ORDER:
            self.number(left, expr.left.span, f"'{expr.op}'")
            self.number(right, expr.right.span, f"'{expr.op}'")
        result = self.checked(self.operate(expr, left.value, right.value), expr.span)
        return _made(result, (left, right), lambda: Binary(expr.op, left.expr, right.expr))

    def operate(self, expr: ast.BinOp, a, b):
        if expr.op in ("/", "//", "%") and b == 0:
            raise self.fail(expr.right.span, "division by zero", None)
        if expr.op == "**":
            if a == 0 and b < 0:
                raise self.fail(expr.right.span, "zero to a negative power", None)
            if _whole(a) and _whole(b) and abs(a) > 1 and b > 64:
                raise self.fail(expr.span, f"{a} ** {b} is too large", f"values stay below {MAX_VALUE:,}", "range")
        try:
            return BINARY[expr.op][1](a, b)
        except OverflowError:
            raise self.fail(expr.span, "the value is too large", f"values stay below {MAX_VALUE:,}",
                            "range") from None

    def logic(self, expr: ast.BinOp, scope: Scope) -> ir.Value:
        """`and`/`or` of true and false; the right side is not read where the left decides."""
        left = self.evaluate(expr.left, scope)
        if left.value is PENDING:
            right = self.evaluate(expr.right, scope)
            return ir.Value(PENDING, Binary(expr.op, left.expr, right.expr))
        self.truth(left, expr.left.span, f"'{expr.op}'")
        decides = left.value is (expr.op == "or")
        if decides and not left.names:
            return left
        right = self.evaluate(expr.right, scope)
        pending = _pending((right,), lambda: Binary(expr.op, left.expr, right.expr))
        if pending:
            return pending
        self.truth(right, expr.right.span, f"'{expr.op}'")
        if not left.names:
            return right
        result = BINARY[expr.op][1](left.value, right.value)
        return _made(result, (left, right), lambda: Binary(expr.op, left.expr, right.expr))

    def compile_IfElse(self, expr: ast.IfElse):
        """A condition of constants: only the branch taken is read (`xs[i] if i < len(xs) else 0`)."""
        fused = self.compile_choice(expr)
        if fused is not None:
            return fused
        operand = self.operand
        return self.general_choice(expr, operand(expr.test), operand(expr.then), operand(expr.orelse))

    def compile_choice(self, expr: ast.IfElse):
        """`3 if j == 0 else 4` (EfficientNet's, three at each block use): a parameter compared
        with a number, picking one of two literals, as one closure, where the parameter is a
        number that reads no name; else (or where it is not) the general closure's own
        steps, the same Values. None for any other condition."""
        test, then, orelse = expr.test, expr.then, expr.orelse
        if type(then) not in _LITERALS or type(orelse) not in _LITERALS or type(test) is not ast.BinOp or \
                test.op not in _COMPARISONS or type(test.left) is not ast.Var or type(test.right) is not ast.Num:
            return None
        name, function, b = test.left.name, _FAST[test.op], test.right.value
        then_value, orelse_value = _constant(then.value), _constant(orelse.value)  # (compile_literal's)
        general = self.general_choice(expr, self.operand(test), lambda scope: then_value, lambda scope: orelse_value)

        def run(scope: Scope) -> ir.Value:
            value = scope.values.get(name)
            if value is not None and type(value.value) in _NUMBERS and not value.expr.names:
                return then_value if function(value.value, b) else orelse_value
            return general(scope)
        return run

    def general_choice(self, expr: ast.IfElse, test_run, then_run, orelse_run):
        """`compile_IfElse`'s closure of these operands' closures."""
        chosen = self.chosen

        def run(scope: Scope) -> ir.Value:
            test = test_run(scope)
            if type(test.value) is bool and not test.expr.names:
                return then_run(scope) if test.value else orelse_run(scope)
            return chosen(expr, test, then_run, orelse_run, scope)
        return run

    def chosen(self, expr: ast.IfElse, test: ir.Value, then_run, orelse_run, scope: Scope) -> ir.Value:
        """`a if c else b` where `c` reads a parameter or the input's shape (both branches, by
        their closures, in its tree), or is not true or false (said before either is read)."""
        if test.value is PENDING:
            then, orelse = then_run(scope), orelse_run(scope)
            return ir.Value(PENDING, cond(then.expr, test.expr, orelse.expr))
        self.truth(test, expr.test.span, "the condition of 'if'")
        then = then_run(scope)
        orelse = orelse_run(scope)
        return ir.Value(then.value if test.value else orelse.value, cond(then.expr, test.expr, orelse.expr))

    # -- lists -------------------------------------------------------------------------
    def compile_ListExpr(self, expr: ast.ListExpr):
        """A list of literals (a family's stage table, its rows lists of numbers): its Value,
        made here once, as its visit would make it each time; any other list, its visit."""
        value = _literal_list(expr)
        if value is None:
            return partial(self.visit_ListExpr, expr)
        made = _constant(value)
        return lambda scope: made

    def visit_ListExpr(self, expr: ast.ListExpr, scope: Scope) -> ir.Value:
        if len(expr.items) > MAX_ITEMS:
            raise self.fail(expr.span, f"a list of more than {MAX_ITEMS:,} items", None, "limit")
        parts = tuple(self.evaluate(item, scope) for item in expr.items)
        pending = _pending(parts, lambda: items(tuple(p.expr for p in parts)))
        if pending:
            return pending
        return _made(tuple(p.value for p in parts), parts, lambda: items(tuple(p.expr for p in parts)))

    def compile_Index(self, expr: ast.Index):
        """A list's item by a whole number within it (a table's row): its Value here."""
        base_run, at_run, item_of = self.operand(expr.base), self.operand(expr.index), self.item_of

        def run(scope: Scope) -> ir.Value:
            base, at = base_run(scope), at_run(scope)
            listed, i = base.value, at.value
            if type(listed) is tuple and type(i) is int and -len(listed) <= i < len(listed) and PENDING not in listed:
                if base.expr.names or at.expr.names:
                    return fresh_value(listed[i], index(base.expr, at.expr))
                return _constant(listed[i])
            return item_of(expr, base, at)
        return run

    def item_of(self, expr: ast.Index, base: ir.Value, at: ir.Value) -> ir.Value:
        """`base[at]` checked: the input's shape, a list, a whole number, within the list."""
        pending = _pending((base, at), lambda: index(base.expr, at.expr))
        if pending:
            return pending
        if not isinstance(base.value, (tuple, str)):
            raise self.fail(expr.base.span, f"only a list can be indexed, not {describe(base.value)}", None, "type")
        if not _whole(at.value):
            raise self.fail(expr.index.span, f"an index must be a whole number, got {describe(at.value)}",
                            "use // for integer division", "type")
        n = len(base.value)
        if not -n <= at.value < n:
            where = f"indices 0 to {n - 1}" if n else "it is empty"
            raise self.fail(expr.index.span, f"index {at.value} is out of range for a list of {n} ({where})",
                            None, "range")
        return _made(base.value[at.value], (base, at), lambda: index(base.expr, at.expr))

    # -- functions ---------------------------------------------------------------------
    def visit_FuncCall(self, expr: ast.FuncCall, scope: Scope) -> ir.Value:
        """A call `compile_FuncCall` makes no closure for: a def without parameters, a built-in
        given a keyword or too few or many arguments, an unknown function."""
        if expr.name in self.defs:
            raise self.fail(expr.name_span, f"{expr.name!r} is a value, not a function",
                            f"write it without brackets: {expr.name}", "type")
        if expr.name in FUNCTIONS:
            return self.builtin(expr, scope)
        return self.unknown_function(expr)

    def unknown_function(self, expr: ast.FuncCall) -> ir.Value:
        known = sorted({*FUNCTIONS, *(n for n, d in self.defs.items() if d.params is not None)})
        guess = suggest(expr.name, known)
        hint = f"did you mean {guess!r}?" if guess else \
            f"the functions are: {', '.join(known)}; define one with def {expr.name}(x) = ..."
        if expr.name in getattr(self, "blocks", {}) or lookup(expr.name) is not None:
            hint = f"{expr.name!r} is a layer or block: it goes in a chain, not in a value"
        raise self.fail(expr.name_span, f"unknown function {expr.name!r}", hint, "unknown-name")

    def compile_FuncCall(self, expr: ast.FuncCall):
        """A def's call (`compile_site`), or a built-in's with its arity right (`compile_builtin`);
        anything else, its visit (which says what is wrong)."""
        definition = self.defs.get(expr.name)
        if definition is not None and definition.params is not None:
            return self.compile_site(expr, definition)
        function = FUNCTIONS.get(expr.name) if definition is None else None
        if function is None or any(map(_name, expr.args)) or not function.least <= len(expr.args) <= function.most:
            return partial(self.visit_FuncCall, expr)
        return self.compile_builtin(expr, function)

    def compile_builtin(self, expr: ast.FuncCall, function):
        """A built-in whose arguments are what it takes (numbers; a list for `len`, of numbers
        for `sum` and for `min` or `max` of one argument) and whose result is in range:
        its Value here."""
        runs, applied, name = [self.operand(a.value) for a in expr.args], self.applied, expr.name
        if name in ("len", "sum") or (name in ("min", "max") and len(runs) == 1):
            takes = _a_list if name == "len" else _numbers_listed
        else:
            takes = _numbers
        compute = function.function

        def run(scope: Scope) -> ir.Value:
            args = tuple([each(scope) for each in runs])
            values = [a.value for a in args]
            if takes(values):
                try:
                    result = compute(*values)
                except (ValueError, TypeError, ZeroDivisionError, OverflowError):
                    return applied(expr, args)  # says so
                if type(result) in _NUMBERS and -MAX_VALUE <= result <= MAX_VALUE:
                    for arg in args:
                        if arg.expr.names:
                            return fresh_value(result, Call(name, tuple([a.expr for a in args])))  # (not a constant: `call` would make it)
                    return _constant(result)
            return applied(expr, args)
        return run

    def builtin(self, expr: ast.FuncCall, scope: Scope) -> ir.Value:
        function = FUNCTIONS[expr.name]
        if any(a.name is not None for a in expr.args):
            keyword = next(a for a in expr.args if a.name is not None)
            raise self.fail(keyword.span, f"{expr.name} takes no keyword arguments", None, "type")
        if not function.least <= len(expr.args) <= function.most:
            count = str(function.least) if function.least == function.most else \
                f"{function.least} to {function.most}"
            raise self.fail(expr.span, f"{expr.name} takes {count} argument(s), got {len(expr.args)}", None, "type")
        return self.applied(expr, tuple(self.evaluate(a.value, scope) for a in expr.args))

    def applied(self, expr: ast.FuncCall, args: tuple[ir.Value, ...]) -> ir.Value:
        """The built-in of these arguments, checked: the input's shape, their types, the result."""
        function = FUNCTIONS[expr.name]
        pending = _pending(args, lambda: call(expr.name, tuple(a.expr for a in args)))
        if pending:
            return pending
        self.builtin_types(expr, args)
        try:
            result = function.function(*(a.value for a in args))
        except (ValueError, TypeError, ZeroDivisionError, OverflowError):
            shown = ", ".join(describe(a.value) for a in args)
            hint = "log needs a positive number (and a base other than 1)" if expr.name == "log" else None
            raise self.fail(expr.span, f"{expr.name}({shown}) has no value", hint, "range") from None
        result = self.checked(result, expr.span)
        return _made(result, args, lambda: call(expr.name, tuple(a.expr for a in args)))

    def builtin_types(self, expr: ast.FuncCall, args: tuple[ir.Value, ...]) -> None:
        """The arguments' types: `len` and `sum` take a list, `min` and `max` a list or
        numbers, the others numbers."""
        name = expr.name
        spans = [a.value.span for a in expr.args]
        if name in ("len", "sum") or (name in ("min", "max") and len(args) == 1):
            if not isinstance(args[0].value, tuple):
                raise self.fail(spans[0], f"{name} of one argument needs a list, got {describe(args[0].value)}",
                                None, "type")
            if name != "len" and not args[0].value:
                raise self.fail(spans[0], f"{name} of an empty list", None, "range")
            if name != "len" and not all(_number(v) for v in args[0].value):
                raise self.fail(spans[0], f"{name} needs a list of numbers", None, "type")
            return
        for value, span in zip(args, spans):
            self.number(value, span, name)

    def compile_site(self, expr: ast.FuncCall, definition: ast.DefDef):
        """A def's call, remembered as `remembered` does (EfficientNet's stage rules,
        `make_divisible(setting[k][4] * width_mult)`, are met once per block of a stage with
        the same table, index and multiplier); a call that gives its first parameters in order
        (and the others have defaults) binds them without `def_arguments`' checks."""
        names, args, span = names_read(expr), expr.args, expr.span
        params = definition.params
        if len(args) <= len(params) and not any(map(_name, args)) and \
                all(p.default is not None for p in params[len(args):]):
            runs = [self.operand(a.value) for a in args]
            # the defaults of those not given, in a scope of their own (`def_arguments`')
            own = Scope({}, f"def {definition.name}")
            runs += [_in_scope(self.compiled.get(id(p.default)) or self.compile(p.default), own)
                     for p in params[len(args):]]
            params, bound, name, met = tuple(map(_name, params)), self.def_bound, definition.name, self.def_objects

            def called(scope: Scope) -> ir.Value:
                args = [each(scope) for each in runs]
                same = (name, params, *map(id, args))  # `def_bound`'s first key, looked up here
                found = met.get(same)
                return found[0] if found is not None else bound(definition, params, args, span, same)
        else:
            def called(scope: Scope) -> ir.Value:
                return self.def_call(definition, self.def_arguments(definition, args, scope, span), span)
        if names is False or (self.repeating and self.repeating[-1] in names):
            # it reads the input's shape: each use's own; or the index of the innermost
            # repetition it is met in, new at each copy, where this memo would only miss
            # (`def_call`'s, by the argument values, still meets `block_in(..., 3 if j == 0
            # else 4)` again from the second copy on). An outer one's (EfficientNet's stage k)
            # is the same object at every copy of the inner one: remembered.
            return called
        return self.memo(expr, names, called)

    def memo(self, expr: ast.Expr, names: tuple[str, ...], compute):
        """`compute(scope)`, remembered by `expr` and the very value objects its `names` read
        (`site_values`): met again with the same objects, the same Value."""
        site, site_values = id(expr), self.site_values
        if len(names) <= 3:  # nearly every site (a table and its index, a value and a divisor): the key built
            first, second, third = (*names, "", "", "")[:3]  # directly, "" read where it has fewer (no name is "")

            def few(scope: Scope) -> ir.Value:
                get = scope.values.get
                key = (site, id(get(first)), id(get(second)), id(get(third)))
                found = site_values.get(key)
                if found is not None:
                    return found[0]
                value = compute(scope)
                site_values[key] = (value, (get(first), get(second), get(third)))  # kept: their ids stay theirs
                return value
            return few

        def run(scope: Scope) -> ir.Value:
            get = scope.values.get
            key = (site, *map(id, map(get, names)))
            found = site_values.get(key)
            if found is not None:
                return found[0]
            value = compute(scope)
            site_values[key] = (value, tuple(map(get, names)))  # the values kept, so that their ids stay theirs
            return value
        return run

    def remembered(self, expr: ast.Expr, scope: Scope) -> ir.Value:
        """The value of `expr`, remembered by the expression and the very value objects its
        names read (`memo`), its closure made once. A parameter or a literal is read
        directly; an expression that reads the input's shape is not kept: `input.channels`
        is each use's own."""
        run = self.remembering.get(id(expr))
        if run is None:
            run = self.compiled.get(id(expr)) or self.compile(expr)
            names = names_read(expr) if type(expr) not in _DIRECT else False
            if names is not False:
                run = self.memo(expr, names, run)
            self.remembering[id(expr)] = run  # (compile keeps the expression, so that its id stays its own)
        return run(scope)

    def kept_run(self, expr: ast.Expr):
        """The closure of a block's argument, remembered as `remembered` does where it reads
        neither the index of the innermost repetition it is met in (new at each copy, where
        the memo would only miss) nor the input's shape: EfficientNet's kernel,
        `setting[k][1]`, is the same for every block of stage k. A def's call is remembered
        by its own closure (`compile_site`); a parameter or a literal is read directly."""
        run = self.compiled.get(id(expr)) or self.compile(expr)
        if type(expr) in _DIRECT or (type(expr) is ast.FuncCall and expr.name in self.defs):
            return run
        names = names_read(expr)
        if names is False or (self.repeating and self.repeating[-1] in names):
            return run
        return self.memo(expr, names, run)

    def call_def(self, definition: ast.DefDef, args: tuple[ast.Arg, ...], scope: Scope, span: Span) -> ir.Value:
        """The def's body with its parameters bound to the arguments (evaluated here) or their defaults."""
        return self.def_call(definition, self.def_arguments(definition, args, scope, span), span)

    def def_call(self, definition: ast.DefDef, values: dict[str, ir.Value], span: Span) -> ir.Value:
        """The def's body with its parameters bound to `values` (`def_bound`)."""
        return self.def_bound(definition, tuple(values), list(values.values()), span)

    def def_bound(self, definition: ast.DefDef, names: tuple[str, ...], args: list[ir.Value], span: Span,
                  same: tuple | None = None) -> ir.Value:
        """The def's body with `names` bound to `args`, once per distinct list in an expansion.
        Met again with the very same argument objects: its Value by their ids (`def_objects`).
        Else keyed by each argument's number (`content_number`), which equal values with equal
        trees share: EfficientNet's `block_sd(setting, depth_mult, k, j, p)` meets a new j at
        each block, whose key is five lookups, not five tuples of the values and their trees' text."""
        if same is None:  # (a call's closure gives it, having missed it: `compile_site`)
            same = (definition.name, names, *map(id, args))
            kept = self.def_objects.get(same)
            if kept is not None:
                return kept[0]
        key = (definition.name, names, *map(self.value_numbers.get, map(id, args)))
        if None in key:  # an argument not met before
            key = (definition.name, names, *map(self.content_number, args))
        found = self.def_values.get(key)
        if found is None:
            if self.def_depth >= MAX_DEF_DEPTH:
                raise self.fail(span, f"functions call each other more than {MAX_DEF_DEPTH} deep", None, "limit")
            self.def_depth += 1
            try:
                found = self.def_values[key] = self.evaluate(definition.body,
                                                             Scope(dict(zip(names, args)), f"def {definition.name}"))
            finally:
                self.def_depth -= 1
        self.def_objects[same] = (found, args)  # the arguments kept with it, so that their ids stay theirs
        return found

    def content_number(self, value: ir.Value) -> int:
        """The number of a value's content for `def_bound`'s key: its type and value (a list's
        key by `typed`), its tree's kind and text (equal text, equal tree: the def's result is
        the same). Found once per value object (kept, so that its id stays its own)."""
        found = self.value_numbers.get(id(value))
        if found is None:
            v = value.value
            content = (type(v), self.typed(v) if type(v) is tuple else v, type(value.expr), value.expr.text)
            numbers = self.content_numbers
            found = numbers.get(content)
            if found is None:
                found = numbers[content] = len(numbers)
            self.value_numbers[id(value)] = found
            self.numbered.append(value)
        return found

    def def_arguments(self, definition: ast.DefDef, args: tuple[ast.Arg, ...], scope: Scope,
                      span: Span) -> dict[str, ir.Value]:
        """A def's parameters bound to a call's arguments (evaluated here) or their defaults."""
        params = definition.params or ()
        positional = not any(map(_name, args))  # no keyword (in C: this runs at every call)
        if len(args) == len(params) and positional:  # every one, in order: the common call
            return dict(zip(map(_name, params), map(self.evaluate, map(_value_of, args), repeat(scope))))
        if len(args) < len(params) and positional:  # positional: nothing to check
            bound = {p.name: (self.evaluate(a.value, scope),) for p, a in zip(params, args)}
        else:
            bound = self.bind([p.name for p in params], _Args(args), scope,  # type: ignore[attr-defined]
                              f"function {definition.name}", span)
        if len(bound) == len(params):
            return {name: v[0] for name, v in bound.items()}
        own = Scope({}, f"def {definition.name}")
        values: dict[str, ir.Value] = {}
        for param in params:
            if param.name in bound:
                values[param.name] = bound[param.name][0]
            elif param.default is not None:
                values[param.name] = self.evaluate(param.default, own)
            else:
                raise self.fail(span, f"function {definition.name} needs its {param.name!r} argument",
                                f"call it as {definition.name}({', '.join(p.name for p in params)})", "missing")
        return values

    def typed(self, value):
        """A value as a memo's key: 1, 1.0 and true are equal in Python but not here. A
        list's key is a number, one for each distinct list in an expansion, found once per
        list object (kept, so that its id stays its own): a key that holds a stage table
        hashes one number, not the table's rows, at each lookup."""
        if not isinstance(value, tuple):
            return type(value), value
        found = self.typed_lists.get(id(value))
        if found is None:
            content = tuple([self.typed(v) for v in value])
            found = self.typed_lists[id(value)] = (value, self.list_keys.setdefault(content, len(self.list_keys)))
        return found[1]


_DIRECT = (ast.Var, ast.Num, ast.Str, ast.Bool)  # read without a memo
# each kind of expression -> how `Evaluating.compile` makes its closure
_COMPILERS = {ast.Num: Evaluating.compile_literal, ast.Str: Evaluating.compile_literal,
              ast.Bool: Evaluating.compile_literal, ast.Var: Evaluating.compile_Var,
              ast.BinOp: Evaluating.compile_BinOp, ast.IfElse: Evaluating.compile_IfElse,
              ast.Index: Evaluating.compile_Index, ast.FuncCall: Evaluating.compile_FuncCall,
              ast.Neg: Evaluating.compile_visit, ast.Not: Evaluating.compile_visit,
              ast.ListExpr: Evaluating.compile_ListExpr, ast.InputAttr: Evaluating.compile_visit}
assert _COMPILERS.keys() == set(get_args(ast.Expr)), "a kind of expression without its closure"
_LITERALS = frozenset((ast.Num, ast.Str, ast.Bool))
# each kind of expression with operands -> them (a def call's or a list's: by `names_read`)
_OPERANDS = {ast.BinOp: attrgetter("left", "right"), ast.IfElse: attrgetter("then", "test", "orelse"),
             ast.Index: attrgetter("base", "index")}


def _literal_list(expr: ast.ListExpr, depth: int = 0) -> tuple | None:
    """The value of a list whose items are literals or such lists (a few deep), within
    MAX_ITEMS each; None for any other (its visit evaluates it, or says what is wrong)."""
    if len(expr.items) > MAX_ITEMS or depth > 4:
        return None
    values = []
    for item in expr.items:
        kind = type(item)
        if kind in _LITERALS:
            values.append(item.value)
        elif kind is ast.ListExpr:
            inner = _literal_list(item, depth + 1)
            if inner is None:
                return None
            values.append(inner)
        else:
            return None
    return tuple(values)


def names_read(expr: ast.Expr) -> tuple[str, ...] | bool:
    """The names `expr` reads, sorted; False where it reads the input's shape."""
    names, shape = names_and_shape(expr)
    return False if shape else tuple(sorted(names))


def names_and_shape(expr: ast.Expr) -> tuple[set[str], bool]:
    """The names `expr` reads, and whether it reads the input's shape. A walk of the
    expression's own fields, not `traverse.walk`'s generator of every node."""
    names: set[str] = set()
    shape = False
    stack = [expr]
    pop, push = stack.pop, stack.extend
    while stack:
        current = pop()
        kind = type(current)
        below = _OPERANDS.get(kind)
        if below is not None:
            push(below(current))
        elif kind is ast.Var:
            names.add(current.name)
        elif kind is ast.FuncCall:
            push(map(_value_of, current.args))
        elif kind is ast.ListExpr:
            push(current.items)
        elif kind is ast.Neg or kind is ast.Not:
            stack.append(current.operand)
        elif kind is ast.InputAttr:
            shape = True
        elif kind not in _LITERALS:  # a new kind of expression: its names would go unread
            raise TypeError(f"names_read does not know {kind.__name__}")
    return names, shape


class _Args:
    """A def call's arguments, in the shape `Expander.bind` reads (a call's `args`)."""

    def __init__(self, args: tuple[ast.Arg, ...]):
        self.args = args


__all__ = ["Evaluating", "INPUT_NAMES", "MAX_VALUE", "PENDING", "Scope", "describe", "fresh_value",
           "names_and_shape"]
