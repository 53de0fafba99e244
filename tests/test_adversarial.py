"""The compiler against the inputs an independent adversarial run found (issue 15): each
gives a clean diagnostic from `check` or a correct module. A correct module is checked
all the way: check, compile, build, an eval forward, a train-mode forward and backward,
and the checker's shape, parameters and MACs against PyTorch's."""

from __future__ import annotations

import pytest
import torch

import cnndsl
from cnndsl import CompileError
from test_differential import disagreements

from conftest import run_cli


def correct_module(text: str) -> torch.nn.Module:
    """Build `text` and run it as training would; the checker must agree with PyTorch."""
    compiled = cnndsl.compile_spec(text)
    code = cnndsl.compile_source(text)
    compile(code, "<generated>", "exec")
    torch.manual_seed(0)
    model = cnndsl.build(text)
    x = torch.randn(2, *compiled.network.input)
    model.eval()
    with torch.no_grad():
        model(x)
    model.train()
    out = model(x.requires_grad_())
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    sum(o.float().square().mean() for o in outputs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert disagreements(text) == []
    return model


def rejected(text: str, *needles: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        cnndsl.check(text)
    message = "\n".join(f"{d.message} {d.hint or ''}" for d in info.value.diagnostics)
    for needle in needles:
        assert needle in message, message
    return info.value


# -- 14: strides and sizes that PyTorch would take hours over --------------------------------------

HUGE_STRIDE = """\
network N() {
    input 1x6x7
    conv(4, 1)
    conv(3, 2, pad=1, stride=100000, floor=true)
    fc(5)
}
"""


def test_a_stride_far_past_the_input_is_an_error_in_check(tmp_path):
    error = rejected(HUGE_STRIDE, "stride of 100,000", "never moves", "stride=8")
    assert error.diagnostics[0].span.line == 4
    spec = tmp_path / "stride.cnn"
    spec.write_text(HUGE_STRIDE)
    result = run_cli("check", str(spec))
    assert result.returncode == 1 and "stride.cnn:4:5" in result.stderr and "Traceback" not in result.stderr
    rejected("network P() {\n    input 3x8x8\n    maxpool(2, stride=4096)\n}\n", "never moves")


def test_a_small_stride_past_a_small_map_still_builds():
    """A stride of 2 on a 1x1 map (a spec written for larger inputs) is harmless and kept."""
    correct_module("network P() {\n    input 3x1x1\n    conv(4, 1, stride=2) -> relu\n    fc(3)\n}\n")
    correct_module("network P() {\n    input 3x5x5\n    conv(4, 1, stride=16, floor=true)\n    fc(3)\n}\n")


@pytest.mark.parametrize("shape, layer, needle", [
    ("3x64x64", "conv(64, 3, pad=5000)", "values per image"),
    ("3x64x64", "fc(100000) -> fc(100000)", "parameters in one layer"),
    ("256x1024x1024", "conv(256, 5, pad=2)", "multiply-accumulates"),
])
def test_sizes_that_would_exhaust_memory_or_time_are_errors_in_check(shape, layer, needle):
    rejected(f"network P() {{\n    input {shape}\n    {layer}\n}}\n", needle, "over the limit")
