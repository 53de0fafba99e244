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
