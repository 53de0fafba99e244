"""The passes, in order: each takes the previous stage's tree and returns a new one.

    resolve       names mean one thing and are safe to emit         (syntax tree)
    expand        values, lets, blocks, repetitions, optionals      (syntax tree -> IR)
    infer_shapes  shapes, parameters, MACs, receptive fields        (IR -> IR + warnings)
    assign_names  attribute names and Sequential indices            (IR -> IR)
"""

from .expand import expand
from .names import assign_names
from .resolve import resolve
from .shapes import infer_shapes

PIPELINE = ("resolve", "expand", "infer_shapes", "assign_names")

__all__ = ["PIPELINE", "assign_names", "expand", "infer_shapes", "resolve"]
