"""The layers of ConvNeXt, ShuffleNet and the norms over channels, against PyTorch.

gelu (exact and tanh), prelu, mish, layernorm (ConvNeXt's LayerNorm2d on a CxHxW volume,
nn.LayerNorm on a channels-last one), groupnorm, instancenorm, layer_scale, permute with a
linear per pixel, shuffle: for each, the checker's shape and parameter count against the
generated module's, and its output against PyTorch's own functions on the same weights.
Misuses are diagnostics at the layer's line and column.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import cnndsl
from cnndsl import CompileError
from cnndsl.api import load_generated
from cnndsl.compiler import compile_network, source_from_text
from cnndsl.layers import RULES


def build(body: str, shape: str = "8x6x5", params: str = ""):
    text = f"network N({params}) {{\n    input {shape}\n    {body}\n}}\n"
    compiled = compile_network(source_from_text(text, "n.cnn"))
    model = load_generated(cnndsl.compile_source(text)).N().double().eval()
    return compiled.network, model


def errors_of(body: str, shape: str = "8x6x5") -> list:
    text = f"network N() {{\n    input {shape}\n    {body}\n}}\n"
    with pytest.raises(CompileError) as caught:
        cnndsl.check(text)
    return caught.value.diagnostics


def agree(network, model, x: torch.Tensor) -> torch.Tensor:
    """The model's output, after checking its shape and parameters against the checker's."""
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape[1:]) == network.body.stats.out_shape or \
        tuple(y.shape[1:]) == tuple(network.body.stats.out_shape[1:]) + (network.body.stats.out_shape[0],)
    assert sum(p.numel() for p in model.parameters()) == network.body.stats.params
    return y


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_is_pytorchs_exact_or_tanh(approximate):
    network, model = build(f'gelu(approximate="{approximate}")' if approximate != "none" else "gelu")
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64) * 4
    assert torch.equal(agree(network, model, x), F.gelu(x, approximate=approximate))
    if approximate == "tanh":
        assert not torch.equal(F.gelu(x, approximate="tanh"), F.gelu(x))  # the switch matters


def test_mish_and_prelu():
    network, model = build("mish -> prelu(8, init=0.1)")
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    assert network.body.stats.params == 8
    slopes = model.prelu.weight
    assert slopes.shape == (8,) and float(slopes[0].detach()) == pytest.approx(0.1)
    assert torch.allclose(agree(network, model, x), F.prelu(F.mish(x), slopes))


def test_layernorm_normalizes_each_pixels_channels_as_convnext():
    network, model = build("layernorm(eps=1e-6)")
    norm = model.norm
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    want = F.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, 1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(agree(network, model, x), want)
    assert network.body.stats.params == 16 and type(norm).__name__ == "LayerNorm2d"


def test_groupnorm_and_instancenorm():
    network, model = build("groupnorm(4) -> instancenorm(affine=true)")
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    want = F.instance_norm(F.group_norm(x, 4, model.norm1.weight, model.norm1.bias), weight=model.norm2.weight,
                           bias=model.norm2.bias)
    assert torch.allclose(agree(network, model, x), want)
    assert network.body.stats.params == 32


def test_shuffle_is_shufflenets_channel_shuffle():
    network, model = build("shuffle(2)")
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    b, c, h, w = x.shape  # ShuffleNetV2's channel_shuffle, written out
    want = x.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)
    assert torch.equal(agree(network, model, x), want)


CNBLOCK = """block CNBlock(dim, scale = 1e-6) {
    residual {
        body: [conv(dim, 7, pad=3, groups=dim) -> permute(0, 2, 3, 1) -> layernorm(eps=1e-6)
               -> fc(4 * dim) -> gelu -> fc(dim) -> permute(0, 3, 1, 2)]
        layer_scale: layer_scale(scale)
    }
}
network N(scale = 0.5) {
    input 8x9x9
    CNBlock(8, scale) -> global_avgpool -> fc(3)
}
"""


def test_a_convnext_block_computes_torchvisions_function():
    code = cnndsl.compile_source(CNBLOCK)
    assert "self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * scale)" in code
    assert "x = self.layer_scale * x" in code and "Permute([0, 2, 3, 1])" in code
    assert "nn.LayerNorm(dim, eps=1e-06)" in code and "nn.Linear(dim, 4 * dim)" in code
    model = load_generated(code).N().double().eval()
    keys = list(model.state_dict())
    # A tensor of the block itself comes first in its state_dict, as torchvision's CNBlock lists it.
    assert keys[:3] == ["cnblock.layer_scale", "cnblock.body.0.weight", "cnblock.body.0.bias"]
    assert model.state_dict()["cnblock.layer_scale"].shape == (8, 1, 1)
    assert float(model.cnblock.layer_scale[0, 0, 0].detach()) == 0.5
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    block = model.cnblock.body
    y = F.conv2d(x, block[0].weight, block[0].bias, padding=3, groups=8).permute(0, 2, 3, 1)
    y = F.linear(F.gelu(F.linear(F.layer_norm(y, (8,), block[2].weight, block[2].bias, 1e-6),
                                 block[3].weight, block[3].bias)), block[5].weight, block[5].bias)
    y = model.cnblock.layer_scale * y.permute(0, 3, 1, 2) + x
    with torch.no_grad():
        assert torch.allclose(model.cnblock(x), y)
    compiled = compile_network(source_from_text(CNBLOCK, "n.cnn"))
    assert compiled.network.body.stats.params == sum(p.numel() for p in model.parameters())


def test_channels_last_shapes_read_as_held():
    summary = cnndsl.summarize(CNBLOCK)
    assert "permute 0,2,3,1" in summary and "9x9x32" in summary  # the fc per pixel: H x W x C


@pytest.mark.parametrize("body, message, hint", [
    ("permute(0, 2, 3, 1) -> conv(4, 3)", "conv reads channels first, but its input is channels last",
     "permute(0, 3, 1, 2)"),
    ("permute(0, 2, 3, 1) -> batchnorm", "batchnorm reads channels first", "permute(0, 3, 1, 2)"),
    ("permute(0, 3, 1, 2)", "permute(0, 3, 1, 2) of a volume that is channels first", "permute(0, 2, 3, 1)"),
    ("permute(0, 1, 3, 2)", "permute(0, 1, 3, 2)", "moves channels last"),
    ("groupnorm(3)", "groupnorm of 3 groups needs channels divisible by it, got 8", "divisor"),
    ("shuffle(3)", "shuffle of 3 groups needs channels divisible by it, got 8", "multiple of groups"),
    ("prelu(5)", "prelu with 5 slopes needs one, or one per channel (8)", "num_parameters=8"),
    ('gelu(approximate="fast")', "gelu 'approximate' must be one of 'none', 'tanh'", None),
    ("g: [conv(8, 1) -> layer_scale]", "layer_scale is a learned tensor of its class", "after the group"),
])
def test_misuse_is_a_diagnostic_at_the_layer(body, message, hint):
    found = errors_of(body)
    assert len(found) == 1
    error = found[0]
    assert message in error.message and error.span.line == 3
    assert hint is None or hint in (error.hint or "")


def test_the_table_describes_every_new_layer():
    for kind in ("gelu", "prelu", "mish", "layernorm", "groupnorm", "instancenorm", "layer_scale", "permute",
                 "shuffle"):
        rule = RULES[kind]
        assert rule.doc and rule.torch is not None, kind


UNIT = """block Unit(c) {
    split {
        identity
        branch2: [conv(c // 2, 1, bias=false) -> batchnorm -> relu
                  -> conv(c // 2, 3, pad=1, groups=c // 2, bias=false) -> batchnorm]
    }
    shuffle(2)
}
network N() {
    input 8x6x6
    Unit(8) -> Unit(8)
}
"""


def test_split_gives_each_branch_its_share_as_shufflenet():
    code = cnndsl.compile_source(UNIT)
    assert "x1, x2 = x.chunk(2, dim=1)" in code and "            x1,\n            self.branch2(x2),\n" in code
    assert "nn.Conv2d(in_channels // 2, c // 2, kernel_size=1, bias=False)" in code
    model = load_generated(code).N().double().eval()
    for key, t in model.state_dict().items():
        if t.is_floating_point():
            t.copy_(torch.randn_like(t) if "running_var" not in key else torch.rand_like(t) + 0.5)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    unit = model.unit1
    keep, rest = x.chunk(2, dim=1)
    y = torch.cat([keep, unit.branch2(rest)], dim=1)
    b, c, h, w = y.shape
    y = y.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)
    with torch.no_grad():
        assert torch.equal(unit(x), y)
    compiled = compile_network(source_from_text(UNIT, "n.cnn"))
    assert compiled.network.body.stats.params == sum(p.numel() for p in model.parameters())
    assert compiled.network.body.stats.out_shape == (8, 6, 6)


@pytest.mark.parametrize("shape, branches, message", [
    ("7x6x6", "identity\n        conv(3, 1)", "a split of 7 channels into 2 branches cannot share them equally"),
    ("8x6x6", "identity", "a split needs at least two branches"),
    ("8", "identity\n        fc(3)", "a split divides the channels of a CxHxW volume, but its input is 8"),
    ("8x7x7", "conv(4, 1)\n        conv(4, 1, stride=2)", "split branches disagree on their size: 4x7x7, 4x4x4"),
])
def test_split_arithmetic_is_checked(shape, branches, message):
    found = errors_of(f"split {{\n        {branches}\n    }}", shape)
    assert len(found) == 1 and message in found[0].message, found
    assert found[0].span.line in (3, 4, 5)


INCEPTION_E = """block BasicConv(out, k, pad = 0) {
    conv: conv(out, k, pad=pad, bias=false) -> bn: batchnorm(eps=0.001) -> relu
}
block Mixed() {
    concat {
        branch1x1: BasicConv(8, 1)
        [branch3x3_1: BasicConv(6, 1) -> concat {
            branch3x3_2a: BasicConv(4, 3, pad=1)
            branch3x3_2b: BasicConv(4, 1)
        }]
        [avgpool(3, stride=1, pad=1) -> branch_pool: BasicConv(2, 1)]
    }
}
network N() {
    input 5x7x7
    mixed: Mixed
}
"""


def test_a_branch_of_named_members_sits_in_the_scope_as_inception_v3s():
    code = cnndsl.compile_source(INCEPTION_E)
    assert "branch3x3 = self.branch3x3_1(x)" in code
    assert "branch3x3 = torch.cat([\n            self.branch3x3_2a(branch3x3),\n" in code
    assert "branch_pool = self.pool(x)\n        branch_pool = self.branch_pool(branch_pool)" in code
    model = load_generated(code).N().double().eval()
    keys = [k for k in model.state_dict() if k.endswith("conv.weight")]
    assert keys == ["mixed.branch1x1.conv.weight", "mixed.branch3x3_1.conv.weight", "mixed.branch3x3_2a.conv.weight",
                    "mixed.branch3x3_2b.conv.weight", "mixed.branch_pool.conv.weight"]
    m = model.mixed
    x = torch.randn(2, 5, 7, 7, dtype=torch.float64)
    b = m.branch3x3_1(x)
    want = torch.cat([m.branch1x1(x), m.branch3x3_2a(b), m.branch3x3_2b(b),
                      m.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))], dim=1)
    with torch.no_grad():
        assert torch.equal(model(x), want)
    assert compile_network(source_from_text(INCEPTION_E, "n.cnn")).network.body.stats.out_shape == (18, 7, 7)


def test_the_highlighter_and_completion_know_the_new_words():
    from pygments.token import Keyword, Name

    from cnndsl.tools.highlight import CnnLexer
    from cnndsl.tools import assist

    kinds = {text: kind for kind, text in CnnLexer().get_tokens(UNIT)}
    assert kinds["split"] in Keyword and kinds["shuffle"] is Name.Builtin and kinds["identity"] in Name.Builtin
    assert "split" in assist.KEYWORDS
    assert {"gelu", "layernorm", "groupnorm", "layer_scale", "permute", "shuffle"} <= set(RULES)
