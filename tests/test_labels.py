"""Repetition with an index (`X * n for i`), quoted and interpolated labels
(`"block1-0": ...`, `"denselayer{i + 1}": ...`), numbered nested Sequentials, and a block
reading its input's shape (`input.channels`, `input.height`, `input.width`) (issue 11):
what they build, the state_dict keys of the generated module, and the diagnostics."""

from __future__ import annotations

import ast as pyast

import pytest

from cnndsl import CompileError, ir
from cnndsl.compiler import compile_network, generate, source_from_text
from cnndsl.tools.fmt import format_source
from cnndsl.traverse import walk

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402


def assert_only_the_network(code: str) -> None:
    """The module defines classes and reaches nothing outside torch: no getattr/setattr,
    no call but torch's, nn's, its own classes' and its modules' (tests/test_codegen_attack.py
    proves this for a large corpus; here for the quoted keys)."""
    tree = pyast.parse(code)
    defined = {n.name for n in tree.body if isinstance(n, pyast.ClassDef)} | {"super", "OrderedDict", "range"}
    defined |= {n.target.id for n in pyast.walk(tree)  # a loop block's modules: for layer in self.values()
                if isinstance(n, pyast.For) and pyast.unparse(n.iter) == "self.values()"}
    for node in pyast.walk(tree):
        assert not isinstance(node, (pyast.Lambda, pyast.Global, pyast.Delete, pyast.With, pyast.Try))
        if isinstance(node, pyast.Name):
            assert node.id not in {"getattr", "setattr", "exec", "eval", "__import__", "open"}, node.id
        if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name):
            assert node.func.id in defined, node.func.id


def compiled(text: str, **params):
    return compile_network(source_from_text(text, "l.cnn"), params)


def model_of(text: str, **params):
    code = generate(compiled(text, **params))
    assert_only_the_network(code)
    module = load_generated(code)
    return code, getattr(module, compiled(text, **params).network.name)()


def keys(model) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def error(text: str):
    with pytest.raises(CompileError) as info:
        compiled(text)
    return info.value.diagnostics


DENSE = """\
block DenseLayer(growth, bn_size = 4) {
    norm1: batchnorm -> relu1: relu -> conv1: conv(bn_size * growth, 1, bias=false)
    norm2: batchnorm -> relu2: relu -> conv2: conv(growth, 3, pad=1, bias=false)
}

block DenseBlock(layers, growth) {
    concat {
        identity
        "denselayer{i + 1}": DenseLayer(growth)
    }*layers for i
}

block Transition() {
    norm: batchnorm -> relu: relu -> conv: conv(input.channels // 2, 1, bias=false) -> pool: avgpool(2)
}

network Dense(cfg = [2, 3], growth = 4) {
    input 3x16x16
    features: [
        conv0: conv(8, 3, pad=1, bias=false)
        -> ["denseblock{i + 1}": DenseBlock(cfg[i], growth) -> "transition{i + 1}": Transition]*len(cfg) for i
    ]
}
"""


def test_densenet_shaped_keys_from_an_index_and_interpolated_labels():
    code, model = model_of(DENSE)
    found = keys(model)
    assert list(found)[:3] == ["features.conv0.weight", "features.denseblock1.denselayer1.norm1.weight",
                               "features.denseblock1.denselayer1.norm1.bias"]
    assert found["features.denseblock1.denselayer2.norm1.weight"] == (12,)  # 8 + 4: the concat grows
    assert found["features.transition1.conv.weight"] == (8, 16, 1, 1)  # input.channels // 2 of 16
    assert found["features.denseblock2.denselayer3.conv2.weight"] == (4, 16, 3, 3)
    assert found["features.transition2.conv.weight"] == (10, 20, 1, 1)
    assert "features.denseblock2.denselayer4.conv1.weight" not in found
    # a dense block is a loop, as torchvision's _DenseBlock; the identity branch is x, no nn.Identity
    assert 'self.add_module(f"denselayer{i + 1}", layer)' in code and "x = torch.cat([x, layer(x)], dim=1)" in code
    assert "nn.Identity" not in code
    assert "nn.Conv2d(in_channels, in_channels // 2, kernel_size=1, bias=False)" in code
    assert tuple(model(torch.zeros(1, 3, 16, 16)).shape) == (1, 10, 4, 4)


def test_the_index_reaches_arguments_and_each_copy_is_its_own():
    text = "network N() {\n    input 3x32x32\n    stage: [conv(8 * (i + 1), 3, stride=2 if i == 0 else 1, pad=1)]*3 for i\n}\n"
    network = compiled(text).network
    convs = [n for n in walk(network.body) if isinstance(n, ir.Layer) and n.kind == "conv"]
    assert [(c.arg("filters"), c.arg("stride")) for c in convs] == [(8, 2), (16, 1), (24, 1)]
    _, model = model_of(text)
    assert keys(model)["stage.2.weight"] == (24, 16, 3, 3)


def test_quoted_labels_take_any_key_in_a_group_and_stay_safe():
    text = ('network N() {\n    input 3x8x8\n    features: ["block1-0": conv(4, 3) -> "if": relu -> "block": '
            'conv(2, 1) -> "a b": relu]\n    "block": conv(2, 1)\n}\n')
    code, model = model_of(text)
    assert list(keys(model)) == ["features.block1-0.weight", "features.block1-0.bias", "features.block.weight",
                                 "features.block.bias", "block.weight", "block.bias"]
    assert '("block1-0", nn.Conv2d(3, 4, kernel_size=3))' in code and '("if", nn.ReLU' in code
    assert "self.block = nn.Conv2d(2, 2, kernel_size=1)" in code


