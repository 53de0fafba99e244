"""The expansion cost known before expanding (cnndsl/passes/cost.py): a lower bound of the
expander's steps, so that lets or blocks used twice over are refused at their first use
instead of after MAX_STEPS element expansions (half a second and more of CPU)."""

from __future__ import annotations

import pytest

from cnndsl import CompileError
from cnndsl.compiler import builtins, compile_network, load, source_from_text
from cnndsl.parse import parse
from cnndsl.passes.context import Context
from cnndsl.passes.cost import ExpansionCost
from cnndsl.passes.expand import MAX_STEPS, Expander, select_network
from cnndsl.passes.imports import link_imports

NET = "network N(sw = false) {\n    input 3x16x16\n    relu -> L%d\n}\n"


def doubled(n: int, base: str, block: bool) -> str:
    if block:
        lines = [f"block L0() {{ {base} }}"] + [f"block L{i}() {{ L{i - 1} -> L{i - 1} }}" for i in range(1, n)]
    else:
        lines = [f"let L0 = {base}"] + [f"let L{i} = L{i - 1} -> L{i - 1}" for i in range(1, n)]
    return "\n".join(lines) + "\n" + NET % (n - 1)


@pytest.mark.parametrize("block", [False, True])
@pytest.mark.parametrize("base", ["relu", "relu*0", "relu?sw", "conv(4, 3, pad=1)"])
def test_definitions_used_twice_over_are_refused_where_the_network_names_them(base, block):
    text = doubled(20, base, block)
    with pytest.raises(CompileError) as info:
        compile_network(source_from_text(text, "t.cnn"))
    (error,) = [d for d in info.value.diagnostics if d.severity == "error"]
    assert "steps" in error.message
    assert (error.span.line, error.span.column) == (23, 13)  # `L19` in the network, not deep inside


def test_the_bound_counts_each_element_and_each_definition_it_names():
    program = parse(source_from_text(doubled(5, "relu -> relu", False)))
    lets = {d.name: d for d in program.lets}
    cost = ExpansionCost(lets, {}, MAX_STEPS)
    assert [cost.bound(f"L{i}") for i in range(5)] == [2, 6, 14, 30, 62]  # 2 + 2 * previous
    program = parse(source_from_text(doubled(40, "relu", False)))
    assert ExpansionCost({d.name: d for d in program.lets}, {}, MAX_STEPS).bound("L39") == MAX_STEPS + 1


def test_what_may_expand_to_nothing_counts_nothing_inside():
    text = "let A = relu -> relu -> relu\nlet B = A?sw -> A*n -> side A -> [A]*2\n" + NET % 0
    program = parse(source_from_text(text))
    cost = ExpansionCost({d.name: d for d in program.lets}, {}, MAX_STEPS)
    assert cost.bound("B") == 4 + 1 + 3  # four elements; in the literal repetition, A and its three


@pytest.mark.parametrize("name", sorted(builtins()))
def test_the_bound_never_exceeds_the_steps_expanding_takes(name):
    source = load(name)
    context = Context()
    program = link_imports(parse(source), context, source)  # a family may import (deeplabv3_mobilenet: defs)
    expander = Expander(program, context)
    network = select_network(program, None, context)
    expander.network(network)
    assert not context.errors
    assert 0 < expander.cost.of_chains(network.body) <= expander.steps


@pytest.mark.parametrize("base", ["INPUT", "relu", "conv(4, 3, pad=1)"])
def test_a_chain_of_a_thousand_lets_is_a_diagnostic_not_a_recursion_error(base):
    """The fuzz campaign (seed 1203002): `let L1 = L0` ... `let L999 = L998`. Finding the
    names a let reads walked the chain recursively and met Python's recursion limit; the
    expansion's own depth limit is the answer, at the use that goes too deep."""
    text = "\n".join([f"let L0 = {base}"] + [f"let L{i} = L{i - 1}" for i in range(1, 1000)]) + "\n" + NET % 999
    with pytest.raises(CompileError) as caught:
        compile_network(source_from_text(text, "chain.cnn"))
    assert "nested more than" in str(caught.value)
    assert all(d.span.line >= 1 for d in caught.value.diagnostics)
