"""Each kind of diagnostic, at its expected line and column, and how it is shown:
the rendered form, `--format json`, and the exit codes of `cnndsl check`."""

from __future__ import annotations

import json

import pytest

from cnndsl import CompileError
from cnndsl.compiler import compile_network, source_from_text
from cnndsl.report import render

from conftest import run_cli

PRELUDE = "let CONV = conv(8, 3)\nblock B(n) {\n    conv(n, 1)\n}\n"  # lines 1-4


def net(*lines: str, params: str = "width = 8", input: str = "3x8x8") -> str:
    """A network on lines 5..: its body lines start on line 7, indented by 4."""
    body = "".join(f"    {line}\n" for line in lines)
    return f"{PRELUDE}network N({params}) {{\n    input {input}\n{body}}}\n"


def errors_of(text: str, **params):
    with pytest.raises(CompileError) as info:
        compile_network(source_from_text(text, "t.cnn"), params)
    diags = info.value.diagnostics
    assert diags and all(d.span.file == "t.cnn" for d in diags)
    return [d for d in diags if d.severity == "error"]


def first_error(text: str, **params):
    return errors_of(text, **params)[0]


def at(diag) -> tuple[int, int]:
    return diag.span.line, diag.span.column


# -- shapes ---------------------------------------------------------------------------------

def test_filter_larger_than_its_input():
    d = first_error(net("conv(8, 3, pad=1) -> conv(8, 9)"))
    assert at(d) == (7, 26)
    assert "filter of 9 is larger than its input of 8" in d.message
    assert "8x8x8" in d.message  # the shape that met it
    assert d.hint


def test_filter_larger_than_its_padded_input():
    d = first_error(net("conv(8, 11, pad=1)"))
    assert at(d) == (7, 5)
    assert "padded by 1 to 10" in d.message


def test_window_larger_than_its_input():
    d = first_error(net("maxpool(2) -> maxpool(2) -> maxpool(2) -> maxpool(2)"))
    assert at(d) == (7, 47)
    assert "window of 2 is larger than its input of 1" in d.message


def test_output_size_zero_or_negative():
    """(W - F + 2P)/S + 1 <= 0: 4x4 input, 9x9 filter, stride 2 gives (4 - 9)/2 + 1 = -1.5."""
    d = first_error(net("conv(4, 9, stride=2)", input="3x4x4"))
    assert at(d) == (7, 5)
    assert d.code == "shape"
    assert "larger than its input of 4" in d.message


def test_zero_input_dimension():
    d = first_error(net("relu", input="3x0x8"))
    assert at(d) == (6, 13)
    assert "positive whole number, got 0" in d.message


def test_volume_layer_after_a_flat_vector():
    d = first_error(net("fc(10) -> conv(8, 3)"))
    assert at(d) == (7, 15)
    assert "flat vector of 10" in d.message


def test_concat_channel_or_size_mismatch():
    text = net("concat {", "    conv(4, 3, pad=1)", "    conv(4, 3)", "}")
    d = first_error(text)
    assert at(d) == (9, 9)  # the branch that disagrees
    assert "4x8x8, 4x6x6" in d.message
    assert d.hint


def test_concat_of_a_volume_and_a_vector():
    d = first_error(net("concat {", "    conv(4, 3, pad=1)", "    fc(4)", "}"))
    assert at(d) == (9, 9)
    assert "4x8x8, 4" in d.message


def test_residual_channel_mismatch_with_identity_shortcut():
    d = first_error(net("residual {", "    conv(16, 3, pad=1)", "}"))
    assert at(d) == (7, 5)
    assert "16x8x8 (the body) and 3x8x8 (the identity shortcut)" in d.message
    assert "shortcut projection" in d.hint


def test_residual_spatial_mismatch_with_identity_shortcut():
    d = first_error(net("conv(8, 1) -> residual {", "    conv(8, 3)", "}"))
    assert at(d) == (7, 19)
    assert "8x6x6 (the body) and 8x8x8" in d.message


def test_residual_with_projection_shortcut_compiles():
    text = net("residual {", "    conv(16, 3, stride=2, pad=1)", "} shortcut projection")
    compiled = compile_network(source_from_text(text, "t.cnn"))
    assert compiled.network.body.stats.out_shape == (16, 4, 4)


