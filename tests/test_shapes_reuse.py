"""The shape pass infers a block body or named group once for each input and rebases the
tree to each later use's receptive field (passes/receptive.py). The result must be the
tree that inferring every use afresh gives: stats, receptive fields and jumps of every
node, and the same diagnostics."""

import pytest

from cnndsl import ir
from cnndsl.compiler import PIPELINE, Context, load, source_from_text
from cnndsl.passes import shapes
from cnndsl.traverse import dump, walk

NAMES = ["resnet50", "resnet152", "efficientnet_b0", "efficientnet_v2_s", "densenet121", "googlenet", "inception_v3",
         "mobilenet_v3_large", "regnet_y_400mf", "convnext_tiny", "shufflenet_v2_x1_0", "deeplabv3_resnet50",
         "squeezenet1_0"]


def _expanded(source):
    context = Context(source, {}, False, source.network)
    tree = source
    for step in PIPELINE[:PIPELINE.index(shapes.infer_shapes)]:
        tree = step(tree, context)
    return tree, context


def _both(source, monkeypatch):
    tree, context = _expanded(source)
    before = list(context.diagnostics)
    reused = shapes.infer_shapes(tree, context)
    kept = context.diagnostics[len(before):]
    monkeypatch.setattr(shapes.ShapeInference, "REUSE", False)
    tree, context = _expanded(source)
    fresh = shapes.infer_shapes(tree, context)
    return (dump(reused), kept), (dump(fresh), context.diagnostics[len(before):])


@pytest.mark.parametrize("name", NAMES)
def test_reused_inference_is_the_fresh_one(name, monkeypatch):
    reused, fresh = _both(load(name), monkeypatch)
    assert reused == fresh


def test_the_reused_body_takes_each_use_s_receptive_field(monkeypatch):
    source = source_from_text("""
block B(c) {
  residual { conv(c, 3, pad=1) -> relu -> conv(c, 3, pad=1) }
}
network N() {
  input 3x32x32
  conv(8, 3, pad=1) -> B(8) * 3 -> [maxpool(2) -> B(8)] -> bad: B(8) -> global_avgpool -> fc(10)
}
""")
    (reused, _), (fresh, _) = _both(source, monkeypatch)
    assert reused == fresh
    assert "rf=5 " in reused and "rf=9 " in reused and "rf=13 " in reused  # three uses at one shape, each its own


def test_a_strided_body_reused_at_the_same_jump_gives_the_jump_after_it(monkeypatch):
    source = source_from_text("""
block Down(c) {
  conv(c, 3, stride=2, pad=1) -> relu
}
network N() {
  input 3x16x16
  conv(8, 3, pad=1) -> Down(8) -> upsample(2) -> Down(8) -> conv(8, 3, pad=1) -> global_avgpool -> fc(10)
}
""")
    (reused, _), (fresh, _) = _both(source, monkeypatch)
    assert reused == fresh
    assert "rf=11 jump=2" in reused  # the conv after the second use: its input's jump is the block's stride


def test_an_error_in_a_reused_body_is_reported_at_each_kind_of_use(monkeypatch):
    source = source_from_text("""
block B(c) {
  conv(c, 5) -> relu
}
network N() {
  input 3x6x6
  B(4) -> B(4) -> B(4) -> fc(10)
}
""")
    (reused, errors), (fresh, fresh_errors) = _both(source, monkeypatch)
    assert reused == fresh
    assert errors == fresh_errors and any(d.severity == "error" for d in errors)


LEAVES = """
block B(c, p) {
  residual { conv(c, 3, pad=1) -> batchnorm -> relu -> stochastic_depth(p) }
}
network N() {
  input 3x16x16
  conv(8, 3, pad=1) -> B(8, 0.1) -> B(8, 0.2) -> B(8, %s) -> global_avgpool -> fc(10)
}
"""


def test_a_use_that_differs_in_a_leaf_alone_gets_the_earlier_use_s_shapes_and_its_own_value(monkeypatch):
    source = source_from_text(LEAVES % "0.3")
    tree, context = _expanded(source)
    assert len(context.leaf_copies) == 2  # the uses at 0.2 and 0.3 are copies of the one at 0.1
    shared = []
    releafed = shapes.ShapeInference.releafed
    monkeypatch.setattr(shapes.ShapeInference, "releafed", lambda *args: shared.append(releafed(*args)) or shared[-1])
    inferred = shapes.infer_shapes(tree, context)
    assert len(shared) == 2 and None not in shared  # both took the first use's shapes
    (reused, _), (fresh, _) = _both(source, monkeypatch)
    assert reused == fresh
    assert "rf=5 " in reused and "rf=7 " in reused and "rf=9 " in reused  # each use's own field
    probabilities = [layer.arg("p") for layer in walk(inferred) if isinstance(layer, ir.Layer)
                     and layer.kind == "stochastic_depth"]
    assert probabilities == [0.1, 0.2, 0.3]


def test_a_leaf_value_the_shape_rule_refuses_is_reported_at_its_use(monkeypatch):
    (reused, errors), (fresh, fresh_errors) = _both(source_from_text(LEAVES % "1.5"), monkeypatch)
    assert reused == fresh and errors == fresh_errors
    assert [d.message for d in errors if d.severity == "error"] == [
        "stochastic depth probability 1.5 is above 1 (input 8x16x16)"]
