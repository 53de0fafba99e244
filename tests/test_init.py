"""Weight initialisation declared in the language (`init { ... }`, docs/language.md).

A fresh model of each built-in family must start from torchvision's distribution: each
layer's weight and bias statistics are compared with the formula torchvision's
constructor applies (written out here from torchvision's source, not read from the spec),
within a tolerance derived from the tensor's size (six standard errors). Built-ins that
torchvision initialises with PyTorch's defaults (AlexNet, ShuffleNetV2) or that it does not
have (LeNet-5) keep PyTorch's defaults, which the same check tells apart.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import cnndsl
from cnndsl.diagnostics import CompileError

K = 6.0  # standard errors
SAMPLE = 1 << 18  # values of a tensor that are checked at most (the tolerance follows the number)


def _fan(weight: torch.Tensor) -> tuple[int, int]:
    receptive = weight[0][0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def normal(mean: float, std: float):
    return ("normal", mean, std)


def uniform(bound: float):
    return ("uniform", -bound, bound)


def const(value: float):
    return ("const", value)


def kaiming_normal_fan_out(w, gain=math.sqrt(2.0)):
    return normal(0.0, gain / math.sqrt(_fan(w)[1]))


def kaiming_normal_fan_in(w):
    return normal(0.0, math.sqrt(2.0) / math.sqrt(_fan(w)[0]))


def pytorch_default(w):
    """nn.Conv2d's and nn.Linear's reset_parameters: kaiming_uniform(a=sqrt(5)), 1/sqrt(fan_in)."""
    return uniform(1.0 / math.sqrt(_fan(w)[0]))


def check(tensor: torch.Tensor, expected, where: str) -> None:
    """The tensor's sample statistics agree with the distribution `expected`."""
    values = tensor.detach().flatten()
    if values.numel() > SAMPLE:  # every step-th value: still independent draws, fewer to sum
        values = values[::values.numel() // SAMPLE]
    values = values.double()
    n = values.numel()
    if expected[0] == "const":
        assert torch.all(values == expected[1]), f"{where}: not all {expected[1]}"
        return
    if expected[0] == "normal":
        mean, std = expected[1], expected[2]
        lo, hi = -math.inf, math.inf
    else:
        lo, hi = expected[1], expected[2]
        mean, std = (lo + hi) / 2, (hi - lo) / math.sqrt(12)
        assert values.min() >= lo - 1e-7 and values.max() <= hi + 1e-7, f"{where}: outside [{lo}, {hi}]"
    if n < 2:
        return
    sample_mean, sample_std = values.mean().item(), values.std().item()
    assert abs(sample_mean - mean) <= K * std / math.sqrt(n), \
        f"{where}: mean {sample_mean:.6g}, expected {mean:.6g} (n={n})"
    assert abs(sample_std - std) <= K * std / math.sqrt(n) + 1e-12, \
        f"{where}: std {sample_std:.6g}, expected {std:.6g} (n={n})"


def check_model(model: nn.Module, rule) -> int:
    """Every module with a weight: `rule(name, module)` gives (weight's, bias's) expected
    distribution (None: not checked). Returns how many tensors were checked."""
    checked = 0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            continue
        w_expected, b_expected = rule(name, module)
        if w_expected is not None:
            check(weight, w_expected, f"{name}.weight")
            checked += 1
        bias = getattr(module, "bias", None)
        if b_expected is not None and isinstance(bias, torch.Tensor):
            check(bias, b_expected, f"{name}.bias")
            checked += 1
    return checked


def _norm(module) -> bool:
    return isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm))


# -- each family's rule, from torchvision's constructor ---------------------------------------------

def resnet(name, m):  # kaiming_normal fan_out relu; norms 1 and 0; Linear: PyTorch's default
    if isinstance(m, nn.Conv2d):
        return kaiming_normal_fan_out(m.weight), None
    if _norm(m):
        return const(1.0), const(0.0)
    return pytorch_default(m.weight), uniform(1.0 / math.sqrt(m.in_features))


def vgg(name, m):
    if isinstance(m, nn.Conv2d):
        return kaiming_normal_fan_out(m.weight), const(0.0)
    if _norm(m):
        return const(1.0), const(0.0)
    return normal(0.0, 0.01), const(0.0)