# -- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line, position, unknown, guess", [
    ("convv(8, 3)", (7, 5), "convv", "conv"),
    ("conv(8, 3) -> rleu", (7, 19), "rleu", "relu"),
    ("CONVX", (7, 5), "CONVX", "CONV"),
    ("BB(3)", (7, 5), "BB", "B"),
])
def test_unknown_layer_with_did_you_mean(line, position, unknown, guess):
    d = first_error(net(line))
    assert at(d) == position
    assert d.code == "unknown-name"
    assert repr(unknown) in d.message
    assert d.hint == f"did you mean {guess!r}?"


def test_unknown_layer_parameter_with_did_you_mean():
    d = first_error(net("conv(8, 3, strid=2)"))
    assert at(d) == (7, 16)
    assert d.code == "unknown-parameter"
    assert "'strid'" in d.message and d.hint == "did you mean 'stride'?"


def test_unknown_block_parameter():
    d = first_error(net("B(m=3)"))
    assert at(d) == (7, 7)
    assert d.code == "unknown-parameter" and "block B has no parameter 'm'" in d.message


def test_unknown_name_in_an_expression_with_did_you_mean():
    d = first_error(net("conv(widht, 3)"))
    assert at(d) == (7, 10)
    assert d.hint == "did you mean 'width'?"


def test_unknown_network_parameter_from_the_command_line():
    d = first_error(net("conv(width, 3)"), widht=4)
    assert at(d) == (5, 9)  # the network's name
    assert d.code == "unknown-parameter" and "did you mean 'width'?" in d.hint


def test_python_booleans_are_pointed_out():
    d = first_error(net("conv(8, 3, bias=True)"))
    assert at(d) == (7, 21)
    assert d.hint == "booleans are written true"


# -- argument types -------------------------------------------------------------------------

@pytest.mark.parametrize("line, position, words", [
    ('conv("a", 3)', (7, 10), "conv 'filters' must be a whole number, got the string 'a'"),
    ("conv(4.5, 3)", (7, 10), "conv 'filters' must be a whole number, got 4.5"),
    ("conv(8, 3, bias=1)", (7, 21), "conv 'bias' must be true or false, got 1"),
    ("dropout(true)", (7, 13), "dropout 'p' must be a number, got true"),
    ('conv(8, 3, padding_mode="refelct")', (7, 29), "must be one of 'zeros', 'reflect'"),
    ("conv(true + 1, 3)", (7, 10), "'+' needs numbers, got true"),
    ("conv(8, 3)*(5 / 2)", (7, 17), "repetition count must be a whole number, got 2.5"),
    ("conv(8, 3)*(0 - 1)", (7, 17), "cannot be negative"),
    ("conv(8)", (7, 5), "conv needs its 'size' argument"),
    ("conv(8, 3, stride=0)", (7, 23), "conv 'stride' must be at least 1"),
    ("conv(8 // 0, 3)", (7, 15), "division by zero"),
    ("conv(8, 3, stride=1, stride=2)", (7, 26), "'stride' is given twice"),
    ("B(3, 4)", (7, 10), "block B takes at most 1 positional argument(s), got 2"),
    ("B", (7, 5), "block B needs its 'n' argument"),
    ("CONV(3)", (7, 5), "'CONV' is a let and takes no arguments"),
])
def test_wrong_arguments(line, position, words):
    d = first_error(net(line))
    assert at(d) == position, d
    assert words in d.message


def test_a_float_where_an_int_is_needed_suggests_floor_division():
    d = first_error(net("conv(width / 2, 3)"))
    assert at(d) == (7, 10)
    assert "//" in d.hint


# -- recursion --------------------------------------------------------------------------------

def test_recursion_between_blocks():
    text = ("block A(n) {\n    conv(n, 1) -> C(n)\n}\nblock C(n) {\n    A(n)\n}\n"
            "network N() {\n    input 3x8x8\n    A(3)\n}\n")
    (d,) = errors_of(text)
    assert at(d) == (1, 7)
    assert d.code == "recursion"
    assert "A -> C -> A" in d.message


def test_a_block_that_uses_itself():
    text = "block A() {\n    relu -> A\n}\nnetwork N() {\n    input 3x8x8\n    A\n}\n"
    (d,) = errors_of(text)
    assert at(d) == (1, 7) and "A -> A" in d.message


def test_recursion_between_lets():
    text = "let A = relu -> B\nlet B = A\nnetwork N() {\n    input 3x8x8\n    A\n}\n"
    (d,) = errors_of(text)
    assert d.code == "recursion" and d.span.line == 1 and "A -> B -> A" in d.message


# -- unsafe names -------------------------------------------------------------------------------

