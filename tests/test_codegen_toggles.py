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

DATA = Path(__file__).resolve().parent / "data"


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
    assert not left, left


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



# ShuffleNetV2's unit: its two forms differ in forward (both branches on the whole input where
# stride > 1, a split of the channels with one half passed on where stride == 1), each a concat
# kept by its own condition. torchvision writes one class, InvertedResidual, that forks on stride.
SHUFFLE_BEFORE = DATA / "shufflenet_v2_x1_0_two_classes.py"  # generated/shufflenet_v2_x1_0.py of 72d00e8


def test_the_shufflenet_goldens_write_one_class_for_the_unit_as_torchvision():
    for path in sorted(GENERATED.glob("shufflenet_v2*.py")):
        code = path.read_text()
        classes = [n.name for n in ast.parse(code).body if isinstance(n, ast.ClassDef)]
        assert classes[0] == "ShuffleUnit" and len(classes) == 2, (path.name, classes)
        unit = code[code.index("class ShuffleUnit("):code.index(f"class {classes[1]}(")]
        assert "        self.stride = stride\n        if stride > 1:\n            self.branch1 = nn.Sequential(\n" in unit
        assert "        else:\n            self.branch1 = nn.Sequential()\n" in unit
        assert "                in_channels if stride > 1 else in_channels // 2,\n" in unit
        assert "        if self.stride > 1:\n            x = torch.cat([\n                self.branch1(x),\n" \
            "                self.branch2(x),\n            ], dim=1)" in unit
        assert "        else:\n            x1, x2 = x.chunk(2, dim=1)\n            x = torch.cat([\n" \
            "                x1,\n                self.branch2(x2),\n            ], dim=1)\n" \
            "        x = self.shuffle(x)\n        return x\n" in unit
        assert max(len(line) for line in code.splitlines()) <= 92


def test_the_one_shufflenet_unit_class_has_the_two_classes_keys_and_function():
    """The merged golden and the one of two classes before it: the same state_dict, loaded
    strictly either way, and the same output in float64, in eval mode and while training."""
    new = load_generated((GENERATED / "shufflenet_v2_x1_0.py").read_text()).Shufflenet_v2_x1_0()
    old = load_generated(SHUFFLE_BEFORE.read_text()).Shufflenet_v2_x1_0()
    assert sorted({type(m).__name__ for m in old.modules()} - {type(m).__name__ for m in new.modules()}) == \
        ["ShuffleUnit2"]
    assert list(new.state_dict()) == list(old.state_dict())
    generator = torch.Generator().manual_seed(0)
    weights = {}
    for key, tensor in old.state_dict().items():
        if tensor.is_floating_point():
            tensor = torch.rand(tensor.shape, generator=generator) + 0.5 if key.endswith("running_var") else \
                torch.randn(tensor.shape, generator=generator) * 0.5
        weights[key] = tensor
    old.load_state_dict(weights, strict=True)
    new.load_state_dict(old.state_dict(), strict=True)
    old.load_state_dict(new.state_dict(), strict=True)
    new, old = new.double(), old.double()
    x = torch.randn(2, 3, 64, 64, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        for training in (False, True):
            new.train(training), old.train(training)
            assert torch.equal(new(x), old(x)), training
    assert [m.stride for m in new.stage3] == [2, 1, 1, 1, 1, 1, 1, 1]
    assert [len(m.branch1) for m in new.stage3] == [5, 0, 0, 0, 0, 0, 0, 0]


FORKED = """\
block Unit(out, stride = 1) {
    concat {
        left: [conv(input.channels, 3, stride=stride, pad=1, groups=input.channels) -> batchnorm]
        right: [conv(out // 2, 1, stride=stride) -> relu]
    }?(stride > 1)
    split {
        identity
        right: [conv(out // 2, 1, stride=stride) -> relu]
    }?(stride == 1)
    shuffle(2)
}

network Net() {
    input 4x16x16
    features: [Unit(8, 2) -> Unit(8) -> Unit(16, 2) -> Unit(16)]
}
"""


def test_uses_whose_forwards_differ_by_a_concat_each_kept_by_its_condition_share_one_forked_class():
    code = cnndsl.compile_source(FORKED)
    classes = [n.name for n in ast.parse(code).body if isinstance(n, ast.ClassDef)]
    assert classes == ["Unit", "Net"]
    assert "        if self.stride > 1:\n" in code and "            x1, x2 = x.chunk(2, dim=1)\n" in code
    assert "in_channels if stride > 1 else in_channels // 2" in code
    model = load_generated(code).Net().eval()
    torch.manual_seed(0)
    uses = [((4, 16, 16), "Unit(8, 2)"), ((8, 8, 8), "Unit(8)"), ((8, 8, 8), "Unit(16, 2)"), ((16, 4, 4), "Unit(16)")]
    for index, (shape, use) in enumerate(uses):
        alone = FORKED.split("network Net()")[0] + \
            f"network Alone() {{\n    input {'x'.join(map(str, shape))}\n    features: [{use}]\n}}\n"
        reference = load_generated(cnndsl.compile_source(alone)).Alone().eval()
        block = model.features[index]
        theirs = {k.removeprefix("features.0."): v for k, v in reference.state_dict().items()}
        assert list(block.state_dict()) == list(theirs), use
        for tensor in theirs.values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor).abs() + 0.1 if tensor.dim() == 1 else torch.randn_like(tensor))
        block.load_state_dict(theirs, strict=True)
        reference.load_state_dict({f"features.0.{k}": v for k, v in theirs.items()}, strict=True)
        x = torch.randn(2, *shape)
        with torch.no_grad():
            assert torch.allclose(block(x), reference.features(x), atol=1e-5), use
    built = cnndsl.build(FORKED).eval()  # a real module's source, which TorchScript reads
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(built)(x), built(x))


def test_a_fork_whose_condition_reads_a_members_name_keeps_two_classes():
    # `self.right = right` would replace the member: the uses keep a class each
    spec = FORKED.replace("stride > 1", "right > 1").replace("stride == 1", "right == 1") \
        .replace("block Unit(out, stride = 1)", "block Unit(out, stride = 1, right = 1)") \
        .replace("Unit(8, 2) ->", "Unit(8, 2, 2) ->").replace("Unit(16, 2) ->", "Unit(16, 2, 2) ->")
    code = cnndsl.compile_source(spec)
    classes = [n.name for n in ast.parse(code).body if isinstance(n, ast.ClassDef)]
    assert classes == ["Unit", "Unit2", "Net"]
    assert "self.right = right" not in code
    with torch.no_grad():
        assert load_generated(code).Net().eval()(torch.randn(2, 4, 16, 16)).shape == (2, 16, 4, 4)
