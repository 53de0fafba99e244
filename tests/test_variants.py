"""Variant declarations: `network resnet50 = ResNet(layers = [3, 4, 6, 3])` names a network
that is the family's with those arguments. Built-ins, `cnndsl list`, compile/check/summary,
`cnndsl.build`, the language server and the generated class name all see them.
"""

from __future__ import annotations

import pytest

import cnndsl
from cnndsl.compiler import compile_network, generate, load, source_from_text
from cnndsl.diagnostics import CompileError
from cnndsl.parse import parse
from cnndsl.passes.variants import class_name
from cnndsl.resources import catalog
from cnndsl.tools.lsp import analyze, definition_span, hover_text

from conftest import ROOT, run_cli

FAMILY = """\
# Tiny: a family of one-conv networks
network Tiny(width = 8, depth = 1, num_classes = 10) {
    input 3x16x16
    conv(width, 3, pad=1) * depth -> adaptive_avgpool(1) -> flatten -> fc(num_classes)
}

# Tiny, two convolutions of 16
network tiny16 = Tiny(width = 16, depth = 2)
network tiny4 = Tiny(4)
"""


def _params(compiled) -> int:
    return compiled.network.body.stats.params


def test_a_variant_is_the_family_with_its_arguments_as_defaults():
    source = source_from_text(FAMILY, "tiny.cnn")
    tiny16 = compile_network(source, network="tiny16")
    assert dict((k, v.value) for k, v in tiny16.network.params) == {"width": 16, "depth": 2, "num_classes": 10}
    # conv 3->16, conv 16->16, fc 16->10
    assert _params(tiny16) == (3 * 9 * 16 + 16) + (16 * 9 * 16 + 16) + (16 * 10 + 10)
    assert _params(compile_network(source, network="tiny4")) == (3 * 9 * 4 + 4) + (4 * 10 + 10)  # positional
    assert _params(compile_network(source, network="Tiny")) == (3 * 9 * 8 + 8) + (8 * 10 + 10)
    # --set still works on a variant, over its arguments.
    assert _params(compile_network(source, {"width": 2}, network="tiny16")) == \
        (3 * 9 * 2 + 2) + (2 * 9 * 2 + 2) + (2 * 10 + 10)


def test_the_last_declaration_is_the_default_network():
    assert compile_network(source_from_text(FAMILY)).network.name == "Tiny4"


def test_the_generated_class_is_named_after_the_variant():
    code = generate(compile_network(source_from_text(FAMILY), network="tiny16"))
    assert "class Tiny16(nn.Module):" in code and '__all__ = ["Tiny16"]' in code
    # The class's docstring starts with the variant's own comment.
    assert '"""Tiny, two convolutions of 16' in code
    assert class_name("resnet50", "ResNet") == "ResNet50"
    assert class_name("wide_resnet50_2", "ResNet") == "Wide_resnet50_2"
    assert class_name("regnet_y_400mf", "RegNet") == "RegNet_y_400mf"


@pytest.mark.parametrize("text, where, message", [
    ("network b = Tny(3)", "11:13", "variant b: no network named 'Tny'"),
    ("network b = Tiny(widht = 3)", "11:18", "network Tiny has no parameter 'widht'"),
    ("network b = Tiny(3, 4, 5, 6)", "11:27", "Tiny takes 3 parameters, this is argument 4"),
    ("network b = Tiny(3, width = 4)", "11:21", "parameter 'width' is given twice"),
    ("network tiny4 = Tiny(5)", "11:9", "'tiny4' is defined twice"),
    ("network b = Tiny(width = 0.5)", None, "a whole number"),
])
def test_a_misfit_variant_is_a_diagnostic_at_its_place(tmp_path, text, where, message):
    path = tmp_path / "tiny.cnn"
    path.write_text(FAMILY + "\n" + text + "\n")
    result = run_cli("check", str(path), "--network", "b")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    if where is not None:
        assert f"{path}:{where}" in result.stderr


def test_builtin_variants_are_in_the_catalog_and_load_their_network():
    entry = catalog()["resnet56"]
    assert entry.path.name == "cifar_resnet.cnn" and entry.network == "resnet56" and entry.family == "cifar_resnet"
    source = load("resnet56")
    assert source.network == "resnet56" and source.path == "specs/cifar_resnet.cnn"
    assert compile_network(source).network.name == "ResNet56"
    # The family's own name: its network with its defaults (n = 3).
    assert compile_network(load("cifar_resnet")).network.name == "ResNet"
    assert catalog()["resnet20"].about.startswith("ResNet-20 for CIFAR-10")


def test_the_catalogs_variants_are_the_parsers():
    """resources.py finds variants by scanning lines; the parser must find the same ones."""
    for family in sorted({entry.family for entry in catalog().values()}):
        program = parse(load(family))
        assert [v.name for v in program.variants] == \
            [name for name, entry in catalog().items() if entry.family == family and name != family]


def test_cli_and_api_see_variants():
    result = run_cli("compile", "resnet56")
    assert result.returncode == 0, result.stderr
    assert "class ResNet56(nn.Module):" in result.stdout
    summary = run_cli("summary", "resnet20")
    assert summary.returncode == 0 and "parameters: 269,722" in summary.stdout
    check = run_cli("check", "resnet20", "--set", "nn=2")
    assert check.returncode == 1 and "network ResNet20 has no parameter or switch 'nn'" in check.stderr
    assert cnndsl.check("resnet56") == []
    assert type(cnndsl.build("resnet20", num_classes=3)).__name__ == "ResNet20"