@pytest.mark.parametrize("label, reason", [
    ("class", "Python keyword"),
    ("lambda", "Python keyword"),
    ("match", "Python keyword"),  # soft keyword
    ("print", "built-in"),
    ("len", "built-in"),
    ("__init__", "dunder"),
    ("__dict__", "dunder"),
    ("training", "attribute of torch.nn.Module"),
    ("forward", "attribute of torch.nn.Module"),
    ("state_dict", "attribute of torch.nn.Module"),
    ("_modules", "underscore"),
    ("self", "generated code"),
    ("torch", "generated code"),
    ("nn", "generated code"),
    ("identity", "generated code"),
    ("a" * 65, "longer than"),
])
def test_unsafe_labels(label, reason):
    d = first_error(net(f"{label}: conv(8, 3)"))
    assert at(d) == (7, 5)
    assert reason in d.message
    assert d.hint


@pytest.mark.parametrize("name, reason", [
    ("class", "Python keyword"), ("print", "built-in"), ("__N__", "dunder"), ("torch", "generated code"),
])
def test_unsafe_class_names(name, reason):
    d = first_error(f"network {name}() {{\n    input 3x8x8\n    relu\n}}\n")
    assert at(d) == (1, 9)
    assert "cannot name a class" in d.message and reason in d.message


@pytest.mark.parametrize("param, reason", [
    ("lambda", "Python keyword"), ("list", "built-in"), ("__p", "dunder"), ("self", "generated code"),
])
def test_unsafe_parameter_names(param, reason):
    d = first_error(f"block K({param}) {{\n    relu\n}}\nnetwork N() {{\n    input 3x8x8\n    relu\n}}\n")
    assert at(d) == (1, 9)
    assert reason in d.message


def test_block_parameter_in_channels_is_reserved():
    d = first_error("block K(in_channels) {\n    relu\n}\nnetwork N() {\n    input 3x8x8\n    relu\n}\n")
    assert at(d) == (1, 9)
    assert "input channels come from where it is used" in d.hint


def test_duplicate_labels_in_one_scope():
    d = first_error(net("a: conv(8, 3, pad=1) -> a: conv(8, 3, pad=1)"))
    assert d.code == "duplicate-name"
    assert at(d) == (7, 32)  # the second layer of that name
    assert "line 7" in d.hint


def test_definitions_defined_twice_and_layer_names():
    d = first_error("let A = relu\nlet A = tanh\nnetwork N() {\n    input 3x8x8\n    A\n}\n")
    assert at(d) == (2, 1) and "defined twice" in d.message
    d = first_error("let conv = relu\nnetwork N() {\n    input 3x8x8\n    relu\n}\n")
    assert at(d) == (1, 1) and "built-in layer" in d.message


def test_several_problems_are_reported_together():
    errors = errors_of(net("convv(8, 3)", "class: relu", "tanhh"))
    assert [at(d) for d in errors] == [(7, 5), (8, 5), (9, 5)] or \
        sorted(at(d) for d in errors) == [(7, 5), (8, 5), (9, 5)]


# -- rendering --------------------------------------------------------------------------------

def rendered(text: str) -> str:
    with pytest.raises(CompileError) as info:
        compile_network(source_from_text(text, "t.cnn"))
    return render(info.value.diagnostics, {"t.cnn": source_from_text(text, "t.cnn")})


def test_rendered_form_like_rustc():
    out = rendered(net("conv(8, 3, strid=2)")).splitlines()
    assert out[0] == "error[unknown-parameter]: conv has no parameter 'strid'"
    assert out[1] == "  --> t.cnn:7:16"
    assert out[2] == "   |"
    assert out[3] == " 7 |     conv(8, 3, strid=2)"
    assert out[4] == "   |                ^^^^^^^"
    assert out[5] == "  = hint: did you mean 'stride'?"
    # the caret sits exactly under the offending text
    caret = out[4].index("^")
    assert out[3][caret:caret + len("strid=2")] == "strid=2"


def test_rendered_caret_spans_the_whole_layer():
    out = rendered(net("conv(8, 3, pad=1) -> conv(8, 9)")).splitlines()
    source_line, caret_line = out[3], out[4]
    start = caret_line.index("^")
    width = caret_line.count("^")
    assert source_line[start:start + width] == "conv(8, 9)"


def test_rendered_warning_with_arithmetic():
    compiled = compile_network(source_from_text(net("conv(8, 3, stride=2)", input="3x8x8"), "t.cnn"))
    out = render(compiled.warnings, {"t.cnn": compiled.source}).splitlines()
    assert out[0].startswith("warning[fit]: conv does not fit: (8 - 3 + 2*0)/2 + 1 = 3.5")
    assert out[1] == "  --> t.cnn:7:5"
    assert out[4] == "   |     " + "^" * len("conv(8, 3, stride=2)")
    assert out[5].startswith("  = hint: ")


