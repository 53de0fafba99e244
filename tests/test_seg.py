"""Segmentation constructs (issue 12): upsampling, transposed convolution, skip concats
with their centre crop or pad, and the U-Net built on them. Shapes are checked against
PyTorch running the generated module; errors at their line and column."""

from __future__ import annotations

import pytest

import cnndsl
import cnndsl.summary
from cnndsl.compiler import compile_network, generate, source_from_text
from cnndsl.diagnostics import CompileError

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402


def compiled(text: str):
    return compile_network(source_from_text(text, "seg.cnn"))


def module(text: str, name: str):
    return getattr(load_generated(cnndsl.compile_source(text)), name)()


def errors(text: str) -> list:
    with pytest.raises(CompileError) as caught:
        compiled(text)
    return caught.value.diagnostics


def shapes(text: str) -> list[tuple]:
    network = compiled(text).network
    return [line.output for line in cnndsl.summary.lines(network)]


UP = """\
network Up(classes = 3) {
    input 3x30x30
    enc: conv(16, 3, pad=1) -> relu -> maxpool(2)
    conv(32, 3, pad=1) -> relu
    up: conv_transpose(16, 3, stride=2, pad=1, output_padding=1)
    upsample(scale=2, mode="bilinear")
    conv(classes, 1)
    upsample(like=enc)
    upsample(like=input, mode="bilinear")
}
"""


def test_upsampling_shapes_are_pytorchs():
    assert shapes(UP)[5:] == [(16, 30, 30), (16, 60, 60), (3, 60, 60), (3, 30, 30), (3, 30, 30)]
    net = module(UP, "Up").eval()
    x = torch.randn(2, 3, 30, 30)
    assert net(x).shape == (2, 3, 30, 30)
    # the transposed convolution: (15 - 1)*2 - 2*1 + 3 + 1 = 30, PyTorch's arithmetic
    assert net.up(torch.randn(1, 32, 15, 15)).shape == (1, 16, 30, 30)


@pytest.mark.parametrize("size, stride, pad, out_pad, dilation", [
    (2, 2, 0, 0, 1), (3, 2, 1, 1, 1), (4, 2, 1, 0, 1), (3, 3, 0, 2, 1), (3, 1, 2, 0, 2), (5, 3, 2, 1, 2)])
def test_conv_transpose_inverts_the_conv_arithmetic(size, stride, pad, out_pad, dilation):
    spec = f"""network T() {{
    input 4x7x9
    conv_transpose(6, {size}, stride={stride}, pad={pad}, output_padding={out_pad}, dilation={dilation}, groups=2)
}}"""
    network = compiled(spec).network
    layer = cnndsl.summary.lines(network)[0]
    reference = torch.nn.ConvTranspose2d(4, 6, size, stride, pad, out_pad, groups=2, dilation=dilation)
    assert layer.output == tuple(reference(torch.randn(1, 4, 7, 9)).shape[1:])
    assert layer.params == sum(p.numel() for p in reference.parameters())
    net = module(spec, "T")
    assert [tuple(p.shape) for p in net.parameters()] == [tuple(p.shape) for p in reference.parameters()]


def test_upsample_matches_interpolate():
    spec = """network I() {
    input 2x5x7
    a: conv(3, 1)
    upsample(scale=3, mode="bilinear", align_corners=true)
    upsample(like=a, mode="bilinear")
    upsample(size=11)
}"""
    net = module(spec, "I").eval()
    x = torch.randn(1, 2, 5, 7)
    a = net.a(x)
    F = torch.nn.functional
    y = F.interpolate(a, scale_factor=3, mode="bilinear", align_corners=True)
    y = F.interpolate(y, size=(5, 7), mode="bilinear", align_corners=False)
    y = F.interpolate(y, size=(11, 11))
    assert torch.equal(net(x), y)


SKIP = """\
network S() {{
    input 3x{size}x{size}
    enc: conv(8, 3, pad=1) -> relu
    conv(16, 3, stride=2) -> relu
    conv_transpose(8, 2, stride=2)
    concat(enc)
    conv(2, 1)
}}
"""


