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
from .layers import RULES, label, pair
from .node import replace
from .passes.shapes import fmt_shape
from .traverse import Visitor


@dataclass(frozen=True)
class Row:
    path: str
    layer: ir.Layer

    @property
    def activations(self) -> int:
        return ir.elements(self.layer.stats.out_shape)


def rows(network: ir.Network) -> Iterator[Row]:
    """Every layer with the module path the generated code gives it."""
    return iter(_Paths(network).rows)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class _Paths(Visitor):
    """The module path of every layer (`rows`) and of every block instance, named group
    and named shortcut (`containers`: title, kind, stats), as the generated code names them."""

    def __init__(self, network: ir.Network) -> None:
        self.rows: list[Row] = []
        self.containers: dict[str, tuple[str, str, ir.Stats | None]] = {}
        self.scope(network.body, "")

    def scope(self, seq: ir.Seq, prefix: str) -> None:
        for item in seq.items:
            self.visit(item, prefix)

    def visit_Layer(self, node: ir.Layer, prefix: str) -> None:
        self.rows.append(Row(_join(prefix, node.name), node))

    def visit_Seq(self, node: ir.Seq, prefix: str) -> None:
        if node.name is None:
            self.scope(node, prefix)
            return
        inner = _join(prefix, node.name)
        self.containers[inner] = ("group", "group", node.stats)
        self.scope(node, inner)

    def visit_BlockInstance(self, node: ir.BlockInstance, prefix: str) -> None:
        inner = _join(prefix, node.name)
        self.containers[inner] = (f"block {node.block}", "block", node.stats)
        self.scope(node.body, inner)

    def visit_Residual(self, node: ir.Residual, prefix: str) -> None:
        self.scope(node.body, prefix)
        shortcut = node.shortcut
        if shortcut.applied:
            if shortcut.name:
                self.containers[_join(prefix, shortcut.name)] = ("shortcut " + shortcut.kind, "shortcut", None)
            for layer in shortcut.layers:
                self.rows.append(Row(_join(_join(prefix, shortcut.name), layer.name), layer))

    def visit_Side(self, node: ir.Side, prefix: str) -> None:
        """A side output's layers, in the enclosing scope; where they run while training only
        (an auxiliary classifier), their multiply-accumulates are not the inference's, which
        the totals count."""
        start = len(self.rows)
        self.generic_visit(node, prefix)
        if node.stats is None or node.stats.macs:  # an output of inference too (outputs(...)): counted
            return
        self.rows[start:] = [Row(row.path, replace(row.layer, stats=replace(row.layer.stats, macs=0)))
                             if row.layer.stats is not None else row for row in self.rows[start:]]

    def visit_Concat(self, node: ir.Concat, prefix: str) -> None:
        """A concat's branches sit in the enclosing scope; a named one's in its nn.ModuleList."""
        if node.name is None:
            self.generic_visit(node, prefix)
            return
        inner = _join(prefix, node.name)
        self.containers[inner] = ("concat", "group", node.stats)
        for branch in node.branches:
            self.visit(branch, inner)


def describe(layer: ir.Layer) -> str:
    """`conv 3x3/2 64`: the kind and the arguments that shape it, as `layers.py` labels it."""
    text = label(layer.kind, layer.args)
    if layer.stats.flatten_before:
        text += f" (flattens {fmt_shape(layer.stats.in_shape)})"
    return text


def _axes(rf) -> str:
    """A receptive field as its column prints it: `7`, or `7x11` where the axes differ."""
    return "x".join(map(str, rf)) if isinstance(rf, (tuple, list)) else str(rf)


def human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return str(int(n))


# -- the rows of a summary, folded to a depth ------------------------------------------

OPTIONAL_COLUMNS = ("input", "kernel", "trainable", "frozen")


@dataclass(frozen=True)
class Line:
    """One row of a summary: a layer, or a block or named group folded to `--depth`."""

    path: str
    layer: str  # `conv 3x3/1 64 pad 1`, `block Bottleneck`
    kind: str  # the layer kind, or `block`, `group`, `shortcut`
    depth: int  # 1 for a member of the network's own chain, 2 inside a block or group, ...
    input: ir.Shape
    output: ir.Shape
    kernel: tuple[int, ...] | None  # the weight's shape (conv: filters x channels x F x F), or the window
    params: int
    frozen: int  # non-trainable state: batch norm's running mean and variance
    activations: int
    macs: int
    rf: int
    layers: int = 1  # how many layers the row stands for

    @property
    def trainable(self) -> int:
        return self.params  # a spec freezes nothing: every parameter is trained

    def as_dict(self) -> dict:
        return {"path": self.path, "layer": self.layer, "kind": self.kind, "depth": self.depth,
                "input": list(self.input), "output": list(self.output),
                "kernel": list(self.kernel) if self.kernel is not None else None,
                "params": self.params, "trainable": self.trainable, "frozen": self.frozen,
                "activations": self.activations, "macs": self.macs, "rf": self.rf, "layers": self.layers}


