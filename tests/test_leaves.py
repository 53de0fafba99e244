"""passes/leaves.py: uses of a block that differ only in parameters read as shapeless layer
arguments (a dropout's p, a norm's eps) share one expanded body, each with its own values."""

from __future__ import annotations

import pytest

from cnndsl import ir, traverse
from cnndsl.compiler import compile_network, generate, load, run_passes, source_from_text
from cnndsl.diagnostics import CompileError
from cnndsl.parse import parse
from cnndsl.passes import PIPELINE, Context
from cnndsl.passes.leaves import leaf_params

SPEC = """
let Norm = batchnorm(eps=eps)
block B(c, p, eps = 0.001, q = 0.5, r = 0.1, s = 0.2) {
    conv(c, 3, pad=1) -> Norm -> relu -> dropout(p)
    "drop{int(q * 10)}": dropout(q)
    dropout(r) -> dropout(r * 2)
    dropout(s)?(s > 0.1)
}
network N(classes = 10) {
    input 3x8x8
    B(8, 0.1) -> B(8, 0.2) -> B(8, 0.3, eps=0.01) -> B(16, 0.4)
    global_avgpool -> fc(classes)
}
"""


def _leaves(text: str, block: str) -> set[str]:
    program = parse(source_from_text(text))
    lets = {d.name: d for d in program.lets}
    blocks = {d.name: d for d in program.blocks}
    return set(leaf_params(blocks[block], lets, blocks))


def test_a_parameter_is_a_leaf_where_every_read_is_a_whole_shapeless_layer_argument():
    # p: dropout(p) alone; eps: through the let Norm. q is in a label, r in an expression,
    # s in a condition, c a conv's channels.
    assert _leaves(SPEC, "B") == {"p", "eps"}


def test_a_parameter_passed_to_a_block_or_a_def_is_not_a_leaf():
    text = """
def half(v) = v / 2
block Inner(p) { dropout(p) }
block Outer(p, q) { Inner(p) -> dropout(half(q)) }
network N(classes = 2) {
    input 4
    Outer(0.1, 0.2) -> fc(classes)
}
"""
    assert _leaves(text, "Inner") == {"p"}
    assert _leaves(text, "Outer") == set()


def _dropouts(network: ir.Network) -> list[float]:
    return [layer.arg("p") for layer in traverse.walk(network)
            if isinstance(layer, ir.Layer) and layer.kind == "dropout" and layer.args[0][1].expr.text == "p"]


def test_uses_that_differ_in_leaves_share_the_rest_of_their_body_and_keep_their_own_values():
    network = compile_network(source_from_text(SPEC)).network
    uses = [n for n in traverse.walk(network) if isinstance(n, ir.BlockInstance)]
    assert _dropouts(network) == [0.1, 0.2, 0.3, 0.4]
    eps = [layer.arg("eps") for layer in traverse.walk(network) if isinstance(layer, ir.Layer) and layer.kind == "batchnorm"]
    assert eps == [0.001, 0.001, 0.01, 0.001]
    # as expanded, the second use's conv is the first use's object: only the path to the
    # changed layers is new
    source = source_from_text(SPEC)
    steps = PIPELINE[:[step.__name__ for step in PIPELINE].index("expand") + 1]
    expanded = run_passes(source, Context(source, {}, False, None), steps)
    first, second = [n for n in traverse.walk(expanded) if isinstance(n, ir.BlockInstance)][:2]
    assert first.body.items[0] is second.body.items[0] and first.body is not second.body
    code = generate(compile_network(source_from_text(SPEC)))
    assert "B(3, 8, 0.1)" in code and "B(8, 8, 0.2)" in code and "B(8, 8, 0.3, eps=0.01)" in code


@pytest.mark.parametrize("value, where", [("-0.5", "must be at least 0"), ("1.5", "is not below 1")])
def test_a_later_use_with_a_value_its_layer_refuses_is_reported_at_that_use(value, where):
    text = SPEC.replace("B(16, 0.4)", f"B(8, {value})")
    with pytest.raises(CompileError) as caught:
        compile_network(source_from_text(text))
    messages = [d.message for d in caught.value.diagnostics]
    assert any(where in m for m in messages), messages


def test_efficientnet_summaries_keep_each_blocks_stochastic_depth():
    """b0's MBConv uses repeat within a stage and differ only in their stochastic depth: the
    shared body keeps each use's probability, 0.2 * k / 16 for block k."""
    network = compile_network(load("efficientnet_b0")).network
    probabilities = [layer.arg("p") for layer in traverse.walk(network)
                     if isinstance(layer, ir.Layer) and layer.kind == "stochastic_depth"]
    expected = [0.2 * k / 16 for k in range(16)]
    residual = [k for k in range(16) if k not in (0, 1, 3, 5, 8, 11, 15)]  # the blocks with a residual
    assert probabilities == pytest.approx([expected[k] for k in residual])
