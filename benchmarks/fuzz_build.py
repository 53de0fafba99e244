"""Fuzzing past the compiler: random networks that are built and run, and the inputs at
the edges of the other readers (files, checkpoints, `serve` requests).

    grammar programs check or fail cleanly; these must also *work*. A network `check`
    calls well-formed must compile, build, run forward in eval mode and in train mode,
    run backward, and agree with the checker on output shapes (the side outputs'
    included), parameters and multiply-accumulates; the generated class built with
    other parameter values must be the module that `cnndsl.build` makes with them.

The generator tracks shapes, so most networks are valid, and draws its structures where
the defects of issue 15 lived: side outputs (reading earlier layers, inside residuals,
into named groups), nested residuals with every shortcut on non-square maps, concats of
every shape (one branch, fc branches, named branches, branches that are concats or
residuals), blocks used with different bodies, network parameters passed to blocks; and
its names (labels, parameters, blocks) from nn.Module's attributes, Python's builtins
and keywords, and the generator's own names (`identity2`, `S2`, `conv1`, `downsample`).

Each family returns a `Tried` (what was tried, what happened); anything that is not a
clean diagnostic or a correct run raises `FuzzFailure` (from fuzz_campaign).
"""

from __future__ import annotations

import builtins
import json
import keyword
import os
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fuzz_reach import ReachSteps

# -- names -------------------------------------------------------------------------------------

def _module_attributes() -> tuple[str, ...]:
    """nn.Module's own attribute names, as the installed torch has them (private ones too)."""
    import torch

    return tuple(sorted(set(dir(torch.nn.Module)) | set(vars(torch.nn.Module()))
                        - {n for n in dir(object)}))


_MODULE_ATTRIBUTES = _module_attributes()
_BUILTINS = tuple(n for n in dir(builtins) if not n.startswith("_"))[::7] + (
    "print", "len", "super", "object", "type", "id", "input", "range", "sum", "max", "min", "list")
_KEYWORDS = tuple(keyword.kwlist) + tuple(keyword.softkwlist)
# The language's own keywords, the newest first (a label named so is refused or quoted, never a crash).
_DSL_KEYWORDS = ("add", "mul", "reads", "from", "import", "init", "gate", "split", "side", "shortcut", "outputs",
                 "def", "let", "concat", "residual", "block", "network", "input")
_GENERATED = ("identity", "identity2", "identity3", "identity4", "x", "self", "torch", "nn", "conv", "conv1",
              "conv2", "conv3", "bn", "bn1", "relu", "relu1", "fc", "fc1", "downsample", "downsample1",
              "downsample2", "branch", "branch1", "branch2", "in_channels", "OrderedDict", "Maxout",
              "MinPool2d", "zero_pad_shortcut", "aux", "F", "functional", "Tensor", "annotations", "s", "s2",
              "b", "b2", "block", "stage", "stage2", "maxpool", "pool")
_BLOCK_NAMES = ("S", "S2", "S3", "B", "B2", "B3", "Stage", "Stage2", "SetSubmodule", "Train", "Eval", "Forward",
                "Conv2d", "Sequential", "Module", "Tensor", "Maxout", "MinPool2d", "OrderedDict", "Identity",
                "ReLU", "Linear", "N", "Net", "Self", "X", "Torch", "Nn", "Block", "Basic")
# The classes of the constructs added since issue 15 was filed (fuzz_reach.py draws them).
REACH_CLASSES = frozenset({"gate", "gate, spatial", "split", "shuffle", "per-axis tuples", "upsample", "upsample(like=)",
                           "conv_transpose", "concat skip", "concat skip with branches", "outputs(...)",
                           "def and lists", "list parameter", "conditional", "X * n for i", "interpolated labels",
                           "quoted labels", "block reading input.channels", "add", "from(name) branch",
                           "mul, broadcast", "block reads(...)"})
