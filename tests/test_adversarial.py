"""The compiler against the inputs an independent adversarial run found (issue 15): each
gives a clean diagnostic from `check` or a correct module. A correct module is checked
all the way: check, compile, build, an eval forward, a train-mode forward and backward,
and the checker's shape, parameters and MACs against PyTorch's."""

from __future__ import annotations

import pytest
import torch

import cnndsl
from cnndsl import CompileError
from test_differential import disagreements

from conftest import run_cli


def correct_module(text: str) -> torch.nn.Module:
    """Build `text` and run it as training would; the checker must agree with PyTorch."""
    compiled = cnndsl.compile_spec(text)
    code = cnndsl.compile_source(text)
    compile(code, "<generated>", "exec")
    torch.manual_seed(0)
    model = cnndsl.build(text)
    x = torch.randn(2, *compiled.network.input)
    model.eval()
    with torch.no_grad():
        model(x)
    model.train()
    out = model(x.requires_grad_())
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    sum(o.float().square().mean() for o in outputs).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert disagreements(text) == []
    return model


def rejected(text: str, *needles: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        cnndsl.check(text)
    message = "\n".join(f"{d.message} {d.hint or ''}" for d in info.value.diagnostics)
    for needle in needles:
        assert needle in message, message
    return info.value


# -- 14: strides and sizes that PyTorch would take hours over --------------------------------------

HUGE_STRIDE = """\
network N() {
    input 1x6x7
    conv(4, 1)
    conv(3, 2, pad=1, stride=100000, floor=true)
    fc(5)
}
"""


def test_a_stride_far_past_the_input_is_an_error_in_check(tmp_path):
    error = rejected(HUGE_STRIDE, "stride of 100,000", "never moves", "stride=8")
    assert error.diagnostics[0].span.line == 4
    spec = tmp_path / "stride.cnn"
    spec.write_text(HUGE_STRIDE)
    result = run_cli("check", str(spec))
    assert result.returncode == 1 and "stride.cnn:4:5" in result.stderr and "Traceback" not in result.stderr
    rejected("network P() {\n    input 3x8x8\n    maxpool(2, stride=4096)\n}\n", "never moves")


def test_a_small_stride_past_a_small_map_still_builds():
    """A stride of 2 on a 1x1 map (a spec written for larger inputs) is harmless and kept."""
    correct_module("network P() {\n    input 3x1x1\n    conv(4, 1, stride=2) -> relu\n    fc(3)\n}\n")
    correct_module("network P() {\n    input 3x5x5\n    conv(4, 1, stride=16, floor=true)\n    fc(3)\n}\n")


@pytest.mark.parametrize("shape, layer, needle", [
    ("3x64x64", "conv(64, 3, pad=5000)", "values per image"),
    ("3x64x64", "fc(100000) -> fc(100000)", "parameters in one layer"),
    ("256x1024x1024", "conv(256, 5, pad=2)", "multiply-accumulates"),
])
def test_sizes_that_would_exhaust_memory_or_time_are_errors_in_check(shape, layer, needle):
    rejected(f"network P() {{\n    input {shape}\n    {layer}\n}}\n", needle, "over the limit")


# -- 5: side(name) of a member of a named group ------------------------------------------------------

def test_a_side_reading_into_a_named_group_is_an_error_in_check():
    text = ("network N() {\n    input 3x8x8\n    feat: [c1: conv(8, 3, pad=1) -> relu]\n"
            "    aux: side(c1) fc(10)\n    fc(10)\n}\n")
    error = rejected(text, "c1", "feat")
    assert error.diagnostics[0].span.line == 4
    correct_module(text.replace("side(c1)", "side(feat)"))


def test_a_side_reading_into_a_group_by_a_name_a_later_member_also_has_is_an_error_in_check():
    """Found by the fuzz campaign (seed 1225001): the residual's layers are named conv1, conv2
    after the side, so `conv2` was taken for a member the forward calls; compile then failed."""
    text = ("network N() {\n    input 4x11x9\n    l2: [conv2: conv(4, 3, pad=1) -> relu]\n"
            "    l3: side(conv2) fc(4)\n    residual {\n        conv(4, 3, pad=1) -> relu\n"
            "        conv(4, 3, pad=1) -> relu\n    }\n    fc(5)\n}\n")
    error = rejected(text, "conv2", "l2", "side(l2.conv2)")
    assert error.diagnostics[0].span.line == 4
    correct_module(text.replace("side(conv2)", "side(l2.conv2)"))


def test_a_side_reading_into_a_concat_branch_or_a_block_is_an_error_in_check():
    rejected("network N() {\n    input 3x8x8\n    concat {\n        b1: conv(4, 1)\n        conv(4, 1)\n    }\n"
             "    aux: side(b1) fc(10)\n    fc(10)\n}\n", "b1")
    rejected("block B() {\n    inner: conv(4, 1)\n}\nnetwork N() {\n    input 3x8x8\n    B()\n"
             "    aux: side(inner) fc(10)\n    fc(10)\n}\n", "inner")


# -- 6: a parameter named like a block class ---------------------------------------------------------

def test_a_parameter_named_like_a_block_class_is_an_error_in_check():
    text = "block B(c) {\n    conv(c, 3, pad=1)\n}\nnetwork N(B = 3) {\n    input 3x8x8\n    B(4) -> fc(B)\n}\n"
    error = rejected(text, "'B'", "block")
    assert error.diagnostics[0].span.line == 4
    rejected("block B(c) {\n    conv(c, 3, pad=1)\n}\nblock C(B = 2) {\n    conv(B, 1)\n}\n"
             "network N() {\n    input 3x8x8\n    B(4) -> C()\n}\n", "'B'", "block")


# -- 7: a block variant's class named like a user block ----------------------------------------------

def test_a_block_variant_never_takes_a_user_blocks_class_name():
    text = ("block S(n) {\n    conv(8, 3, pad=1)*n\n}\nblock S2() {\n    conv(8, 1)\n}\n"
            "network N() {\n    input 3x8x8\n    S(1) -> S(2) -> S2() -> fc(10)\n}\n")
    model = correct_module(text)
    assert sum(p.numel() for p in model.parameters()) == cnndsl.compile_spec(text).network.body.stats.params == 6594
    code = cnndsl.compile_source(text)
    classes = [line.split("(")[0][6:] for line in code.splitlines() if line.startswith("class ")]
    assert len(classes) == len(set(classes)) == 4 and "S2" in classes and "S" in classes


def test_block_variants_avoid_parameters_and_each_other():
    text = ("block S(n) {\n    conv(8, 3, pad=1)*n\n}\nblock S3() {\n    conv(8, 1)\n}\n"
            "network N(S2 = 8) {\n    input 3x8x8\n    S(1) -> S(2) -> S(3) -> S3() -> conv(S2, 1) -> fc(10)\n}\n")
    model = correct_module(text)
    code = cnndsl.compile_source(text)
    classes = [line.split("(")[0][6:] for line in code.splitlines() if line.startswith("class ")]
    assert len(classes) == len(set(classes)) == 5 and "S2" not in classes
    assert type(model).__name__ == "N"


# -- 8: a side label named like a saved identity -----------------------------------------------------

@pytest.mark.parametrize("label", ["identity2", "identity3"])
def test_a_side_label_never_clobbers_a_saved_identity(label):
    text = ("network N() {\n    input 3x8x8\n    residual {\n        residual {\n            residual {\n"
            f"                conv(3, 3, pad=1) -> {label}: side fc(10)\n            }}\n        }}\n    }}\n"
            "    fc(10)\n}\n")
    model = correct_module(text)
    model.train()
    out = model(torch.randn(2, 3, 8, 8))
    assert isinstance(out, tuple) and out[1].shape == (2, 10)


# -- 9: names of nn.Module's methods -------------------------------------------------------------------

def test_the_list_of_module_attributes_is_torchs():
    from cnndsl.namespace import MODULE_ATTRIBUTES

    public = {n for n in dir(torch.nn.Module) if not n.startswith("_")}
    assert public - MODULE_ATTRIBUTES == set()


@pytest.mark.parametrize("label", ["set_submodule", "register_state_dict_post_hook",
                                   "register_load_state_dict_pre_hook", "forward", "training"])
def test_labels_that_are_module_methods_are_errors_in_check(label):
    rejected(f"network N() {{\n    input 3x8x8\n    {label}: conv(4, 3, pad=1)\n    fc(10)\n}}\n",
             "attribute of torch.nn.Module")


def test_a_block_whose_attribute_would_be_a_module_method_builds():
    text = "block SetSubmodule() {\n    conv(4, 3, pad=1)\n}\nnetwork N() {\n    input 3x8x8\n    SetSubmodule()\n    fc(10)\n}\n"
    model = correct_module(text)
    assert not any(name == "set_submodule" for name, _ in model.named_children())


# -- 10: a side inside a residual reading an earlier layer, and in-place ReLUs ------------------------

def test_a_side_in_a_residual_keeps_the_relu_it_reads_out_of_place():
    text = ("network N() {\n    input 3x8x8\n    c1: conv(3, 3, pad=1) -> relu\n    residual {\n"
            "        aux: side(c1) fc(10)\n        conv(3, 3, pad=1)\n    }\n    fc(10)\n}\n")
    correct_module(text)
    assert "ReLU(inplace=True)" not in cnndsl.compile_source(text)


# -- 11: the pad shortcut on a non-square map --------------------------------------------------------

def test_the_pad_shortcut_subsamples_as_the_checker_does_on_a_non_square_map():
    text = ("network N() {\n    input 2x9x4\n    residual {\n        global_avgpool\n    } shortcut pad\n"
            "    conv(5, 1)\n    global_avgpool\n    fc(3)\n}\n")
    correct_module(text)
    tall = ("network T() {\n    input 2x8x4\n    residual {\n        conv(4, 3, stride=2, pad=1)\n"
            "    } shortcut pad\n    fc(3)\n}\n")
    correct_module(tall)


# -- 12: a one-branch concat that starts with an fc --------------------------------------------------

@pytest.mark.parametrize("branch", ["fc(8)", "fc(8) -> relu", "head: [fc(8) -> relu]"])
def test_a_concat_branch_starting_with_fc_flattens_first(branch):
    correct_module(f"network N() {{\n    input 3x4x4\n    concat {{\n        {branch}\n    }}\n    fc(5)\n}}\n")


# -- 13: whatever compile rejects, check rejects -----------------------------------------------------

@pytest.mark.parametrize("inner", [
    "residual {\n            conv(3, 3, pad=1)\n        }",
    "concat {\n            conv(4, 1)\n            conv(4, 1)\n        }",
])
def test_a_concat_branch_that_is_a_concat_or_residual_is_an_error_in_check(inner, tmp_path):
    text = f"network N() {{\n    input 3x8x8\n    concat {{\n        {inner}\n        conv(2, 1)\n    }}\n    fc(5)\n}}\n"
    error = rejected(text, "concat branch")
    assert error.diagnostics[0].span.line == 4
    spec = tmp_path / "concat.cnn"
    spec.write_text(text)
    result = run_cli("check", str(spec))
    assert result.returncode == 1 and "concat branch" in result.stderr


def test_the_language_server_reports_it_too():
    from cnndsl.tools.lsp import analyze

    text = "network T() {\n    input 8x8x8\n    concat {\n        concat {\n            conv(4, 1)\n" \
           "            conv(4, 1)\n        }\n        conv(8, 1)\n    }\n}\n"
    analysis = analyze(text, "t.cnn")
    assert not analysis.compiled
    assert any("concat branch" in d.message and d.span.line == 4 for d in analysis.diagnostics)


# -- 15: a network parameter passed to a block -------------------------------------------------------

def test_a_network_parameter_passed_to_a_block_reaches_it_in_the_generated_source():
    text = "block B(w = 8) {\n    conv(w, 3, pad=1)\n}\nnetwork N(w = 8) {\n    input 3x8x8\n    B(w) -> conv(w, 1)\n}\n"
    correct_module(text)
    module = cnndsl.api.load_generated(cnndsl.compile_source(text))
    wide = module.N(w=16)
    want = cnndsl.build(text, w=16)
    assert [p.shape for p in wide.parameters()] == [p.shape for p in want.parameters()]
    assert wide(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)