def test_skip_concat_center_crops_a_larger_skip():
    # 16x16 -> 7x7 -> 14x14: enc's 16x16 is cropped to 14x14, one row and column each side
    assert shapes(SKIP.format(size=16))[4:] == [(8, 14, 14), (2, 14, 14)]
    net = module(SKIP.format(size=16), "S").eval()
    x = torch.randn(1, 3, 16, 16)
    enc = net.enc(x)  # the label names the conv: the skip is its output, before the ReLU
    up = net.upconv(net.relu2(net.conv1(net.relu1(enc.clone()))))
    expected = net.conv2(torch.cat([enc[:, :, 1:15, 1:15], up], dim=1))
    assert torch.allclose(net(x), expected, atol=1e-6)
    assert not net.relu1.inplace  # it would overwrite the kept skip


def test_skip_concat_pads_a_smaller_skip():
    spec = """network P() {
    input 3x9x9
    enc: conv(4, 3)
    upsample(scale=2)
    concat(enc)
}"""
    assert compiled(spec).network.body.stats.out_shape == (8, 14, 14)
    net = module(spec, "P").eval()
    x = torch.randn(1, 3, 9, 9)
    enc = net.enc(x)
    expected = torch.cat([torch.nn.functional.pad(enc, (3, 4, 3, 4)), net.upsample(enc)], dim=1)
    assert torch.equal(net(x), expected)


def test_skip_concat_with_branches_fits_to_the_branches():
    spec = """network B() {
    input 3x12x12
    enc: conv(4, 1)
    maxpool(2)
    concat(enc) {
        conv(5, 1)
        conv(6, 3, pad=1)
    }
}"""
    assert shapes(spec)[-1] == (6, 6, 6)
    network = compiled(spec).network
    assert network.body.stats.out_shape == (15, 6, 6)
    assert module(spec, "B")(torch.randn(1, 3, 12, 12)).shape == (1, 15, 6, 6)


def test_a_skip_neither_crop_nor_pad_reconciles_names_both_sides():
    spec = """network M() {
    input 3x8x20
    enc: conv(4, 1)
    upsample(size=9)
    concat(enc)
}"""
    (error,) = errors(spec)
    assert (error.span.line, error.span.column) == (5, 5)
    assert "enc's 4x8x20" in error.message and "4x9x9" in error.message
    assert "upsample(like=enc)" in error.hint


def test_unknown_and_unreachable_skips_are_errors_at_their_line():
    (unknown,) = errors("network U() {\n    input 3x8x8\n    a: conv(4, 1)\n    concat(b)\n}")
    assert (unknown.span.line, unknown.span.column) == (4, 5) and "concat(b)" in unknown.message
    assert "a" in unknown.hint
    (inside,) = errors("network U() {\n    input 3x8x8\n    g: [a: conv(4, 1) -> relu]\n    concat(a)\n}")
    assert inside.span.line == 4 and "'a'" in inside.message and "named group" in inside.message
    (like,) = errors("network U() {\n    input 3x8x8\n    upsample(like=zz)\n}")
    assert (like.span.line, like.span.column) == (3, 5) and "like=zz" in like.message


def test_upsample_argument_errors():
    (both,) = errors("network U() {\n    input 3x8x8\n    upsample(scale=2, size=4)\n}")
    assert "one of scale, size and like" in both.message and both.span.line == 3
    (none,) = errors("network U() {\n    input 3x8x8\n    conv(3, 1) -> upsample()\n}")
    assert none.span.column == 19
    (value,) = errors("network U() {\n    input 3x8x8\n    upsample(like=2)\n}")
    assert "names an element" in value.message and value.span.column == 19
    (corners,) = errors("network U() {\n    input 3x8x8\n    upsample(scale=2, align_corners=true)\n}")
    assert "bilinear" in corners.message
    (pad,) = errors("network U() {\n    input 3x8x8\n    conv_transpose(4, 3, stride=2, output_padding=2)\n}")
    assert "output_padding of 2" in pad.message and "stride" in pad.hint


def test_upsample_like_input_inside_a_block_is_the_blocks_input():
    spec = """block Head(classes) {
    conv(classes, 3, stride=2, pad=1) -> upsample(like=input, mode="bilinear")
}
network H() {
    input 3x10x14
    conv(8, 3, pad=1)
    head: Head(2)
}"""
    assert shapes(spec)[-1] == (2, 10, 14)
    code = cnndsl.compile_source(spec)
    assert "input_size = x.shape[-2:]" in code
    assert module(spec, "H")(torch.randn(1, 3, 10, 14)).shape == (1, 2, 10, 14)


