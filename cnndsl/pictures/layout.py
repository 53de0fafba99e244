"""Diagram elements that lay themselves out around a vertical axis: boxes, columns, concat
branches, residual arcs, repeats, stages and side outputs. Each knows its extent left
and right of the axis and its height, and emits primitives (`primitives.py`)."""

from __future__ import annotations

import math

from ..passes.shapes import fmt_shape
from .primitives import GAP, INK, MUTED, STYLES, SUB_SIZE, TITLE_SIZE, Circle, Poly, Rect, Text, arrow, text_width


def shape_text(shape) -> str:
    """`3×224×224`: a shape as the diagram writes it."""
    return fmt_shape(shape).replace("x", "×")


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
                              "shape": shape_text(self.shape) if self.shape else ""}))
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
