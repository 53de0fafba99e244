"""Drawing primitives of a diagram: rectangles, text, polylines and circles on a page of
diagram units, the colours and sizes they use, and text widths estimated without font
metrics. `layout.py` emits them; `svg.py` writes them as SVG and `png.py` paints them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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


@dataclass
class Diagram:
    """A laid-out page: its size and the primitives on it."""

    width: float
    height: float
    prims: list
    title: str
