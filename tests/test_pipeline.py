"""The passes run from one PIPELINE of `(tree, context) -> tree` functions; the context
collects every diagnostic, none twice, and the partial tree stays readable."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl import ir, passes, traverse
from cnndsl.compiler import compile_network, source_from_text
from cnndsl.diagnostics import CompileError


def _errors(spec: str, **params) -> CompileError:
    with pytest.raises(CompileError) as caught:
        compile_network(source_from_text(spec), params)
    return caught.value


def test_pipeline_is_functions_of_one_signature():
    assert [step.__name__ for step in passes.PIPELINE] == ["parse", "link_imports", "derive_variants", "resolve",
                                                          "expand", "infer_shapes", "assign_names", "check_inits",
                                                          "check_emittable"]
    assert all(callable(step) for step in passes.PIPELINE)


def test_three_independent_shape_errors_give_three_diagnostics_and_no_cascade():
    error = _errors("""
network N() {
  input 3x8x8
  c: conv(4, 3, pad=1)
  concat {
    conv(4, 9)
    conv(4, 11)
    conv(4, 3, pad=1)
  }
  conv(8, 30)
  side(c) conv(2, 40)
  fc(10)
}
""")
    assert [(d.span.line, d.message.split(" (")[0]) for d in error.diagnostics] == [
        (6, "filter of 9 is larger than its input of 8"),
        (7, "filter of 11 is larger than its input of 8"),
        (11, "filter of 40 is larger than its input of 8"),  # conv(8, 30) reads an unknown shape: silent
    ]


def test_the_partial_ir_is_on_the_error_with_the_known_shapes():
    error = _errors("""
network N() {
  input 3x8x8
  c: conv(4, 3, pad=1)
  conv(8, 30)
  fc(10)
}
""")
    assert isinstance(error.tree, ir.Network) and error.context.tree is error.tree
    layers = [n for n in traverse.walk(error.tree) if isinstance(n, ir.Layer)]
    assert [(n.name, n.stats and n.stats.out_shape) for n in layers] == [("c", (4, 8, 8)), ("conv", None),
                                                                           ("fc", None)]


def test_an_undefined_name_is_one_error_however_often_it_is_used():
    error = _errors("""
block B(p) { conv(p * q, 3) -> conv(q, 3) }
network N() {
  input 3x32x32
  cnv(4, 3) -> cnv(4, 3) -> relu
}
""")
    assert [d.message for d in error.diagnostics] == ["unknown layer or block 'cnv'"]
    error = _errors("""
block B(p) { conv(p * q, 3) -> conv(q, 3) }
network N() {
  input 3x32x32
  B(4) -> B(5) -> conv(4, 3, stride=true) -> maxpool(2, pad="x")
}
""")
    assert [d.message for d in error.diagnostics] == [
        "unknown name 'q' in block B", "conv 'stride' must be a whole number or a pair (height, width), got true",
        "maxpool 'pad' must be a whole number or a pair (height, width), got the string 'x'"]


def test_a_pass_called_alone_raises_its_errors():
    from cnndsl.parse import parse

    program = parse(source_from_text("network N() {\n  input 3x8x8\n  cnv(4, 3)\n}\n"))
    with pytest.raises(CompileError) as caught:
        passes.resolve(program)
    assert caught.value.diagnostics[0].message == "unknown layer or block 'cnv'"
    good = parse(source_from_text("network N() {\n  input 3x8x8\n  conv(4, 3)\n}\n"))
    network = passes.assign_names(passes.infer_shapes(passes.expand(passes.resolve(good))))
    assert network.body.stats.out_shape == (4, 6, 6)


def test_the_public_api_is_unchanged():
    code = cnndsl.compile_source("network N() {\n  input 3x8x8\n  conv(4, 3)\n}\n")
    assert "class N(nn.Module)" in code
    assert cnndsl.check("lenet5") == []
