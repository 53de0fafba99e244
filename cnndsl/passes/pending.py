"""Values that read a block's input shape (`input.channels`, `input.height`, `input.width`),
for the shape pass: the expand pass leaves them pending (their tree, no number), and here,
where each block instance's input is known, they are computed.

`input.channels` stays `in_channels` in the tree, a parameter of every generated block
class; the height and width become the numbers of this instance (a class per size).
"""

from __future__ import annotations

from .. import ir
from ..expr import Const, ExprError
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
    if not any(is_pending(v) for _, v in layer.args):
        return layer
    specs = {spec.name: spec for spec in RULES[layer.kind].args}
    args = []
    for name, value in layer.args:
        if is_pending(value):
            value = computed(value, env)
            problem = arg_problem(RULES[layer.kind], specs[name], value.value)
            if problem:
                raise PendingProblem(*problem)
        args.append((name, value))
    return replace(layer, args=tuple(args))


__all__ = ["PendingProblem", "block_env", "is_pending", "resolve_args", "resolve_layer"]