def test_language_server_compiles_and_follows_variants():
    analysis = analyze(FAMILY, "tiny.cnn")
    assert analysis.diagnostics == []
    assert sorted(c.network.name for c in analysis.compiled) == ["Tiny", "Tiny16", "Tiny4"]
    # Hover on a variant's line: its network; go-to-definition on the family's name.
    assert hover_text(analysis, 8, 10).startswith("**network Tiny16**")
    assert definition_span(analysis, 8, 19).line == 2
    broken = analyze(FAMILY + "network b = Tiny(widht = 1)\n", "tiny.cnn")
    assert [(d.span.line, d.message) for d in broken.diagnostics] == [
        (10, "network Tiny has no parameter 'widht'")]


def test_a_variant_in_a_file_of_no_family_is_reported():
    with pytest.raises(CompileError) as caught:
        compile_network(source_from_text("network a = B(1)\n"))
    assert "variant a: no network named 'B'" in str(caught.value.diagnostics[0].message)


def test_generated_goldens_exist_for_variants():
    assert (ROOT / "generated" / "resnet56.py").is_file() and (ROOT / "generated" / "cifar_resnet.py").is_file()


def test_fmt_spaces_a_variants_arguments_as_a_definitions():
    from cnndsl.tools.fmt import format_text

    assert format_text("network T(w = 1) {\n    input 3x8x8\n    conv(w, 3)\n}\nnetwork   a=T( w=3 )\n") \
        .endswith("\nnetwork a = T(w = 3)\n")


# -- shared/reproducers 11 and 13 (README items 15 and 13), through a variant -----------------------

REPRODUCER_11 = """\
block B(w = 8) {
    conv(w, 3, pad=1)
}
network N(w = 4) {
    input 3x8x8
    B(w) -> conv(w, 1)
}
network n8 = N(w = 8)
"""


def test_a_variants_argument_equal_to_a_blocks_default_still_reaches_the_block():
    """Reproducer 11: the variant makes w = 8, the block's default; the generated class
    must still pass w to B, so that `N8(w=16)` builds a 16-filter B."""
    module = cnndsl.api.load_generated(cnndsl.compile_source(REPRODUCER_11, network="n8"))
    import torch

    wide = module.N8(w=16)
    assert wide.b.conv.out_channels == 16
    assert tuple(wide(torch.randn(2, 3, 8, 8)).shape) == (2, 16, 8, 8)
    assert tuple(module.N8()(torch.randn(1, 3, 8, 8)).shape) == (1, 8, 8, 8)


def test_what_compile_rejects_in_a_variant_check_rejects(tmp_path):
    """Reproducer 13 (09, 12): a concat branch that is a concat, in a family: `check` of
    the variant reports it where compile would, and so does the language server."""
    text = ("network T(k = 4) {\n    input 8x8x8\n    concat {\n        concat {\n            conv(k, 1)\n"
            "            conv(k, 1)\n        }\n        conv(8, 1)\n    }\n}\nnetwork t2 = T(k = 2)\n")
    spec = tmp_path / "t.cnn"
    spec.write_text(text)
    for command in ("check", "compile"):
        result = run_cli(command, str(spec), "--network", "t2")
        assert result.returncode == 1 and f"{spec}:4:9" in result.stderr and "concat branch" in result.stderr
    analysis = analyze(text, "t.cnn")
    assert not analysis.compiled
    assert any("concat branch" in d.message and d.span.line == 4 for d in analysis.diagnostics)


def test_a_shortcut_written_first_is_registered_first():
    """`residual shortcut proj: projection { f: ... }`: torchvision's RegNet registers
    `proj` before `f`, and so its state_dict lists proj first."""
    text = ("block B(out) {\n    residual shortcut proj: projection {\n        f: [conv(out, 3, pad=1, bias=false)"
            " -> batchnorm]\n    }\n    relu\n}\nnetwork N() {\n    input 3x8x8\n    B(8) -> B(8)\n}\n")
    keys = list(cnndsl.build(text).state_dict())
    assert keys[0] == "b1.proj.0.weight" and keys.index("b1.proj.1.weight") < keys.index("b1.f.0.weight")
    later = list(cnndsl.build(text.replace("residual shortcut proj: projection {", "residual {")
                              .replace("    }\n    relu", "    } shortcut proj: projection\n    relu")).state_dict())
    assert later.index("b1.f.0.weight") < later.index("b1.proj.0.weight")
    assert sorted(keys) == sorted(later)


def test_regnet_widths_follow_the_quantized_rule():
    """RegNetY-400MF: torchvision's BlockParams give widths [48, 104, 208, 440] and
    depths [1, 3, 6, 6]; RegNetX-400MF's first width, 24, is made divisible by its group
    width 16 (32), its last, 392, to 400."""
    from cnndsl.summary import rows

    def stages(name):
        network = compile_network(load(name)).network
        convs = [r for r in rows(network) if r.path.endswith(".f.c.0")]
        found: dict[str, list] = {}
        for row in convs:
            found.setdefault(row.path.split(".")[1], []).append(row.layer.values["filters"])
        return [v[0] for v in found.values()], [len(v) for v in found.values()]

    assert stages("regnet_y_400mf") == ([48, 104, 208, 440], [1, 3, 6, 6])
    assert stages("regnet_x_400mf") == ([32, 64, 160, 400], [1, 2, 7, 12])
