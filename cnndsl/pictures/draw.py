"""`cnndsl draw`: an architecture diagram, a reader of the checked IR like the summary.

The IR's chain becomes a tree of diagram elements (`build.py`: boxes, columns, concat
branches, residual arcs, repeats, stages), which lay themselves out top to bottom
(`layout.py`, on a page drawn by `page.py`) and emit drawing primitives
(`primitives.py`); the primitives are written as SVG text (`svg.py`), or painted by
matplotlib for PNG (`png.py`, imported only then). Pointwise layers (activations,
batch norm, dropout) fold into the box before them, repeats of identical layers or
block instances show once with "×k", and each block instance is one box whose
internals are drawn once, symbolically, in a legend beside the main column. Every
number comes from the IR's stats.
"""

from __future__ import annotations

import click

from .. import ir
from ..errors import MissingExtra, UsageError
from ..options import NETWORK_OPTION, SET_OPTION, complete_spec
from .build import block_call, block_signature, layer_label
from .page import diagram
from .primitives import Diagram
from .svg import to_svg


def to_png(d: Diagram, scale: float = 2.0) -> bytes:
    from .png import to_png as paint

    return paint(d, scale)


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
@click.argument("spec", shell_complete=complete_spec)
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


__all__ = ["Diagram", "block_call", "block_signature", "diagram", "draw_command", "layer_label", "render",
           "to_png", "to_svg"]