def _double(cin: int, out: int) -> int:
    return (9 * cin * out + out) + (9 * out * out + out)


def _unet_params(cin: int = 1, classes: int = 2, base: int = 64) -> int:
    """The paper's U-Net counted by hand: DoubleConvs, 2x2 up-convolutions, the 1x1 head."""
    widths = [base, base * 2, base * 4, base * 8, base * 16]
    total, previous = 0, cin
    for width in widths:  # the contracting path and the bottleneck
        total += _double(previous, width)
        previous = width
    for width in reversed(widths[:-1]):  # up-conv halves the channels, the skip doubles them
        total += 4 * previous * width + width + _double(2 * width, width)
        previous = width
    return total + previous * classes + classes


def test_unet_is_the_papers_572_to_388():
    network = cnndsl.compile_spec("unet").network
    assert network.input == (1, 572, 572) and network.body.stats.out_shape == (2, 388, 388)
    outputs = {line.path: line.output for line in cnndsl.summary.lines(network, depth=1)}
    # Figure 1's feature maps: 568, 280, 136, 64, 28 down; 56, 52 ... 392, 388 up
    assert [outputs[f"enc{i}"][1] for i in (1, 2, 3, 4)] == [568, 280, 136, 64]
    assert outputs["bottleneck"] == (1024, 28, 28)
    assert [outputs[f"up{i}"][1:] for i in (4, 3, 2, 1)] == [(56, 56), (104, 104), (200, 200), (392, 392)]
    assert [outputs[f"dec{i}"] for i in (4, 1)] == [(512, 52, 52), (64, 388, 388)]
    assert network.body.stats.params == _unet_params() == 31_030_658
    net = cnndsl.build("unet")
    assert sum(p.numel() for p in net.parameters()) == 31_030_658


def test_unet_forward_reads_like_the_figure():
    code = generate(cnndsl.compile_spec("unet"))
    forward = code[code.index("class UNet"):].split("def forward", 1)[1]
    assert "x = torch.cat([center_crop(enc4, x), x], dim=1)  # 1024x56x56" in forward
    levels = forward.split("\n\n")  # a level per paragraph: down to each skip, up from each up-conv
    assert len(levels) == 9
    assert levels[4].split() == ["x", "=", "self.pool4(x)", "#", "512x32x32", "x", "=", "self.bottleneck(x)",
                                 "#", "1024x28x28"]
    assert "cnndsl" not in code.split('"""', 2)[2]  # standalone: imports torch only


def test_unet_runs_unpadded_and_padded():
    small = cnndsl.build("unet", size=188).eval()  # the smallest tile: 188 -> 4
    with torch.no_grad():
        assert small(torch.randn(1, 1, 188, 188)).shape == (1, 2, 4, 4)
    padded = cnndsl.build("unet", pad=1, size=48, in_channels=3, num_classes=5).eval()
    assert sum(p.numel() for p in padded.parameters()) == _unet_params(3, 5)
    with torch.no_grad():
        assert padded(torch.randn(2, 3, 48, 48)).shape == (2, 5, 48, 48)
        assert padded(torch.randn(1, 3, 40, 40)).shape == (1, 5, 32, 32)  # 40 -> 20 -> 10 -> 5 -> 2: cropped


LOCALIZE = """\
network Loc(classes = 10, aux = false) {
    input 1x28x28
    features: [conv(8, 3, pad=1) -> relu -> maxpool(2)]
    fc(32) -> relu
    scores: side fc(classes)
    box: fc(4)
    extra: side fc(3)?aux
    outputs(scores, box, more=extra)
}
"""


