"""Differential testing: what the checker says against what PyTorch computes.

For random valid networks (convolutions with every stride, padding, dilation and groups,
max/average/min pools with and without ceil mode, concats, residuals with identity,
projection and zero-pad shortcuts, blocks with parameters, repetitions, fc heads) the
checker's output shape, parameter count and multiply-accumulates must equal PyTorch's:
the output of a forward pass, `sum(p.numel())`, and `FlopCounterMode`'s total / 2. Every
single-layer combination of conv and pool arguments is also swept against PyTorch's own
functional ops: the checker must accept exactly what PyTorch accepts, with its shape.

`benchmarks/run.py` runs the same generator on many more networks and reports how many
were tried and how many disagreed.
"""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import cnndsl
from cnndsl import CompileError

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").rglob("*.cnn"))


# -- the generator: networks valid by construction ----------------------------------------------

def conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooling_output_shape, ceil mode included."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


class NetworkGen:
    """Writes one network as text, tracking its shape with PyTorch's formulas."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.labels = 0
        self.uses_block = False

    def label(self) -> str:
        self.labels += 1
        return f"l{self.labels}"

    def conv(self, c: int, h: int, w: int) -> tuple[str, tuple[int, int, int]] | None:
        rng = self.rng
        for _ in range(20):
            k, s, p, d = rng.choice((1, 2, 3, 5)), rng.randint(1, 3), rng.randint(0, 2), rng.randint(1, 3)
            groups = rng.choice([g for g in (1, 2, 3, 4, 6) if c % g == 0])
            f = groups * rng.randint(1, 4)
            if d * (k - 1) + 1 > min(h, w) + 2 * p:
                continue
            mode = rng.choice(("zeros", "zeros", "zeros", "reflect", "replicate", "circular"))
            if mode == "reflect" and p >= min(h, w) or mode == "circular" and p > min(h, w):
                mode = "zeros"
            args = [str(f), str(k)]
            if s != 1 or rng.random() < 0.2:
                args.append(f"stride={s}")
            if p or rng.random() < 0.2:
                args.append(f"pad={p}")
            if d != 1:
                args.append(f"dilation={d}")
            if groups != 1:
                args.append(f"groups={groups}")
            if rng.random() < 0.3:
                args.append(f"bias={rng.choice(('true', 'false'))}")
            if mode != "zeros":
                args.append(f'padding_mode="{mode}"')
            return f"conv({', '.join(args)})", (f, conv_out(h, k, s, p, d), conv_out(w, k, s, p, d))
        return None

    def pool(self, c: int, h: int, w: int) -> tuple[str, tuple[int, int, int]] | None:
        rng = self.rng
        for _ in range(20):
            kind = rng.choice(("maxpool", "avgpool", "minpool"))
            k = rng.randint(1, 4)
            s = rng.choice((None, 1, 2, 3))
            p = rng.randint(0, k // 2)
            d = rng.choice((1, 1, 2)) if kind == "maxpool" else 1
            ceil = rng.random() < 0.4
            stride = s or k
            if d * (k - 1) + 1 > min(h, w) + 2 * p:
                continue
            ho, wo = pool_out(h, k, stride, p, d, ceil), pool_out(w, k, stride, p, d, ceil)
            if ho < 1 or wo < 1:
                continue
            args = [str(k)] + ([f"stride={s}"] if s else []) + ([f"pad={p}"] if p else [])
            args += [f"dilation={d}"] if d != 1 else []
            args += ["ceil=true"] if ceil else []
            if kind == "avgpool" and rng.random() < 0.3:
                args.append("count_include_pad=false")
            return f"{kind}({', '.join(args)})", (c, ho, wo)
        return None

    def same_size_branch(self, c: int) -> tuple[str, int]:
        """A concat branch that keeps HxW."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return "maxpool(3, stride=1, pad=1)", c
        if roll < 0.3:
            return "identity", c
        k, d = rng.choice((1, 3, 5)), rng.choice((1, 1, 2))
        f = rng.randint(1, 6)
        conv = f"conv({f}, {k}, pad={d * (k // 2)}" + (f", dilation={d})" if d != 1 else ")")
        if roll < 0.7:
            return conv, f
        return f"conv({f + 1}, 1) -> relu -> {conv}", f

    def residual(self, c: int, h: int, w: int) -> tuple[str, tuple[int, int, int]]:
        rng = self.rng
        kind = rng.choice(("identity", "projection", "projection", "pad", "conv-only"))
        if kind == "identity":
            body = f"conv({c}, 3, pad=1) -> batchnorm -> relu -> conv({c}, 3, pad=1)"
            return f"residual {{\n        {body}\n    }}", (c, h, w)
        s = rng.choice((1, 2)) if min(h, w) >= 2 else 1
        f = rng.choice((c, c + 2, 2 * c)) if kind == "pad" else rng.choice((c, 4, 8, 2 * c))
        ho, wo = conv_out(h, 3, s, 1, 1), conv_out(w, 3, s, 1, 1)
        stride = f", stride={s}" if s != 1 else ""
        body = f"conv({f}, 3{stride}, pad=1, bias=false) -> batchnorm -> relu -> conv({f}, 3, pad=1)"
        shortcut = {"projection": f"shortcut {self.label()}: projection", "pad": "shortcut pad",
                    "conv-only": "shortcut projection(bn=false)"}[kind]
        if kind == "pad" and h != w:  # option A subsamples both axes by the height's stride
            shortcut = "shortcut projection"
        return f"residual {{\n        {body}\n    }} {shortcut}", (f, ho, wo)

    def step(self, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]] | None:
        rng = self.rng
        c, h, w = shape
        kind = rng.choice(("conv", "conv", "conv", "pool", "pool", "act", "bn", "concat", "residual", "residual",
                           "block", "repeat", "adaptive", "lrn", "maxout", "side"))
        if kind == "conv":
            return self.conv(c, h, w)
        if kind == "pool":
            return self.pool(c, h, w)
        if kind == "act":
            return rng.choice(("relu", "tanh", "sigmoid", "elu(alpha=0.5)", "leaky_relu(slope=0.2)",
                               "dropout(0.25)", "identity", "softmax")), shape
        if kind == "bn":
            return rng.choice(("batchnorm", "batchnorm(eps=0.001)", "batchnorm(affine=false)")), shape
        if kind == "lrn":
            return "lrn(size=3)", shape
        if kind == "maxout":
            return ("maxout(2)", (c // 2, h, w)) if c % 2 == 0 else None
        if kind == "adaptive":
            size = rng.randint(1, min(h, w))
            return rng.choice((f"adaptive_avgpool({size})", f"adaptive_maxpool({size})")), (c, size, size)
        if kind == "concat":
            branches = [self.same_size_branch(c) for _ in range(rng.randint(2, 3))]
            body = "\n        ".join(text for text, _ in branches)
            return f"concat {{\n        {body}\n    }}", (sum(f for _, f in branches), h, w)
        if kind == "residual":
            return self.residual(c, h, w)
        if kind == "block":
            self.uses_block = True
            f, k, s = rng.choice((4, 6, 8)), rng.choice((1, 3, 5)), rng.choice((1, 2))
            ho, wo = conv_out(h, k, s, k // 2, 1), conv_out(w, k, s, k // 2, 1)
            args = [str(f)] + ([f"k={k}"] if k != 3 else []) + ([f"s={s}"] if s != 1 else [])
            return f"CBR({', '.join(args)})", (f, ho, wo)
        if kind == "repeat":
            n = rng.randint(0, 3)
            return f"[conv({c}, 3, pad=1) -> relu]*{n}", shape
        if kind == "side":
            return f"{self.label()}: side fc({rng.randint(2, 5)})", shape
        return None

    def network(self) -> tuple[str, tuple[int, ...]]:
        rng = self.rng
        c = rng.choice((1, 2, 3, 4, 6))
        h = rng.randint(4, 20)
        w = rng.randint(4, 20) if rng.random() < 0.4 else h
        shape: tuple[int, ...] = (c, h, w)
        lines = []
        for _ in range(rng.randint(1, 7)):
            made = self.step(shape)
            if made is None:
                continue
            text, shape = made
            if rng.random() < 0.2 and not text.startswith(("concat", "residual", "[")) and ":" not in text:
                text = f"{self.label()}: {text}"
            lines.append(text)
        if not lines or rng.random() < 0.7:
            units = rng.randint(2, 10)
            lines.append(rng.choice((f"fc({units})", f"fc(16) -> relu -> dropout -> fc({units})",
                                     f"global_avgpool -> fc({units})", f"flatten -> fc({units}, bias=false)")))
            shape = (units,)
        block = ("block CBR(f, k = 3, s = 1) {\n    conv(f, k, stride=s, pad=k // 2, bias=false) -> "
                 "batchnorm -> relu\n}\n\n") if self.uses_block else ""
        text = f"{block}network Random() {{\n    input {c}x{h}x{w}\n    " + "\n    ".join(lines) + "\n}\n"
        return text, shape


def random_network(rng: random.Random) -> tuple[str, tuple[int, ...]]:
    return NetworkGen(rng).network()


# -- the comparison ---------------------------------------------------------------------------

def measured(model: torch.nn.Module, input_shape: tuple[int, ...], batch: int = 2):
    """PyTorch's own figures: output shape, parameters, and MACs per sample."""
    model.eval()
    x = torch.randn((batch,) + tuple(input_shape))
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(x)
    params = sum(p.numel() for p in model.parameters())
    shape = {k: tuple(v.shape[1:]) for k, v in y.items()} if isinstance(y, dict) else tuple(y.shape[1:])
    return shape, params, counter.get_total_flops() // 2 // batch


def disagreements(text: str, expected_shape: tuple[int, ...] | None = None, device: str = "cpu") -> list[str]:
    """Where the checker and PyTorch differ for one network ([] when they agree)."""
    compiled = cnndsl.compile_spec(text)
    stats = compiled.network.body.stats
    with torch.device(device):
        model = cnndsl.build(text)
        shape, params, macs = measured(model, compiled.network.input, batch=1 if device == "meta" else 2)
    found = []
    want = compiled.network.output_shapes if isinstance(shape, dict) else stats.out_shape  # named outputs: each
    if shape != want:
        found.append(f"output shape: checker {want}, PyTorch {shape}")
    if expected_shape is not None and stats.out_shape != expected_shape:
        found.append(f"output shape: checker {stats.out_shape}, PyTorch's formulas {expected_shape}")
    if params != stats.params:
        found.append(f"parameters: checker {stats.params:,}, PyTorch {params:,}")
    if macs != stats.macs:
        found.append(f"MACs: checker {stats.macs:,}, FlopCounterMode/2 {macs:,}")
    return found


@settings(max_examples=250, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_random_networks_agree_with_pytorch(rng):
    torch.manual_seed(0)
    text, expected = random_network(rng)
    try:
        problems = disagreements(text, expected)
    except CompileError as exc:
        raise AssertionError(f"the checker rejects a valid network:\n{text}\n{exc}") from None
    assert not problems, f"{text}\n" + "\n".join(problems)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_agrees_with_pytorch_at_full_size(spec):
    """Every built-in and example at its own input size, on the meta device (shapes only)."""
    text = spec.read_text(encoding="utf-8")
    assert disagreements(text, device="meta") == []


# -- every combination of one layer's arguments, against PyTorch's functional ops ----------------

def _torch_shape(op) -> tuple[int, ...] | None:
    try:
        return tuple(op().shape[1:])
    except RuntimeError:
        return None


def _checker(layer: str, shape: str) -> cnndsl.compiler.Compiled | None:
    try:
        return cnndsl.compile_spec(f"network One() {{\n    input {shape}\n    {layer}\n}}\n")
    except CompileError:
        return None


def _sweep(cases) -> tuple[int, list[str]]:
    tried, problems = 0, []
    for layer, shape, op, params in cases:
        tried += 1
        truth = _torch_shape(op)
        compiled = _checker(layer, shape)
        if compiled is None or truth is None:
            if (compiled is None) != (truth is None):
                problems.append(f"{layer} on {shape}: checker {'rejects' if compiled is None else 'accepts'}, "
                                f"PyTorch {'rejects' if truth is None else 'accepts'}")
            continue
        stats = compiled.network.body.stats
        if stats.out_shape != truth:
            problems.append(f"{layer} on {shape}: checker {stats.out_shape}, PyTorch {truth}")
        if params is not None and stats.params != params:
            problems.append(f"{layer} on {shape}: checker {stats.params} parameters, PyTorch {params}")
    return tried, problems


def test_every_conv_stride_pad_dilation_groups_combination():
    c, h, w = 4, 7, 9
    x = torch.zeros(1, c, h, w)
    cases = []
    for k, s, p, d, g in itertools.product((1, 2, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2, 3), (1, 2, 4)):
        weight = torch.zeros(8, c // g, k, k)
        layer = f"conv(8, {k}, stride={s}, pad={p}, dilation={d}, groups={g})"
        op = (lambda weight=weight, s=s, p=p, d=d, g=g: F.conv2d(x, weight, None, s, p, d, g))
        cases.append((layer, f"{c}x{h}x{w}", op, 8 * (c // g) * k * k + 8))
    tried, problems = _sweep(cases)
    assert tried == 324 and problems == [], "\n".join(problems)


def test_every_padding_mode_on_a_small_input():
    c, h, w = 2, 3, 5
    x = torch.zeros(1, c, h, w)
    cases = []
    for mode, k, p in itertools.product(("zeros", "reflect", "replicate", "circular"), (1, 3), range(0, 7)):
        conv = torch.nn.Conv2d(c, 4, k, padding=p, padding_mode=mode)
        layer = f'conv(4, {k}, pad={p}, padding_mode="{mode}")'
        cases.append((layer, f"{c}x{h}x{w}", (lambda conv=conv: conv(x)), 4 * c * k * k + 4))
    tried, problems = _sweep(cases)
    assert tried == 56 and problems == [], "\n".join(problems)


def test_every_pool_size_stride_pad_ceil_combination():
    c, h, w = 3, 7, 8
    x = torch.zeros(1, c, h, w)
    cases = []
    for kind, k, s, p, ceil, d in itertools.product(("maxpool", "avgpool", "minpool"), (1, 2, 3, 4),
                                                    (None, 1, 2, 3), (0, 1, 2), (False, True), (1, 2)):
        if d != 1 and kind != "maxpool":
            continue
        args = [str(k)] + ([f"stride={s}"] if s else []) + [f"pad={p}", f"ceil={'true' if ceil else 'false'}"]
        args += [f"dilation={d}"] if kind == "maxpool" else []
        if kind == "avgpool":
            op = (lambda k=k, s=s, p=p, ceil=ceil: F.avg_pool2d(x, k, s, p, ceil))
        else:
            op = (lambda k=k, s=s, p=p, ceil=ceil, d=d: F.max_pool2d(x, k, s, p, d, ceil))
        cases.append((f"{kind}({', '.join(args)})", f"{c}x{h}x{w}", op, 0))
    tried, problems = _sweep(cases)
    assert tried == 4 * 4 * 3 * 2 * (2 + 1 + 1) and problems == [], "\n".join(problems)


def test_adaptive_pools_and_fc_on_every_small_shape():
    cases = []
    for h, w, size in itertools.product((1, 2, 5), (1, 3, 6), (1, 2, 4)):
        x = torch.zeros(1, 3, h, w)
        cases.append((f"adaptive_avgpool({size})", f"3x{h}x{w}",
                      (lambda x=x, size=size: F.adaptive_avg_pool2d(x, size)), 0))
        cases.append((f"adaptive_maxpool({size})", f"3x{h}x{w}",
                      (lambda x=x, size=size: F.adaptive_max_pool2d(x, size)), 0))
        linear = torch.nn.Linear(3 * h * w, size)
        cases.append((f"fc({size})", f"3x{h}x{w}", (lambda x=x, linear=linear: linear(x.flatten(1))),
                      3 * h * w * size + size))
    tried, problems = _sweep(cases)
    assert tried == 81 and problems == [], "\n".join(problems)