@dataclass(frozen=True)
class Totals:
    params: int
    frozen: int
    macs: int
    activations: int  # the input's values and every layer's output, forward only
    rf: int

    @property
    def trainable(self) -> int:
        return self.params

    @property
    def activation_bytes(self) -> int:
        return self.activations * 4  # float32

    def as_dict(self) -> dict:
        return {"params": self.params, "trainable": self.trainable, "frozen": self.frozen, "macs": self.macs,
                "activations": self.activations, "activation_bytes": self.activation_bytes, "rf": self.rf}


def kernel(layer: ir.Layer) -> tuple[int, ...] | None:
    """The shape of the layer's weight (conv, fc, batch norm) or of its window (pools), from the table."""
    return RULES[layer.kind].kernel(layer.stats.in_shape, layer.values)


def frozen(layer: ir.Layer) -> int:
    """The layer's non-trainable state, from the layer table."""
    from .layers import lookup

    rule = lookup(layer.kind)
    return rule.buffers(layer.stats.in_shape, layer.values) if rule is not None else 0


def _layer_line(path: str, layer: ir.Layer) -> Line:
    s = layer.stats
    return Line(path, describe(layer), layer.kind, path.count(".") + 1, s.in_shape, s.out_shape, kernel(layer),
                s.params, frozen(layer), ir.elements(s.out_shape), s.macs, s.rf)


def _containers(network: ir.Network) -> dict[str, tuple[str, str, ir.Stats | None]]:
    """Every block instance, named group and named shortcut, by module path: (title, kind, stats)."""
    return _Paths(network).containers


def lines(network: ir.Network, depth: int | None = None) -> list[Line]:
    """The summary's rows: every layer, or with `depth`, everything deeper folded into its
    block, group or shortcut at that depth (torchinfo's `depth`)."""
    flat = [_layer_line(row.path, row.layer) for row in rows(network)]
    if depth is None:
        return flat
    if depth < 1:
        from .errors import UsageError

        raise UsageError(f"--depth must be 1 or more, not {depth}")
    containers = _containers(network)
    out: list[Line] = []
    folded: dict[str, int] = {}  # container path -> its index in out
    for line in flat:
        if line.depth <= depth:
            out.append(line)
            continue
        top = ".".join(line.path.split(".")[:depth])
        if top not in folded:
            folded[top] = len(out)
            title, kind, _ = containers.get(top, ("group", "group", None))
            out.append(replace(line, path=top, layer=title, kind=kind, depth=depth, kernel=None, layers=0))
        i = folded[top]
        out[i] = _fold(out[i], line, containers.get(top, (None, None, None))[2])
    return out


def _fold(into: Line, line: Line, stats: ir.Stats | None) -> Line:
    first = into.layers == 0
    return replace(
        into, output=stats.out_shape if stats is not None else line.output,
        rf=stats.rf if stats is not None else line.rf, input=stats.in_shape if stats is not None else into.input,
        params=line.params if first else into.params + line.params,
        frozen=line.frozen if first else into.frozen + line.frozen,
        activations=line.activations if first else into.activations + line.activations,
        macs=line.macs if first else into.macs + line.macs, layers=into.layers + 1)


def totals(network: ir.Network) -> Totals:
    flat = lines(network)
    stats = network.body.stats
    return Totals(stats.params, sum(line.frozen for line in flat), stats.macs,
                  ir.elements(network.input) + sum(line.activations for line in flat), stats.rf)


def _columns(columns) -> tuple[str, ...]:
    unknown = [c for c in columns if c not in OPTIONAL_COLUMNS]
    if unknown:
        from .errors import UsageError

        raise UsageError(f"no summary column named {unknown[0]!r}", f"choose from {', '.join(OPTIONAL_COLUMNS)}")
    return tuple(c for c in OPTIONAL_COLUMNS if c in columns)


def _cells(line: Line, extra: tuple[str, ...]) -> tuple[str, ...]:
    more = {"input": fmt_shape(line.input), "kernel": "x".join(map(str, line.kernel)) if line.kernel else "-",
            "trainable": f"{line.trainable:,}", "frozen": f"{line.frozen:,}"}
    return (line.path, line.layer, fmt_shape(line.output), f"{line.params:,}", f"{line.activations:,}",
            human(line.macs), _axes(line.rf)) + tuple(more[c] for c in extra)


