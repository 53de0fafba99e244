"""The summary: a reader of the checked IR, in two styles.

`table` shows each layer's module path (its `state_dict` prefix), kind, output shape,
parameters, activation elements, multiply-accumulates and receptive field, with
totals. `cs231n` prints the lecture notes' own listings: the architecture as the
AlexNet case study writes it, then memory and parameters as the VGG16 one does.
Every number comes from the IR, which took it from `layers.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from . import ir
from .layers import RULES, label
from .passes.shapes import fmt_shape


@dataclass(frozen=True)
class Row:
    path: str
    layer: ir.Layer

    @property
    def activations(self) -> int:
        return ir.elements(self.layer.stats.out_shape)


def rows(network: ir.Network) -> Iterator[Row]:
    """Every layer with the module path the generated code gives it."""
    yield from _scope(network.body, "")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _scope(seq: ir.Seq, prefix: str) -> Iterator[Row]:
    for item in seq.items:
        yield from _member(item, prefix)


def _member(node, prefix: str) -> Iterator[Row]:
    if isinstance(node, ir.Layer):
        yield Row(_join(prefix, node.name), node)
    elif isinstance(node, ir.Seq):
        inner = prefix if node.name is None else _join(prefix, node.name)
        yield from _scope(node, inner)
    elif isinstance(node, ir.BlockInstance):
        yield from _scope(node.body, _join(prefix, node.name))
    elif isinstance(node, ir.Concat):
        for branch in node.branches:
            yield from _member(branch, prefix)
    elif isinstance(node, ir.Side):
        yield from _member(node.node, prefix)
    elif isinstance(node, ir.Residual):
        yield from _scope(node.body, prefix)
        if node.shortcut.applied:
            for layer in node.shortcut.layers:
                yield Row(_join(_join(prefix, node.shortcut.name), layer.name), layer)


def describe(layer: ir.Layer) -> str:
    """`conv 3x3/2 64`: the kind and the arguments that shape it, as `layers.py` labels it."""
    text = label(layer.kind, layer.args)
    if layer.stats.flatten_before:
        text += f" (flattens {fmt_shape(layer.stats.in_shape)})"
    return text


def human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


def table(network: ir.Network) -> str:
    header = ("path", "layer", "output", "params", "activations", "MACs", "RF")
    lines = [header, ("(input)", "input", fmt_shape(network.input), "0", f"{ir.elements(network.input):,}", "0", "1")]
    for row in rows(network):
        s = row.layer.stats
        lines.append((row.path, describe(row.layer), fmt_shape(s.out_shape), f"{s.params:,}",
                      f"{row.activations:,}", human(s.macs), str(s.rf)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {3, 4, 5, 6}

    def fmt(line) -> str:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(line)]
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(header))
    out = [fmt(header), rule] + [fmt(line) for line in lines[1:]] + [rule]
    stats = network.body.stats
    activations = ir.elements(network.input) + sum(r.activations for r in rows(network))
    out += [
        f"network {network.name}: input {fmt_shape(network.input)}, output {fmt_shape(stats.out_shape)}",
        f"parameters: {stats.params:,}",
        f"multiply-accumulates: {stats.macs:,} ({human(stats.macs)}) per image",
        f"activations: {activations:,} values, {activations * 4 / 2**20:.1f} MiB per image in float32 "
        "(forward only)",
        f"receptive field of the output: {stats.rf}x{stats.rf} input pixels",
    ]
    return "\n".join(out) + "\n"


# -- the notes' listings ----------------------------------------------------------------

def approx(n: int) -> str:
    """The notes' rounding: two significant figures, in K or M (150K, 3.2M, 25K)."""
    if n < 10_000:
        return str(n)
    digits = len(str(n))
    rounded = round(n, -(digits - 2))
    if rounded >= 1_000_000:
        return f"{rounded / 1e6:.1f}M".replace(".0M", "M")
    return f"{rounded // 1000}K"


def _hwc(shape) -> str:
    if len(shape) == 1:
        return f"1x1x{shape[0]}"
    c, h, w = shape
    return f"{h}x{w}x{c}"


def _listed(layer: ir.Layer) -> bool:
    """In the notes' listing: the layers with a `Listing` in the table, less one that changes
    nothing (torchvision's adaptive pool at its native size)."""
    rule = RULES[layer.kind]
    return rule.listing is not None and not (
        layer.kind.startswith("adaptive") and layer.stats.in_shape == layer.stats.out_shape)