def test_named_outputs_are_checked_and_returned_as_a_dict():
    network = compiled(LOCALIZE).network
    assert network.output_shapes == {"scores": (10,), "box": (4,)}  # the optional one is off
    on = compile_network(source_from_text(LOCALIZE, "seg.cnn"), {"aux": True}).network
    assert on.output_shapes == {"scores": (10,), "box": (4,), "more": (3,)}
    net = module(LOCALIZE, "Loc").eval()
    x = torch.randn(3, 1, 28, 28)
    result = net(x)
    assert list(result) == ["scores", "box"] and result["scores"].shape == (3, 10) and result["box"].shape == (3, 4)
    hidden = net.relu(net.fc(torch.flatten(net.features(x), 1)))
    assert torch.equal(result["scores"], net.scores(hidden)) and torch.equal(result["box"], net.box(hidden))
    assert torch.equal(net.train()(x)["box"], result["box"])  # the same dict while training
    assert "outputs scores 10, box 4" in cnndsl.summarize(LOCALIZE)
    assert cnndsl.build(LOCALIZE).cnndsl_outputs == {"scores": (10,), "box": (4,)}
    built = cnndsl.build(LOCALIZE).eval()
    scripted = torch.jit.script(built)  # a dict of tensors is TorchScript's too
    assert torch.equal(scripted(x)["box"], built(x)["box"])


def test_named_output_errors():
    (unknown,) = errors(LOCALIZE.replace("outputs(scores, box, more=extra)", "outputs(scores, box, what=nothing)"))
    assert (unknown.span.line, unknown.span.column) == (8, 26) and "'nothing'" in unknown.message
    assert "features" in unknown.hint
    (unlisted,) = errors(LOCALIZE.replace("outputs(scores, box, more=extra)", "outputs(box)"))
    assert unlisted.span.line == 5 and "'scores'" in unlisted.message and "outputs(..., scores)" in unlisted.hint
    (twice,) = errors(LOCALIZE.replace("outputs(scores, box, more=extra)", "outputs(scores, box, box=scores)"))
    assert "'box' is named twice" in twice.message
    (block,) = errors("block B() {\n    conv(3, 1)\n    outputs(a)\n}\nnetwork N() {\n    input 3x4x4\n    B\n}")
    assert block.span.line == 3 and "network" in block.hint


