"""An unknown layer name does not stop the checker (issue 14): the element becomes an
`ir.Unknown` with an unknown output, the shapes before and beside it are still inferred,
the errors elsewhere are still found, and nothing after it says anything more."""

from __future__ import annotations

import pytest

from cnndsl import CompileError, ir
from cnndsl.compiler import compile_network, source_from_text
from cnndsl.traverse import walk


def failure(text: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_network(source_from_text(text, "t.cnn"))
    return info.value


def test_an_unknown_name_and_a_shape_error_before_it_are_both_reported():
    error = failure("network N() {\n    input 3x8x8\n    conv(8, 9)\n    frob(3)\n    fc(10)\n}\n")
    assert [(d.span.line, d.code) for d in error.diagnostics if d.severity == "error"] == [
        (4, "unknown-name"), (3, "shape")]


def test_the_shapes_before_and_beside_an_unknown_element_are_known():
    error = failure("network N() {\n    input 3x8x8\n    c1: conv(8, 3, pad=1) -> relu\n    frob(3)\n"
                    "    c3: conv(4, 1)\n    side(c1) fc(10)\n}\n")
    (only,) = error.diagnostics
    assert only.code == "unknown-name" and only.span.line == 4
    nodes = list(walk(error.tree.body))
    layers = {n.name: n.stats for n in nodes if isinstance(n, ir.Layer)}
    assert layers["c1"].out_shape == (8, 8, 8)
    assert layers["c3"] is None  # it reads frob's output
    assert [n.stats for n in nodes if isinstance(n, ir.Unknown)] == [None]
    side = next(n for n in nodes if isinstance(n, ir.Side))
    assert side.node.stats.out_shape == (10,)


def test_an_unknown_name_in_a_block_is_one_error_and_the_layers_before_it_are_known():
    text = ("block B(c) {\n    conv(c, 3, pad=1) -> bn -> frob\n}\nnetwork N() {\n    input 3x8x8\n"
            "    B(8) -> B(16)\n    residual { relu } shortcut foo\n}\n")
    error = failure(text)
    assert [(d.span.line, d.message) for d in error.diagnostics] == [
        (2, "unknown layer or block 'frob'"), (7, "unknown layer or block 'foo'")]
    convs = [n for n in walk(error.tree.body) if isinstance(n, ir.Layer) and n.kind == "conv"]
    assert convs[0].stats.out_shape == (8, 8, 8) and convs[1].stats is None


def test_a_cycle_still_stops_before_expanding():
    error = failure("let A = B\nlet B = A\nnetwork N() {\n    input 3x8x8\n    A -> frob\n}\n")
    assert any("uses itself" in d.message for d in error.diagnostics)
    assert not isinstance(error.tree, ir.Network)
