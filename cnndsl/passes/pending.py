"""Values that read a block's input shape (`input.channels`, `input.height`, `input.width`),
for the shape pass: the expand pass leaves them pending (their tree, no number), and here,
where each block instance's input is known, they are computed.

`input.channels` stays `in_channels` in the tree, a parameter of every generated block
class; the height and width become the numbers of this instance (a class per size).
"""

from __future__ import annotations

from operator import attrgetter, itemgetter

from .. import ir
from ..expr import Const, ExprError, Name
from ..layers import RULES
from ..node import replace
from .expand import arg_problem
from .values import INPUT_NAMES, PENDING

_SIZES = (INPUT_NAMES["height"], INPUT_NAMES["width"])


class PendingProblem(Exception):
    def __init__(self, message: str, hint: str | None = None, code: str = "type"):
        super().__init__(message)
        self.message, self.hint, self.code = message, hint, code


def is_pending(value: ir.Value) -> bool:
    return value.value is PENDING


def block_env(args, shape: ir.Shape) -> dict[str, object]:
    """What the names in a block's trees stand for: its parameters and its input's shape."""
    env: dict[str, object] = {name: value.value for name, value in args}
    env[INPUT_NAMES["channels"]] = shape[0]
    if len(shape) == 3:
        env.update(zip(_SIZES, shape[1:]))
    return env


def computed(value: ir.Value, env: dict[str, object]) -> ir.Value:
    """The pending value computed in `env`; raises PendingProblem where it cannot be."""
    expr = value.expr
    if type(expr) is Name and expr.name in env and expr.name not in _SIZES:
        # `input.channels` alone, the commonest: what `evaluate` gives, without its checks
        return ir.Value(env[expr.name], expr)
    if not expr.names.isdisjoint(_SIZES):  # most read the channels alone
        expr = expr.substitute({n: Const(env[n]) for n in _SIZES if n in env})
    try:
        result = expr.evaluate(env)
    except ExprError as problem:
        raise PendingProblem(f"cannot compute {value.text}: {problem}",
                             "input.height and input.width need a CxHxW input") from None
    except (ArithmeticError, TypeError, ValueError, IndexError) as problem:
        raise PendingProblem(f"cannot compute {value.text}: {problem}", None, "range") from None
    return ir.Value(result, expr) if expr.names else ir.Value.constant(result)


def resolve_args(args, env: dict[str, object]):
    """A block instance's arguments with the pending ones computed."""
    return tuple((name, computed(value, env) if is_pending(value) else value) for name, value in args)


def resolve_layer(layer: ir.Layer, env: dict[str, object]) -> ir.Layer:
    """The layer with its pending arguments computed and checked as the expand pass checks
    the others; raises PendingProblem."""
    args = layer.args
    if PENDING not in map(_VALUE, map(_SECOND, args)):
        return layer
    rule = RULES[layer.kind]
    resolved = []
    for pair in args:
        value = pair[1]
        if value.value is PENDING:  # few are (a squeeze-excite's `conv(input.channels)`): its spec looked up alone
            name = pair[0]
            value = computed(value, env)
            problem = arg_problem(rule, next(spec for spec in rule.args if spec.name == name), value.value)
            if problem:
                raise PendingProblem(*problem)
            pair = (name, value)
        resolved.append(pair)
    return replace(layer, args=tuple(resolved))


_SECOND, _VALUE = itemgetter(1), attrgetter("value")


__all__ = ["PendingProblem", "block_env", "is_pending", "resolve_args", "resolve_layer"]