def test_named_outputs_in_the_diagram_and_onnx(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from cnndsl.pictures.draw import render
    from cnndsl.tools.export import export_onnx

    network = compile_network(source_from_text(LOCALIZE, "seg.cnn"), {"aux": True}).network
    svg = tmp_path / "loc.svg"
    render(network, str(svg), 1.0)
    text = svg.read_text()
    assert "extra → more" in text and "scores 10, box 4, more 3" in text
    import onnx

    names = export_onnx(cnndsl.build(LOCALIZE).eval(), (1, 28, 28), tmp_path / "loc.onnx")
    assert names == ["scores", "box"]
    assert [o.name for o in onnx.load(str(tmp_path / "loc.onnx")).graph.output] == ["scores", "box"]


def test_unet_padded_keeps_the_input_size_and_base_sets_the_width():
    network = cnndsl.compile_spec("unet_padded").network
    assert network.input == (3, 256, 256) and network.body.stats.out_shape == (2, 256, 256)
    small = cnndsl.build("unet_padded", size=64, base=8, num_classes=4).eval()
    assert sum(p.numel() for p in small.parameters()) == _unet_params(3, 4, base=8)
    with torch.no_grad():
        assert small(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)


def test_localizer_returns_scores_and_a_box_in_the_unit_square():
    network = cnndsl.compile_spec("localizer").network
    assert network.output_shapes == {"scores": (10,), "box": (4,)}
    net = cnndsl.build("localizer").eval()
    with torch.no_grad():
        out = net(torch.randn(5, 1, 64, 64))
    assert list(out) == ["scores", "box"] and out["scores"].shape == (5, 10) and out["box"].shape == (5, 4)
    assert float(out["box"].min()) >= 0 and float(out["box"].max()) <= 1
    assert sum(p.numel() for p in net.parameters()) == network.body.stats.params == 205_022


TAP = """\
network Tap(aux = true) {
    input 3x16x16
    g: [a: conv(8, 3, pad=1) -> relu -> inner: [conv(8, 1) -> relu] -> blk: B()]
    head: conv(4, 1)
    out: upsample(like=input, mode="bilinear")
    s: side(g.a) [conv(2, 1) -> upsample(like=input, mode="bilinear")]?aux
    t: side(g.inner.0) fc(3)
    outputs(out, s, t)
}
"""
TAP_BLOCK = "block B() {\n    conv: conv(8, 1)\n}\n"


def test_a_side_reads_inside_a_named_group_by_its_path():
    """`side(g.a)`, `side(g.inner.0)`: the member of a named group (an nn.Sequential, keys
    unchanged) that a side output reads; the forward calls the group member by member."""
    text = TAP_BLOCK + TAP
    network = compiled(text).network
    assert network.output_shapes == {"out": (4, 16, 16), "s": (2, 16, 16), "t": (3,)}
    code = cnndsl.compile_source(text)
    assert "x = self.g.a(x)" in code and "x = self.g.inner[0](x)" in code and "x = self.g[1](x)" in code
    assert "s = nn.functional.interpolate(" in code
    net = module(text, "Tap").eval()
    assert [k for k in net.state_dict() if k.startswith("g.")][:2] == ["g.a.weight", "g.a.bias"]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        got = net(x)
        a = net.g.a(x)
        inner0 = net.g.inner[0](torch.relu(a))
        expected_s = torch.nn.functional.interpolate(net.s(a), size=(16, 16), mode="bilinear")
        assert torch.allclose(got["s"], expected_s, atol=1e-6)
        assert torch.allclose(got["t"], net.t(torch.flatten(inner0, 1)), atol=1e-6)
        assert torch.allclose(got["out"], net.head(net.g(x)), atol=1e-6)
    off = compile_network(source_from_text(text, "seg.cnn"), {"aux": False}).network
    assert off.output_shapes == {"out": (4, 16, 16), "t": (3,)}


@pytest.mark.parametrize("source, line, column, message, hint", [
    ("side(g.b) fc(3)", 7, 8, "the group 'g' has no member 'b'", "its members: a, 1, inner, blk"),
    ("side(q.b) fc(3)", 7, 8, "reads an element that is not named earlier", "name the element"),
    ("side(g.inner.7) fc(3)", 7, 8, "the group 'g.inner' has no member '7'", "its members: 0, 1"),
    ("side(g.blk.conv) fc(3)", 7, 8, "reads inside 'g.blk', a use of block B", "side(g.blk)"),
    ("side(g.a.b) fc(3)", 7, 8, "reads inside 'g.a', which is not a named group", "side(g.a)"),
    ("side(a) fc(3)", 7, 8, "reads 'a' inside the group 'g'", "side(g.a)"),
    ("side(g.4e5) fc(3)", 7, 14, "cannot read '.4e5' in a member's path", "backbone.layer3.0"),
])
def test_a_path_that_reads_no_member_is_an_error_at_the_side(source, line, column, message, hint):
    text = TAP_BLOCK + "network N() {\n    input 3x16x16\n" \
        "    g: [a: conv(8, 3, pad=1) -> relu -> inner: [conv(8, 1) -> relu] -> blk: B()]\n" \
        f"    s: {source}\n    outputs(s)\n}}\n"
    (error,) = errors(text)
    assert (error.span.line, error.span.column) == (line, column)
    assert message in error.message and hint in error.hint


# torchvision's weight tables (models/segmentation/fcn.py, deeplabv3.py): their weights carry
# the auxiliary FCNHead(1024, 21) on layer3: `--set aux_loss=true`.
PUBLISHED_WITH_AUX = {"fcn_resnet50": 35_322_218, "fcn_resnet101": 54_314_346}
AUX_HEAD = (1024 * 256 * 9) + 2 * 256 + (256 * 21 + 21)  # 3x3 conv, batch norm, 1x1 conv


@pytest.mark.parametrize("name", sorted(PUBLISHED_WITH_AUX))
def test_fcn_parameter_counts_are_torchvisions(name):
    network = cnndsl.compile_spec(name, aux_loss=True).network
    assert network.body.stats.params == PUBLISHED_WITH_AUX[name]
    assert network.output_shapes == {"out": (21, 520, 520), "aux": (21, 520, 520)}
    plain = cnndsl.compile_spec(name).network
    assert plain.body.stats.params + AUX_HEAD == PUBLISHED_WITH_AUX[name]
    assert plain.output_shapes == {"out": (21, 520, 520)}


def test_fcn_aux_head_reads_layer3_with_torchvisions_keys():
    """aux_loss=true: torchvision's `aux_classifier.N` keys after `classifier.N`, and the
    function: the FCNHead on layer3's output, upsampled to the input (bilinear)."""
    with torch.device("meta"):
        meta = cnndsl.build("fcn_resnet50", aux_loss=True)
    keys = [k for k in meta.state_dict() if not k.startswith("backbone.")]
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    assert keys == [f"{head}.{k}" for head in ("classifier", "aux_classifier") for k in (
        "0.weight", *(f"1.{k}" for k in bn), "4.weight", "4.bias")]
    net = cnndsl.build("fcn_resnet50", aux_loss=True, size=64).eval()
    x = torch.randn(1, 3, 40, 48)
    with torch.no_grad():
        got = net(x)
        b = net.backbone
        c3 = b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))))
        aux = torch.nn.functional.interpolate(net.aux_classifier(c3), size=(40, 48), mode="bilinear",
                                              align_corners=False)
        assert list(got) == ["out", "aux"] and torch.allclose(got["aux"], aux, atol=1e-5)
        out = torch.nn.functional.interpolate(net.classifier(b.layer4(c3)), size=(40, 48), mode="bilinear")
        assert torch.allclose(got["out"], out, atol=1e-5)


