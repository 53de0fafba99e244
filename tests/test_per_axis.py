"""Per-axis kernels, strides, paddings and dilations: `conv(33, (3, 5), stride=(2, 1), pad=(4, 2))`.

The notes' PyTorch example (seed 004) compiles to exactly its Conv2d; the notes' arithmetic
runs on each axis, the "doesn't fit" warning names the axis, parameters and MACs multiply
the two sizes, and the generated code prints one number where both axes agree.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import cnndsl
from cnndsl import CompileError
from cnndsl.compiler import compile_network, load, source_from_text

from conftest import ROOT


def test_the_notes_example_is_exactly_its_conv2d():
    model = cnndsl.build(str(ROOT / "specs" / "examples" / "nonsquare.cnn"))
    reference = torch.nn.Conv2d(16, 33, (3, 5), stride=(2, 1), padding=(4, 2))
    assert repr(model.conv) == repr(reference)
    model.conv.load_state_dict(reference.state_dict())
    x = torch.randn(2, 16, 50, 100)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    network = compile_network(load(str(ROOT / "specs" / "examples" / "nonsquare.cnn"))).network
    assert network.body.stats.out_shape == (33, 28, 100)  # (50 - 3 + 8)/2 + 1, (100 - 5 + 4)/1 + 1
    assert network.body.stats.params == 33 * 16 * 3 * 5 + 33
    assert network.body.stats.macs == 33 * 28 * 100 * 16 * 3 * 5
    assert network.body.stats.rf == (3, 5)


BLOCK = """block Factored(k) {
    conv(8, (1, k), pad=(0, k // 2)) -> conv(8, (k, 1), pad=(k // 2, 0)) -> maxpool((2, 1))
}
network N() {
    input 3x9x9
    conv(8, (3, 3), pad=(1, 1)) -> Factored(7) -> conv(4, (3, 5), stride=(2, 1), dilation=(1, 2))
}
"""


def test_pairs_in_blocks_and_square_pairs_as_one_number():
    code = cnndsl.compile_source(BLOCK)
    assert "nn.Conv2d(3, 8, kernel_size=3, padding=1)" in code  # (3, 3) is 3, as PyTorch prints it
    assert "nn.Conv2d(in_channels, 8, kernel_size=(1, k), padding=(0, k // 2))" in code
    assert "nn.MaxPool2d((2, 1))" in code
    model = cnndsl.build(BLOCK).double().eval()
    network = compile_network(source_from_text(BLOCK, "n.cnn")).network
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape[1:]) == network.body.stats.out_shape == (4, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == network.body.stats.params
    with torch.no_grad():  # the last conv by hand: 3x5 at stride (2, 1), width dilated by 2
        inner = model.factored(model.conv1(x))
        assert torch.equal(y, F.conv2d(inner, model.conv2.weight, model.conv2.bias, stride=(2, 1), dilation=(1, 2)))


def test_the_fit_warning_names_the_axis():
    text = "network N() {\n    input 3x8x9\n    conv(4, (3, 5), stride=(2, 1))\n}\n"
    compiled = compile_network(source_from_text(text, "n.cnn"))
    warnings = [d for d in compiled.warnings if d.code == "fit"]
    assert len(warnings) == 1
    assert "(8 - 3 + 2*0)/2 + 1 = 3.5 on the height axis" in warnings[0].message
    assert (warnings[0].span.line, warnings[0].span.column) == (3, 5)


@pytest.mark.parametrize("args, message", [
    ("(3, 0)", "conv 'size' must be at least 1 on the width axis, got 0"),
    ("(1, 2, 3)", "conv 'size' must be a whole number or a pair (height, width)"),
    ("3, pad=(-1, 0)", "conv 'pad' must be at least 0 on the height axis, got -1"),
    ("(9, 3)", "filter of 9 is larger than its input of 8"),
])
def test_a_wrong_pair_is_a_diagnostic_at_the_argument(args, message):
    text = f"network N() {{\n    input 3x8x8\n    conv(4, {args})\n}}\n"
    with pytest.raises(CompileError) as caught:
        cnndsl.check(text)
    (error,) = caught.value.diagnostics
    assert message in error.message and error.span.line == 3


def test_the_summary_and_the_listing_show_both_axes():
    summary = cnndsl.summarize(str(ROOT / "specs" / "examples" / "nonsquare.cnn"))
    assert "conv 3x5/2x1 33 pad 4x2" in summary and "receptive field of the output: 3x5" in summary
    listing = cnndsl.summarize(str(ROOT / "specs" / "examples" / "nonsquare.cnn"), style="cs231n")
    assert "33 3x5 filters at stride 2x1, pad 4x2" in listing
