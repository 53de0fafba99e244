"""The code generator builds a block's class body once for the uses whose IR reads alike
(`codegen/reuse.py`): the output must be the same as building every use, for every
built-in and for uses that differ where the class's code does."""

from __future__ import annotations

import pytest

from cnndsl.codegen import generate_module
from cnndsl.codegen import model as codegen_model
from cnndsl.codegen import toggles as codegen_toggles
from cnndsl.codegen.model import Generator, ScopeBuilder
from cnndsl.compiler import builtins, compile_network, load, source_from_text


def both(network) -> tuple[str, str, int, int]:
    """The module with reuse and without, and how many block scopes each built."""
    built = []
    start = ScopeBuilder.start

    def counting(self, seq):
        if self.in_block:
            built[-1] += 1
        return start(self, seq)

    outputs = []
    try:
        ScopeBuilder.start = counting
        for reuse in (True, False):
            built.append(0)
            Generator.reuse_scopes = reuse
            outputs.append(generate_module(network))
    finally:
        ScopeBuilder.start = start
        Generator.reuse_scopes = True
    return outputs[0], outputs[1], built[0], built[1]


@pytest.mark.parametrize("name", builtins())
def test_every_builtin_generates_the_same_code_with_reuse(name):
    with_reuse, without, _, _ = both(compile_network(load(name)).network)
    assert with_reuse == without


@pytest.mark.parametrize("name, most", [("efficientnet_v2_l", 16), ("densenet201", 4), ("googlenet", 4)])
def test_reuse_builds_a_block_once_for_uses_differing_by_a_parameter(name, most):
    """EfficientNet's stochastic depth rate, DenseNet's input channels, GoogLeNet's widths
    differ from use to use; the class body is built once for each distinct one."""
    _, _, reused, every = both(compile_network(load(name)).network)
    assert reused <= most < every


def code(text: str) -> tuple[str, str]:
    with_reuse, without, _, _ = both(compile_network(source_from_text(text)).network)
    return with_reuse, without


def test_uses_whose_code_differs_by_a_value_get_their_own_class():
    """A pool's stride equal to its size is left out of the call, so P(2) and P(1) differ
    in code though their layers read the same parameter."""
    with_reuse, without = code("""
block P(s) { maxpool(2, stride=s) }
network N() {
    input 3x16x16
    P(2) -> P(1) -> P(2) -> global_avgpool -> fc(10)
}
""")
    assert with_reuse == without
    assert "class P(nn.Module)" in with_reuse and "class P2(nn.Module)" in with_reuse


def test_uses_differing_by_an_optional_member_are_not_merged():
    with_reuse, without = code("""
block B(c, drop) { conv(c, 3, pad=1) -> dropout(0.5)?(drop) -> relu }
network N() {
    input 3x16x16
    B(8, true) -> B(8, false) -> B(8, true) -> global_avgpool -> fc(10)
}
""")
    assert with_reuse == without
    assert with_reuse.count("nn.Dropout") == 1 and "class B2(nn.Module)" in with_reuse


def test_an_inner_block_is_called_as_each_use_calls_it():
    """The outer uses differ only inside the inner block's arguments: the inner classes are
    made in the order a full build makes them, and each outer use calls its own."""
    with_reuse, without = code("""
block Inner(k) { conv(8, k, pad=k // 2) -> relu }
block Outer(k) { Inner(k) -> conv(8, 1) }
network N() {
    input 8x16x16
    Outer(3) -> Outer(1) -> Outer(3) -> global_avgpool -> fc(10)
}
""")
    assert with_reuse == without


def test_the_switch_is_on():
    assert codegen_model.Generator.reuse_scopes is True


def test_heads_with_two_inputs_read_as_each_use_reads():
    """A block's reads(low) and from(low): two uses differing in their width and the tensor
    they read share a class only where the code is the same."""
    from test_heads import HEAD  # the LR-ASPP-like head of tests/test_heads.py, used twice here

    twice = "    one: Head(num_classes) reads(backbone.2)\n    two: Head(num_classes, inter=4) reads(backbone.0)\n"
    spec = HEAD.replace("    classifier: Head(num_classes) reads(backbone.2)\n", twice)
    assert twice in spec
    with_reuse, without = code(spec)

    assert with_reuse == without
    assert "class Head(nn.Module)" in with_reuse


@pytest.mark.parametrize("name", builtins())
def test_every_builtin_generates_the_same_code_merging_every_use(name, monkeypatch):
    """A use that joins a shared class as an earlier use of its model did, reading the same
    of its arguments, is not merged again (`toggles._again`): the output is the same as
    merging each use."""
    network = compile_network(load(name)).network
    remembered = generate_module(network)
    monkeypatch.setattr(codegen_toggles, "_again", lambda shared, model, env: False)
    assert generate_module(network) == remembered


def test_a_use_is_merged_again_where_the_merge_read_a_value_of_its_own(monkeypatch):
    """Uses of one shared class (an activation picked, the residual where the shape allows it)
    whose arguments differ where the merge reads them (the activation, the stride) and where
    it does not (the rate): those reading alike are not merged again, and the class is the
    one that merging each gives."""
    network = compile_network(source_from_text("""
let Body = "body": [conv(e, 1) -> relu?(act == "RE") -> hardswish?(act == "HS") -> conv(c, 3, stride=s, pad=1)]
block B(i, c, e, act, s, p) {
    residual { Body -> stochastic_depth: stochastic_depth(p) }?(s == 1 and i == c)
    Body?(s != 1 or i != c)
}
network N() {
    input 8x16x16
    B(8, 8, 16, "RE", 1, 0.1) -> B(8, 8, 32, "HS", 1, 0.2) -> B(8, 8, 16, "RE", 1, 0.3) -> B(8, 8, 32, "HS", 1, 0.4)
        -> B(8, 16, 16, "RE", 2, 0.5) -> B(16, 16, 16, "RE", 1, 0.6) -> B(16, 16, 32, "HS", 1, 0.7)
        -> B(16, 16, 16, "RE", 1, 0.8) -> global_avgpool -> fc(10)
}
""")).network
    again = codegen_toggles._again
    hits = []
    monkeypatch.setattr(codegen_toggles, "_again", lambda *args: hits.append(again(*args)) or hits[-1])
    remembered = generate_module(network)
    monkeypatch.setattr(codegen_toggles, "_again", lambda shared, model, env: False)
    assert generate_module(network) == remembered
    assert any(hits) and not all(hits)
    assert "class B2(nn.Module)" not in remembered and "else nn.Hardswish(inplace=True)" in remembered