def test_fcn_backbone_trades_stride_for_dilation():
    network = cnndsl.compile_spec("fcn_resnet50", size=64).network
    lines = {line.path: line for line in cnndsl.summary.lines(network, depth=2)}
    assert lines["backbone.layer2"].output == (512, 8, 8)
    assert lines["backbone.layer3"].output == (1024, 8, 8) and lines["backbone.layer4"].output == (2048, 8, 8)
    net = cnndsl.build("fcn_resnet50", size=64).eval()
    assert [net.backbone.layer3[i].conv2.dilation for i in (0, 1)] == [(1, 1), (2, 2)]
    assert [net.backbone.layer4[i].conv2.dilation for i in (0, 2)] == [(2, 2), (4, 4)]
    with torch.no_grad():
        assert net(torch.randn(1, 3, 72, 56))["out"].shape == (1, 21, 72, 56)  # upsampled to any input


PUBLISHED_WITH_AUX.update({"deeplabv3_resnet50": 42_004_074, "deeplabv3_resnet101": 60_996_202})  # deeplabv3.py


@pytest.mark.parametrize("name", ["deeplabv3_resnet50", "deeplabv3_resnet101"])
def test_deeplabv3_parameter_counts_are_torchvisions(name):
    assert cnndsl.compile_spec(name, aux_loss=True).network.body.stats.params == PUBLISHED_WITH_AUX[name]
    network = cnndsl.compile_spec(name).network
    assert network.body.stats.params + AUX_HEAD == PUBLISHED_WITH_AUX[name]


