"""MobileNet's and EfficientNet's pieces: the activations relu6, silu, hardswish and
hardsigmoid, stochastic depth, and the multiplicative gate (squeeze-and-excitation).
Each is checked against PyTorch itself: the generated module computes what torch.nn's
module (or torchvision's stochastic depth, written out) computes."""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl import CompileError

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402

ACTIVATIONS = """\
network Acts() {
    input 4x6x6
    conv(8, 3, pad=1) -> bn -> relu6
    conv(8, 1) -> bn -> silu
    conv(8, 1) -> bn -> hardswish
    conv(8, 1) -> hardsigmoid
}
"""


def _errors(text: str) -> list:
    with pytest.raises(CompileError) as caught:
        cnndsl.compile_spec(text)
    return caught.value.diagnostics


def test_the_activations_are_torch_modules_in_place_after_a_norm():
    code = cnndsl.compile_source(ACTIVATIONS)
    assert "self.relu6 = nn.ReLU6(inplace=True)" in code
    assert "self.silu = nn.SiLU(inplace=True)" in code
    assert "self.hardswish = nn.Hardswish(inplace=True)" in code
    assert "self.hardsigmoid = nn.Hardsigmoid()" in code  # not in place: torchvision never is
    model = load_generated(code).Acts().double().eval()
    x = 4 * torch.randn(2, 4, 6, 6, dtype=torch.float64)
    expected = x
    for convs, act in zip(([model.conv1, model.bn1], [model.conv2, model.bn2], [model.conv3, model.bn3],
                           [model.conv4]),
                          (torch.nn.ReLU6(), torch.nn.SiLU(), torch.nn.Hardswish(), torch.nn.Hardsigmoid())):
        for layer in convs:
            expected = layer(expected)
        expected = act(expected)
    assert torch.equal(model(x), expected)


def test_the_table_labels_them():
    table = str(cnndsl.summarize(ACTIVATIONS))
    for kind in ("relu6", "silu", "hardswish", "hardsigmoid"):
        assert f" {kind} " in table


STOCHASTIC = """\
network Deep(p = 0.25) {
    input 3x4x4
    stochastic_depth(p)
    sd: stochastic_depth(0.5, mode="batch")
}
"""


def test_stochastic_depth_is_the_identity_in_eval_and_drops_whole_rows_while_training():
    code = cnndsl.compile_source(STOCHASTIC)
    assert "import torchvision" not in code and "class StochasticDepth(nn.Module):" in code
    assert "self.stochastic_depth = StochasticDepth(p, 'row')" in code
    module = load_generated(code)
    model = module.Deep().eval()
    x = torch.randn(64, 3, 4, 4)
    assert torch.equal(model(x), x)
    row = module.StochasticDepth(0.25, "row").train()
    torch.manual_seed(0)
    y = row(torch.ones(4000, 3, 4, 4, dtype=torch.float64))
    kept = y.flatten(1)
    # each sample is all zeros or all 1/(1 - p)
    assert set(kept.unique().tolist()) == {0.0, 1 / 0.75}
    assert torch.all(kept.amin(1) == kept.amax(1))
    assert abs((kept[:, 0] == 0).float().mean().item() - 0.25) < 0.03
    batch = module.StochasticDepth(0.5, "batch").train()
    outs = {batch(torch.ones(8, 3)).unique().tolist()[0] for _ in range(64)}
    assert outs == {0.0, 2.0}  # the whole batch at once


def test_stochastic_depth_summary_and_errors():
    table = str(cnndsl.summarize(STOCHASTIC))
    assert "stochastic_depth 0.25" in table and "stochastic_depth 0.5 batch" in table
    (error,) = _errors(STOCHASTIC.replace("stochastic_depth(p)", "stochastic_depth(1.5)"))
    assert (error.span.line, error.span.column) == (3, 5)
    assert "above 1" in error.message
    (error,) = _errors(STOCHASTIC.replace('mode="batch"', 'mode="rows"'))
    assert (error.span.line, error.span.column) == (4, 36)
    assert "'row', 'batch'" in error.message and "did you mean 'row'" in error.hint
    (error,) = _errors(STOCHASTIC.replace("stochastic_depth(p)", "stochastic_depth"))
    assert "needs its 'p' argument" in error.message


# -- the gate --------------------------------------------------------------------------

GATED = """\
block SqueezeExcitation(squeeze, channels) {
    gate {
        avgpool: global_avgpool
        fc1: conv(squeeze, 1)
        activation: relu
        fc2: conv(channels, 1)
        scale_activation: hardsigmoid
    }
}

network Gated() {
    input 16x8x8
    conv(16, 3, pad=1) -> bn -> relu
    stage: [conv(16, 1) -> SqueezeExcitation(4, 16)]
    gate { global_avgpool -> conv(16, 1) -> sigmoid }
    relu
}
"""


