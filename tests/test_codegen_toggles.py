"""One class per block where its uses differ by conditions on its arguments (codegen/toggles.py).

torchvision writes MobileNetV2's, MobileNetV3's and EfficientNet's blocks once, the differences
decided in the constructor from its arguments: the expansion appended where it changes the
channels, SE where the row says so, the activation the row names, the residual where the shape
stays. The generated code does the same, and each use keeps its own state_dict keys and function.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

import cnndsl
from cnndsl.api import load_generated

GENERATED = Path(__file__).resolve().parent.parent / "generated"

# ShuffleNetV2's unit is the one block left with two classes: its two forms differ in forward
# (both branches on the whole input, or a split of the channels with one half passed on),
# not by an element kept or left out, which is what the code generator merges.
TWO_FORWARDS = {"ShuffleUnit2"}


def numbered_classes(code: str) -> set[str]:
    """The classes named as a second class of a block, `<Block><n>`, beside the block's own."""
    names = {node.name for node in ast.parse(code).body if isinstance(node, ast.ClassDef)}
    found = set()
    for name in names:
        match = re.fullmatch(r"(.*?)(\d+)", name)
        while match:
            if match.group(1) in names:
                found.add(name)
                break
            match = re.fullmatch(r"(.*?)(\d+)", match.group(1) + match.group(2)[:-1]) \
                if len(match.group(2)) > 1 else None
    return found


def test_no_golden_has_a_second_class_for_a_block_whose_uses_differ_by_a_condition():
    goldens = sorted(GENERATED.glob("*.py"))
    assert len(goldens) > 80
    found = {path.name: numbered_classes(path.read_text()) for path in goldens}
    left = {name: classes for name, classes in found.items() if classes}
    assert all(classes == TWO_FORWARDS for classes in left.values()), left
    assert sorted(left) == sorted(p.name for p in goldens if p.name.startswith("shufflenet_v2"))


def test_the_mobilenet_and_efficientnet_goldens_write_one_class_per_block_as_torchvision():
    v3 = (GENERATED / "mobilenet_v3_large.py").read_text()
    classes = [n.name for n in ast.parse(v3).body if isinstance(n, ast.ClassDef)]
    assert classes == ["InvertedResidualV3", "SElayer", "Mobilenet_v3_large"]
    assert "        if expanded != inp:\n            layers.append(\n" in v3
    assert "        if use_se:\n            layers.append(SElayer(expanded, squeeze))\n" in v3
    assert "nn.ReLU(inplace=True) if act == 'RE' else nn.Hardswish(inplace=True)," in v3
    assert "        self.block = nn.Sequential(*layers)\n" in v3
    v2 = (GENERATED / "mobilenet_v2.py").read_text()
    assert [n.name for n in ast.parse(v2).body if isinstance(n, ast.ClassDef)] == ["InvertedResidual", "Mobilenet_v2"]
    assert "        if expand_ratio != 1:\n" in v2
    for name in ("efficientnet_b0", "efficientnet_v2_s"):
        code = (GENERATED / f"{name}.py").read_text()
        assert not numbered_classes(code), name
        # stochastic depth built always, called only where the input is added back, as torchvision's MBConv
        assert "        if self.use_res_connect:\n            x = self.stochastic_depth(x)\n" \
            "            x = x + identity\n" in code


SPEC = """\
block SE(squeeze) {
    gate {
        avgpool: global_avgpool
        fc1: conv(squeeze, 1)
        activation: relu
        fc2: conv(input.channels, 1)
        scale_activation: hardsigmoid
    }
}

let Depthwise = [conv(expanded, 3, stride=stride, pad=1, groups=expanded, bias=false) -> batchnorm
    -> relu?(act == "RE") -> hardswish?(act == "HS")]

let Body = "block": [
    "0": [conv(expanded, 1, bias=false) -> batchnorm -> relu?(act == "RE") -> hardswish?(act == "HS")]?(expanded != inp)
    "1": Depthwise?(expanded != inp)
    "0": Depthwise?(expanded == inp)
    SE(8)?(use_se)
    "{(2 if expanded != inp else 1) + (1 if use_se else 0)}": [conv(out, 1, bias=false) -> batchnorm]
]

block Inverted(inp, expanded, out, use_se, act, stride) {
    residual { Body -> stochastic_depth: stochastic_depth(0.1) }?(stride == 1 and inp == out)
    Body?(stride != 1 or inp != out)
}

network Net() {
    input 3x16x16
    stem: conv(8, 3, pad=1)
    features: [Inverted(8, 8, 8, false, "RE", 1) -> Inverted(8, 16, 16, true, "HS", 2)
        -> Inverted(16, 32, 16, false, "RE", 1) -> Inverted(16, 16, 24, true, "HS", 1)]
}
"""

