"""Presentation lives in the rule table: each `LayerRule` carries its labels (summary,
diagram, the notes' listing), its category and whether it is pointwise; the readers
(summary, draw, viz) and the code generator's block calls read it from there."""

from __future__ import annotations

import cnndsl
from cnndsl import ir, summary
from cnndsl.layers import REQUIRED, RULES, figure_label, label
from cnndsl.pictures import draw, viz

CATEGORIES = {"conv", "pool", "fc", "norm", "activation", "dropout", "reshape"}

NETWORK = """
block Widen(planes, stride=1, drop=0.5) {
  conv(planes * 2, 3, stride=stride, pad=1)
  dropout(drop)
}

network Shown() {
  input 3x32x32
  conv(16, 3, stride=2, pad=1, groups=1)
  bn
  relu
  conv(32, 3, groups=2)
  leaky_relu
  maxpool(2)
  Widen(16)
  Widen(16, stride=2)
  Widen(16, drop=0.25)
  adaptive_avgpool(1)
  fc(10)
  softmax
}
"""


def compiled() -> ir.Network:
    return cnndsl.compile_spec(NETWORK).network


def layers(network: ir.Network) -> list[ir.Layer]:
    return [row.layer for row in summary.rows(network)]


def test_every_rule_has_a_known_category_and_pointwise_rules_keep_the_shape():
    for kind, rule in RULES.items():
        assert rule.category in CATEGORIES, kind
        if rule.pointwise:
            args = {a.name: 0.5 if a.default is REQUIRED else a.default for a in rule.args}
            assert rule.shape((8, 5, 5), args)[0] == (8, 5, 5), kind
    pointwise = {kind for kind, rule in RULES.items() if rule.pointwise and kind == rule.kind}
    assert pointwise == {"relu", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "identity", "batchnorm",
                         "lrn", "dropout", "relu6", "silu", "hardswish", "hardsigmoid", "stochastic_depth",
                         "gelu", "prelu", "mish", "layernorm", "groupnorm", "instancenorm", "layer_scale"}


def test_the_summary_and_the_diagram_label_from_the_table():
    convs = [layer for layer in layers(compiled()) if layer.kind == "conv"]
    assert label("conv", convs[0].args) == "conv 3x3/2 16 pad 1"
    assert figure_label("conv", convs[0].args) == "conv 3×3/2, 16"
    assert summary.describe(convs[1]) == "conv 3x3/1 32 groups 2"
    assert draw.layer_label(convs[1]) == "conv 3×3, 32, groups 2"
    by_kind = {layer.kind: layer for layer in layers(compiled())}
    assert [draw.layer_label(by_kind[k]) for k in ("batchnorm", "leaky_relu", "maxpool", "adaptive_avgpool")] == [
        "bn", "leaky relu", "maxpool 2×2/2", "adaptive avgpool → 1×1"]
    assert summary.describe(by_kind["fc"]) == "fc 10 (flattens 32x1x1)"


def test_a_legend_shows_arguments_as_the_block_writes_them():
    network = compiled()
    inst = next(n for n in network.body.items if isinstance(n, ir.BlockInstance))
    conv, dropout = inst.body.items
    assert draw.layer_label(conv, symbolic=True) == "conv 3×3/stride, planes·2"
    assert draw.layer_label(dropout, symbolic=True) == "dropout p=drop"
    assert draw.layer_label(dropout) == "dropout 0.5"


def test_block_calls_in_the_code_and_the_diagram_pass_required_by_position_and_changed_by_name():
    network = compiled()
    instances = [n for n in network.body.items if isinstance(n, ir.BlockInstance)]
    info = network.blocks["Widen"]
    assert [draw.block_call(i, info) for i in instances] == [
        "Widen(16)", "Widen(16, stride=2)", "Widen(16, drop=0.25)"]
    code = cnndsl.compile_source(NETWORK)
    # the same rule, after the input channels the generated class takes first
    assert [line.split(" = ")[1] for line in code.splitlines() if " = Widen(" in line] == [
        "Widen(32, 16)", "Widen(32, 16, stride=2)", "Widen(32, 16, drop=0.25)"]


def test_the_notes_listing_numbers_and_names_from_the_table():
    text = summary.cs231n(compiled())
    assert "CONV1: 16 3x3 filters at stride 2, pad 1" in text
    assert "BN1: Batch normalization" in text
    assert "MAX POOL1: 2x2 filters at stride 2" in text
    assert "FC6: 10 neurons (class scores)" in text  # numbered after the five convolutions


def test_viz_folds_pointwise_layers_and_shows_convs_pools_and_fcs():
    probes = viz.probes(compiled())
    assert [p.kind for p in probes][:3] == ["conv", "conv", "maxpool"]
    assert probes[0].label == "conv 3×3/2, 16 · bn · relu"
    assert probes[1].label == "conv 3×3, 32, groups 2 · leaky relu"
    assert set(viz.SHOWN) == {"conv", "maxpool", "avgpool", "minpool", "fc", "adaptive_avgpool",
                              "adaptive_maxpool", "global_avgpool", "conv_transpose", "upsample"}
