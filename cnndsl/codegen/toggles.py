"""One class for the uses of a block that differ only by a residual's condition.

MobileNetV2's, MNASNet's and MobileNetV3's blocks add their input back where the shape
stays: `residual { Body }?(stride == 1 and inp == oup)` beside `Body?(stride != 1 or inp != oup)`.
Where a use with the residual and one without give the same members and the same forward
but for the saved input and the sum, they share one class that keeps the condition, as
torchvision writes it: `self.use_res_connect = stride == 1 and inp == oup` in __init__ and
`if self.use_res_connect: x = x + identity` in forward.
"""

from __future__ import annotations

from dataclasses import replace

from .. import ir
from ..expr import Expr, ExprError
from ..namespace import MODULE_ATTRIBUTES, Namer


def holds(condition: Expr, node: ir.BlockInstance) -> bool | None:
    """The condition's value for this use's arguments; None where it reads anything else."""
    try:
        value = condition.evaluate({name: value.value for name, value in node.args})
    except (ExprError, TypeError, ValueError, ZeroDivisionError, IndexError, KeyError):
        return None
    return value if isinstance(value, bool) else None


def _steps(forward) -> list[tuple]:
    return [(s.kind, s.target, s.parts, s.var, s.conditional, s.into, s.reads) for s in forward]


def merged(plain, residual):
    """The class of both uses (the residual's, its sum under the flag), or None where they
    differ in more than the residual: parameters, members or the statements between."""
    if residual.toggle is None or plain.toggle is not None or residual.loop or plain.loop:
        return None
    if [(n, d) for n, _, d in plain.params] != [(n, d) for n, _, d in residual.params]:
        return None
    if not residual.toggle.names <= {name for name, _, _ in residual.params}:
        return None  # a parameter the class would have to take only for the condition
    if [(m.name, m.ctor.code, m.condition) for m in plain.members] != \
            [(m.name, m.ctor.code, m.condition) for m in residual.members]:
        return None
    forward = residual.forward
    if len(forward) < 2 or forward[0].kind != "save" or forward[-1].kind != "add" or \
            _steps(forward[1:-1]) != _steps(plain.forward):
        return None
    namer = Namer(taken={m.name for m in residual.members} | {name for name, _, _ in residual.params},
                  reserved=MODULE_ATTRIBUTES)
    flag = namer.fresh("use_res_connect")
    return replace(residual, forward=forward[:-1] + (replace(forward[-1], conditional=True, target=flag),),
                   flags=((flag, residual.toggle.text),))