def googlenet(name, m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return normal(0.0, 0.01), None  # truncated at +-2: 200 standard deviations out
    return const(1.0), const(0.0)


def inception(name, m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return normal(0.0, 0.001 if name == "AuxLogits.fc" else 0.1), None
    return const(1.0), const(0.0)


def densenet(name, m):
    if isinstance(m, nn.Conv2d):
        return kaiming_normal_fan_in(m.weight), None
    if _norm(m):
        return const(1.0), const(0.0)
    return pytorch_default(m.weight), const(0.0)


def mobilenet(name, m):  # MobileNetV2 and V3
    if isinstance(m, nn.Conv2d):
        return kaiming_normal_fan_out(m.weight), const(0.0)
    if _norm(m):
        return const(1.0), const(0.0)
    return normal(0.0, 0.01), const(0.0)


def mnasnet(name, m):
    if isinstance(m, nn.Conv2d):
        return kaiming_normal_fan_out(m.weight), const(0.0)
    if _norm(m):
        return const(1.0), const(0.0)
    # kaiming_uniform fan_out, sigmoid's gain 1: bound sqrt(3 / fan_out)
    return uniform(math.sqrt(3.0 / m.out_features)), const(0.0)


def efficientnet(name, m):
    if isinstance(m, nn.Conv2d):
        return kaiming_normal_fan_out(m.weight), const(0.0)
    if _norm(m):
        return const(1.0), const(0.0)
    return uniform(1.0 / math.sqrt(m.out_features)), const(0.0)


def regnet(name, m):
    if isinstance(m, nn.Conv2d):  # normal(0, sqrt(2 / fan_out)); the SE convs' biases keep the default
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        return normal(0.0, math.sqrt(2.0 / fan_out)), None
    if _norm(m):
        return const(1.0), const(0.0)
    return normal(0.0, 0.01), const(0.0)


def convnext(name, m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return normal(0.0, 0.02), const(0.0)  # truncated at +-2: 100 standard deviations out
    return const(1.0), const(0.0)


def squeezenet(name, m):
    if name == "classifier.1":
        return normal(0.0, 0.01), const(0.0)
    # kaiming_uniform's defaults: a=0, fan_in, leaky_relu: bound sqrt(6 / fan_in)
    return uniform(math.sqrt(6.0 / _fan(m.weight)[0])), const(0.0)


def segmentation(name, m):  # the backbone is torchvision's ResNet's; the head keeps the defaults
    if name.startswith("backbone."):
        return resnet(name, m)
    if isinstance(m, nn.Conv2d):
        return pytorch_default(m.weight), None
    return const(1.0), const(0.0)


def defaults(name, m):
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        return pytorch_default(m.weight), uniform(1.0 / math.sqrt(_fan(m.weight)[0]))
    return const(1.0), const(0.0)


FAMILIES = [
    ("resnet18", resnet), ("vgg11", vgg), ("vgg11_bn", vgg),
    ("googlenet", googlenet), ("inception_v3", inception), ("densenet121", densenet),
    ("mobilenet_v2", mobilenet), ("mobilenet_v3_small", mobilenet), ("mnasnet0_5", mnasnet),
    ("efficientnet_b0", efficientnet), ("regnet_y_400mf", regnet), ("convnext_tiny", convnext), ("squeezenet1_0", squeezenet),
    ("squeezenet1_1", squeezenet), ("fcn_resnet50", segmentation), ("deeplabv3_resnet50", segmentation),
    ("deeplabv3_mobilenet_v3_large", lambda name, m: mobilenet(name, m) if name.startswith("backbone.")
     else segmentation(name, m)),
    ("lraspp_mobilenet_v3_large", lambda name, m: mobilenet(name, m) if name.startswith("backbone.")
     else segmentation(name, m)),
    ("alexnet", defaults), ("shufflenet_v2_x0_5", defaults), ("lenet5", defaults),
]


@pytest.mark.parametrize("name,rule", FAMILIES, ids=[name for name, _ in FAMILIES])
def test_fresh_model_starts_from_torchvision_distribution(name, rule):
    torch.manual_seed(0)
    model = cnndsl.build(name)
    assert check_model(model, rule) >= 3


def test_the_declared_init_is_not_pytorch_default():
    """The check tells a declared init from PyTorch's default (so a test above can fail)."""
    torch.manual_seed(0)
    model = cnndsl.build("resnet18")
    with pytest.raises(AssertionError, match="conv1.weight"):
        check_model(model, defaults)


def test_zero_init_residual_zeroes_each_residual_last_norm():
    torch.manual_seed(0)
    for name, last in (("resnet18", "bn2"), ("resnet50", "bn3")):
        plain = cnndsl.build(name)
        zeroed = cnndsl.build(name, zero_init_residual=True)
        blocks = [m for m in zeroed.modules() if type(m).__name__ in ("BasicBlock", "Bottleneck")]
        assert len(blocks) in (8, 16)
        for block in blocks:
            assert torch.all(getattr(block, last).weight == 0)
            assert torch.all(getattr(block, last).bias == 0)
        assert torch.all(plain.layer1[0].get_submodule(last).weight == 1)
        assert torch.all(zeroed.bn1.weight == 1)  # the stem's norm is no residual's


def test_zero_init_residual_is_a_constructor_argument_as_torchvision_has_it():
    from cnndsl.compiler import compile_network, generate, load

    text = generate(compile_network(load("resnet50")))
    assert "zero_init_residual: bool = False" in text
    assert "        if zero_init_residual:\n            for m in self.modules():\n" \
           "                if isinstance(m, Bottleneck):\n" \
           "                    nn.init.constant_(m.bn3.weight, 0)\n" in text


SPEC = """
block Basic(planes) {
    residual {
        conv1: conv(planes, 3, pad=1, bias=false) -> bn1: batchnorm -> relu
        conv2: conv(planes, 3, pad=1, bias=false) -> bn2: batchnorm
    }
    relu
}

network N(classes = 10, zero_init = false) {
    input 3x16x16
    stem: conv(16, 3, pad=1) -> bn: batchnorm -> relu
    layer1: Basic(16)*2
    avgpool: adaptive_avgpool(1)
    classifier: [dropout(0.5) -> fc(classes)]
    init {
%s
    }
}
"""


def test_generated_code_is_torchvision_style():
    code = cnndsl.compile_source(SPEC % """
        conv, fc: kaiming_normal(mode="fan_out", nonlinearity="relu"), bias=zeros
        batchnorm: ones, bias=zeros
        "classifier.2": uniform(-1 / sqrt(in_features), 1 / sqrt(in_features))
        last_norm?(zero_init): zeros""")
    assert """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.uniform_(
            self.classifier[2].weight,
            -1 / math.sqrt(self.classifier[2].in_features),
            1 / math.sqrt(self.classifier[2].in_features),
        )
        if zero_init:
            for m in self.modules():
                if isinstance(m, Basic):
                    nn.init.zeros_(m.bn2.weight)
""" in code
    assert "import math" in code and "cnndsl" not in code.split('"""', 2)[2]


def test_a_user_spec_gets_what_it_declares():
    torch.manual_seed(0)
    model = cnndsl.build(SPEC % """
        conv: normal(0.5, 0.25), bias=constant(0.125)
        batchnorm: constant(2), bias=ones
        fc: uniform(-1 / sqrt(in_features), 1 / sqrt(in_features)), bias=zeros
        "layer1" conv: xavier_uniform(gain=2.0)
        last_norm?(zero_init): zeros""", zero_init=True)

    def rule(name, m):
        if isinstance(m, nn.Conv2d):
            if name.startswith("layer1."):
                fan_in, fan_out = _fan(m.weight)
                return uniform(2.0 * math.sqrt(6.0 / (fan_in + fan_out))), None
            return normal(0.5, 0.25), const(0.125)
        if isinstance(m, nn.Linear):
            return uniform(1 / math.sqrt(m.in_features)), const(0.0)
        return (const(0.0) if name.endswith("bn2") else const(2.0)), const(1.0)

    assert check_model(model, rule) == 18


def test_prelu_and_layer_scale_keep_their_init_argument():
    """`init` is a keyword, and stays the name of prelu's and layer_scale's argument."""
    model = cnndsl.build("""
network N() {
    input 8x4x4
    conv(8, 3, pad=1) -> prelu(init=0.5) -> layer_scale(init=0.25)
}
""")
    prelu = next(m for m in model.modules() if isinstance(m, nn.PReLU))
    assert torch.all(prelu.weight == 0.5)
    scale = next(p for n, p in model.named_parameters() if n.endswith("layer_scale"))
    assert torch.all(scale == 0.25)


@pytest.mark.parametrize("rules,message,hint", [
    ('conv: kaiming_norml(mode="fan_out")', "unknown init function 'kaiming_norml'", "did you mean 'kaiming_normal'?"),
    ('conv: kaiming_normal(mode="fan_ot")', "'mode' must be one of 'fan_in', 'fan_out', got 'fan_ot'",
     "did you mean 'fan_out'?"),
    ("convv: zeros", "unknown layer kind 'convv' in an init rule", "did you mean 'conv'?"),
    ("relu: ones", "relu has no weights to initialise", "a rule names a kind with weights"),
    ("fc: normal(0, 0.01, 3)", "normal takes at most 2 argument(s), got 3", "normal(mean, std)"),
    ("fc: normal(mean=0, sd=0.01)", "normal has no argument 'sd'", "did you mean 'std'?"),
    ("fc: uniform(-1 / sqrt(out_feature), 1)", "unknown name 'out_feature' in an init",
     "did you mean 'out_features'?"),
    ('"classifer": zeros', "network N has no element 'classifer'", "did you mean 'classifier'?"),
    ('"layer1.0.conv1": zeros, bias=zeros', "the conv 'layer1.0.conv1' has no bias", "leave out the bias's init"),
    ('"classifier.1": zeros', "'classifier.1' is a flatten, which has no weights to initialise", "name a layer with weights"),
    ("fc: constant()", "constant needs its 'val' argument", "constant(val)"),
    ("fc: std=0.01", "an init rule has no 'std'", "give the weight's init, then bias=..."),
    ("fc?(classes): normal(0, 0.01)", None, None),
])
def test_a_misused_init_is_a_diagnostic_at_its_place(rules, message, hint):
    text = SPEC % ("        " + rules)
    line = text.splitlines().index("        " + rules) + 1
    with pytest.raises(CompileError) as caught:
        cnndsl.compile_source(text)
    diagnostic = caught.value.diagnostics[0]
    if message is None:  # a condition that is not true or false: the expander's error
        assert "must be true or false" in diagnostic.message
    else:
        assert diagnostic.message == message
        assert hint in diagnostic.hint
    assert diagnostic.span.line == line and diagnostic.span.column > 8


def test_a_kind_the_network_lacks_is_a_warning():
    warnings = cnndsl.check(SPEC % "        groupnorm: ones, bias=zeros")
    assert [w.message for w in warnings] == ["network N has no groupnorm layer: the rule sets nothing"]


def test_init_belongs_to_a_network():
    with pytest.raises(CompileError) as caught:
        cnndsl.compile_source("block B() {\n    conv(8, 3)\n    init {\n        conv: zeros\n    }\n}\n"
                              "network N() {\n    input 3x8x8\n    B\n}\n")
    assert caught.value.diagnostics[0].message == "a block's weights are initialised by the network that uses it"
    with pytest.raises(CompileError) as caught:
        cnndsl.compile_source("network N() {\n    input 3x8x8\n    conv(8, 3)\n    init {\n        conv: zeros\n"
                              "    }\n    init {\n        conv: ones\n    }\n}\n")
    assert caught.value.diagnostics[0].message == "a second 'init' section"


def test_fmt_keeps_an_init_section_and_is_a_fixed_point():
    from cnndsl.tools.fmt import format_text

    messy = SPEC % """
        conv ,fc :kaiming_normal( mode = "fan_out" ),bias = zeros
           "classifier.2"  : uniform(-1/sqrt(in_features),1/sqrt(in_features))
        last_norm ?( zero_init ) : zeros"""
    out = format_text(messy)
    assert """    init {
        conv, fc: kaiming_normal(mode="fan_out"), bias=zeros
        "classifier.2": uniform(-1 / sqrt(in_features), 1 / sqrt(in_features))
        last_norm?(zero_init): zeros
    }""" in out
    assert format_text(out) == out
    def code(text):  # less the provenance lines (fmt drops the spec's leading blank line)
        return [line for line in cnndsl.compile_source(text).splitlines() if "<string>:" not in line]

    assert code(out) == code(messy)


def test_the_language_server_completes_and_hovers_an_init_rule():
    from cnndsl.tools import assist, lsp

    text = SPEC % """
        conv: kaiming_normal(mode="fan_out"), bias=zeros
        "layer1" batchnorm: ones"""
    lines = text.split("\n")
    row = next(i for i, line in enumerate(lines, 1) if "kaiming_normal(" in line)
    hover = lsp.hover_text(lsp.analyze(text, "n.cnn"), row, 10)
    assert hover.startswith("**init** every conv layer") and "nn.init.kaiming_normal_" in hover
    row2 = row + 1
    assert "in `layer1`" in lsp.hover_text(lsp.analyze(text, "n.cnn"), row2, 10)
    scan = assist.scan(text)
    labels = [item.label for item in assist.complete(scan, text, row, 9)]
    assert {"conv", "batchnorm", "last_norm", "kaiming_normal", "trunc_normal", "bias="} <= set(labels)
    inside = [item.label for item in assist.complete(scan, text, row, lines[row - 1].index("mode") + 1)]
    assert inside == ["a=", "mode=", "nonlinearity="]
    outside = [item.label for item in assist.complete(scan, text, 13, 5)]
    assert "kaiming_normal" not in outside and "init" in outside
