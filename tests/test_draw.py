"""`cnndsl draw`: the diagram's SVG is parsed and checked against the compiler's IR; the
PNG has the SVG's size (times the scale) and is a picture, not a blank page."""

from __future__ import annotations

import io
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import run_cli

import cnndsl
from cnndsl import ir
from cnndsl.compiler import builtins
from cnndsl.pictures.draw import diagram, to_png, to_svg

NS = {"s": "http://www.w3.org/2000/svg"}


def svg_of(name: str, **params) -> ET.Element:
    return ET.fromstring(to_svg(diagram(cnndsl.compile_spec(name, **params).network)))


def boxes(root: ET.Element, legend: str | None = "") -> list[ET.Element]:
    found = root.findall(".//s:rect[@class='box']", NS)
    return found if legend is None else [b for b in found if b.get("data-legend") == legend]


def texts(root: ET.Element, cls: str) -> list[str]:
    return [t.text for t in root.findall(f".//s:text[@class='{cls}']", NS)]


def test_lenet5_one_box_per_layer_with_kind_and_shape():
    root = svg_of("lenet5")
    main = boxes(root)
    # input, then c1 s2 c3 s4 c5 f6 output; the tanh layers fold into the box before them
    assert [b.get("data-label") for b in main] == [
        "input 1×32×32", "conv 5×5, 6 · tanh", "avgpool 2×2/2", "conv 5×5, 16 · tanh", "avgpool 2×2/2",
        "conv 5×5, 120 · tanh", "fc 84 · tanh", "fc 10"]
    assert [b.get("data-shape") for b in main] == [
        "1×32×32", "6×28×28", "6×14×14", "16×10×10", "16×5×5", "120×1×1", "84", "10"]
    assert texts(root, "name") == ["c1", "s2", "c3", "s4", "c5", "f6", "output"]
    assert "6×28×28  ·  156 params" in texts(root, "shape")


def test_caption_totals_are_the_compilers():
    for name in ("lenet5", "resnet50", "googlenet"):
        net = cnndsl.compile_spec(name).network
        root = ET.fromstring(to_svg(diagram(net)))
        caption = root.find(".//s:text[@class='caption']", NS)
        assert int(caption.get("data-params")) == net.body.stats.params
        assert f"{net.body.stats.params:,} parameters" in caption.text
        assert int(caption.get("data-macs")) == net.body.stats.macs
        assert any(f"output {'×'.join(map(str, net.body.stats.out_shape))}" in t for t in texts(root, "caption"))


def _top_level_blocks(seq: ir.Seq) -> list[ir.BlockInstance]:
    found = []
    for item in seq.items:
        if isinstance(item, ir.BlockInstance):
            found.append(item)
        elif isinstance(item, ir.Seq):
            found += _top_level_blocks(item)
    return found


def test_resnet152_groups_its_fifty_bottlenecks_in_seven_boxes():
    net = cnndsl.compile_spec("resnet152").network
    root = ET.fromstring(to_svg(diagram(net)))
    blocks = [b for b in boxes(root) if b.get("data-kind") == "block"]
    assert [(b.get("data-label"), int(b.get("data-count"))) for b in blocks] == [
        ("Bottleneck(64)", 3), ("Bottleneck(128, stride=2)", 1), ("Bottleneck(128)", 7),
        ("Bottleneck(256, stride=2)", 1), ("Bottleneck(256)", 35), ("Bottleneck(512, stride=2)", 1),
        ("Bottleneck(512)", 2)]
    assert sum(int(b.get("data-count")) for b in blocks) == len(_top_level_blocks(net.body)) == 50
    assert texts(root, "stage") == ["layer1", "layer2", "layer3", "layer4"]
    assert sorted(texts(root, "count")) == ["×2", "×3", "×35", "×7"]
    # one legend draws the bottleneck once, symbolically, with its shortcut as an arc
    assert [r.get("data-block") for r in root.findall(".//s:rect[@class='legend']", NS)] == ["Bottleneck"]
    assert [b.get("data-label") for b in boxes(root, "Bottleneck")] == [
        # the family's width rule (ResNeXt's groups, Wide ResNet's width), written symbolically
        "conv 1×1, int(planes·(base_width / 64))·groups · bn · relu",
        "conv 3×3/stride, int(planes·(base_width / 64))·groups · bn · relu", "conv 1×1, planes·4 · bn", "relu"]
    assert texts(root, "shortcut")[0] == "1×1 conv · bn if"
    assert len(boxes(root, None)) < 20  # legible: a handful of boxes, not 500 layers