@dataclass
class _Listing:
    """The two listings being written, and the numbering of their layers."""

    network: ir.Network
    arch: list
    memory: list
    counters: dict
    convs: int
    fcs: int
    total_memory: int
    total_weights: int = 0

    def number(self, layer: ir.Layer) -> int:
        rule = RULES[layer.kind]
        key = rule.category if rule.category == "pool" else rule.kind  # pools share one count
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    def add(self, layer: ir.Layer) -> None:
        rule = RULES[layer.kind]
        n = self.number(layer)
        out = layer.stats.out_shape
        shape = f"{out[0]}" if len(out) == 1 else _hwc(out)
        what, weights, mem_line = _LINES[rule.category](self, layer, rule.listing, n)
        self.arch.append(f"[{shape}] {what}")
        self.memory.append(mem_line)
        self.total_memory += ir.elements(out)
        self.total_weights += weights


def _memory(label: str, out) -> str:
    return f"{label}: [{_hwc(out)}] memory: {_product(out)}={approx(ir.elements(out))}"


def _conv_lines(listing: _Listing, layer: ir.Layer, name, n: int):
    v, s = layer.values, layer.stats
    weights = s.params - (v["filters"] if v["bias"] else 0)
    cin = s.in_shape[0] // v["groups"]
    return (f"{name.name}{n}: {v['filters']} {v['size']}x{v['size']} filters at stride {v['stride']}, "
            f"pad {v['pad']}", weights,
            _memory(f"{name.name}{v['size']}-{v['filters']}", s.out_shape)
            + f" params: ({v['size']}*{v['size']}*{cin})*{v['filters']} = {weights:,}")


def _pool_lines(listing: _Listing, layer: ir.Layer, name, n: int):
    v, out = layer.values, layer.stats.out_shape
    if "stride" in v:  # a sliding window; the adaptive and global pools have none
        stride = v["stride"] if v["stride"] is not None else v["size"]
        what, label = f"{name.name}{n}: {v['size']}x{v['size']} filters at stride {stride}", f"POOL{v['size']}"
    else:
        what, label = f"{name.name}{n}: to {out[1]}x{out[2]}", "POOL"
    return what, 0, _memory(label, out) + " params: 0"


def _fc_lines(listing: _Listing, layer: ir.Layer, name, n: int):
    v, s = layer.values, layer.stats
    scores = " (class scores)" if n == listing.fcs else ""
    weights = s.params - (v["units"] if v["bias"] else 0)
    inputs = s.in_shape
    factors = "*".join(str(d) for d in (inputs[1:] + inputs[:1] if len(inputs) == 3 else inputs))
    return (f"{name.name}{listing.convs + n}: {v['units']} neurons{scores}", weights,
            f"{name.name}: [1x1x{v['units']}] memory: {v['units']} params: {factors}*{v['units']} = {weights:,}")


def _norm_lines(listing: _Listing, layer: ir.Layer, name, n: int):
    weights = layer.stats.params
    return f"{name.name}{n}: {name.caption}", weights, _memory(name.name, layer.stats.out_shape) + f" params: {weights:,}"


_LINES = {"conv": _conv_lines, "pool": _pool_lines, "fc": _fc_lines, "norm": _norm_lines}


def cs231n(network: ir.Network) -> str:
    layers = [row.layer for row in rows(network) if _listed(row.layer)]
    given = ir.elements(network.input)
    listing = _Listing(
        network, [f"[{_hwc(network.input)}] INPUT"],
        [f"INPUT: [{_hwc(network.input)}] memory: {_product(network.input)}={approx(given)} "
         f"params: 0 (not counting biases)"],  # as the notes say: the params below are weights
        {}, sum(1 for layer in layers if layer.kind == "conv"), sum(1 for layer in layers if layer.kind == "fc"),
        given)
    for layer in layers:
        listing.add(layer)
    total_memory, total_weights = listing.total_memory, listing.total_weights
    params = network.body.stats.params
    totals = [
        f"TOTAL memory: {total_memory:,} values * 4 bytes ~= {total_memory * 4 / 1e6:.0f}MB / image "
        "(only forward! ~*2 for bwd)",
        f"TOTAL params: {total_weights:,} weights ({total_weights / 1e6:.0f}M); {params:,} with biases "
        f"and batch-norm scales",
    ]
    return "\n".join(listing.arch) + "\n\n" + "\n".join(listing.memory) + "\n\n" + "\n".join(totals) + "\n"


def _product(shape) -> str:
    return "*".join(str(d) for d in (shape[1:] + shape[:1] if len(shape) == 3 else shape))
