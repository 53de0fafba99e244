"""A block whose body is one repetition, written as the loop a hand-written class has.

torchvision's `_DenseBlock` is an `nn.ModuleDict` that adds `denselayer{i + 1}` in a
`for` loop and concatenates each layer's output to its input in `forward`. A block
whose whole body is `concat { identity  "denselayer{i + 1}": DenseLayer(...) }*n for i`
(or `X(...)*n for i` for a plain chain) is generated the same way, where each copy is
one block use that differs from the first only by the index: its name a number affine
in the index after a common prefix, its arguments and input channels affine in it.
Otherwise (or with a single copy, where the step cannot be seen) the block is unrolled.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from ..expr import Const, Expr, Name, binary
from ..namespace import HELPERS, MODULE_LEVEL, Namer
from ..traverse import evolve

_PREFIX = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = "0123456789"


def _numbered(name: str) -> tuple[str, int] | None:
    """A label as a prefix and its number (`denselayer12` -> ("denselayer", 12); a leading
    zero stays in the prefix), or None where it does not end in a number."""
    tail = name[len(name.rstrip(_DIGITS)):]
    if not tail:
        return None
    number = tail.lstrip("0") or "0"
    prefix = name[:len(name) - len(number)]
    return (prefix, int(number)) if set(prefix) <= _PREFIX else None


@dataclass(frozen=True)
class LoopModel:
    index: str  # the loop variable
    count: str  # what range() reads: an expression of the block's parameters
    key: str  # each copy's key, an f-string of the index: f"denselayer{i + 1}"
    local: str  # the local that holds a copy in __init__, and in forward
    ctor: object  # the construction of a copy (a model.Ctor), in terms of the index
    dense: bool  # x = torch.cat([x, layer(x)], dim=1), else x = layer(x)
    names: frozenset[str]  # the block parameters that the loop reads
    counts: frozenset[str]  # those the count reads: structure, so each use passes its number
    out_channels: Expr | None = None  # the block's output channels, where known (dense: input + step * count)

    @property
    def code(self) -> tuple:
        return self.count, self.key, self.ctor.code, self.dense


def _copy(item) -> tuple[ir.BlockInstance, bool] | None:
    """A copy's block use and whether it is dense (`concat { identity  X }`); None where the
    copy is anything else."""
    if isinstance(item, ir.BlockInstance) and item.name:
        return item, False
    if not isinstance(item, ir.Concat) or item.split or item.skips or len(item.branches) != 2:
        return None
    first, second = (ir.members(branch) for branch in item.branches)
    if any(branch.name is not None for branch in item.branches) or len(first) != 1 or len(second) != 1:
        return None
    if not (isinstance(first[0], ir.Layer) and first[0].kind == "identity"):
        return None
    use = second[0]
    return (use, True) if isinstance(use, ir.BlockInstance) and use.name else None


def _key(names: list[str], index: str) -> str | None:
    """The f-string that gives each copy's name, `f"denselayer{i + 1}"`, or None."""
    parts = [_numbered(name) for name in names]
    if any(p is None for p in parts) or len({p[0] for p in parts}) != 1:
        return None
    numbers = [p[1] for p in parts]
    step = numbers[1] - numbers[0]
    if step == 0 or any(n != numbers[0] + step * k for k, n in enumerate(numbers)):
        return None
    number = binary("+", binary("*", Name(index), Const(step)), Const(numbers[0]))
    return f'f"{parts[0][0]}{{{number.text}}}"'


def _affine(exprs: list[Expr], index: str) -> Expr | None:
    """One expression of the index that gives each of `exprs` at 0, 1, 2...: the first where
    they are all equal, else first + (second - first) * index where that holds for each."""
    first = exprs[0]
    if all(e.text == first.text for e in exprs):
        return first
    step = binary("-", exprs[1], exprs[0])
    if index in step.names:
        return None
    symbolic = binary("+", first, binary("*", step, Name(index)))
    for k, expr in enumerate(exprs):
        if symbolic.substitute({index: Const(k)}).text != expr.text:
            return None
    return symbolic


def _symbolic(uses: list[ir.BlockInstance], index: str) -> ir.BlockInstance | None:
    """The first use with its input channels and arguments in terms of the index."""
    channels = _affine([use.stats.in_channels for use in uses], index)
    if channels is None:
        return None
    args = []
    for at, (name, value) in enumerate(uses[0].args):
        expr = _affine([use.args[at][1].expr for use in uses], index)
        if expr is None or any(use.args[at][0] != name for use in uses):
            return None
        args.append((name, value if expr is value.expr else ir.Value(value.value, expr)))
    return evolve(uses[0], args=tuple(args), stats=evolve(uses[0].stats, in_channels=channels))


def _at(use: ir.BlockInstance, index: str, k: int) -> ir.BlockInstance:
    """The symbolic use with the index set to k."""
    mapping = {index: Const(k)}
    args = tuple((name, ir.Value(value.value, value.expr.substitute(mapping))) for name, value in use.args)
    return evolve(use, args=args, stats=evolve(use.stats, in_channels=use.stats.in_channels.substitute(mapping)))


def _calls_alike(generator, use: ir.BlockInstance, first: ir.BlockInstance) -> bool:
    """Whether the call of `use` is that of the symbolic use at its index without making the
    latter: `_at` gives the first use's class, values and reads with expressions that `_affine`
    checked are `use`'s own, so where `use` has the first's class, values and reads too, the
    two calls read the same (DenseNet's layers, which differ by their input channels alone)."""
    return generator.shared(use) is generator.shared(first) and \
        all(type(a.value) is type(b.value) and a.value == b.value for (_, a), (_, b) in zip(use.args, first.args)) and \
        [v.expr.text for v in use.read_channels] == [v.expr.text for v in first.read_channels]


def loop_model(generator, node: ir.BlockInstance, params: set[str]) -> LoopModel | None:
    """The loop of a block use whose body is a repetition (`ir.Loop`), where its copies allow
    one; `params` are the block's parameter names. None: unroll it."""
    loop = node.body.loop
    items = node.body.items
    if loop is None or len(items) < 2:
        return None
    copies = [_copy(item) for item in items]
    if any(c is None for c in copies) or len({dense for _, dense in copies}) != 1:
        return None
    uses = [use for use, _ in copies]
    namer = Namer(taken=params, reserved=MODULE_LEVEL | HELPERS | {"self", "x", "in_channels"})
    index = namer.fresh(loop.index if loop.index.isidentifier() else "i")
    key = _key([use.name for use in uses], index)
    symbolic = _symbolic(uses, index) if key is not None else None
    if symbolic is None:
        return None
    ctor = generator.ctor(symbolic)
    first = uses[0]
    for k, use in enumerate(uses):
        made = generator.ctor(use).code
        if not _calls_alike(generator, use, first) and made != generator.ctor(_at(symbolic, index, k)).code:
            return None
    names = (ctor.names | loop.count.names) - {index}
    dense = copies[0][1]
    out = symbolic.stats.in_channels.substitute({index: loop.count.expr}) if dense else None
    return LoopModel(index, loop.count.text, key, namer.fresh("layer"), ctor, dense, frozenset(names),
                     loop.count.names, out)