# Each use alone, in a network of its own: its class is that use's code, unmerged.
USES = [((8, 16, 16), 'Inverted(8, 8, 8, false, "RE", 1)'), ((8, 16, 16), 'Inverted(8, 16, 16, true, "HS", 2)'),
        ((16, 8, 8), 'Inverted(16, 32, 16, false, "RE", 1)'), ((16, 8, 8), 'Inverted(16, 16, 24, true, "HS", 1)')]


def alone(shape: tuple, use: str) -> str:
    lines = SPEC.split("network Net()")[0]
    return lines + f"network Alone() {{\n    input {'x'.join(map(str, shape))}\n    features: [{use}]\n}}\n"


@pytest.fixture(scope="module")
def net_code() -> str:
    return cnndsl.compile_source(SPEC)


def test_uses_that_differ_by_optional_elements_an_activation_and_the_residual_share_one_class(net_code):
    classes = [n.name for n in ast.parse(net_code).body if isinstance(n, ast.ClassDef)]
    assert sorted(classes) == ["Inverted", "Net", "SE", "StochasticDepth"]  # the last a helper
    assert "        self.use_res_connect = stride == 1 and inp == out\n" in net_code
    assert "        layers: list[nn.Module] = []\n        if expanded != inp:\n" in net_code
    assert "        if use_se:\n            layers.append(SE(expanded, 8))\n" in net_code
    assert "nn.ReLU(inplace=True) if act == 'RE' else nn.Hardswish(inplace=True)" in net_code
    # every use passes the arguments the shared class decides from, the first use's too
    assert "Inverted(8, 8, 8, 8, False, 'RE', 1)" in net_code


def test_each_use_of_the_shared_class_has_its_own_keys_and_function(net_code):
    torch.manual_seed(0)
    model = load_generated(net_code).Net().eval()
    for index, (shape, use) in enumerate(USES):
        reference = load_generated(cnndsl.compile_source(alone(shape, use))).Alone().eval()
        block = model.features[index]
        mine = {k: v.shape for k, v in block.state_dict().items()}
        theirs = {k.removeprefix("features.0."): v.shape for k, v in reference.state_dict().items()}
        assert mine == theirs, use
        for tensor in reference.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor).abs() if tensor.dim() == 1 else torch.randn_like(tensor))
        block.load_state_dict({k.removeprefix("features.0."): v for k, v in reference.state_dict().items()})
        x = torch.randn(2, *shape)
        with torch.no_grad():
            assert torch.allclose(block(x), reference.features(x), atol=1e-5), use
    assert [m.use_res_connect for m in model.features] == [True, False, True, False]


def test_the_shared_class_scripts(net_code):
    built = cnndsl.build(SPEC).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(built)(x), built(x))


WIDE = """\
let Body = body: [
    conv(out, 1, stride=stride)?(k == 1)
    conv(out, 3, stride=stride, pad=1)?(k == 3)
    batchnorm
    conv(out * 2, 1)?(wide)
    relu
]

block B(inp, out, k, stride, wide) {
    residual { Body -> extra: conv(out * (2 if wide else 1), 1) }?(stride == 1 and inp == out * (2 if wide else 1))
    Body?(stride != 1 or inp != out * (2 if wide else 1))
}

network M() {
    input 4x8x8
    features: [B(4, 8, 1, 2, false) -> B(8, 16, 3, 1, true) -> B(32, 32, 1, 1, false)]
}
"""


def test_what_differs_between_the_uses_is_written_as_it_holds_at_each():
    code = cnndsl.compile_source(WIDE)
    classes = [n.name for n in ast.parse(code).body if isinstance(n, ast.ClassDef)]
    # the residual's own convolution has weights: the uses without it do not build it, so the
    # residual's use keeps a class of its own
    assert classes == ["B", "B2", "M"]
    shared = code[code.index("class B("):code.index("class B2(")]
    # the outputs differ (out or out * 2 channels): the docstring and forward say no one shape
    assert '"""Block `B`: in_channels x H x W to the output of the layers its arguments keep.' in shared
    assert "        x = self.body(x)\n        return x\n" in shared
    assert "            nn.Conv2d(in_channels, out, kernel_size=1, stride=stride)\n            if k == 1\n" \
        "            else nn.Conv2d(in_channels, out, kernel_size=3, stride=stride, padding=1)\n" in shared
    assert max(len(line) for line in code.splitlines()) <= 92
    model = load_generated(code).M().eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert model(x).shape == (2, 32, 4, 4)
    assert [type(m).__name__ for m in model.features] == ["B", "B", "B2"]
    assert [len(m.body) for m in model.features] == [3, 4, 3]