def test_rendered_syntax_error_on_a_two_digit_line():
    text = "\n" * 11 + "network N() {\n    input 3x8x8\n    conv(8, 3) relu\n}\n"
    out = rendered(text).splitlines()
    assert out[1] == "  --> t.cnn:14:16"
    assert out[3] == " 14 |     conv(8, 3) relu"
    assert out[4] == "    |                ^^^^"


def test_rendered_with_tabs_keeps_caret_aligned():
    text = "network N() {\n\tinput 3x8x8\n\tconv(8, 3, strid=2)\n}\n"
    out = rendered(text).splitlines()
    assert out[1] == "  --> t.cnn:3:13"
    caret = out[4].index("^")
    assert out[3][caret:caret + 7] == "strid=2"


# -- the command: json and exit codes ----------------------------------------------------------

def write(tmp_path, text: str, name: str = "spec.cnn"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_check_json_for_errors(tmp_path):
    spec = write(tmp_path, net("convv(8, 3)", "class: relu"))
    result = run_cli("check", "--format", "json", str(spec))
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert sorted((d["line"], d["column"]) for d in data) == [(7, 5), (8, 5)]
    first = next(d for d in data if d["line"] == 7)
    assert first["severity"] == "error"
    assert first["file"] == str(spec)
    assert first["message"] == "unknown layer or block 'convv'"
    assert first["hint"] == "did you mean 'conv'?"
    assert first["code"] == "unknown-name"
    assert (first["end_line"], first["end_column"]) == (7, 10)
    spec = write(tmp_path, net("conv(8, 3, strid=2)"))
    (d,) = json.loads(run_cli("check", "--format", "json", str(spec)).stdout)
    assert (d["line"], d["column"], d["end_column"], d["code"]) == (7, 16, 23, "unknown-parameter")
    assert "Traceback" not in result.stderr


def test_check_json_for_warnings_and_clean(tmp_path):
    spec = write(tmp_path, net("conv(8, 3, stride=2)"))
    result = run_cli("check", "--format", "json", str(spec))
    assert result.returncode == 0
    (warning,) = json.loads(result.stdout)
    assert warning["severity"] == "warning" and (warning["line"], warning["column"]) == (7, 5)
    assert warning["code"] == "fit"
    clean = run_cli("check", "--format", "json", "lenet5")
    assert clean.returncode == 0 and json.loads(clean.stdout) == []


def test_check_json_for_a_syntax_error(tmp_path):
    spec = write(tmp_path, "network N() {\n    input 3x8x8\n    conv(8, 3) relu\n}\n")
    result = run_cli("check", "--format", "json", str(spec))
    assert result.returncode == 1
    (d,) = json.loads(result.stdout)
    assert (d["line"], d["column"], d["code"]) == (3, 16, "syntax")


def test_check_exit_codes_and_text(tmp_path):
    good = run_cli("check", "lenet5")
    assert good.returncode == 0
    assert "well-formed" in good.stdout and "61,706 parameters" in good.stdout
    spec = write(tmp_path, net("residual {", "    conv(16, 3, pad=1)", "}"))
    bad = run_cli("check", str(spec))
    assert bad.returncode == 1
    assert f"--> {spec}:7:5" in bad.stderr
    assert " 7 |     residual {" in bad.stderr
    assert "= hint:" in bad.stderr
    assert bad.stdout == ""


@pytest.mark.parametrize("mode, pad, size, ok", [
    ("reflect", 1, 2, True), ("reflect", 2, 2, False), ("circular", 2, 2, True), ("circular", 3, 2, False),
    ("replicate", 5, 1, True),
])
def test_padding_modes_that_pytorch_refuses(mode, pad, size, ok):
    """Reflect padding needs pad < size, circular pad <= size (PyTorch wraps around once at most)."""
    text = net(f'conv(4, 1, pad={pad}, padding_mode="{mode}")', input=f"3x{size}x{size}")
    if ok:
        compiled = compile_network(source_from_text(text, "t.cnn"))
        assert compiled.network.body.stats.out_shape == (4, size + 2 * pad, size + 2 * pad)
    else:
        d = first_error(text)
        assert at(d) == (7, 5)
        assert f"{mode} padding of {pad}" in d.message
