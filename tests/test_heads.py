"""Heads with two inputs (issue 12, LR-ASPP): `add { ... }` and `mul { ... }` (the branches'
outputs summed or multiplied, broadcast), `from(name)` at the head of a branch (it reads a
named earlier element, a group member by its path, or a block's other input), and a
block's `reads(low)` with its use's `reads(backbone.4)`. Shapes and errors at line:col;
the generated module computes what the forward written out by hand computes."""

from __future__ import annotations

import pytest

import cnndsl
import cnndsl.summary
from cnndsl.compiler import compile_network, source_from_text
from cnndsl.diagnostics import CompileError

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402

HEAD = """\
block Head(num_classes, inter = 8) reads(low) {
    mul {
        cbr: [conv(inter, 1, bias=false) -> batchnorm -> relu]
        scale: [adaptive_avgpool(1) -> conv(inter, 1, bias=false) -> sigmoid]
    }
    upsample(like=low, mode="bilinear")
    add {
        from(low) low_classifier: conv(num_classes, 1)
        high_classifier: conv(num_classes, 1)
    }
}

network N(num_classes = 3) {
    input 3x32x32
    backbone: [conv(4, 3, stride=2, pad=1) -> batchnorm -> relu -> conv(6, 3, stride=2, pad=1) -> relu]
    classifier: Head(num_classes) reads(backbone.2)
    out: upsample(like=input, mode="bilinear")
    outputs(out)
}
"""


def compiled(text: str):
    return compile_network(source_from_text(text, "heads.cnn"))


def errors(text: str) -> list:
    with pytest.raises(CompileError) as caught:
        compiled(text)
    return caught.value.diagnostics


def test_a_two_input_head_has_the_shapes_and_parameters_of_its_parts():
    network = compiled(HEAD).network
    rows = {row.path: row for row in cnndsl.summary.rows(network)}
    assert rows["classifier.cbr.0"].layer.stats.out_shape == (8, 8, 8)
    assert rows["classifier.scale.1"].layer.stats.out_shape == (8, 1, 1)
    assert rows["classifier.low_classifier"].layer.stats.out_shape == (3, 16, 16)  # read off backbone.2: 4x16x16
    assert rows["classifier.high_classifier"].layer.stats.out_shape == (3, 16, 16)  # after the upsample to low's size
    head = 6 * 8 + 2 * 8 + 6 * 8 + (4 * 3 + 3) + (8 * 3 + 3)
    assert network.body.stats.params == 4 * 27 + 4 + 2 * 4 + 6 * 36 + 6 + head
    assert network.output_shapes == {"out": (3, 32, 32)}


def _hand_written(net, x):
    """The head as torchvision's LRASPPHead.forward writes it, on the generated members."""
    interpolate = torch.nn.functional.interpolate
    b, head = net.backbone, net.classifier
    low = b[2](b[1](b[0](x)))
    high = b[4](b[3](low))
    y = head.cbr(high) * head.scale(high)
    y = interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
    y = head.low_classifier(low) + head.high_classifier(y)
    return interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_the_generated_head_computes_the_hand_written_forward():
    source = cnndsl.compile_source(HEAD)
    assert "def forward(self, x: torch.Tensor, low: torch.Tensor) -> torch.Tensor:" in source
    assert "x = self.cbr(x) * self.scale(x)" in source
    assert "x = self.low_classifier(low) + self.high_classifier(x)" in source
    assert "x = self.classifier(x, low)" in source and "low = x" in source
    assert "        in_channels: int,\n        low_channels: int,\n        num_classes: int,\n" in source
    net = load_generated(source).N().eval()
    torch.manual_seed(0)
    x = torch.randn(2, 3, 40, 28)  # another size than the spec's
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        got = net(x)["out"]
        assert got.shape == (2, 3, 40, 28)
        assert torch.allclose(got, _hand_written(net, x), atol=1e-6)


def test_add_and_mul_broadcast_and_read_a_group_member_in_a_network():
    text = """\
network M() {
    input 3x16x16
    g: [conv(8, 3, pad=1) -> relu -> conv(8, 3, stride=2, pad=1)]
    mul {
        conv(8, 1)
        [adaptive_avgpool(1) -> conv(1, 1) -> sigmoid]
    }
    upsample(scale=2)
    add {
        from(g.1) conv(4, 1)
        conv(4, 1)
        from(g.1) [global_avgpool -> conv(4, 1)]
    }
}
"""
    network = compiled(text).network
    assert network.body.stats.out_shape == (4, 16, 16)
    net = load_generated(cnndsl.compile_source(text)).M().eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        low = net.g[1](net.g[0](x))
        high = net.g[2](low)
        y = torch.nn.functional.interpolate(net.conv1(high) * net.branch1(high), scale_factor=2)
        want = net.conv2(low) + net.conv3(y) + net.branch2(low)
        assert torch.allclose(net(x), want, atol=1e-6)


BROADCAST = """\
network B() {
    input 3x16x16
    stem: conv(8, 3, pad=1)
    down: conv(8, 3, stride=2, pad=1)
    add {
        from(stem) conv(4, 1)
        conv(OUT, 1)
    }
}
"""


@pytest.mark.parametrize("out, message, hint", [
    ("4", "an add of 4x16x16 + 4x8x8: the branches' outputs do not broadcast", "upsample(like=...)"),
    ("5", "an add of 4x16x16 + 5x8x8: the branches' outputs do not broadcast",
     "the same channels (they end with 4, 5)"),
])
def test_branches_that_do_not_broadcast_are_an_error_at_the_branch(out, message, hint):
    (error,) = errors(BROADCAST.replace("OUT", out))
    assert (error.span.line, error.span.column) == (7, 9)  # the branch that does not fit the first
    assert error.message == message and hint in error.hint