NAME_POOLS = {"nn.Module attribute": _MODULE_ATTRIBUTES, "builtin": _BUILTINS, "keyword": _KEYWORDS,
              "generated name": _GENERATED, "language keyword": _DSL_KEYWORDS}


@dataclass
class Tried:
    """One input: its family, the classes of defect it exercises, and how it ended."""

    family: str
    classes: set[str] = field(default_factory=set)
    outcome: str = ""  # "diagnostic", "built" (ran forward and backward) or "ok"
    text: str = ""


# -- the network generator ----------------------------------------------------------------------

def conv_out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


class NetGen(ReachSteps):
    """One random network as text, with the shapes it should have."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.counter = 0
        self.classes: set[str] = set()
        self.blocks: list[str] = []
        self.block_names: list[str] = []
        self.top_labels: list[str] = []  # labels callable in the network's own scope, in order
        self.inner_labels: list[str] = []  # labels inside named groups, concat branches, blocks
        self.group_of: dict[str, str] = {}  # a named group's member label: the group's label
        self.params: dict[str, int] = {}
        self.block_default = 4
        self.members: dict[str, tuple] = {}  # the network chain's labelled elements: their output shapes
        self.side_names: list[str] = []
        self.defs: list[str] = []
        self.list_params: dict[str, str] = {}
        self.input_shape: tuple = ()

    # names
    def fresh(self, prefix: str = "l") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def label(self) -> str:
        rng = self.rng
        if rng.random() < 0.15:
            pool = rng.choice(sorted(NAME_POOLS))
            name = rng.choice(NAME_POOLS[pool])
            if name not in self.used:
                self.used.add(name)
                self.classes.add(f"names: {pool}")
                return name
        name = self.fresh()
        self.used.add(name)
        return name

    # layers on a volume
    def conv(self, c: int, h: int, w: int):
        rng = self.rng
        k = rng.choice((1, 3, 3, 5))
        if k > min(h, w) + 2 * (k // 2):
            k = 1
        s = rng.choice((1, 1, 2)) if min(h, w) > 2 else 1
        p = k // 2
        f = rng.choice((2, 3, 4, 6, 8))
        text = f"conv({f}, {k}" + (f", stride={s}" if s != 1 else "") + (f", pad={p}" if p else "") + \
            (", floor=true" if s != 1 else "") + ")"
        return text, (f, conv_out(h, k, s, p), conv_out(w, k, s, p))

    def simple(self, shape):
        """A layer that keeps or shrinks a volume, or an fc on anything."""
        rng = self.rng
        if len(shape) == 1:
            return self.flat_step(shape)
        c, h, w = shape
        roll = rng.random()
        if roll < 0.45:
            text, out = self.conv(c, h, w)
            if rng.random() < 0.5:
                text += rng.choice((" -> relu", " -> batchnorm -> relu", " -> relu -> relu"))
            return text, out
        if roll < 0.6 and min(h, w) >= 2:
            return rng.choice(("maxpool(2)", "avgpool(2)", "minpool(2)")), (c, h // 2, w // 2)
        if roll < 0.8:
            return rng.choice(("relu", "batchnorm", "leaky_relu", "sigmoid", "identity", "elu")), shape
        if roll < 0.9 and c % 2 == 0:
            return "maxout(2)", (c // 2, h, w)
        return "global_avgpool", (c, 1, 1)

    def flat_step(self, shape):
        rng = self.rng
        f = rng.choice((3, 5, 8))
        choice = rng.choice(("fc", "fc-relu", "act", "dropout"))
        if choice == "fc":
            return f"fc({f})", (f,)
        if choice == "fc-relu":
            return f"fc({f}) -> relu", (f,)
        if choice == "dropout":
            return "dropout(0.1)", shape
        return rng.choice(("relu", "tanh", "sigmoid")), shape

    # structures
    def residual(self, shape, depth: int):
        rng = self.rng
        self.classes.add("nested residual" if depth else "residual")
        if len(shape) == 1:
            f = shape[0]
            return f"residual {{\n{self.ind(depth + 1)}fc({f}) -> relu -> fc({f})\n{self.ind(depth)}}}", shape
        c, h, w = shape
        kind = rng.choice(("identity", "identity", "projection", "pad", "pad-pool"))
        lines, inner = [], shape
        if kind == "identity":
            for _ in range(rng.randint(1, 2)):
                step = self.inner_step(inner, depth + 1, keep=True)
                lines.append(step[0])
        elif kind == "pad-pool":
            self.classes.add("pad shortcut, non-square" if h != w else "pad shortcut")
            lines.append(rng.choice(("global_avgpool", "maxpool(2)" if min(h, w) >= 2 else "identity")))
            inner = (c, 1, 1) if lines[-1] == "global_avgpool" else (c, h // 2, w // 2) if "pool" in lines[-1] \
                else shape
            ratio = -(-h // inner[1])
            if -(-w // ratio) != inner[2]:
                return self.residual(shape, depth)  # option A cannot take this shape: try another
        else:
            s = rng.choice((1, 2)) if min(h, w) >= 3 else 1
            f = rng.choice((c, c + 2, 2 * c)) if kind == "pad" else rng.choice((c, 4, 8))
            lines.append(f"conv({f}, 3, stride={s}, pad=1) -> relu" if s != 1 else f"conv({f}, 3, pad=1) -> relu")
            inner = (f, conv_out(h, 3, s, 1), conv_out(w, 3, s, 1))
            if kind == "pad":
                self.classes.add("pad shortcut, non-square" if h != w else "pad shortcut")
                if -(-w // -(-h // inner[1])) != inner[2]:
                    kind = "projection"
            if rng.random() < 0.5:
                step = self.inner_step(inner, depth + 1, keep=True)
                lines.append(step[0])
        shortcut = {"identity": "", "projection": rng.choice((" shortcut projection",
                                                              f" shortcut {self.label()}: projection",
                                                              " shortcut projection(bn=false)")),
                    "pad": " shortcut pad", "pad-pool": " shortcut pad"}[kind]
        body = f"\n{self.ind(depth + 1)}".join(lines)
        return f"residual {{\n{self.ind(depth + 1)}{body}\n{self.ind(depth)}}}{shortcut}", inner

    def inner_step(self, shape, depth: int, keep: bool = False):
        """A step inside a residual body (the same class scope as the network)."""
        rng = self.rng
        roll = rng.random()
        if depth < 3 and roll < 0.25:
            return self.residual(shape, depth)
        if roll < 0.45 and len(shape) == 3:
            self.classes.add("side output in a residual")
            return self.side(shape), shape
        if keep and len(shape) == 3:
            c = shape[0]
            text = f"{self.label()}: conv({c}, 3, pad=1)" if rng.random() < 0.4 else f"conv({c}, 3, pad=1)"
            if text.split(":")[0] != text:
                self.top_labels.append(text.split(":")[0])
            return text + rng.choice(("", " -> relu", " -> batchnorm")), shape
        return self.simple(shape) if len(shape) == 3 else self.flat_step(shape)

    def side(self, shape) -> str:
        rng = self.rng
        self.classes.add("side output")
        name = self.label()
        self.side_names.append(name)
        head = rng.choice(("fc(3)", "fc(4)", "fc(2)"))
        if self.top_labels and rng.random() < 0.5:
            self.classes.add("side output reading an earlier layer")
            return f"{name}: side({rng.choice(self.top_labels)}) {head}"
        if self.group_of and rng.random() < 0.4:  # the path a side reads a group's member by
            self.classes.add("side output reading into a group by its path")
            inner = rng.choice(sorted(self.group_of))
            return f"{name}: side({self.group_of[inner]}.{inner}) {head}"
        if self.inner_labels and rng.random() < 0.3:  # by its bare name: refused, with a hint
            self.classes.add("side output reading into a group")
            return f"{name}: side({rng.choice(self.inner_labels)}) {head}"
        return f"{name}: side {head}"

    def concat(self, shape, depth: int):
        rng = self.rng
        self.classes.add("concat")
        n = rng.choice((1, 1, 2, 2, 3))
        if len(shape) == 1 or rng.random() < 0.2:  # fc branches: a concat of vectors
            self.classes.add("concat of fc branches")
            sizes = [rng.choice((2, 3, 5)) for _ in range(n)]
            branches = [f"fc({f})" if rng.random() < 0.7 else f"{self.fresh('g')}: [fc({f}) -> relu]" for f in sizes]
            return self.block_text("concat", branches, depth), (sum(sizes),)
        c, h, w = shape
        branches, channels = [], 0
        for _ in range(n):
            roll = rng.random()
            f = rng.choice((2, 3, 4))
            if roll < 0.35:
                label = self.label()
                self.inner_labels.append(label)
                branches.append(f"{label}: conv({f}, 1)" if rng.random() < 0.5 else f"conv({f}, 1)")
            elif roll < 0.55:
                branches.append(f"conv({f}, 1) -> relu -> conv({f}, 3, pad=1)")
            elif roll < 0.7:
                group = self.fresh("g")
                branches.append(f"{group}: [conv({f}, 3, pad=1) -> relu]")
            elif roll < 0.8:
                branches.append("maxpool(3, stride=1, pad=1)")
                f = c
            elif roll < 0.9 and depth < 2:
                nested = rng.random() < 0.5
                if rng.random() < 0.5:  # written in place: refused, with the hint to make it a block
                    self.classes.add("concat branch that is a concat or residual")
                    branches.append(self.nested_branch(nested, f, c, depth + 1))
                else:  # the hint taken: a block holding it, used as the branch
                    self.classes.add("concat branch that is a block holding a concat or residual")
                    name = self.fresh("Branch")
                    self.blocks.append(f"block {name}() {{\n    {self.nested_branch(nested, f, c, 0)}\n}}\n")
                    branches.append(f"{name}()")
                f = f if nested else c
            else:
                branches.append("identity")
                f = c
            channels += f
        return self.block_text("concat", branches, depth), (channels, h, w)

    def nested_branch(self, nested: bool, f: int, c: int, depth: int) -> str:
        """A concat of one 1x1 conv (`nested`) or a residual around a 3x3 conv, indented for `depth`."""
        inner = f"conv({f}, 1)" if nested else f"conv({c}, 3, pad=1)"
        return f"{'concat' if nested else 'residual'} {{\n{self.ind(depth + 1)}{inner}\n{self.ind(depth)}}}"

    def block_text(self, keyword_: str, lines: list[str], depth: int) -> str:
        body = "".join(f"{self.ind(depth + 1)}{line}\n" for line in lines)
        return f"{keyword_} {{\n{body}{self.ind(depth)}}}"

    @staticmethod
    def ind(depth: int) -> str:
        return "    " * (depth + 1)

    def group(self, shape):
        """A named group: an nn.Sequential whose members a side cannot reach."""
        rng = self.rng
        self.classes.add("named group")
        name = self.label()
        inner = self.fresh("c") if rng.random() < 0.6 else self.label()
        self.inner_labels.append(inner)
        self.group_of[inner] = name
        if len(shape) == 1:
            return f"{name}: [{inner}: fc(4) -> relu]", (4,)
        text, out = self.conv(*shape)
        return f"{name}: [{inner}: {text} -> relu]", out

    def block_use(self, shape):
        """A block with a repetition count: used twice with different counts, two classes."""
        rng = self.rng
        if len(shape) != 3:
            return None
        self.classes.add("block variants")
        if not self.block_names:
            name = rng.choice(("S", "B", "Stage") + (_BLOCK_NAMES if rng.random() < 0.4 else ()))
            other = rng.choice((f"{name}2", f"{name}3", "Other"))
            if name == other:
                other = "Other"
            self.block_names = [name, other]
            param = rng.choice(("n", "w", "planes")) if rng.random() < 0.8 else rng.choice(
                _GENERATED + _BLOCK_NAMES + _BUILTINS[:5])
            default = self.block_default = rng.choice((4, 8))
            self.blocks += [
                f"block {name}({param} = 1, f = {default}) {{\n    conv(f, 3, pad=1)*{param}\n}}\n",
                f"block {other}() {{\n    conv(4, 1)\n}}\n",
            ]
            if param in _BLOCK_NAMES:
                self.classes.add("parameter named like a class")
        name, other = self.block_names
        c, h, w = shape
        roll = rng.random()
        if roll < 0.35:
            return f"{name}({rng.choice((1, 2))})", (self.block_f(), h, w)
        if roll < 0.6:
            self.classes.add("network parameter passed to a block")
            if "w" not in self.params:
                self.params["w"] = rng.choice((4, 8))
            return f"{name}(1, w)" if rng.random() < 0.5 else f"{name}(2, f=w)", (self.params["w"], h, w)
        if roll < 0.8:
            return f"{other}()", (4, h, w)
        return f"{name}(0)", shape

    def block_f(self) -> int:
        return self.block_default

    def step(self, shape, depth: int = 0):
        if len(shape) == 3 and self.rng.random() < 0.35:  # the constructs added since issue 15 was filed
            made = self.reach_step(shape)
            if made:
                return made
        rng = self.rng
        roll = rng.random()
        if len(shape) == 1:
            if roll < 0.15:
                return self.concat(shape, depth)
            if roll < 0.25:
                return self.residual(shape, depth)
            if roll < 0.35:
                return self.side(shape), shape
            return self.flat_step(shape)
        if roll < 0.3:
            text, out = self.simple(shape)
            if rng.random() < 0.3 and "->" not in text:
                label = self.label()
                self.top_labels.append(label)
                self.members[label] = out
                text = f"{label}: {text}"
            return text, out
        if roll < 0.45:
            return self.residual(shape, depth)
        if roll < 0.6:
            return self.concat(shape, depth)
        if roll < 0.7:
            return self.side(shape), shape
        if roll < 0.78:
            text, out = self.group(shape)
            self.members[text.split(":")[0]] = out
            return text, out
        if roll < 0.92:
            made = self.block_use(shape)
            if made:
                return made
        if roll < 0.96:
            self.classes.add("huge stride or size")
            return rng.choice((f"conv(2, 1, stride={rng.choice((17, 1000, 100000))}, floor=true)",
                               "conv(2, 1, pad=20000)", "fc(30000) -> fc(30000)")), shape
        return self.simple(shape)

    def network(self) -> str:
        rng = self.rng
        c = rng.choice((1, 2, 3, 4))
        h = rng.randint(3, 12)
        w = rng.randint(3, 12) if rng.random() < 0.5 else h
        shape = self.input_shape = (c, h, w)
        lines = []
        for _ in range(rng.randint(1, 6)):
            text, shape = self.step(shape)
            lines.append(text)
        final = self.label()
        outputs = self.outputs_line(final)
        if outputs:
            lines += [f"{final}: fc({rng.choice((2, 5, 10))})", outputs]
        elif len(shape) == 3 or rng.random() < 0.5:
            lines.append(f"fc({rng.choice((2, 5, 10))})")
        if rng.random() < 0.15 and self.params:  # a network parameter named like a block or builtin
            self.classes.add("parameter named like a class")
        params = ", ".join([f"{k} = {v}" for k, v in self.params.items()] +
                           [f"{k} = {v}" for k, v in self.list_params.items()])
        head = "".join(self.defs) + "".join(self.blocks)
        net = rng.choice(("N", "Net", "Tiny")) if rng.random() < 0.9 else rng.choice(_BLOCK_NAMES)
        body = "\n    ".join(lines)
        return f"{head}network {net}({params}) {{\n    input {c}x{h}x{w}\n    {body}\n}}\n"


def built_network(rng: random.Random) -> tuple[str, set[str], dict[str, int]]:
    gen = NetGen(rng)
    text = gen.network()
    return text, gen.classes, dict(gen.params)


# -- the oracle for a network: compile, build, run, compare ---------------------------------------

def run_network(text: str, params: dict[str, int] | None = None, backward: bool = True) -> str:
    """'diagnostic' for a clean CompileError; 'built' for a module that ran forward in eval
    and train mode and backward and agreed with the checker on every output's shape (the
    named outputs' and the side outputs'), parameters and MACs; raises FuzzFailure otherwise."""
    import cnndsl
    from cnndsl import CompileError
    from cnndsl.compiler import compile_network, generate, source_from_text
    from cnndsl.report import render
    from fuzz_campaign import FuzzFailure

    source = source_from_text(text, "fuzz.cnn")
    try:
        compiled = compile_network(source, {})
    except CompileError as exc:
        render(exc.diagnostics, {source.path: source})
        return "diagnostic"
    except Exception as exc:
        raise FuzzFailure(f"check raised {type(exc).__name__}: {exc}") from exc
    try:
        code = generate(compiled)
    except Exception as exc:
        raise FuzzFailure(f"check passed but compile raised {type(exc).__name__}: {exc}") from exc
    cls = _run_module(compiled.network, code, backward)
    for name, value in (params or {}).items():  # the generated class, given other values
        _same_with(text, cls, name, value * 2)
    del cnndsl
    return "built"


def _expected(net) -> tuple[dict | None, tuple, list[tuple]]:
    """What the checker says the forward returns: the named outputs' shapes (None: one
    output), the chain's shape, and each side output's shape in order (train mode)."""
    from cnndsl import ir
    from cnndsl.traverse import walk

    named = {key: tuple(shape) for key, shape in net.output_shapes.items()} if net.outputs else None
    sides = [tuple(node.stats.out_shape) for node in walk(net.body) if isinstance(node, ir.Side)]
    return named, tuple(net.body.stats.out_shape), sides


def _outputs_agree(mode: str, got, net) -> list:
    """The tensors the forward returned, once their shapes agree with the checker's."""
    import torch
    from fuzz_campaign import FuzzFailure

    named, main, sides = _expected(net)
    if named is not None:
        if not isinstance(got, dict) or list(got) != list(named):
            raise FuzzFailure(f"{mode} output {type(got).__name__} {list(got) if isinstance(got, dict) else ''}, "
                              f"checker the outputs {list(named)}")
        tensors, want = list(got.values()), list(named.values())
    else:
        tensors = list(got) if isinstance(got, tuple) else [got]
        want = [main] + (sides if mode == "train" else [])
    shapes = [tuple(t.shape[1:]) if isinstance(t, torch.Tensor) else type(t).__name__ for t in tensors]
    if shapes != want:
        raise FuzzFailure(f"{mode} outputs {shapes}, checker {want}")
    return tensors


