"""The symbolic value type: rendering with the fewest brackets, substitution, folding,
evaluation; and, for any tree, the rendered source computes what `evaluate` computes."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnndsl.expr import Binary, Const, ExprError, Name, Prec, Unary, binary, const, name

a, b, c = name("a"), name("b"), name("c")


@pytest.mark.parametrize("expr, text", [
    (Binary("-", a, Binary("-", b, c)), "a - (b - c)"),
    (Binary("-", Binary("-", a, b), c), "a - b - c"),
    (Binary("*", Binary("*", a, b), c), "a * b * c"),
    (Binary("*", a, Binary("*", b, c)), "a * (b * c)"),
    (Binary("*", a, Binary("+", b, c)), "a * (b + c)"),
    (Binary("+", a, Binary("*", b, c)), "a + b * c"),
    (Binary("+", Binary("*", a, b), c), "a * b + c"),
    (Binary("//", Binary("+", a, b), c), "(a + b) // c"),
    (Binary("/", a, Binary("//", b, c)), "a / (b // c)"),
    (Binary("%", Binary("*", a, b), c), "a * b % c"),
    (Unary("-", Binary("+", a, b)), "-(a + b)"),
    (Unary("-", a), "-a"),
    (Binary("*", a, Unary("-", b)), "a * -b"),
    (Binary("-", a, Const(-3)), "a - -3"),
    (Binary("or", Binary("!=", a, Const(1)), Binary("!=", b, Binary("*", c, Const(4)))),
     "a != 1 or b != c * 4"),
    (Binary("!=", Binary("!=", a, b), c), "(a != b) != c"),
    (Binary("and", Binary("or", a, b), c), "(a or b) and c"),
])
def test_render_brackets_only_where_precedence_needs_them(expr, text):
    assert expr.render() == text
    assert ast.dump(ast.parse(text, mode="eval")) == ast.dump(ast.parse(_fully_bracketed(expr), mode="eval"))


def _fully_bracketed(expr) -> str:
    if isinstance(expr, Binary):
        return f"({_fully_bracketed(expr.left)} {expr.op} {_fully_bracketed(expr.right)})"
    if isinstance(expr, Unary):
        return f"({expr.op}{_fully_bracketed(expr.operand)})"
    return expr.render()


def test_precedence_enum_orders_operators_as_python_does():
    assert Prec.OR < Prec.AND < Prec.COMPARE < Prec.SUM < Prec.PRODUCT < Prec.UNARY < Prec.ATOM
    assert Binary("+", a, b).precedence == Prec.SUM and Binary("%", a, b).precedence == Prec.PRODUCT
    assert Const(-2).precedence == Prec.UNARY and Const(2).precedence == Prec.ATOM


def test_literals_render_as_python():
    assert [Const(v).render() for v in (True, False, None, "zeros", 1e-05, 0.5, 7)] == \
        ["True", "False", "None", "'zeros'", "1e-05", "0.5", "7"]
    with pytest.raises(TypeError):
        Const(object())


def test_names_are_the_names_read():
    expr = Binary("or", Binary("!=", name("stride"), Const(1)), Binary("!=", name("in_channels"), a * 4))
    assert expr.names == frozenset({"stride", "in_channels", "a"})
    assert Const(3).names == frozenset() and Unary("-", b).names == {"b"}


def test_substitute_replaces_names_and_folds_constants():
    channels = Binary("+", Binary("+", name("in_channels"), name("g")), name("g"))
    assert channels.substitute({"in_channels": const(24)}).render() == "24 + g * 2"
    assert channels.substitute({"in_channels": const(24), "g": const(12)}) == Const(48)
    summed = Binary("+", Binary("+", Binary("+", name("c1"), name("c3")), name("c5")), name("proj"))
    assert summed.substitute({"c1": const(64), "c3": const(128), "c5": const(32), "proj": const(32)}) == Const(256)
    # a compound value keeps its own brackets where it lands
    assert Binary("*", a, b).substitute({"b": Binary("+", c, Const(1))}).render() == "a * (c + 1)"
    assert Binary("//", a, b).substitute({"b": Binary("-", c, Const(1))}).render() == "a // (c - 1)"
    assert Binary("-", a, b).substitute({"b": Binary("-", c, Const(1))}).render() == "a + 1 - c"  # a sum, gathered
    # untouched: the same object back
    assert channels.substitute({"x": const(1)}) is channels


def test_folding_keeps_whole_numbers_only():
    assert binary("+", const(64), const(128)) == Const(192)
    assert binary("//", const(7), const(2)) == Const(3)
    assert binary("/", const(64), const(2)).render() == "64 / 2"  # a float result stays as written
    assert binary("//", const(1), const(0)).render() == "1 // 0"  # never folds an error away
    assert binary("+", binary("+", a, const(2)), const(3)).render() == "a + 5"
    assert binary("+", binary("+", a, b), a).render() == "a * 2 + b"
    assert binary("-", binary("+", a, b), a) == b and binary("-", a, a) == Const(0)
    assert binary("-", const(3), b).render() == "3 - b"
    assert binary("+", binary("+", a, Binary("*", const(2), b)), b).render() == "a + 3 * b"
    assert binary("-", binary("+", a, const(2)), const(3)).render() == "a - 1"
    assert binary("+", binary("-", a, const(1)), const(1)) == a
    assert binary("*", const(1), a) == a and binary("//", a, const(1)) == a and binary("*", a, const(2)).render() == "a * 2"
    assert binary("+", const(True), const(1)).render() == "True + 1"


def test_evaluate():
    expr = Binary("-", a, Binary("//", b, c))
    assert expr.evaluate({"a": 10, "b": 7, "c": 2}) == 7
    with pytest.raises(ExprError, match="no value for b, c"):
        expr.evaluate({"a": 1})
    with pytest.raises(ExprError, match="division by zero"):
        expr.evaluate({"a": 1, "b": 1, "c": 0})
    assert Binary("or", Binary("!=", a, Const(1)), Const(False)).evaluate({"a": 1}) is False


def test_deep_chains_need_no_recursion():
    expr = name("in_channels")
    for _ in range(20_000):
        expr = Binary("+", expr, name("g"))
    assert expr.render().count("+") == 20_000 and "(" not in expr.render()
    assert expr.substitute({"g": const(1), "in_channels": const(0)}) == Const(20_000)
    assert expr.evaluate({"in_channels": 1, "g": 2}) == 40_001


def test_equality_and_hash_follow_the_source():
    assert Binary("+", a, b) == Binary("+", name("a"), name("b"))
    assert hash(Binary("+", a, b)) == hash(Binary("+", a, b))
    assert Binary("+", a, b) != Binary("+", b, a) and Const(1) != Const(1.0) and Const(1) != Const(True)


NAMES = ("a", "b", "c")
leaves = st.one_of(st.integers(-50, 50).map(Const), st.sampled_from(NAMES).map(Name),
                   st.sampled_from([0.5, 2.25, -1.5]).map(Const))
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner, inner).map(lambda t: Binary(*t)),
        inner.map(lambda e: Unary("-", e))),
    max_leaves=12)
whole_leaves = st.one_of(st.integers(-50, 50).map(Const), st.sampled_from(NAMES).map(Name))
whole_trees = st.recursive(
    whole_leaves,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "//", "%"]), inner, inner).map(lambda t: Binary(*t)),
        inner.map(lambda e: Unary("-", e))),
    max_leaves=12)
envs = st.fixed_dictionaries({n: st.integers(-20, 20) for n in NAMES})


def _value(thunk):
    try:
        return ("ok", thunk())
    except (ZeroDivisionError, ExprError):
        return ("error",)
    except OverflowError:
        return ("overflow",)


@settings(max_examples=300, deadline=None)
@given(trees, envs)
def test_render_then_evaluate_equals_evaluate(expr, env):
    """The printed source computes what the tree computes: no bracket lost or misplaced."""
    tree = ast.parse(expr.render(), mode="eval")
    compiled = compile(tree, "<expr>", "eval")
    direct = _value(lambda: expr.evaluate(env))
    printed = _value(lambda: eval(compiled, {"__builtins__": {}}, dict(env)))  # the test's own eval
    assert direct == printed or "overflow" in (direct[0], printed[0])


@settings(max_examples=300, deadline=None)
@given(whole_trees, envs)
def test_substitute_then_evaluate_equals_evaluate_in_the_extended_env(expr, env):
    """Substituting and simplifying (for whole numbers, as channels and sizes are) keeps the value."""
    mapping = {"a": Binary("+", name("b"), Const(1)), "c": Const(1)}
    direct = _value(lambda: expr.evaluate({**env, "a": env["b"] + 1, "c": 1}))
    substituted = _value(lambda: expr.substitute(mapping).evaluate(env))
    assert direct == substituted or "overflow" in (direct[0], substituted[0])
