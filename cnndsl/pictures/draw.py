"""`cnndsl draw`: an architecture diagram, a reader of the checked IR like the summary.

The IR's chain becomes a tree of diagram elements (boxes, columns, concat branches,
residual arcs, repeats, stages), which lay themselves out top to bottom and emit
drawing primitives; the primitives are written as SVG text here, or painted by
matplotlib for PNG (imported only then). Pointwise layers (activations, batch norm,
dropout) fold into the box before them, repeats of identical layers or block
instances show once with "×k", and each block instance is one box whose internals
are drawn once, symbolically, in a legend beside the main column. Every number comes
from the IR's stats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

import click

from ..errors import MissingExtra, UsageError
from .. import ir
from ..options import NETWORK_OPTION, SET_OPTION
from ..layers import RULES, figure_label
from ..passes.shapes import fmt_shape
from ..summary import human

FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"
STYLES = {  # fill, stroke
    "conv": ("#dbe8f5", "#3f74ad"),
    "pool": ("#fde3c8", "#c77a2c"),
    "fc": ("#dcefd3", "#4f8f3f"),
    "block": ("#e9e0f4", "#6f4fa0"),
    "input": ("#ffffff", "#555555"),
    "other": ("#eeeeee", "#777777"),
}
INK = "#222222"
MUTED = "#666666"
TITLE_SIZE = 13
SUB_SIZE = 11
GAP = 18  # vertical room for an arrow between two elements

# Advance widths of DejaVu Sans in em: boxes are sized from estimated text widths, so
# that SVG needs no font metrics; the estimate errs wide, as other fonts are narrower.
_WIDTH = {**{c: 0.636 for c in "0123456789"}, **{c: 0.28 for c in "ijl|'"}, **{c: 0.34 for c in " .,:;!/·()[]"},
          **{c: 0.84 for c in "×=+<>→"}, "m": 0.97, "w": 0.82, "f": 0.35, "t": 0.39, "r": 0.41, "-": 0.36,
          "…": 1.0, "⊕": 0.84}


def text_width(text: str, size: float, bold: bool = False) -> float:
    em = sum(_WIDTH.get(c, 0.72 if c.isupper() else 0.6) for c in text)
    return em * size * (1.12 if bold else 1.0)


# -- primitives --------------------------------------------------------------------------

@dataclass
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str
    rx: float = 4
    dash: bool = False
    cls: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class Text:
    x: float
    y: float  # baseline
    text: str
    size: float
    color: str = INK
    anchor: str = "start"  # start, middle, end
    bold: bool = False
    cls: str = ""
    data: dict = field(default_factory=dict)


@dataclass
class Poly:
    points: list
    stroke: str = "#444444"
    fill: str | None = None
    width: float = 1.2
    dash: bool = False
    closed: bool = False


@dataclass
class Circle:
    x: float
    y: float
    r: float
    fill: str
    stroke: str


def arrow(out: list, x0: float, y0: float, x1: float, y1: float, dash: bool = False, color: str = "#444444") -> None:
    """A line with a filled head at (x1, y1)."""
    angle = math.atan2(y1 - y0, x1 - x0)
    size = 6
    back = (x1 - size * math.cos(angle), y1 - size * math.sin(angle))
    out.append(Poly([(x0, y0), back], stroke=color, dash=dash))
    left = (back[0] + size * 0.5 * math.sin(angle), back[1] - size * 0.5 * math.cos(angle))
    right = (back[0] - size * 0.5 * math.sin(angle), back[1] + size * 0.5 * math.cos(angle))
    out.append(Poly([(x1, y1), left, right], stroke=color, fill=color, width=0.8, closed=True))


# -- labels ------------------------------------------------------------------------------

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


def _shape(shape) -> str:
    return fmt_shape(shape).replace("x", "×")


# -- elements ----------------------------------------------------------------------------

class Element:
    """Something laid out around a vertical axis: `lw` left of it, `rw` right, `h` tall."""

    lw: float = 0
    rw: float = 0
    h: float = 0

    def draw(self, out: list, ax: float, y: float) -> None:
        raise NotImplementedError


class Box(Element):
    ICON = 30

    def __init__(self, title: str, sub: str, style: str, name: str = "", count: int = 1,
                 shape: tuple = (), kind: str = "", icon: bool = True, legend: str = "") -> None:
        self.title, self.sub, self.style, self.name, self.count = title, sub, style, name, count
        self.legend = legend  # the block whose legend the box is in; "" in the main column
        self.shape, self.kind = shape, kind or style
        self.icon = icon and bool(shape)
        self.h = 40 if sub else 26
        inner = text_width(title, TITLE_SIZE, True) + (text_width(name, SUB_SIZE) + 16 if name else 0)
        inner = max(inner, text_width(sub, SUB_SIZE) if sub else 0)
        self.width = inner + 20 + (self.ICON if self.icon else 0)
        self.badge = text_width(f"×{count}", 14, True) + 14 if count > 1 else 0
        self.resize(self.width)

    def resize(self, width: float) -> None:
        self.width = width
        self.lw = width / 2
        self.rw = width / 2 + self.badge + (8 if self.count > 1 else 0)

    def draw(self, out: list, ax: float, y: float) -> None:
        fill, stroke = STYLES[self.style]
        x = ax - self.width / 2
        for k in range(min(self.count, 3) - 1, 0, -1):  # a stack: the repeats behind the box
            out.append(Rect(x + 4 * k, y + 4 * k, self.width, self.h, fill, stroke))
        out.append(Rect(x, y, self.width, self.h, fill, stroke, cls="box",
                        data={"kind": self.kind, "count": str(self.count), "label": self.title, "legend": self.legend,
                              "shape": _shape(self.shape) if self.shape else ""}))
        left = x + 10
        if self.icon:
            _volume(out, x + 6 + self.ICON / 2, y + self.h / 2, self.shape, stroke)
            left += self.ICON
        title_y = y + (17 if self.sub else 17.5)
        out.append(Text(left, title_y, self.title, TITLE_SIZE, bold=True, cls="title"))
        if self.name:
            out.append(Text(x + self.width - 8, title_y, self.name, SUB_SIZE, MUTED, anchor="end", cls="name"))
        if self.sub:
            out.append(Text(left, y + 32, self.sub, SUB_SIZE, "#333333", cls="shape"))
        if self.count > 1:
            out.append(Text(x + self.width + 8 + 4 * (min(self.count, 3) - 1) + 4, y + self.h / 2 + 5,
                            f"×{self.count}", 14, stroke, bold=True, cls="count"))


def _volume(out: list, cx: float, cy: float, shape: tuple, color: str) -> None:
    """A small cuboid whose height follows the map size and depth the channels (log scale)."""
    if len(shape) == 3:
        c, h, _ = shape
        face = 6 + 18 * min(1.0, math.log2(max(h, 1) + 1) / math.log2(225))
        depth = 2 + 10 * min(1.0, math.log2(max(c, 1)) / 11)
        width = face * 0.55
    else:
        face = 6 + 18 * min(1.0, math.log2(max(shape[0], 1) + 1) / 12)
        depth, width = 2.0, 3.0
    x0 = cx - (width + depth * 0.7) / 2
    y0 = cy - face / 2 + depth * 0.35
    dx, dy = depth * 0.7, -depth * 0.7
    front = [(x0, y0), (x0 + width, y0), (x0 + width, y0 + face), (x0, y0 + face)]
    top = [(x0, y0), (x0 + dx, y0 + dy), (x0 + width + dx, y0 + dy), (x0 + width, y0)]
    side = [(x0 + width, y0), (x0 + width + dx, y0 + dy), (x0 + width + dx, y0 + face + dy), (x0 + width, y0 + face)]
    for points, fill in ((side, "#ffffffaa"), (top, "#ffffffdd"), (front, "#ffffff")):
        out.append(Poly(points, stroke=color, fill=fill, width=0.8, closed=True))


class Column(Element):
    def __init__(self, items: list[Element]) -> None:
        self.items = items
        align(items)

    # Computed on demand, since `align` may widen boxes after the column is built.
    lw = property(lambda self: max((e.lw for e in self.items), default=0))
    rw = property(lambda self: max((e.rw for e in self.items), default=0))
    h = property(lambda self: sum(e.h for e in self.items) + GAP * max(len(self.items) - 1, 0))

    def draw(self, out: list, ax: float, y: float) -> None:
        for i, item in enumerate(self.items):
            if i:
                arrow(out, ax, y - GAP, ax, y)
            item.draw(out, ax, y)
            y += item.h + GAP


def align(items: list[Element]) -> None:
    """One width for the boxes of a chain, through its stages and repeats: reads as a table."""
    boxes: list[Box] = []

    def collect(element: Element) -> None:
        if isinstance(element, Box):
            boxes.append(element)
        elif isinstance(element, Column):
            for item in element.items:
                collect(item)
        elif isinstance(element, (Repeat, Stage)):
            collect(element.inner)

    for item in items:
        collect(item)
    if boxes:
        width = max(b.width for b in boxes)
        for b in boxes:
            b.resize(width)


class Node(Element):
    """A small circle where branches meet: ⊕ for a sum, ‖ for a concatenation."""

    def __init__(self, symbol: str, sub: str = "") -> None:
        self.symbol, self.sub = symbol, sub
        self.h = 20
        self.lw = 10
        self.rw = 10 + (text_width(sub, SUB_SIZE) + 8 if sub else 0)

    def draw(self, out: list, ax: float, y: float) -> None:
        out.append(Circle(ax, y + 10, 10, "#ffffff", "#444444"))
        if self.symbol == "+":
            out.append(Poly([(ax - 5, y + 10), (ax + 5, y + 10)], stroke=INK, width=1.5))
            out.append(Poly([(ax, y + 5), (ax, y + 15)], stroke=INK, width=1.5))
        else:
            out.append(Text(ax, y + 14, self.symbol, 11, INK, anchor="middle", bold=True))
        if self.sub:
            out.append(Text(ax + 16, y + 14, self.sub, SUB_SIZE, MUTED, cls="shape"))


class Branches(Element):
    """Concat branches side by side, fanning out from the axis and meeting in a node."""

    SPREAD = 16
    FAN = 22  # room above the branches for the fan-out and the branch names

    def __init__(self, columns: list[Element], merge: Node, names: list[str]) -> None:
        self.columns, self.merge, self.names = columns, merge, names
        widths = [c.lw + c.rw for c in columns]
        total = sum(widths) + self.SPREAD * (len(columns) - 1)
        self.lw = max(total / 2, merge.lw)
        self.rw = max(total / 2, merge.rw)
        self.h = self.FAN + max(c.h for c in columns) + GAP + merge.h

    def draw(self, out: list, ax: float, y: float) -> None:
        x = ax - (sum(c.lw + c.rw for c in self.columns) + self.SPREAD * (len(self.columns) - 1)) / 2
        bottom = y + self.FAN + max(c.h for c in self.columns)
        merge_y = bottom + GAP
        for column, name in zip(self.columns, self.names):
            cx = x + column.lw
            out.append(Poly([(ax, y - 2), (ax, y + 4), (cx, y + 4)], stroke="#444444"))
            arrow(out, cx, y + 4, cx, y + self.FAN)
            if name:
                out.append(Text(cx + 5, y + 17, name, 10, MUTED, cls="branch"))
            column.draw(out, cx, y + self.FAN)
            end = y + self.FAN + column.h
            out.append(Poly([(cx, end), (cx, merge_y - 6), (ax, merge_y - 6)], stroke="#444444"))
            x += column.lw + column.rw + self.SPREAD
        arrow(out, ax, merge_y - 6, ax, merge_y)
        self.merge.draw(out, ax, merge_y)


class Shortcut(Element):
    """A residual body with its shortcut as an arc on the right, meeting in ⊕."""

    def __init__(self, body: Element, label: list[str], merge: Node) -> None:
        self.body, self.label, self.merge = body, label, merge
        self.arc = body.rw + 22
        label_w = max((text_width(t, SUB_SIZE) for t in label), default=0)
        self.lw = max(body.lw, merge.lw)
        self.rw = max(self.arc + 8 + label_w, merge.rw)
        self.h = 8 + body.h + GAP + merge.h

    def draw(self, out: list, ax: float, y: float) -> None:
        body_y = y + 8
        self.body.draw(out, ax, body_y)
        out.append(Poly([(ax, y - 2), (ax, body_y)], stroke="#444444"))
        merge_y = body_y + self.body.h + GAP
        arrow(out, ax, body_y + self.body.h, ax, merge_y)
        xr = ax + self.arc
        # The arc leaves the axis above the body and comes back into the ⊕ from the right.
        out.append(Poly(_rounded([(ax, y + 2), (xr, y + 2), (xr, merge_y + 10)], 8), stroke="#b03a2e", width=1.4))
        arrow(out, xr, merge_y + 10, ax + 10, merge_y + 10, color="#b03a2e")
        mid = body_y + self.body.h / 2 - 7 * (len(self.label) - 1)
        for i, line in enumerate(self.label):
            out.append(Text(xr + 6, mid + 14 * i + 4, line, SUB_SIZE, "#b03a2e", cls="shortcut"))
        self.merge.draw(out, ax, merge_y)


def _rounded(points: list, r: float) -> list:
    """A polyline with its corners cut by quarter-circle arcs of radius r (as segments)."""
    result = [points[0]]
    for (x0, y0), (x1, y1), (x2, y2) in zip(points, points[1:], points[2:]):
        d0 = math.hypot(x1 - x0, y1 - y0) or 1
        d1 = math.hypot(x2 - x1, y2 - y1) or 1
        a = (x1 - (x1 - x0) * r / d0, y1 - (y1 - y0) * r / d0)
        b = (x1 + (x2 - x1) * r / d1, y1 + (y2 - y1) * r / d1)
        for t in (0, 0.25, 0.5, 0.75, 1):  # a quadratic curve through the corner
            result.append(((1 - t) ** 2 * a[0] + 2 * (1 - t) * t * x1 + t * t * b[0],
                           (1 - t) ** 2 * a[1] + 2 * (1 - t) * t * y1 + t * t * b[1]))
    result.append(points[-1])
    return result


class Repeat(Element):
    """A run of several elements repeated k times: drawn once in a dashed frame, "×k"."""

    PAD = 10

    def __init__(self, inner: Column, count: int) -> None:
        self.inner, self.count = inner, count
        self.tag = f"×{count}"

    lw = property(lambda self: self.inner.lw + self.PAD)
    rw = property(lambda self: self.inner.rw + self.PAD + text_width(self.tag, 14, True) + 8)
    h = property(lambda self: self.inner.h + 2 * self.PAD)

    def draw(self, out: list, ax: float, y: float) -> None:
        out.append(Rect(ax - self.lw, y, self.inner.lw + self.inner.rw + 2 * self.PAD, self.h, "none", "#888888",
                        rx=8, dash=True, cls="repeat", data={"count": str(self.count)}))
        out.append(Poly([(ax, y - 2), (ax, y + self.PAD)], stroke="#444444"))
        self.inner.draw(out, ax, y + self.PAD)
        out.append(Poly([(ax, y + self.PAD + self.inner.h), (ax, y + self.h + 2)], stroke="#444444"))
        out.append(Text(ax + self.inner.rw + self.PAD + 6, y + self.h / 2 + 5, self.tag, 14, "#555555", bold=True,
                        cls="count"))


class Stage(Element):
    """A named sequence (ResNet's `layer2`): a bracket on the left with the name."""

    def __init__(self, name: str, inner: Element) -> None:
        self.name, self.inner = name, inner

    lw = property(lambda self: self.inner.lw + 14 + text_width(self.name, SUB_SIZE, True) + 6)
    rw = property(lambda self: self.inner.rw)
    h = property(lambda self: self.inner.h)

    def draw(self, out: list, ax: float, y: float) -> None:
        self.inner.draw(out, ax, y)
        bx = ax - self.inner.lw - 8
        out.append(Poly([(bx + 4, y), (bx, y), (bx, y + self.h), (bx + 4, y + self.h)], stroke="#999999"))
        out.append(Text(bx - 5, y + self.h / 2 + 4, self.name, SUB_SIZE, MUTED, anchor="end", bold=True, cls="stage"))


class SideOut(Element):
    """An extra output read off the chain: a dashed arrow to the right."""

    def __init__(self, inner: Element) -> None:
        self.inner = inner
        self.lw = 4
        self.rw = 50 + inner.lw + inner.rw
        self.h = inner.h

    def draw(self, out: list, ax: float, y: float) -> None:
        out.append(Poly([(ax, y - 2), (ax, y + self.h + 2)], stroke="#444444"))
        arrow(out, ax, y + 13, ax + 50, y + 13, dash=True)
        out.append(Text(ax + 6, y + 9, "side", 10, MUTED))
        self.inner.draw(out, ax + 50 + self.inner.lw, y)


# -- from the IR to elements --------------------------------------------------------------

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


class Builder:
    def __init__(self, network: ir.Network, symbolic: bool = False, legend: str = "") -> None:
        self.network = network
        self.legend = legend
        self.symbolic = symbolic  # inside a block's legend: arguments as the block writes them
        self.blocks: dict[str, ir.BlockInstance] = {}  # the first instance of each block, for the legend

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
        node = unit.node
        run = run or [unit]
        count = len(run)
        name = _names(run)
        if isinstance(node, ir.Layer):
            title = " · ".join(layer_label(n, self.symbolic) for n in [node, *unit.extras])
            return Box(title, self._sub(unit.out_shape, sum(u.params for u in run)), _style(node.kind),
                       name, count, unit.out_shape, node.kind, legend=self.legend)
        if isinstance(node, ir.BlockInstance):
            info = self.network.blocks.get(node.block)
            title = block_call(node, info, self.symbolic)
            if unit.extras:
                title += " · " + " · ".join(layer_label(n, self.symbolic) for n in unit.extras)
            return Box(title, self._sub(unit.out_shape, sum(u.params for u in run)), "block", name, count,
                       unit.out_shape, "block", legend=self.legend)
        if isinstance(node, ir.Seq):
            return Stage(node.name, self.column(unit.members))
        if isinstance(node, ir.Concat):
            columns = [self.column(self.units(b)) for b in node.branches]
            names = [_branch_name(b) for b in node.branches]
            for column, name in zip(columns, names):  # the branch's name is written above it
                if column.items and isinstance(column.items[0], Box) and column.items[0].name == name:
                    column.items[0].name = ""
            return Branches(columns, Node("C", "concat" + ("" if self.symbolic else
                                                          f"  {_shape(node.stats.out_shape)}")), names)
        if isinstance(node, ir.Residual):
            body = self.column(self.units(node.body))
            return Shortcut(body, self._shortcut_label(node.shortcut), Node("+", "" if self.symbolic else "add"))
        if isinstance(node, ir.Side):
            inner = self.column(self.units(ir.Seq((node.node,), None, node.span, node.stats)))
            return SideOut(inner)
        raise TypeError(f"no drawing for {type(node).__name__}")

    def _sub(self, shape, params: int) -> str:
        if self.symbolic:
            return ""
        return f"{_shape(shape)}" + (f"  ·  {human(params)} params" if params else "")

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
        chain.insert(names.index(side.source) + 1 if side.source in names else len(chain), side)
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


# -- the page ----------------------------------------------------------------------------

@dataclass
class Diagram:
    width: float
    height: float
    prims: list
    title: str


def diagram(network: ir.Network) -> Diagram:
    """Lay out the whole figure: title, main column, block legends on the right, caption."""
    builder = Builder(network)
    stats = network.body.stats
    items: list[Element] = [Box(f"input {_shape(network.input)}", "", "input", shape=network.input, kind="input")]
    items += builder.group(builder.units(network.body))
    main = Column(items)
    prims: list = []
    margin = 24
    top = margin + 34
    main_x = margin + main.lw
    main.draw(prims, main_x, top)
    right = main_x + main.rw
    bottom = top + main.h

    # The legends: each block drawn once, with its arguments as written in the block.
    legend_x = right + 48
    y = top
    widest = 0.0
    seen: list[str] = []
    queue = list(builder.blocks)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.append(name)
        inner_builder = Builder(network, symbolic=True, legend=name)
        inst = builder.blocks.get(name) or inner_builder.blocks[name]
        column = inner_builder.column(inner_builder.units(inst.body))
        for nested in inner_builder.blocks:
            builder.blocks.setdefault(nested, inner_builder.blocks[nested])
            queue.append(nested)
        info = network.blocks.get(name)
        heading = block_signature(info) if info else name
        pad = 14
        frame_w = max(column.lw + column.rw, text_width(heading, TITLE_SIZE, True)) + 2 * pad
        frame_h = column.h + 2 * pad + 24
        prims.append(Rect(legend_x, y, frame_w, frame_h, "#faf8fd", "#b9a6d6", rx=8, cls="legend",
                          data={"block": name}))
        prims.append(Text(legend_x + pad, y + 22, heading, TITLE_SIZE, "#4b2f7a", bold=True, cls="legend-title"))
        ax = legend_x + pad + column.lw + max(0.0, (frame_w - 2 * pad - column.lw - column.rw) / 2)
        column.draw(prims, ax, y + 24 + pad)
        widest = max(widest, frame_w)
        y += frame_h + 20
    if seen:
        right = legend_x + widest
        bottom = max(bottom, y - 20)

    title = f"{network.name}"
    prims.append(Text(margin, margin + 10, title, 18, bold=True, cls="heading"))
    caption_y = bottom + 34
    params = stats.params
    lines = [
        (f"{params:,} parameters  ·  {human(stats.macs)} multiply-accumulates per image", "caption",
         {"params": str(params), "macs": str(stats.macs)}),
        (f"input {_shape(network.input)}  →  output {_shape(stats.out_shape)}  ·  "
         f"receptive field {stats.rf}×{stats.rf}", "caption", {}),
    ]
    for i, (text, cls, data) in enumerate(lines):
        prims.append(Text(margin, caption_y + 18 * i, text, 13 if i == 0 else 12, INK if i == 0 else MUTED,
                          bold=i == 0, cls=cls, data=data))
    width = max(right, margin + max(text_width(t, 13, True) for t, _, _ in lines)) + margin
    height = caption_y + 18 * (len(lines) - 1) + margin
    return Diagram(math.ceil(width), math.ceil(height), prims, title)


# -- writers -----------------------------------------------------------------------------

def _attrs(data: dict) -> str:
    return "".join(f' data-{k}="{escape(str(v))}"' for k, v in data.items())


def to_svg(d: Diagram) -> str:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{d.width}" height="{d.height}" '
           f'viewBox="0 0 {d.width} {d.height}" font-family="{FONT}">',
           f"<title>{escape(d.title)}</title>",
           f'<rect width="{d.width}" height="{d.height}" fill="#ffffff"/>']
    for p in d.prims:
        if isinstance(p, Rect):
            dash = ' stroke-dasharray="5 4"' if p.dash else ""
            cls = f' class="{p.cls}"' if p.cls else ""
            out.append(f'<rect{cls} x="{p.x:.1f}" y="{p.y:.1f}" width="{p.w:.1f}" height="{p.h:.1f}" rx="{p.rx}" '
                       f'fill="{p.fill}" stroke="{p.stroke}" stroke-width="1.2"{dash}{_attrs(p.data)}/>')
        elif isinstance(p, Text):
            cls = f' class="{p.cls}"' if p.cls else ""
            weight = ' font-weight="bold"' if p.bold else ""
            out.append(f'<text{cls} x="{p.x:.1f}" y="{p.y:.1f}" font-size="{p.size}" fill="{p.color}" '
                       f'text-anchor="{p.anchor}"{weight}{_attrs(p.data)}>{escape(p.text)}</text>')
        elif isinstance(p, Poly):
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in p.points)
            tag = "polygon" if p.closed else "polyline"
            fill, opacity = _svg_fill(p.fill)
            dash = ' stroke-dasharray="4 3"' if p.dash else ""
            out.append(f'<{tag} points="{pts}" fill="{fill}"{opacity} stroke="{p.stroke}" '
                       f'stroke-width="{p.width}"{dash}/>')
        elif isinstance(p, Circle):
            out.append(f'<circle cx="{p.x:.1f}" cy="{p.y:.1f}" r="{p.r}" fill="{p.fill}" stroke="{p.stroke}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_fill(color: str | None) -> tuple[str, str]:
    if color is None:
        return "none", ""
    if len(color) == 9:  # #rrggbbaa: SVG 1.1 readers want the alpha apart
        return color[:7], f' fill-opacity="{int(color[7:], 16) / 255:.2f}"'
    return color, ""


def to_png(d: Diagram, scale: float = 2.0) -> bytes:
    """Paint the same primitives with matplotlib (1 unit = `scale` pixels)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import patches
    from matplotlib.figure import Figure

    dpi = 72 * scale  # text sizes are in points; at 72 dpi a point is one diagram unit
    fig = Figure(figsize=(d.width / 72, d.height / 72), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, d.width)
    ax.set_ylim(d.height, 0)
    ax.axis("off")
    fig.patch.set_facecolor("white")
    for p in d.prims:
        if isinstance(p, Rect):
            fill = None if p.fill == "none" else p.fill
            ax.add_patch(patches.FancyBboxPatch(
                (p.x, p.y), p.w, p.h, boxstyle=f"round,pad=0,rounding_size={p.rx}", facecolor=fill or "none",
                edgecolor=p.stroke, linewidth=1.2 / scale * scale * 0.9, linestyle=(0, (5, 4)) if p.dash else "-"))
        elif isinstance(p, Text):
            ax.text(p.x, p.y, p.text, fontsize=p.size, color=p.color, ha={"start": "left", "end": "right"}.get(
                p.anchor, "center"), va="baseline", fontweight="bold" if p.bold else "normal",
                    family="DejaVu Sans")
        elif isinstance(p, Poly):
            if p.closed:
                ax.add_patch(patches.Polygon(p.points, closed=True, facecolor=p.fill or "none", edgecolor=p.stroke,
                                             linewidth=p.width * 0.9))
            else:
                xs, ys = zip(*p.points)
                ax.plot(xs, ys, color=p.stroke, linewidth=p.width * 0.9, linestyle=(0, (4, 3)) if p.dash else "-",
                        solid_capstyle="butt")
        elif isinstance(p, Circle):
            ax.add_patch(patches.Circle((p.x, p.y), p.r, facecolor=p.fill, edgecolor=p.stroke, linewidth=1.0))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


# -- the command -------------------------------------------------------------------------

def render(network: ir.Network, path: str, scale: float = 2.0) -> Diagram:
    """Write the diagram of `network` to `path`: .svg as text, .png through matplotlib."""
    from ..atomic import write_atomic

    d = diagram(network)
    suffix = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if suffix == "svg":
        write_atomic(path, to_svg(d))
    elif suffix == "png":
        try:
            data = to_png(d, scale)
        except ImportError as exc:
            raise MissingExtra("PNG output", "viz", exc.name) from None
        write_atomic(path, data)
    else:
        raise UsageError(f"-o {path!r}: the file name must end in .svg or .png")
    return d


@click.command("draw")
@click.argument("spec")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The picture to write: FILE.svg or FILE.png.")
@SET_OPTION
@NETWORK_OPTION
@click.option("--scale", default=2.0, show_default=True, type=click.FloatRange(0.5, 6),
              help="PNG pixels per diagram unit.")
def draw_command(spec: str, output: str, settings, network, scale: float) -> None:
    """Draw SPEC's architecture: boxes with output shapes, repeats grouped, blocks in a legend."""
    from ..api import compile_spec
    from ..settings import parse_settings

    compiled = compile_spec(spec, network=network, **parse_settings(settings))
    d = render(compiled.network, output, scale)
    click.echo(f"wrote {output} ({compiled.network.name}, {d.width}x{d.height})", err=True)