def _run_module(net, code: str, backward: bool):
    """Build the generated class; eval forward (MACs counted), train forward and backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnndsl.api import load_generated
    from fuzz_campaign import FuzzFailure

    stats = net.body.stats
    try:
        cls = getattr(load_generated(code, "fuzz_generated"), net.name)
        torch.manual_seed(0)
        model = cls()
        x = torch.randn(2, *net.input)
        model.eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            y = model(x)
        macs = counter.get_total_flops() // 2 // 2
        _outputs_agree("eval", y, net)
        model.train()
        outputs = _outputs_agree("train", model(x.clone().requires_grad_()), net)
        if backward:
            sum(o.float().square().mean() for o in outputs).backward()
    except FuzzFailure:
        raise
    except Exception as exc:
        raise FuzzFailure(f"check passed but the module failed: {type(exc).__name__}: {exc}") from exc
    params_count = sum(p.numel() for p in model.parameters())
    if params_count != stats.params:
        raise FuzzFailure(f"parameters: checker {stats.params:,}, PyTorch {params_count:,}")
    if macs != stats.macs:
        raise FuzzFailure(f"MACs: checker {stats.macs:,}, PyTorch {macs:,}")
    return cls


def _same_with(text: str, cls, name: str, value: int) -> None:
    """`cls(name=value)` from the default source is the module `build(name=value)` makes:
    the same state_dict keys and shapes and, given the same weights, the same eval output.
    A class whose parameter decides its layers (a count, a condition) either does not take
    it (only the structure reads it) or refuses another value (a ValueError naming it)."""
    import inspect

    import torch

    import cnndsl
    from cnndsl import CompileError
    from fuzz_campaign import FuzzFailure

    if name not in inspect.signature(cls).parameters:
        return
    try:
        want = cnndsl.build(text, **{name: value})
    except CompileError:
        return
    try:
        got = cls(**{name: value})
    except ValueError as exc:
        if str(exc).startswith(f"{name}: compile the spec with --set {name}="):
            return
        raise FuzzFailure(f"the generated class with {name}={value}: ValueError: {exc}") from exc
    shapes = {k: tuple(v.shape) for k, v in got.state_dict().items()}
    if shapes != {k: tuple(v.shape) for k, v in want.state_dict().items()}:
        raise FuzzFailure(f"the generated class with {name}={value} differs from build({name}={value})")
    want.load_state_dict(got.state_dict())
    x = torch.randn(2, *want.cnndsl_input)
    got.eval()
    want.eval()
    with torch.no_grad():
        a, b = got(x), want(x)
    a, b = (list(a.values()), list(b.values())) if isinstance(a, dict) else ([a], [b])
    if not all(torch.allclose(p, q, atol=1e-5) for p, q in zip(a, b)):
        raise FuzzFailure(f"the generated class with {name}={value} computes another function than "
                          f"build({name}={value})")


# -- the other readers: files, checkpoints, serve -------------------------------------------------

def endless_input(rng: random.Random) -> str:
    """A spec path that reads without end or is not UTF-8: must be a clean diagnostic."""
    from cnndsl import CompileError
    from cnndsl.compiler import load
    from fuzz_campaign import FuzzFailure

    kind = rng.choice(("dev-zero", "dev-urandom", "non-utf8-name", "non-utf8-bytes", "fifo"))
    with tempfile.TemporaryDirectory() as folder:
        if kind == "dev-zero":
            path = "/dev/zero"
        elif kind == "dev-urandom":
            path = "/dev/urandom"
        elif kind == "non-utf8-name":
            raw = os.path.join(os.fsencode(folder), b"s\xff" + bytes([rng.randrange(128, 256)]) + b".cnn")
            with open(raw, "wb") as handle:
                handle.write(b"network N() {\n    input 1x4x4\n    conv(2, 3)\n}\n")
            path = os.fsdecode(raw)
        elif kind == "non-utf8-bytes":
            path = os.path.join(folder, "bad.cnn")
            Path(path).write_bytes(bytes(rng.randrange(256) for _ in range(rng.choice((1, 40, 4000)))))
        else:
            path = os.path.join(folder, "fifo.cnn")
            os.mkfifo(path)
            import threading

            def feed() -> None:
                try:
                    with open(path, "wb") as handle:
                        for _ in range(40):
                            handle.write(b"relu -> " * 4096)
                except OSError:
                    pass

            threading.Thread(target=feed, daemon=True).start()
        try:
            source = load(path)
            from cnndsl.compiler import compile_network

            compile_network(source)
        except CompileError as exc:
            if kind == "non-utf8-name" and "\\x" not in exc.diagnostics[0].span.file:
                raise FuzzFailure("a non-UTF-8 file name is not escaped in the diagnostic") from None
            return "diagnostic"
        except Exception as exc:
            raise FuzzFailure(f"{kind}: {type(exc).__name__}: {exc}") from exc
    return "ok"


def crafted_checkpoint(rng: random.Random) -> str:
    """A checkpoint whose checksums are valid and whose metadata is crafted."""
    from cnndsl.errors import CnndslError
    from cnndsl.train import checkpoint
    from fuzz_campaign import FuzzFailure

    import torch

    spec = "network T() {\n    input 1x4x4\n    fc(2)\n}\n"
    meta = {"spec": spec, "network": "T", "params": {}, "input": [1, 4, 4], "outputs": 2,
            "data": {"normalize": {"mean": [0.5], "std": [0.25], "scale": 1.0}, "task": "classification",
                     "source": "synthetic", "classes": ["a", "b"]}}
    key, value = rng.choice([
        ("params", rng.choice(([], "x", 5, None, {"network": "U"}, {"N": [1, 2]}, {"__class__": 1}))),
        ("input", rng.choice(("1x4x4", [1, 4], [], [1 << 40, 4, 4], None, [1.5, 4, 4], ["a"]))),
        ("network", rng.choice(("U", "", 5, None, "os.system", "T" * 10000))),
        ("spec", rng.choice(("", "not a spec", "/etc/passwd", 5, None, "network T() {", "\x00"))),
        ("data", rng.choice(({}, None, [], {"normalize": None}, {"normalize": {"mean": "x"}}))),
        ("format", rng.choice((None, "", "other", 99))),
        ("outputs", rng.choice((0, -1, 3, 1 << 40, "2", None, 2.0))),
        ("unchanged", None),
    ])
    if key != "unchanged":
        meta[key] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "best.safetensors"
        state = {"fc.weight": torch.zeros(2, 16), "fc.bias": torch.zeros(2)}
        try:
            checkpoint.save(path, state, meta)
        except CnndslError:
            return "diagnostic"
        except (TypeError, ValueError):
            return "diagnostic"  # the writer refuses what it cannot serialise: nothing to read
        try:
            from cnndsl.train.inference import load_model

            load_model(path, torch.device("cpu"))
        except CnndslError:
            return "diagnostic"
        except Exception as exc:
            raise FuzzFailure(f"crafted checkpoint metadata {key}={value!r:.80}: {type(exc).__name__}: {exc}") \
                from exc
    return "ok"


def serve_request(rng: random.Random) -> str:
    """A drawing request as `serve` parses it: a drawing or BadRequest, nothing else."""
    from cnndsl.pictures.serve import BadRequest, parse_drawing
    from fuzz_campaign import FuzzFailure

    depth = rng.choice((10, 999, 1000, 5000, 100_000))
    digits = rng.choice((20, 21, 400, 4300, 4301, 5000, 100_000))
    pixel = rng.choice(("9" * digits, "-" + "9" * digits, "1e999", "NaN", "0." + "0" * digits + "1", "0.5"))
    body = rng.choice((
        b'{"width": 8, "height": 8, "pixels": [' + ", ".join([pixel] + ["0"] * 63).encode() + b"]}",
        b'{"width": ' + pixel.encode() + b', "height": 8, "pixels": []}',
        b"[" * depth + b"]" * depth,
        b'{"pixels": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
        json.dumps({"width": 8, "height": 8, "pixels": [[0]] * 64}).encode(),
        bytes(rng.randrange(256) for _ in range(64)),
    ))
    try:
        parse_drawing(body)
    except BadRequest:
        return "diagnostic"
    except Exception as exc:
        raise FuzzFailure(f"serve: {type(exc).__name__}: {exc}") from exc
    return "ok"


READERS = {"endless and non-UTF-8 inputs": endless_input, "crafted checkpoint metadata": crafted_checkpoint,
           "serve requests": serve_request}