def test_googlenet_concat_branches_side_by_side_in_the_inception_legend():
    root = svg_of("googlenet")
    assert [r.get("data-block") for r in root.findall(".//s:rect[@class='legend']", NS)] == ["BasicConv", "Inception"]
    assert texts(root, "branch") == ["branch1", "branch2", "branch3", "branch4"]
    inception = {b.get("data-label"): float(b.get("x")) for b in boxes(root, "Inception")}
    assert len(inception) == 7
    firsts = [inception[k] for k in ("BasicConv(c1, 1)", "BasicConv(c3r, 1)", "BasicConv(c5r, 1)", "maxpool 3×3")]
    assert firsts == sorted(firsts) and len(set(firsts)) == 4  # left to right, one column each
    main = [b.get("data-label") for b in boxes(root) if b.get("data-kind") == "block"]
    assert main.count("Inception(256, 160, 320, 32, 128, 128)") == 2  # 4e and 5a: not adjacent, not grouped
    assert "Inception(64, 96, 128, 16, 32, 32)" in main


def test_googlenet_side_outputs_sit_after_the_block_they_read():
    root = svg_of("googlenet", aux_logits=True)
    labels = [b.get("data-label") for b in boxes(root)]
    assert labels.index("InceptionAux(1000)") == labels.index("Inception(192, 96, 208, 16, 48, 64)") + 1


def test_vgg16_repeated_layers_show_once_with_a_count():
    root = svg_of("vgg16")
    convs = [(b.get("data-label"), b.get("data-count")) for b in boxes(root) if b.get("data-kind") == "conv"]
    assert convs == [("conv 3×3, 64 · relu", "2"), ("conv 3×3, 128 · relu", "2"), ("conv 3×3, 256 · relu", "3"),
                     ("conv 3×3, 512 · relu", "3"), ("conv 3×3, 512 · relu", "3")]


def test_a_repeated_run_of_several_layers_gets_a_frame():
    spec = "network R() {\n input 3x32x32\n [conv(8, 3, pad=1) -> relu -> maxpool(2, stride=1, pad=0) -> conv(8, 1)]*3 -> fc(10)\n}"
    root = ET.fromstring(to_svg(diagram(cnndsl.compile_spec(spec).network)))
    frames = root.findall(".//s:rect[@class='repeat']", NS)
    assert [f.get("data-count") for f in frames] == []  # shapes change each time: not identical, not grouped
    spec = "network R() {\n input 3x32x32\n [conv(8, 3, pad=1) -> relu -> conv(8, 1)]*3 -> fc(10)\n}"
    root = ET.fromstring(to_svg(diagram(cnndsl.compile_spec(spec).network)))
    assert [f.get("data-count") for f in root.findall(".//s:rect[@class='repeat']", NS)] == ["3"]
    assert [b.get("data-label") for b in boxes(root)] == ["input 3×32×32", "conv 3×3, 8 · relu", "conv 1×1, 8", "fc 10"]


@pytest.mark.parametrize("name", sorted(builtins()))
def test_every_builtin_draws_without_overlaps_inside_the_page(name):
    root = svg_of(name)
    width, height = float(root.get("width")), float(root.get("height"))
    rects = [(float(b.get("x")), float(b.get("y")), float(b.get("width")), float(b.get("height")))
             for b in boxes(root, None)]
    assert rects
    for x, y, w, h in rects:
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            overlap = min(a[0] + a[2], b[0] + b[2]) > max(a[0], b[0]) and min(a[1] + a[3], b[1] + b[3]) > max(a[1], b[1])
            assert not overlap, (a, b)


def test_png_has_the_svg_size_and_is_a_picture():
    from PIL import Image

    d = diagram(cnndsl.compile_spec("lenet5").network)
    image = Image.open(io.BytesIO(to_png(d, scale=2))).convert("L")
    assert image.size == (2 * d.width, 2 * d.height)
    hist = image.histogram()
    ink = sum(hist[:200]) / (image.width * image.height)
    assert 0.01 < ink < 0.5  # text, lines and box outlines, on a mostly white page
    assert hist[255] / (image.width * image.height) > 0.3


def test_cli_writes_svg_and_png(tmp_path):
    done = run_cli("draw", "resnet18", "-o", str(tmp_path / "r.svg"))
    assert done.returncode == 0, done.stderr
    root = ET.parse(tmp_path / "r.svg").getroot()
    assert root.find(".//s:title", NS).text == "ResNet18"
    done = run_cli("draw", "lenet5", "--set", "num_classes=7", "-o", str(tmp_path / "l.png"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "LeNet5" in done.stderr


def test_cli_errors_are_messages(tmp_path):
    done = run_cli("draw", "lenet5", "-o", str(tmp_path / "l.jpg"))
    assert done.returncode == 2 and "must end in .svg or .png" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("draw", "no_such_net", "-o", str(tmp_path / "x.svg"))
    assert done.returncode == 1 and "no_such_net" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.svg").exists()


def test_svg_output_imports_neither_torch_nor_matplotlib():
    import subprocess

    code = ("import sys, cnndsl\nfrom cnndsl.pictures.draw import diagram, to_svg\n"
            "to_svg(diagram(cnndsl.compile_spec('resnet50').network))\n"
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