def _bn(prefix: str, channels: int) -> list:
    return [[f"{prefix}.{k}", [] if k == "num_batches_tracked" else [channels]]
            for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def deeplab_head_keys(in_channels: int, classes: int = 21, aux_channels: int | None = None) -> list:
    """torchvision's DeepLabHead(in_channels, classes) state_dict, read off its source
    (models/segmentation/deeplabv3.py): `classifier` is nn.Sequential(ASPP(in_channels,
    [12, 24, 36]), Conv2d(256, 256, 3), BatchNorm2d, ReLU, Conv2d(256, classes, 1)); ASPP
    holds `convs`, a ModuleList of Sequential(Conv2d 1x1, BN, ReLU), three ASPPConv
    (Conv2d 3x3 dilated, BN, ReLU) and ASPPPooling (AdaptiveAvgPool2d, Conv2d 1x1, BN,
    ReLU), then `project` (Conv2d(1280, 256, 1), BN, ReLU, Dropout). With aux, the
    FCNHead(aux_channels, classes) as `aux_classifier`."""
    keys = [["classifier.0.convs.0.0.weight", [256, in_channels, 1, 1]], *_bn("classifier.0.convs.0.1", 256)]
    for i in (1, 2, 3):
        keys += [[f"classifier.0.convs.{i}.0.weight", [256, in_channels, 3, 3]], *_bn(f"classifier.0.convs.{i}.1", 256)]
    keys += [["classifier.0.convs.4.1.weight", [256, in_channels, 1, 1]], *_bn("classifier.0.convs.4.2", 256)]
    keys += [["classifier.0.project.0.weight", [256, 1280, 1, 1]], *_bn("classifier.0.project.1", 256)]
    keys += [["classifier.1.weight", [256, 256, 3, 3]], *_bn("classifier.2", 256),
             ["classifier.4.weight", [classes, 256, 1, 1]], ["classifier.4.bias", [classes]]]
    if aux_channels is not None:
        inter = aux_channels // 4
        keys += [["aux_classifier.0.weight", [inter, aux_channels, 3, 3]], *_bn("aux_classifier.1", inter),
                 ["aux_classifier.4.weight", [classes, inter, 1, 1]], ["aux_classifier.4.bias", [classes]]]
    return keys


def _listing(model) -> list:
    return [[key, list(value.shape)] for key, value in model.state_dict().items()]


def test_deeplabv3_state_dict_is_torchvisions():
    """The backbone's keys are fcn_resnet50's (the reference's, tests/test_families.py); the
    head's and the aux head's are torchvision's DeepLabHead and FCNHead, in order."""
    from test_families import REFERENCE

    backbone = [row for row in REFERENCE["fcn_resnet50"]["state_dict"] if row[0].startswith("backbone.")]
    with torch.device("meta"):
        plain = cnndsl.build("deeplabv3_resnet50")
        aux = cnndsl.build("deeplabv3_resnet50", aux_loss=True)
    assert _listing(plain) == backbone + deeplab_head_keys(2048)
    assert _listing(aux) == backbone + deeplab_head_keys(2048, aux_channels=1024)
    assert sum(p.numel() for p in aux.parameters()) == PUBLISHED_WITH_AUX["deeplabv3_resnet50"]


def test_deeplabv3_computes_torchvisions_head():
    """DeepLabHead's function, written out from torchvision's forward: each ASPP branch on the
    map, the pooling branch upsampled bilinearly (align_corners=False) to it, concatenated,
    projected; the aux head on layer3; both upsampled to the input."""
    net = cnndsl.build("deeplabv3_resnet50", size=64, aux_loss=True).eval()
    x = torch.randn(1, 3, 72, 56)
    interpolate = torch.nn.functional.interpolate
    with torch.no_grad():
        for module in net.modules():  # batch norm that does something
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        got = net(x)
        b = net.backbone
        c3 = b.layer3(b.layer2(b.layer1(b.maxpool(b.relu(b.bn1(b.conv1(x)))))))
        c4 = b.layer4(c3)
        aspp, rest = net.classifier[0], net.classifier[1:]
        pooled = interpolate(aspp.convs[4](c4), size=c4.shape[-2:], mode="bilinear", align_corners=False)
        joined = torch.cat([aspp.convs[i](c4) for i in range(4)] + [pooled], dim=1)
        out = interpolate(rest(aspp.project(joined)), size=(72, 56), mode="bilinear", align_corners=False)
        auxed = interpolate(net.aux_classifier(c3), size=(72, 56), mode="bilinear", align_corners=False)
        assert torch.allclose(got["out"], out, atol=1e-5) and torch.allclose(got["aux"], auxed, atol=1e-5)
        assert got["out"].shape == (1, 21, 72, 56) and c4.shape[-2:] == (9, 7)
    assert [aspp.convs[1][0].dilation, aspp.convs[3][0].dilation] == [(12, 12), (36, 36)]
    assert type(aspp.convs).__name__ == "ModuleList"


NAMED_CONCAT = """\
network N() {
    input 3x16x16
    convs: concat {
        [conv(4, 1) -> relu]
        conv(4, 3, pad=1)
        [adaptive_avgpool(1) -> conv(4, 1) -> upsample(like=input, mode="bilinear")]
    }
    conv(2, 1)
}
"""


def test_a_named_concat_holds_its_branches_in_a_module_list():
    """`convs: concat {...}`: the branches are convs.0, convs.1, ... (an nn.ModuleList), each
    called by its place in the cat; a branch ending in upsample(like=...) is resized there."""
    network = compiled(NAMED_CONCAT).network
    assert [line.output for line in cnndsl.summary.lines(network)][-1] == (2, 16, 16)
    paths = [row.path for row in cnndsl.summary.rows(network)]
    assert paths[:4] == ["convs.0.0", "convs.0.1", "convs.1", "convs.2.0"]
    net = module(NAMED_CONCAT, "N").eval()
    assert [k for k in net.state_dict()][:4] == ["convs.0.0.weight", "convs.0.0.bias", "convs.1.weight",
                                                 "convs.1.bias"]
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pooled = net.convs[2](x).expand(2, 4, 16, 16)  # bilinear from 1x1: a constant map
        expected = net.conv(torch.cat([net.convs[0](x), net.convs[1](x), pooled], dim=1))
        assert torch.allclose(net(x), expected, atol=1e-6)


@pytest.mark.parametrize("branch, message", [
    ("one: conv(4, 1) -> relu", "cannot hold the label 'one'"),
    ("identity", "cannot hold identity"),
])
def test_a_named_concats_branches_are_numbered_modules(branch, message):
    (error,) = errors(NAMED_CONCAT.replace("conv(4, 3, pad=1)", branch))
    assert (error.span.line, error.span.column) == (5, 9)
    assert message in error.message and "nn.ModuleList" in error.message


def test_deeplabv3_mobilenet_v3_large_is_torchvisions():
    """torchvision's deeplabv3_mobilenet_v3_large: `backbone` is MobileNetV3-Large's features
    0 to 16 (their keys, dilated=True: the last three blocks' depthwise convolutions at stride
    1, dilation 2), the DeepLabHead on 960 channels, the aux FCNHead(40) on features 4; the
    published count with the aux head."""
    with torch.device("meta"):
        features = [[k.replace("features.", "backbone.", 1), list(v.shape)]
                    for k, v in cnndsl.build("mobilenet_v3_large").state_dict().items() if k.startswith("features.")]
        seg = cnndsl.build("deeplabv3_mobilenet_v3_large", aux_loss=True)
    assert _listing(seg) == features + deeplab_head_keys(960, aux_channels=40)
    assert sum(p.numel() for p in seg.parameters()) == 11_029_328  # models/segmentation/deeplabv3.py
    assert cnndsl.compile_spec("deeplabv3_mobilenet_v3_large").network.body.stats.params == 11_029_328 - (
        40 * 10 * 9 + 2 * 10 + 10 * 21 + 21)
    net = cnndsl.build("deeplabv3_mobilenet_v3_large", aux_loss=True, size=64).eval()
    depthwise = [net.backbone[i].block[1][0] for i in (12, 13, 14, 15)]
    assert [(c.stride, c.dilation) for c in depthwise] == [((1, 1), (1, 1)), ((1, 1), (2, 2)), ((1, 1), (2, 2)),
                                                          ((1, 1), (2, 2))]
    x = torch.randn(1, 3, 64, 48)
    interpolate = torch.nn.functional.interpolate
    with torch.no_grad():
        got = net(x)
        low = net.backbone[:5](x)
        high = net.backbone[5:](low)
        assert low.shape[-2:] == (8, 6) and high.shape[-2:] == (4, 3)  # strides 8 and 16
        aux = interpolate(net.aux_classifier(low), size=(64, 48), mode="bilinear", align_corners=False)
        out = interpolate(net.classifier(high), size=(64, 48), mode="bilinear", align_corners=False)
        assert torch.allclose(got["aux"], aux, atol=1e-5) and torch.allclose(got["out"], out, atol=1e-5)


def test_a_side_inside_a_group_in_the_diagram_and_onnx(tmp_path):
    """The side outputs read inside `g` are drawn after the group, listed as outputs, and
    named in ONNX by their keys."""
    from cnndsl.pictures.draw import render

    text = TAP_BLOCK + TAP
    render(compiled(text).network, str(tmp_path / "tap.svg"), 1.0)
    svg = (tmp_path / "tap.svg").read_text()
    assert "out 4×16×16, s 2×16×16, t 3" in svg
    assert svg.index(">g<") < svg.index(">side<") < svg.index(">head<")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import onnx

    from cnndsl.tools.export import export_onnx

    assert export_onnx(cnndsl.build(text).eval(), (3, 16, 16), tmp_path / "tap.onnx") == ["out", "s", "t"]
    assert [o.name for o in onnx.load(str(tmp_path / "tap.onnx")).graph.output] == ["out", "s", "t"]
