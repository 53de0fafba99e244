"""From the checked IR to diagram elements: the labels (from the rule table in
`layers.py`), the folding of pointwise layers into the box before them, runs of
identical units grouped with a count, and one box per block instance whose legend
(`page.py`) shows its internals once."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import ir
from ..layers import RULES, figure_label
from ..summary import human
from ..traverse import Visitor
from .layout import Box, Branches, Column, Element, Node, Repeat, Shortcut, SideOut, Stage, shape_text

def layer_label(layer: ir.Layer, symbolic: bool = False) -> str:
    """`conv 5×5, 6`, `maxpool 3×3/2`: the kind and the arguments that shape it, as `layers.py`
    labels it for the diagram."""
    return figure_label(layer.kind, layer.args, symbolic)


def folds(layer: ir.Layer) -> bool:
    """Drawn as a suffix of the box before it: a pointwise layer (a box per ReLU would double
    a diagram's height and say nothing), or the flatten before an fc."""
    rule = RULES[layer.kind]
    return rule.pointwise or rule.category == "reshape"


def _style(kind: str) -> str:
    category = RULES[kind].category
    return category if category in ("conv", "pool", "fc") else "other"


def block_call(inst: ir.BlockInstance, info: ir.BlockInfo | None, symbolic: bool = False) -> str:
    """`Bottleneck(128, stride=2)`: required arguments by position, changed defaults by name."""
    def show(value: ir.Value) -> str:
        return value.text.replace(" * ", "·") if symbolic else str(value.value)

    def changed(value: ir.Value, default: ir.Value) -> bool:
        return default.value != value.value or (symbolic and value.text != default.text)

    return ir.call_text(inst.block, inst.args, dict(info.params) if info else {}, show, changed)


def block_signature(info: ir.BlockInfo) -> str:
    """`Bottleneck(planes, stride=1)`: the block's parameters as declared."""
    parts = [name if default is None else f"{name}={default.text}" for name, default in info.params]
    return f"{info.name}({', '.join(parts)})"


@dataclass
class Unit:
    """A step of a chain before layout: a layer with the pointwise layers folded into it, a
    block instance, or a structure (residual, concat, side, stage)."""

    node: object
    extras: list = field(default_factory=list)  # folded pointwise layers
    members: list = field(default_factory=list)  # stage units

    @property
    def out_shape(self):
        last = self.extras[-1] if self.extras else self.node
        return last.stats.out_shape

    @property
    def params(self) -> int:
        return self.node.stats.params + sum(e.stats.params for e in self.extras)

    def signature(self, symbolic: bool):
        if isinstance(self.node, ir.Layer):
            labels = tuple(layer_label(n, symbolic) for n in [self.node, *self.extras])
            return ("layer", labels, self.out_shape)
        if isinstance(self.node, ir.BlockInstance):
            return ("block", self.node.block, tuple((k, v.value) for k, v in self.node.args),
                    tuple(layer_label(n, symbolic) for n in self.extras), self.out_shape)
        return None


class Builder(Visitor):
    """The elements of a chain: `units` folds and orders it, `group` finds the repeats,
    `element` (a visitor over the IR's node kinds) draws each."""

    def __init__(self, network: ir.Network, symbolic: bool = False, legend: str = "") -> None:
        self.network = network
        self.legend = legend
        self.symbolic = symbolic  # inside a block's legend: arguments as the block writes them
        self.blocks: dict[str, ir.BlockInstance] = {}  # the first instance of each block, for the legend
        self.output_keys = {} if symbolic else {o.element: o.key for o in network.outputs}

    def units(self, seq: ir.Seq) -> list[Unit]:
        result: list[Unit] = []
        for item in _sides_in_place(seq.items):
            if isinstance(item, ir.Seq) and item.name is None:
                result.extend(self.units(item))
            elif isinstance(item, ir.Seq):
                result.append(Unit(item, members=self.units(item)))
            elif isinstance(item, ir.Layer) and folds(item) and result \
                    and isinstance(result[-1].node, (ir.Layer, ir.BlockInstance)):
                result[-1].extras.append(item)
            else:
                if isinstance(item, ir.BlockInstance):
                    self.blocks.setdefault(item.block, item)
                result.append(Unit(item))
        return result

    def column(self, units: list[Unit]) -> Column:
        return Column(self.group(units))

    def group(self, units: list[Unit]) -> list[Element]:
        """Runs of identical units become one element with a count; the longest coverage wins."""
        out: list[Element] = []
        sigs = [u.signature(self.symbolic) for u in units]
        i = 0
        while i < len(units):
            best_p, best_k = 1, 1
            for p in range(1, min(6, (len(units) - i) // 2) + 1):
                k = 1
                while i + (k + 1) * p <= len(units) and all(
                        sigs[i + j] is not None and sigs[i + k * p + j] == sigs[i + j] for j in range(p)):
                    k += 1
                if k > 1 and p * k > best_p * best_k:
                    best_p, best_k = p, k
            run = units[i:i + best_p * best_k]
            if best_k == 1:
                out.append(self.element(units[i]))
            elif best_p == 1:
                out.append(self.element(units[i], run))
            else:
                out.append(Repeat(Column(self.group(units[i:i + best_p])), best_k))
            i += best_p * best_k
        return out

    def element(self, unit: Unit, run: list[Unit] | None = None) -> Element:
        """The element of a unit (of a run of identical units, drawn once with a count)."""
        return self.visit(unit.node, unit, run or [unit])

    def visit_Layer(self, node: ir.Layer, unit: Unit, run: list[Unit]) -> Element:
        title = " · ".join(layer_label(n, self.symbolic) for n in [node, *unit.extras])
        return Box(title, self._sub(unit.out_shape, sum(u.params for u in run)), _style(node.kind),
                   self._names(run), len(run), unit.out_shape, node.kind, legend=self.legend)

    def visit_BlockInstance(self, node: ir.BlockInstance, unit: Unit, run: list[Unit]) -> Element:
        title = block_call(node, self.network.blocks.get(node.block), self.symbolic)
        if node.reads:  # LRASPPHead(21) · reads backbone.4
            title += " · reads " + ", ".join(source for _, source in node.reads)
        if unit.extras:
            title += " · " + " · ".join(layer_label(n, self.symbolic) for n in unit.extras)
        return Box(title, self._sub(unit.out_shape, sum(u.params for u in run)), "block", self._names(run), len(run),
                   unit.out_shape, "block", legend=self.legend)

    def visit_Seq(self, node: ir.Seq, unit: Unit, run: list[Unit]) -> Element:
        return Stage(node.name, self.column(unit.members))

    def visit_Concat(self, node: ir.Concat, unit: Unit, run: list[Unit]) -> Element:
        skips = [Column([Box(f"copy {name}" + (f" · {fit}" if fit else ""), "", "other", kind="skip")])
                 for name, fit in zip(node.skips, node.fits or ("",) * len(node.skips))]
        if not node.branches:  # concat(enc4): the skip beside the chain's value
            skips.append(Column([]))
        columns = skips + [self.column(self.units(b)) for b in node.branches]
        names = [""] * len(skips) + [_branch_name(b) for b in node.branches]
        for column, name in zip(columns, names):  # the branch's name is written above it
            if column.items and isinstance(column.items[0], Box) and column.items[0].name == name:
                column.items[0].name = ""
        for column, source in zip(columns[len(skips):], node.sources):  # from(low): what the branch reads
            if source is not None:
                column.items.insert(0, Box(f"from {source}", "", "other", kind="skip"))
        shape = "" if self.symbolic else f"  {shape_text(node.stats.out_shape)}"
        sign, word = {"add": ("+", "add"), "mul": ("×", "mul")}.get(node.op, ("C", "split · concat" if node.split
                                                                           else "concat"))
        return Branches(columns, Node(sign, word + shape), names)

    def visit_Residual(self, node: ir.Residual, unit: Unit, run: list[Unit]) -> Element:
        body = self.column(self.units(node.body))
        return Shortcut(body, self._shortcut_label(node.shortcut), Node("+", "" if self.symbolic else "add"))

    def visit_Gate(self, node: ir.Gate, unit: Unit, run: list[Unit]) -> Element:
        """The body (the scale) on the axis, the input carried round it to the product ⊗."""
        body = self.column(self.units(node.body))
        return Shortcut(body, ["input"], Node("×", "" if self.symbolic else "gate"))

    def visit_Side(self, node: ir.Side, unit: Unit, run: list[Unit]) -> Element:
        return SideOut(self.column(self.units(ir.Seq((node.node,), None, node.span, node.stats))))

    def generic_visit(self, node, *args) -> Element:
        raise TypeError(f"no drawing for {type(node).__name__}")

    def _names(self, run: list[Unit]) -> str:
        """The run's names, with the key of a named output it gives: `classifier → out`."""
        names = _names(run)
        key = self.output_keys.get(getattr(run[-1].node, "name", None)) if len(run) == 1 else None
        return f"{names} → {key}" if key is not None and key != names else names

    def _sub(self, shape, params: int) -> str:
        if self.symbolic:
            return ""
        return f"{shape_text(shape)}" + (f"  ·  {human(params)} params" if params else "")

    def _shortcut_label(self, shortcut: ir.Shortcut) -> list[str]:
        kind = {"projection": "1×1 conv" + (" · bn" if shortcut.bn else ""),
                "pad": "zero-pad channels"}.get(shortcut.kind, "identity")
        if shortcut.kind == "identity":
            return ["identity"]
        if self.symbolic and shortcut.condition is not None and shortcut.condition.text not in ("True", "False"):
            return [f"{kind} if", *_wrap(shortcut.condition.text.replace(" * ", "·"), 24), "else identity"]
        return [kind if shortcut.applied else "identity"]


def _sides_in_place(items: tuple) -> list:
    """The chain with each side output drawn right after the member it reads (`side(inception4a)`),
    rather than where the source lists it."""
    chain = [i for i in items if not (isinstance(i, ir.Side) and i.source)]
    for side in (i for i in items if isinstance(i, ir.Side) and i.source):
        names = [getattr(i, "name", None) for i in chain]
        source = side.source.split(".")[0]  # side(backbone.layer3): after the group it reads inside
        chain.insert(names.index(source) + 1 if source in names else len(chain), side)
    return chain


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _branch_name(branch: ir.Seq) -> str:
    name = branch.name or (getattr(branch.items[0], "name", None) if len(branch.items) == 1 else None) or ""
    return "" if name.isdigit() else name


def _names(run: list[Unit]) -> str:
    names = [getattr(u.node, "name", None) or "" for u in run]
    if len(run) == 1:
        return "" if names[0].isdigit() else names[0]
    if all(n.isdigit() for n in names):
        return ""  # `layer3.1 … layer3.35`: the stage's bracket says it
    return f"{names[0]} … {names[-1]}"