class _SqueezeExcitation(torch.nn.Module):
    """Written as torchvision's SqueezeExcitation is, to hold the generated one to."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc1 = torch.nn.Conv2d(channels, squeeze, 1)
        self.fc2 = torch.nn.Conv2d(squeeze, channels, 1)
        self.activation = torch.nn.ReLU()
        self.scale_activation = torch.nn.Hardsigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


def test_a_gate_block_is_a_squeeze_excitation_module_with_torchvisions_keys():
    code = cnndsl.compile_source(GATED)
    assert "        gated = x\n" in code and "        x = gated * x  # in_channels x H x W\n" in code
    model = load_generated(code).Gated().double().eval()
    keys = list(model.state_dict())
    assert [k for k in keys if k.startswith("stage.1.")] == [
        "stage.1.fc1.weight", "stage.1.fc1.bias", "stage.1.fc2.weight", "stage.1.fc2.bias"]
    reference = _SqueezeExcitation(16, 4).double()
    reference.load_state_dict({k.removeprefix("stage.1."): v for k, v in model.state_dict().items()
                               if k.startswith("stage.1.")})
    x = 3 * torch.randn(2, 16, 8, 8, dtype=torch.float64)
    assert torch.allclose(model.stage[1](x), reference(x))
    # the network: stage, then x * sigmoid(conv(pool(x))), then relu
    y = model.stage(model.relu1(model.bn(model.conv1(x))))
    y = torch.relu(y * torch.sigmoid(model.conv2(y.mean((2, 3), keepdim=True))))
    assert torch.allclose(model(x), y)


def test_a_gate_counts_its_body_and_keeps_its_input_shape():
    network = cnndsl.compile_spec(GATED).network
    gate = next(item for item in network.body.items if type(item).__name__ == "Gate")
    assert gate.stats.in_shape == gate.stats.out_shape == (16, 8, 8)
    assert gate.stats.params == 16 * 16 + 16
    assert network.body.stats.params == sum(p.numel() for p in load_generated(
        cnndsl.compile_source(GATED)).Gated().parameters())
    table = str(cnndsl.summarize(GATED))
    assert "stage.1.fc2" in table and "stage.1.scale_activation  hardsigmoid  " in table


def test_a_gate_whose_body_does_not_broadcast_is_an_error_naming_both_shapes():
    (error,) = _errors(GATED.replace("conv(16, 1) -> sigmoid", "conv(8, 1) -> sigmoid"))
    assert (error.span.line, error.span.column) == (15, 5)
    assert "16x8x8" in error.message and "8x1x1" in error.message and "broadcast" in error.message
    assert "conv(16, 1)" in error.hint
    (error,) = _errors(GATED.replace("gate { global_avgpool -> conv(16, 1) -> sigmoid }",
                                     "gate { conv(16, 3) }"))
    assert "16x6x6" in error.message  # a smaller map does not broadcast either
    (error,) = _errors(GATED.replace("gate { global_avgpool", "se: gate { global_avgpool"))
    assert error.message == "a gate cannot be named here" and (error.span.line, error.span.column) == (15, 5)
    (error,) = _errors(GATED.replace("stage: [conv(16, 1) -> SqueezeExcitation(4, 16)]",
                                     "stage: [conv(16, 1) -> gate { sigmoid }]"))
    assert "cannot hold a gate" in error.message and (error.span.line, error.span.column) == (14, 28)
    (error,) = _errors(GATED.replace("gate { global_avgpool -> conv(16, 1) -> sigmoid }",
                                     "concat {\n        gate { sigmoid }\n        relu\n    }"))
    assert error.message == "a concat branch is a gate by itself" and (error.span.line, error.span.column) == (16, 9)


def test_gates_nest_and_the_product_may_be_overwritten_in_place():
    text = GATED.replace("gate { global_avgpool -> conv(16, 1) -> sigmoid }",
                         "gate { gate { sigmoid } -> global_avgpool -> conv(16, 1) -> sigmoid }")
    code = cnndsl.compile_source(text)
    assert "gated = x" in code and "gated2 = x" in code and "x = gated2 * x" in code
    assert "self.relu2 = nn.ReLU(inplace=True)" in code
    model = load_generated(code).Gated().double().eval()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    y = model.stage(model.relu1(model.bn(model.conv1(x))))
    inner = y * torch.sigmoid(y)
    y = torch.relu(y * torch.sigmoid(model.conv2(inner.mean((2, 3), keepdim=True))))
    assert torch.allclose(model(x), y)


def test_the_readers_show_a_gate():
    from cnndsl.pictures import build
    from cnndsl.pictures.layout import Shortcut
    from cnndsl.tools import fmt
    from cnndsl.tools.highlight import CnnLexer
    from cnndsl.tools.lsp import analyze, hover_text
    from pygments.token import Keyword

    network = cnndsl.compile_spec(GATED).network
    builder = build.Builder(network)
    drawn = builder.column(builder.units(network.body)).items
    gate = next(e for e in drawn if isinstance(e, Shortcut))
    assert gate.merge.symbol == "×" and gate.label == ["input"]
    hover = hover_text(analyze(GATED, "gated.cnn"), 15, 6)
    assert hover.startswith("**gate**") and "output 16x8x8" in hover
    assert ("gate" in {v for t, v in CnnLexer().get_tokens(GATED) if t in Keyword})
    messy = GATED.replace("gate { global_avgpool -> conv(16, 1) -> sigmoid }",
                          "gate {global_avgpool->conv(16,1)->  sigmoid}")
    assert fmt.format_text(messy) == fmt.format_text(GATED)


# -- X?(condition) ---------------------------------------------------------------------

CONDITIONAL = """\
let Body = conv: [conv(out, 3, pad=1, bias=false) -> batchnorm]