def test_numbered_nested_sequentials():
    text = ('network N() {\n    input 3x8x8\n    features: ["0": [conv(4, 3, pad=1) -> batchnorm -> relu6] '
            '-> ["{i + 1}": [conv(4, 1) -> batchnorm]]*2 for i]\n}\n')
    _, model = model_of(text)
    assert [k for k in keys(model) if k.endswith("weight")] == \
        ["features.0.0.weight", "features.0.1.weight", "features.1.0.weight", "features.1.1.weight",
         "features.2.0.weight", "features.2.1.weight"]


@pytest.mark.parametrize("line, message, where", [
    ('"block1-0": conv(4, 3)', "'block1-0' cannot name a member of network N: a member is an attribute", (3, 17)),
    ('"if": conv(4, 3)', "'if' cannot name a member of network N", (3, 11)),
    ('features: ["a.b": conv(4, 3)]', "cannot name a layer 'a.b': 'a.b' holds a '.'", (3, 16)),
    ('features: ["": conv(4, 3)]', "cannot name a layer '': a label cannot be empty", (3, 16)),
    ('features: ["forward": conv(4, 3)]', "'forward' is an attribute of torch.nn.Module", (3, 16)),
    ('features: [["l{i}": relu]*2 for i -> "l{i}": relu]', "unknown name 'i' in network N", (3, 45)),
    ('features: ["{k}": relu]', "unknown name 'k' in network N", (3, 18)),
    ('features: ["l{i +}": relu]*2 for i', "cannot read {i +} in a label as an expression", (3, 16)),
    ('features: ["l{1.5}": relu]', "a label's {...} must be a whole number or a string, got 1.5", (3, 19)),
    ('features: ["l{": relu]', "a label's {...} holds an expression", (3, 16)),
    ('features: ["1": relu -> "0": relu]', "'1' is member 0 of the group 'features'", (3, 21)),
    ('features: [conv(4, 3)*2 for N]', "the index 'N' hides a parameter", (3, 33)),
    ('features: [["d{i}": relu]*2 for i -> ["d{j}": relu]*2 for j]', "'d0' names two modules in 'features'", (3, 51)),
])
def test_label_and_index_errors(line, message, where):
    text = f"network N(N = 2) {{\n    input 3x8x8\n    {line}\n}}\n"
    found = [d for d in error(text) if message in d.message]
    assert found, error(text)
    assert (found[0].span.line, found[0].span.column) == where, found[0]


def test_input_shape_in_blocks_networks_and_their_errors():
    text = ("block B() {\n    conv(input.channels * 2, 1) -> conv(input.height + input.width, 1)\n}\n"
            "network N() {\n    input 3x8x6\n    conv(input.channels + 1, 1) -> B -> b2: B\n}\n")
    network = compiled(text).network
    convs = [n.arg("filters") for n in walk(network.body) if isinstance(n, ir.Layer) and n.kind == "conv"]
    assert convs == [4, 8, 14, 28, 14]
    (diag,) = error("block B() {\n    conv(input.depth, 1)\n}\nnetwork N() {\n    input 3x8x8\n    B\n}\n")
    assert diag.message == "the input has no 'depth'" and (diag.span.line, diag.span.column) == (2, 10)
    (diag,) = error("block B() {\n    conv(input.channels - 8, 1)\n}\nnetwork N() {\n    input 3x8x8\n    B\n}\n")
    assert diag.message == "conv 'filters' must be at least 1, got -5" and (diag.span.line, diag.span.column) == (2, 5)
    (diag,) = error("block B() {\n    [conv(4, 3)]*(input.channels)\n}\nnetwork N() {\n    input 3x8x8\n    B\n}\n")
    assert diag.message == "a repetition count cannot read the input's shape" and diag.span.column == 19
    (diag,) = error("def f = input.channels\nnetwork N() {\n    input 3x8x8\n    conv(f, 1)\n}\n")
    assert "input.channels is the shape of a block's or a network's input" in diag.message
    assert (diag.span.line, diag.span.column) == (1, 9)


def test_fmt_keeps_labels_indexes_and_input_attributes():
    text = ('block B(){\n conv(input . channels//2,1)\n}\nnetwork N(){\n input 3x8x8\n'
            ' features:["b{i+1}" :B]*2 for i\n}\n')
    out = format_source(source_from_text(text, "f.cnn"))
    assert out == ('block B() {\n    conv(input.channels // 2, 1)\n}\n\nnetwork N() {\n    input 3x8x8\n'
                   '    features: ["b{i+1}": B]*2 for i\n}\n')


def test_generated_modules_with_quoted_keys_are_only_the_network():
    code = generate(compiled(DENSE))
    pyast.parse(code)
    assert_only_the_network(code)


@pytest.mark.parametrize("tail", ["", "\n# a comment makes Lark, not the fast path, read the file \\\n"])
def test_an_error_inside_a_labels_expression_is_a_diagnostic_at_its_place(tail):
    """The fuzz campaign (seed 1205019): a number too large inside `"transition{i + 1000...}"`
    escaped as Lark's VisitError, the label's own transform wrapping the CompileError."""
    text = ("network N() {\n    input 3x8x8\n    [\"t{i + 100000000000000000000000000001}\": relu]*2 for i\n}\n"
            + tail)
    with pytest.raises(CompileError) as caught:
        compile_network(source_from_text(text, "label.cnn"))
    (d,) = caught.value.diagnostics
    assert "number too large" in d.message and (d.span.line, d.span.column) == (3, 13)
