"""The lecture notes' worked examples, checked against the compiler's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnndsl import CompileError
from cnndsl.compiler import compile_network, load, source_from_text

from conftest import run_cli

SEEDS = Path("/work/shared/seeds")
if not SEEDS.is_dir():  # a checkout beside the shared folder
    SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def one_layer(input_shape: str, layer: str, strict: bool = False):
    text = f"network Example() {{\n    input {input_shape}\n    {layer}\n}}\n"
    return compile_network(source_from_text(text, "example.cnn"), strict=strict)


def only_layer(compiled):
    (layer,) = compiled.network.body.items
    return layer


def test_ten_5x5_filters_stride_1_pad_2_on_32x32x3():
    """Notes: 32x32x3 input, ten 5x5 filters, stride 1, pad 2: 32x32x10, 76*10 = 760 parameters."""
    compiled = one_layer("3x32x32", "conv(10, 5, stride=1, pad=2)")
    layer = only_layer(compiled)
    assert layer.stats.out_shape == (10, 32, 32)
    assert layer.stats.params == 760 == (5 * 5 * 3 + 1) * 10
    assert compiled.network.body.stats.params == 760
    assert compiled.warnings == []


def test_same_layer_on_50x50x3():
    """Notes (second set): 50x50x3 input, same filters: (50 + 2*2 - 5)/1 + 1 = 50."""
    layer = only_layer(one_layer("3x50x50", "conv(10, 5, pad=2)"))
    assert layer.stats.out_shape == (10, 50, 50)
    assert layer.stats.params == 760


@pytest.mark.parametrize("stride, pad, size", [(1, 0, 5), (2, 0, 3), (1, 1, 7), (3, 1, 3)])
def test_7x7_input_3x3_filter_that_fit(stride, pad, size):
    compiled = one_layer("1x7x7", f"conv(1, 3, stride={stride}, pad={pad})")
    assert only_layer(compiled).stats.out_shape == (1, size, size)
    assert compiled.warnings == []


def test_7x7_input_3x3_filter_stride_3_does_not_fit():
    """Notes: 'doesn't fit! cannot apply 3x3 filter on 7x7 input with stride 3.'"""
    compiled = one_layer("1x7x7", "conv(1, 3, stride=3)")
    assert only_layer(compiled).stats.out_shape == (1, 2, 2)  # PyTorch floors it
    assert len(compiled.warnings) == 1
    warning = compiled.warnings[0]
    assert warning.severity == "warning"
    assert (warning.span.line, warning.span.column) == (3, 5)
    assert "(7 - 3 + 2*0)/3 + 1 = 2.33" in warning.message  # the arithmetic
    assert warning.hint


def test_7x7_stride_3_is_an_error_under_strict():
    with pytest.raises(CompileError) as info:
        one_layer("1x7x7", "conv(1, 3, stride=3)", strict=True)
    (error,) = info.value.diagnostics
    assert error.severity == "error"
    assert (error.span.line, error.span.column) == (3, 5)
    assert "(7 - 3 + 2*0)/3 + 1" in error.message


def test_7x7_stride_3_on_the_command_line(tmp_path):
    spec = tmp_path / "fit.cnn"
    spec.write_text("network Fit() {\n    input 1x7x7\n    conv(1, 3, stride=3)\n}\n")
    relaxed = run_cli("check", str(spec))
    assert relaxed.returncode == 0
    assert "warning" in relaxed.stderr and "(7 - 3 + 2*0)/3 + 1" in relaxed.stderr
    assert f"{spec}:3:5" in relaxed.stderr
    strict = run_cli("check", "--strict", str(spec))
    assert strict.returncode == 1
    assert "error" in strict.stderr and f"{spec}:3:5" in strict.stderr
    compiled = run_cli("compile", "--strict", str(spec))
    assert compiled.returncode == 1 and compiled.stdout == ""


def test_alexnet_conv1():
    """Notes: 227x227x3 input, 96 11x11 filters at stride 4: [55x55x96], (11*11*3)*96 weights + 96 biases."""
    compiled = one_layer("3x227x227", "conv(96, 11, stride=4)")
    layer = only_layer(compiled)
    assert layer.stats.out_shape == (96, 55, 55)
    assert layer.stats.params == 34_944 == 11 * 11 * 3 * 96 + 96
    assert compiled.warnings == []


def test_lenet5_parameters():
    compiled = compile_network(load("lenet5"))
    assert compiled.network.body.stats.params == 61_706
    assert compiled.network.body.stats.out_shape == (10,)
    by_layer = [layer.stats.params for layer in _layers(compiled.network.body) if layer.stats.params]
    assert by_layer == [156, 2_416, 48_120, 10_164, 850]  # as the spec's header adds them up


def test_vgg16_parameters_and_output():
    compiled = compile_network(load("vgg16"))
    assert compiled.network.body.stats.params == 138_357_544
    assert compiled.network.body.stats.out_shape == (1000,)


def _layers(seq):
    for item in seq.items:
        if hasattr(item, "items"):
            yield from _layers(item)
        else:
            yield item


def notes_vgg16_listing() -> list[str]:
    """The VGG16 memory/params lines of the notes, from `INPUT: [224x224x3]` to the last FC."""
    (path,) = SEEDS.glob("004_*.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("INPUT: [224x224x3]"))
    listing = []
    for line in lines[start:]:
        line = line.strip()
        if not line:
            continue
        if not re.match(r"^[A-Z][A-Z0-9-]*: \[", line):
            break
        listing.append(line)
    return listing


def test_notes_listing_was_found():
    listing = notes_vgg16_listing()
    assert len(listing) == 1 + 13 + 5 + 3  # input, 13 convs, 5 pools, 3 fcs
    assert listing[-1].startswith("FC: [1x1x1000]")


def test_vgg16_cs231n_summary_matches_the_notes_line_for_line():
    result = run_cli("summary", "vgg16", "--style", "cs231n")
    assert result.returncode == 0, result.stderr
    ours = [line.strip() for line in result.stdout.splitlines()
            if re.match(r"^[A-Z][A-Z0-9-]*: \[", line.strip())]
    assert ours == notes_vgg16_listing()


def test_vgg16_cs231n_totals():
    result = run_cli("summary", "vgg16", "--style", "cs231n")
    # Notes: TOTAL memory: 24M * 4 bytes ~= 93MB / image; TOTAL params: 138M parameters
    assert re.search(r"TOTAL params: [\d,]+ weights \(138M\)", result.stdout)
    assert "138,357,544" in result.stdout
