"""PyTorch's names for arguments live on the layer table's ArgSpecs (`torch=`): the generated
constructor passes them, and a spec written with PyTorch's habit gets a hint naming ours."""

from __future__ import annotations

import inspect

import pytest
import torch.nn as nn

from cnndsl import CompileError
from cnndsl.compiler import compile_network, source_from_text
from cnndsl.layers import REQUIRED, RULES

RENAMED = sorted({(rule.kind, spec.name, spec.torch) for rule in RULES.values() for spec in rule.args
                  if spec.torch})
EXAMPLE = {"int": "2", "float": "0.5", "bool": "true", "str": '"zeros"'}


def required_args(kind: str) -> str:
    return ", ".join(EXAMPLE.get(spec.type, "2") for spec in RULES[kind].args if spec.default is REQUIRED)


def test_the_table_names_pytorchs_habits():
    assert {("conv", "pad", "padding"), ("conv", "size", "kernel_size"), ("maxpool", "ceil", "ceil_mode"),
            ("leaky_relu", "slope", "negative_slope"), ("fc", "units", "out_features")} <= set(RENAMED)


@pytest.mark.parametrize(("kind", "ours", "theirs"), RENAMED)
def test_pytorchs_name_gets_ours_as_the_hint(kind, ours, theirs):
    args = ", ".join(a for a in (required_args(kind), f"{theirs}=1") if a)
    text = f"network N() {{\n    input 3x16x16\n    {kind}({args})\n}}\n"
    with pytest.raises(CompileError) as info:
        compile_network(source_from_text(text, "t.cnn"))
    (error,) = [d for d in info.value.diagnostics if d.severity == "error"]
    assert error.code == "unknown-parameter"
    assert error.hint == f"cnndsl calls it {ours!r}; {theirs!r} is PyTorch's name for it"


def test_generated_keywords_are_pytorchs():
    text = ("network N() {\n    input 3x16x16\n"
            "    conv(8, 3, stride=2, pad=1) -> leaky_relu(0.2) -> maxpool(3, 2, pad=1, ceil=true)\n}\n")
    from cnndsl.codegen import generate_module
    code = generate_module(compile_network(source_from_text(text, "t.cnn")).network)
    assert "nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)" in code
    assert "nn.LeakyReLU(negative_slope=0.2)" in code
    assert "nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)" in code
    for callee, theirs in (("Conv2d", "padding"), ("MaxPool2d", "ceil_mode"), ("LeakyReLU", "negative_slope")):
        assert theirs in inspect.signature(getattr(nn, callee)).parameters
