"""The whole figure: the title, the main column, each block's legend beside it (drawn
once, with its arguments as the block writes them) and the caption with the totals."""

from __future__ import annotations

import math

from .. import ir
from ..summary import human
from .build import Builder, block_signature
from .layout import Box, Column, Element, shape_text
from .primitives import INK, MUTED, TITLE_SIZE, Diagram, Rect, Text, text_width

MARGIN = 24


def diagram(network: ir.Network) -> Diagram:
    """Lay out the whole figure: title, main column, block legends on the right, caption."""
    builder = Builder(network)
    items: list[Element] = [Box(f"input {shape_text(network.input)}", "", "input", shape=network.input, kind="input")]
    items += builder.group(builder.units(network.body))
    main = Column(items)
    prims: list = []
    top = MARGIN + 34
    main_x = MARGIN + main.lw
    main.draw(prims, main_x, top)
    right, bottom = main_x + main.rw, top + main.h
    legends = _legends(network, builder, prims, right + 48, top)
    if legends is not None:
        right, bottom = legends[0], max(bottom, legends[1])
    prims.append(Text(MARGIN, MARGIN + 10, network.name, 18, bold=True, cls="heading"))
    width, height = _caption(network, prims, right, bottom + 34)
    return Diagram(math.ceil(width), math.ceil(height), prims, network.name)


def _legends(network: ir.Network, builder: Builder, prims: list, x: float, top: float):
    """Each block drawn once at x, with its arguments as written in the block, nested blocks
    after it; the right and bottom edges of the legends (None where there are no blocks)."""
    y, widest = top, 0.0
    seen: list[str] = []
    queue = list(builder.blocks)
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.append(name)
        inner = Builder(network, symbolic=True, legend=name)
        inst = builder.blocks.get(name) or inner.blocks[name]
        column = inner.column(inner.units(inst.body))
        for nested in inner.blocks:
            builder.blocks.setdefault(nested, inner.blocks[nested])
            queue.append(nested)
        frame_w, frame_h = _legend(network, name, column, prims, x, y)
        widest = max(widest, frame_w)
        y += frame_h + 20
    return (x + widest, y - 20) if seen else None


def _legend(network: ir.Network, name: str, column: Column, prims: list, x: float, y: float):
    """One block's frame with its signature above its column; the frame's width and height."""
    info = network.blocks.get(name)
    heading = block_signature(info) if info else name
    pad = 14
    frame_w = max(column.lw + column.rw, text_width(heading, TITLE_SIZE, True)) + 2 * pad
    frame_h = column.h + 2 * pad + 24
    prims.append(Rect(x, y, frame_w, frame_h, "#faf8fd", "#b9a6d6", rx=8, cls="legend", data={"block": name}))
    prims.append(Text(x + pad, y + 22, heading, TITLE_SIZE, "#4b2f7a", bold=True, cls="legend-title"))
    ax = x + pad + column.lw + max(0.0, (frame_w - 2 * pad - column.lw - column.rw) / 2)
    column.draw(prims, ax, y + 24 + pad)
    return frame_w, frame_h


def _caption(network: ir.Network, prims: list, right: float, caption_y: float) -> tuple[float, float]:
    """The totals under the figure; the page's width and height."""
    stats = network.body.stats
    lines = [
        (f"{stats.params:,} parameters  ·  {human(stats.macs)} multiply-accumulates per image",
         {"params": str(stats.params), "macs": str(stats.macs)}),
        (f"input {shape_text(network.input)}  →  " + (", ".join(
            f"{o.key} {shape_text(o.shape)}" for o in network.outputs) if network.outputs
            else f"output {shape_text(stats.out_shape)}") + "  ·  "
         f"receptive field {stats.rf_text.replace('x', '×')}", {}),
    ]
    for i, (text, data) in enumerate(lines):
        prims.append(Text(MARGIN, caption_y + 18 * i, text, 13 if i == 0 else 12, INK if i == 0 else MUTED,
                          bold=i == 0, cls="caption", data=data))
    width = max(right, MARGIN + max(text_width(t, 13, True) for t, _ in lines)) + MARGIN
    return width, caption_y + 18 * (len(lines) - 1) + MARGIN
