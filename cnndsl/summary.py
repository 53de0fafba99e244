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
    """`conv 3x3/2 64`: the kind and the arguments that shape it."""
    v = layer.values
    s = layer.stats
    if layer.kind == "conv":
        text = f"conv {v['size']}x{v['size']}/{v['stride']} {v['filters']}"
        if v["pad"]:
            text += f" pad {v['pad']}"
        if v["groups"] != 1:
            text += f" groups {v['groups']}"
    elif layer.kind in ("maxpool", "avgpool", "minpool"):
        stride = v["stride"] if v["stride"] is not None else v["size"]
        text = f"{layer.kind} {v['size']}x{v['size']}/{stride}"
    elif layer.kind == "fc":
        text = f"fc {v['units']}"
    elif layer.kind in ("adaptive_avgpool", "adaptive_maxpool"):
        text = f"{layer.kind} {v['size']}x{v['size']}"
    elif layer.kind == "dropout":
        text = f"dropout {v['p']:g}"
    else:
        text = layer.kind
    if s.flatten_before:
        text += f" (flattens {fmt_shape(s.in_shape)})"
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


_SHOWN = ("conv", "maxpool", "avgpool", "minpool", "fc", "lrn", "adaptive_avgpool", "adaptive_maxpool",
          "global_avgpool", "batchnorm")


def cs231n(network: ir.Network) -> str:
    # A layer that changes nothing (torchvision's adaptive pool at its native size) is left out.
    layers = [row.layer for row in rows(network) if row.layer.kind in _SHOWN
              and not (row.layer.kind.startswith("adaptive") and row.layer.stats.in_shape == row.layer.stats.out_shape)]
    convs = sum(1 for layer in layers if layer.kind == "conv")
    counters: dict[str, int] = {}
    fc_total = sum(1 for layer in layers if layer.kind == "fc")
    arch = [f"[{_hwc(network.input)}] INPUT"]
    memory = [f"INPUT: [{_hwc(network.input)}] memory: {_product(network.input)}={approx(ir.elements(network.input))} "
              f"params: 0 (not counting biases)"]  # as the notes say: the params below are weights
    total_memory = ir.elements(network.input)
    total_weights = 0
    for layer in layers:
        v, s = layer.values, layer.stats
        kind = "pool" if layer.kind.endswith("pool") else layer.kind
        counters[kind] = counters.get(kind, 0) + 1
        n = counters[kind]
        out = s.out_shape
        shape = f"{out[0]}" if len(out) == 1 else _hwc(out)
        if layer.kind == "conv":
            arch.append(f"[{shape}] CONV{n}: {v['filters']} {v['size']}x{v['size']} filters at stride "
                        f"{v['stride']}, pad {v['pad']}")
            weights = s.params - (v["filters"] if v["bias"] else 0)
            cin = s.in_shape[0] // v["groups"]
            mem_line = (f"CONV{v['size']}-{v['filters']}: [{_hwc(out)}] memory: {_product(out)}={approx(ir.elements(out))} "
                        f"params: ({v['size']}*{v['size']}*{cin})*{v['filters']} = {weights:,}")
        elif kind == "pool":
            name = {"maxpool": "MAX POOL", "avgpool": "AVG POOL", "minpool": "MIN POOL",
                    "adaptive_avgpool": "ADAPTIVE AVG POOL", "adaptive_maxpool": "ADAPTIVE MAX POOL",
                    "global_avgpool": "GLOBAL AVG POOL"}[layer.kind]
            if layer.kind in ("maxpool", "avgpool", "minpool"):
                stride = v["stride"] if v["stride"] is not None else v["size"]
                arch.append(f"[{shape}] {name}{n}: {v['size']}x{v['size']} filters at stride {stride}")
                label = f"POOL{v['size']}"
            else:
                arch.append(f"[{shape}] {name}{n}: to {out[1]}x{out[2]}")
                label = "POOL"
            weights = 0
            mem_line = f"{label}: [{_hwc(out)}] memory: {_product(out)}={approx(ir.elements(out))} params: 0"
        elif layer.kind == "fc":
            index = convs + n
            scores = " (class scores)" if n == fc_total else ""
            arch.append(f"[{shape}] FC{index}: {v['units']} neurons{scores}")
            weights = s.params - (v["units"] if v["bias"] else 0)
            inputs = s.in_shape
            factors = "*".join(str(d) for d in (inputs[1:] + inputs[:1] if len(inputs) == 3 else inputs))
            mem_line = f"FC: [1x1x{v['units']}] memory: {v['units']} params: {factors}*{v['units']} = {weights:,}"
        elif layer.kind == "lrn":
            arch.append(f"[{shape}] NORM{n}: Normalization layer")
            weights = 0
            mem_line = f"NORM: [{_hwc(out)}] memory: {_product(out)}={approx(ir.elements(out))} params: 0"
        else:  # batchnorm
            weights = s.params
            arch.append(f"[{shape}] BN{n}: Batch normalization")
            mem_line = f"BN: [{_hwc(out)}] memory: {_product(out)}={approx(ir.elements(out))} params: {weights:,}"
        memory.append(mem_line)
        total_memory += ir.elements(out)
        total_weights += weights
    params = network.body.stats.params
    totals = [
        f"TOTAL memory: {total_memory:,} values * 4 bytes ~= {total_memory * 4 / 1e6:.0f}MB / image "
        "(only forward! ~*2 for bwd)",
        f"TOTAL params: {total_weights:,} weights ({total_weights / 1e6:.0f}M); {params:,} with biases "
        f"and batch-norm scales",
    ]
    return "\n".join(arch) + "\n\n" + "\n".join(memory) + "\n\n" + "\n".join(totals) + "\n"


def _product(shape) -> str:
    return "*".join(str(d) for d in (shape[1:] + shape[:1] if len(shape) == 3 else shape))