def table(network: ir.Network, depth: int | None = None, columns=()) -> str:
    extra = _columns(columns)
    header = ("path", "layer", "output", "params", "activations", "MACs", "RF") + extra
    source = Line("(input)", "input", "input", 0, network.input, network.input, None, 0, 0,
                  ir.elements(network.input), 0, 1)
    cells = [header, _cells(source, extra)] + [_cells(line, extra) for line in lines(network, depth)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    right = {3, 4, 5, 6} | {7 + i for i, c in enumerate(extra) if c in ("trainable", "frozen")}

    def fmt(line) -> str:
        out = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(line)]
        return "  ".join(out).rstrip()

    rule = "-" * len(fmt(header))
    out = [fmt(header), rule] + [fmt(line) for line in cells[1:]] + [rule]
    stats = network.body.stats
    total = totals(network)
    shown = ", ".join(f"{o.key} {fmt_shape(o.shape)}" for o in network.outputs)
    out += [
        f"network {network.name}: input {fmt_shape(network.input)}, "
        + (f"outputs {shown}" if shown else f"output {fmt_shape(stats.out_shape)}"),
        f"parameters: {stats.params:,}",
        f"trainable: {total.trainable:,}; frozen: {total.frozen:,} (batch norm's running statistics)",
        f"multiply-accumulates: {stats.macs:,} ({human(stats.macs)}) per image",
        f"activations: {total.activations:,} values, {total.activation_bytes / 2**20:.1f} MiB per image in "
        "float32 (forward only)",
        f"receptive field of the output: {stats.rf_text} input pixels",
    ]
    return "\n".join(out) + "\n"


def as_json(network: ir.Network, depth: int | None = None) -> str:
    import json

    return json.dumps({"network": network.name, "input": list(network.input),
                       "output": list(network.body.stats.out_shape), "depth": depth,
                       "outputs": {key: list(shape) for key, shape in network.output_shapes.items()},
                       "rows": [line.as_dict() for line in lines(network, depth)],
                       "totals": totals(network).as_dict()}, indent=2) + "\n"


CSV_FIELDS = ("path", "layer", "kind", "depth", "input", "output", "kernel", "params", "trainable", "frozen",
              "activations", "macs", "rf", "layers")


def as_csv(network: ir.Network, depth: int | None = None) -> str:
    """One row per line of the summary, every column; shapes as `3x224x224`."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for line in lines(network, depth):
        d = line.as_dict()
        d.update(input=fmt_shape(line.input), output=fmt_shape(line.output),
                 kernel="x".join(map(str, line.kernel)) if line.kernel else "")
        writer.writerow([d[f] for f in CSV_FIELDS])
    return buffer.getvalue()


class Summary(str):
    """What `cnndsl.summarize` returns: the summary's text (it is a `str`, as it always
    was), with the rows and totals behind it and the other formats."""

    network: ir.Network
    style: str

    def __new__(cls, network: ir.Network, style: str = "table", depth: int | None = None, columns=()):
        text = cs231n(network) if style == "cs231n" else table(network, depth, columns)
        self = super().__new__(cls, text)
        self.network, self.style, self.depth = network, style, depth
        return self

    @property
    def text(self) -> str:
        return str(self)

    @property
    def rows(self) -> list[Line]:
        return lines(self.network, self.depth)

    @property
    def totals(self) -> Totals:
        return totals(self.network)

    def with_view(self, depth: int | None = None, columns=()) -> "Summary":
        """The same summary folded to `depth`, with the optional `columns` in its table."""
        return Summary(self.network, self.style, depth, columns)

    def to_json(self) -> str:
        return as_json(self.network, self.depth)

    def to_csv(self) -> str:
        return as_csv(self.network, self.depth)


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
    (kh, kw), size = pair(v["size"]), _axes(v["size"])
    return (f"{name.name}{n}: {v['filters']} {kh}x{kw} filters at stride {_axes(v['stride'])}, "
            f"pad {_axes(v['pad'])}", weights,
            _memory(f"{name.name}{size}-{v['filters']}", s.out_shape)
            + f" params: ({kh}*{kw}*{cin})*{v['filters']} = {weights:,}")


def _pool_lines(listing: _Listing, layer: ir.Layer, name, n: int):
    v, out = layer.values, layer.stats.out_shape
    if "stride" in v:  # a sliding window; the adaptive and global pools have none
        stride = v["stride"] if v["stride"] is not None else v["size"]
        kh, kw = pair(v["size"])
        what = f"{name.name}{n}: {kh}x{kw} filters at stride {_axes(stride)}"
        label = f"POOL{_axes(v['size'])}"
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
        f"TOTAL memory: {total_memory:,} values * 4 bytes ~= {_bytes(total_memory * 4)} / image "
        "(only forward! ~*2 for bwd)",
        f"TOTAL params: {total_weights:,} weights ({_rounded(total_weights)}); {params:,} with biases "
        f"and batch-norm scales",
    ]
    return "\n".join(listing.arch) + "\n\n" + "\n".join(listing.memory) + "\n\n" + "\n".join(totals) + "\n"


def _product(shape) -> str:
    return "*".join(str(d) for d in (shape[1:] + shape[:1] if len(shape) == 3 else shape))


def _rounded(n: int) -> str:
    """The notes' `138M`; `61K` or `600` for a small model, where `0M` says nothing."""
    for unit, size in (("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.0f}{unit}" if n >= 10 * size else f"{n / size:.2g}{unit}"
    return str(n)


def _bytes(n: int) -> str:
    """`93MB` as the notes write it; kilobytes and bytes for small models."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.0f}{unit}" if n >= 10 * size else f"{n / size:.2g}{unit}"
    return f"{n}B"
