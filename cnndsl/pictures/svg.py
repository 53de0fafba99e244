"""A laid-out diagram as SVG text: no fonts, no libraries."""

from __future__ import annotations

from html import escape

from .primitives import FONT, Circle, Diagram, Poly, Rect, Text

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