@pytest.mark.parametrize("text, line, column, message", [
    (BROADCAST.replace("from(stem)", "from(stme)").replace("OUT", "4"), 6, 20,
     "an add branch from(stme) names no element before it in this network"),
    (BROADCAST.replace("from(stem)", "from(stem.0)").replace("OUT", "4"), 6, 22,
     "from(stem.0) reads inside 'stem', which is not a named group of this network"),
    (BROADCAST.replace("add {", "mul {").replace("        conv(OUT, 1)\n", ""), 5, 5,
     "a mul needs at least two branches, one a line"),
    (BROADCAST.replace("    add {", "    from(stem) relu\n    add {").replace("OUT", "4"), 5, 5,
     "from(...) starts a branch of a concat, an add or a mul"),
    (BROADCAST.replace("    add {", "    s: add {").replace("OUT", "4"), 5, 5, "an add cannot be named here"),
    (HEAD.replace(" reads(backbone.2)", ""), 16, 17, "block Head takes reads(low), but this use gives 0"),
    (HEAD.replace("reads(backbone.2)", "reads(backbone.9)"), 16, 17,
     "reads(backbone.9): the group 'backbone' has no member '9'"),
    (HEAD.replace("reads(low)", "reads(a.b)"), 1, 1, "reads(a.b): a block names its other inputs"),
    (HEAD.replace("classifier: Head(num_classes)", "classifier: conv(3, 1)"), 16, 17,
     "conv is a layer: it reads its chain's value alone"),
])
def test_misuse_is_an_error_at_its_line_and_column(text, line, column, message):
    found = errors(text)
    assert any((e.span.line, e.span.column) == (line, column) and message in e.message and e.hint
               for e in found), [(e.span.line, e.span.column, e.message) for e in found]


def test_the_summary_and_the_diagram_show_the_head(tmp_path):
    from cnndsl.pictures.draw import render

    network = compiled(HEAD).network
    paths = [row.path for row in cnndsl.summary.rows(network)]
    assert paths.index("classifier.low_classifier") < paths.index("classifier.high_classifier")
    render(network, str(tmp_path / "head.svg"), 1.0)
    assert "reads backbone.2" in (tmp_path / "head.svg").read_text()
    inline = HEAD.split("network N")[0].replace("block Head(num_classes, inter = 8) reads(low) {", """\
network N(num_classes = 3, inter = 8) {
    input 3x32x32
    low: conv(4, 3, stride=2, pad=1) -> conv(6, 3, stride=2, pad=1)""")
    render(compiled(inline).network, str(tmp_path / "inline.svg"), 1.0)
    svg = (tmp_path / "inline.svg").read_text()
    assert "from low" in svg and "low_classifier" in svg and ">add" in svg and ">mul" in svg


def test_the_fast_reader_reads_the_new_syntax_as_lark_does():
    from cnndsl import descent
    from cnndsl import parse as parsing
    from cnndsl.lower import lower
    from cnndsl.source import SourceFile

    for text in (HEAD, BROADCAST.replace("OUT", "4")):
        source = SourceFile("heads.cnn", text)
        fast = descent.read(source)
        assert fast is not None  # read on the fast path, not left to Lark
        assert fast == lower(parsing._parse_all(source), source, parsing._expression_parser(source))
    misplaced = SourceFile("heads.cnn", BROADCAST.replace("    add {", "    from(stem) relu\n    add {"))
    assert descent.read(misplaced) is None  # Lark's path gives the error


def test_the_language_server_hovers_and_completes_the_new_constructs():
    from cnndsl.tools import assist
    from cnndsl.tools.lsp import analyze, hover_text

    analysis = analyze(HEAD, "heads.cnn")
    assert hover_text(analysis, 2, 5).startswith("**mul** `classifier`") and "output 8x8x8" in hover_text(
        analysis, 2, 5)
    assert hover_text(analysis, 7, 5).startswith("**add** `classifier`") and "output 3x16x16" in hover_text(
        analysis, 7, 5)
    assert hover_text(analysis, 8, 20).startswith("**conv 1x1/1 3** `classifier.low_classifier`")
    assert hover_text(analysis, 16, 17).startswith("**block Head** `classifier`")
    text = HEAD.replace("        high_classifier: conv(num_classes, 1)\n", "        \n")
    labels = [item.label for item in assist.complete(assist.scan(text), text, 9, 9)]
    assert {"add", "mul", "reads", "from"} <= set(labels)


@pytest.mark.parametrize("text, line, message", [
    ("block J() reads(low) {\n    g: [conv(4, 1) -> relu]\n    add {\n        from(g.0) conv(4, 1)\n"
     "        from(low) conv(4, 1)\n    }\n}\nnetwork N() {\n    input 3x8x8\n    stem: conv(4, 1)\n"
     "    J() reads(stem)\n}\n", 3, "from(g.0) reads 'g.0', inside a group that the generated forward calls"),
    ("block J() reads(low) {\n    add {\n        from(low) conv(4, 1)\n        conv(4, 1)\n    }\n}\n"
     "network N() {\n    input 3x8x8\n    stem: conv(4, 1)\n    s: [conv(4, 1) -> J() reads(stem)]\n}\n",
     10, "J(...) reads(stem) stands inside a named group or a concat branch"),
])
def test_what_the_generated_forward_cannot_hold_is_refused_at_check(text, line, message):
    found = errors(text)
    assert any(e.span.line == line and message in e.message and e.hint for e in found), \
        [(e.span.line, e.message) for e in found]
