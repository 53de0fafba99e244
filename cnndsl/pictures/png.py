"""A laid-out diagram painted by matplotlib as PNG (imported only here, only then)."""

from __future__ import annotations

from .primitives import Circle, Diagram, Poly, Rect, Text

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