block Inverted(out, expand = false, skip = false, plain = true) {
    expansion: [conv(out * 2, 1) -> relu6]?(expand)
    residual { Body }?(skip)
    Body?(plain)
}

network N() {
    input 8x6x6
    Inverted(8, skip=true, plain=false)
    Inverted(16, expand=true)
    relu?(false)
    maxpool(2)?
}
"""


def test_a_condition_keeps_or_drops_an_element_per_use_of_a_block():
    text = CONDITIONAL
    code = cnndsl.compile_source(text)
    module = load_generated(code)
    model = module.N().double().eval()
    assert list(model.state_dict())[:2] == ["inverted1.conv.0.weight", "inverted1.conv.1.weight"]
    assert "inverted2.expansion.0.weight" in model.state_dict()
    assert "relu" not in dict(model.named_children())
    assert "x = x + identity" in code  # the first use keeps its residual, the second has none
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    first = model.inverted1
    assert torch.allclose(first(x), x + first.conv(x))
    second = model.inverted2
    assert torch.allclose(second(x), second.conv(second.expansion(x)))
    assert "condition of '?( )' must be true or false, got 8" in _errors(
        text.replace("?(expand)", "?(out)"))[0].message
    assert dict(cnndsl.compile_spec(text).network.switches) == {"maxpool": True}  # a condition is no switch


# -- a family's rules in the network's class -------------------------------------------

FAMILY = """\
def round_down(v, divisor) = max(divisor, int(v + divisor / 2) // divisor * divisor)
def make_divisible(v, divisor = 8) = round_down(v, divisor) + (divisor if round_down(v, divisor) < 0.9 * v else 0)
def widths = [16, 24]

block Expand(out, t = 1) {
    conv(make_divisible(out * t), 1) -> relu6
    conv(out, 1)
}

network Family(width = 1.0, cfg = widths, num_classes = 10, k = 3) {
    input 3x8x8
    conv(make_divisible(cfg[1] * width), k, pad=k // 2)
    Expand(make_divisible(cfg[0] * width), t=3)
    global_avgpool -> fc(num_classes)
}
"""


def test_a_familys_rules_are_numbers_in_the_network_and_parameters_in_a_block():
    code = cnndsl.compile_source(FAMILY)
    network = code[code.index("class Family"):]
    assert "def __init__(self, num_classes: int = 10, k: int = 3) -> None:" in network
    assert "nn.Conv2d(3, 24, kernel_size=k, padding=k // 2)" in network
    assert "self.expand = Expand(24, 16, t=3)" in network
    block = code[code.index("class Expand"):code.index("class Family")]
    assert "int(out * t + 4.0) // 8 * 8" in block  # the block's own rule, in its parameters
    assert load_generated(code).Family()(torch.randn(1, 3, 8, 8)).shape == (1, 10)
    wider = cnndsl.compile_source(FAMILY, width=2.0)
    assert "nn.Conv2d(3, 48, kernel_size=k, padding=k // 2)" in wider


def test_a_label_may_read_a_parameter_each_use_giving_its_own_keys():
    text = """\
block Tail(expand = false) {
    body: [
        "0": [conv(8, 1) -> relu]?(expand)
        "{1 if expand else 0}": [conv(8, 3, pad=1) -> batchnorm]
    ]
}

network N(table = [1, 2, 3]) {
    input 8x6x6
    features: ["0": [conv(8, 1)] -> Tail() -> Tail(expand=true) -> "{len(table) + 0}": [relu]]
}
"""
    model = load_generated(cnndsl.compile_source(text)).N()
    assert list(model.state_dict())[:8] == [
        "features.0.0.weight", "features.0.0.bias", "features.1.body.0.0.weight", "features.1.body.0.0.bias",
        "features.1.body.0.1.weight", "features.1.body.0.1.bias", "features.1.body.0.1.running_mean",
        "features.1.body.0.1.running_var"]
    assert "features.2.body.1.0.weight" in model.state_dict()
    assert "3" in dict(model.features.named_children())
