"""Expression values (issue 11): lists and tuples, indexing, `len`, `**`, comparisons,
`and`/`or`/`not`, `a if c else b`, the built-in functions, and top-level `def`s; each
misuse a diagnostic at its line and column; the generated code computes the same values
from the parameters it takes."""

from __future__ import annotations

import ast as pyast

import pytest

from cnndsl import CompileError, ast, ir
from cnndsl.compiler import compile_network, generate, source_from_text
from cnndsl.parse import parse
from cnndsl.tools.fmt import format_source
from cnndsl.traverse import walk

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402


def compiled(text: str, **params):
    return compile_network(source_from_text(text, "v.cnn"), params)


def filters(text: str, **params) -> list:
    """The output channels of each conv of the network, in order."""
    network = compiled(text, **params).network
    return [n.arg("filters") for n in walk(network.body) if isinstance(n, ir.Layer) and n.kind == "conv"]


def net(line: str, params: str = "", defs: str = "") -> str:
    return f"{defs}\nnetwork N({params}) {{\n    input 3x8x8\n    {line}\n}}\n"


def error(text: str):
    with pytest.raises(CompileError) as info:
        compiled(text)
    return info.value.diagnostics


@pytest.mark.parametrize("value, expected", [
    ("2 ** 3 + 1", 9), ("-2 ** 2 + 8", 4), ("2 ** 2 ** 2", 16), ("[6, 12, 24, 16][2]", 24),
    ("[[1, 16], [6, 24]][1][1]", 24), ("len([1, 2, 3])", 3), ("3 if 2 > 1 else 4", 3),
    ("3 if 2 < 1 else 4", 4), ("5 if not (1 == 1 and 2 != 2) else 6", 5), ("7 if 1 >= 2 or 3 <= 3 else 8", 7),
    ("max(3, 9, 4)", 9), ("min([5, 2, 8])", 2), ("ceil(7 / 2)", 4), ("floor(7 / 2)", 3), ("round(2.6)", 3),
    ("int(9.9)", 9), ("pow(2, 5)", 32), ("int(log(1024, 2))", 10), ("int(round(log(8) / log(2)))", 3),
    ("(3, 5)[1]", 5), ("[4, 8][-1]", 8), ("abs(-4)", 4), ("sum([1, 2, 3])", 6),
])
def test_expression_values(value, expected):
    assert filters(net(f"conv({value}, 1)")) == [expected]


def test_defs_constants_functions_and_calls_between_them():
    defs = ("def widths = [16, 24, 40]\n"
            "def make_divisible(v, d = 8) = max(d, int(v + d / 2) // d * d)\n"
            "def width(i, mult = 1.0) = make_divisible(widths[i] * mult)\n")
    assert filters(net("conv(width(0), 1) -> conv(width(2, mult=0.75), 1) -> conv(make_divisible(37, d=4), 1)",
                       defs=defs)) == [16, 32, 36]


def test_only_the_branch_taken_is_evaluated():
    defs = "def xs = [1, 2]\ndef at(i) = xs[i] if i < len(xs) else 0\n"
    assert filters(net("conv(at(1) + 1, 1) -> conv(at(5) + 1, 1)", defs=defs)) == [3, 1]
    assert filters(net("conv(4 if true or xs[9] > 0 else 1, 1)", defs=defs)) == [4]


def test_network_parameters_take_lists_and_the_generated_code_reads_them():
    text = net("conv(cfg[0] * w, 3, pad=1) -> conv(cfg[len(cfg) - 1] if big else 4, 1) -> fc(10)",
               params="cfg = [6, 12, 24], w = 2, big = true")
    result = compiled(text)
    code = generate(result)
    assert "cfg: tuple[int, ...] = (6, 12, 24)" in code
    assert "nn.Conv2d(3, cfg[0] * w, kernel_size=3, padding=1)" in code
    assert "cfg[len(cfg) - 1] if big else 4" in code
    module = load_generated(code)
    model = module.N()
    assert model.conv1.out_channels == 12 and model.conv2.out_channels == 24
    other = module.N(cfg=(1, 2, 5), w=3, big=False)  # the generated class computes as the spec does
    assert compiled(text, cfg=(1, 2, 5), w=3, big=False).network.body.items[1].arg("filters") == 4
    assert other.conv1.out_channels == 3 and other.conv2.out_channels == 4
    assert tuple(model(torch.zeros(1, 3, 8, 8)).shape) == (1, 10)


def test_math_functions_of_parameters_import_math_in_the_generated_code():
    text = net("conv(ceil(w * 10), 1) -> conv(int(log(w * 16, 2)), 1)", params="w = 1.5")
    code = generate(compiled(text))
    assert "import math\n" in code and "math.ceil(w * 10)" in code and "int(math.log(w * 16, 2))" in code
    model = load_generated(code).N()
    assert model.conv1.out_channels == 15 and model.conv2.out_channels == 4
    assert "import math" not in generate(compiled(net("conv(ceil(7 / 2), 1)")))  # a constant: folded


def test_block_parameters_take_lists():
    text = ("block Stage(cfg = [8, 16], first = true) {\n"
            "    conv(cfg[0], 3, pad=1, stride=2 if first else 1) -> relu -> conv(cfg[1], 1)\n}\n"
            + net("a: Stage -> b: Stage([4, 4], first=false) -> c: Stage(cfg=[2, 6])"))
    result = compiled(text)
    assert filters(text) == [8, 16, 4, 4, 2, 6]
    code = generate(result)
    assert "cfg: tuple[int, ...] = (8, 16)" in code and "stride=2 if first else 1" in code
    model = load_generated(code).N()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["c.conv2.weight"] == (6, 2, 1, 1)
    assert tuple(model(torch.zeros(1, 3, 8, 8)).shape) == (1, 6, 2, 2)  # strides 2 (a), 1 (b), 2 (c)


@pytest.mark.parametrize("line, defs, message, where, hint", [
    ("conv(xs[2], 1)", "def xs = [1, 2]", "index 2 is out of range for a list of 2 (indices 0 to 1)", (5, 13), None),
    ("conv(xs[1][0], 1)", "def xs = [1, 2]", "only a list can be indexed, not 2", (5, 10), None),
    ("conv(xs[0.5], 1)", "def xs = [1, 2]", "an index must be a whole number, got 0.5", (5, 13), "use //"),
    ("conv(foo(3), 1)", "", "unknown function 'foo'", (5, 10), "did you mean 'floor'?"),
    ("conv(conv(3), 1)", "", "unknown function 'conv'", (5, 10), "is a layer or block"),
    ("conv(f(), 1)", "def f(a, b = 2) = a * b", "function f needs its 'a' argument", (5, 10), "f(a, b)"),
    ("conv(f(1, 2, 3), 1)", "def f(a, b = 2) = a * b", "function f takes at most 2 positional", (5, 18), None),
    ("conv(f(1, c=2), 1)", "def f(a, b = 2) = a * b", "function f has no parameter 'c'", (5, 15), None),
    ("conv(f, 1)", "def f(a) = a", "'f' is a function", (5, 10), "call it: f(...)"),
    ("conv(k(2), 1)", "def k = 3", "'k' is a value, not a function", (5, 10), "without brackets"),
    ("conv(len(3), 1)", "", "len of one argument needs a list, got 3", (5, 14), None),
    ("conv(xs + 1, 1)", "def xs = [1, 2]", "'+' needs numbers, got the list [1, 2]", (5, 10), None),
    ("conv(3 if 1 else 2, 1)", "", "the condition of 'if' needs true or false, got 1", (5, 15), "compare it"),
    ("conv(4 if not 2 else 1, 1)", "", "'not' needs true or false, got 2", (5, 19), None),
    ("conv(2 ** 100, 1)", "", "2 ** 100 is too large", (5, 10), None),
    ("conv((-8) ** 0.5, 1)", "", "a negative number to a fractional power has no real value", (5, 10), None),
    ("conv(int(log(0)), 1)", "", "log(0) has no value", (5, 14), "positive"),
    ("conv(max(1, 2, key=3), 1)", "", "max takes no keyword arguments", (5, 20), None),
    ("conv(ceil(1, 2), 1)", "", "ceil takes 1 argument(s), got 2", (5, 10), None),
    ("conv(1 < [2], 1)", "", "'<' needs numbers, got the list [2]", (5, 14), None),
    # where an expression's closure declines its direct path, the checks say what they said
    ("conv(8 // 0, 1)", "", "division by zero", (5, 15), None),
    ("conv(1 if 3 else 1 // 0, 1)", "", "the condition of 'if' needs true or false, got 3", (5, 15), None),
    ("conv(sum([]), 1)", "", "sum of an empty list", (5, 14), None),
    ("conv(min([1, true]), 1)", "", "min needs a list of numbers", (5, 14), None),
    ("conv(1e30 * 1e30, 1)", "", "value 1e+60 is too large", (5, 10), None),
    ("conv([1][true], 1)", "", "an index must be a whole number, got true", (5, 14), None),
    ("conv(true and 3, 1)", "", "'and' needs true or false, got 3", (5, 19), None),
    ("conv(f(1 // 0), 1)", "def f(v, d = 8) = v + d", "division by zero", (5, 17), None),
])
def test_misuse_is_a_diagnostic_at_line_and_column(line, defs, message, where, hint):
    text = f"{defs}\n\nnetwork N() {{\n    input 3x8x8\n    {line}\n}}\n"
    (first, *_) = error(text)
    assert message in first.message
    assert (first.span.line, first.span.column) == where, first
    if hint:
        assert hint in (first.hint or "")


@pytest.mark.parametrize("defs, message, where", [
    ("def f(n) = f(n - 1)", "'f' uses itself: f -> f", (1, 5)),
    ("def a = b + 1\ndef b = [a]", "'a' uses itself: a -> b -> a", (1, 5)),
    ("def max = 3", "'max' is a built-in function", (1, 5)),
    ("def conv = 3", "'conv' is the name of a built-in layer", (1, 1)),
    ("def f(a, a) = a", "parameter 'a' is listed twice", (1, 7)),
    ("def k = 1\nlet k = relu", "'k' is defined twice", (2, 1)),
])
def test_definition_errors(defs, message, where):
    diagnostics = error(defs + "\n" + net("conv(4, 1)"))
    found = [d for d in diagnostics if message in d.message]
    assert found, diagnostics
    assert (found[0].span.line, found[0].span.column) == where


def test_a_def_used_as_a_layer_is_a_diagnostic():
    (diag,) = error(net("conv(4, 1) -> widths", defs="def widths = [1]"))
    assert diag.message == "'widths' is a value (a def), not a layer or block" and (diag.span.line, diag.span.column) == (4, 19)


def test_syntax_of_defs_lists_and_operators():
    program = parse(source_from_text(
        "def cfg = [\n    [1, 16],  # a comment\n    [6, 24],\n]\ndef f(v, d = 8) = v if v > d else d\n"
        "def g = (3,)\n" + net("conv(f(cfg[1][1]) ** 2, (3, 5))"), "s.cnn"))
    cfg, f, g = program.defs
    assert cfg.params is None and isinstance(cfg.body, ast.ListExpr) and len(cfg.body.items) == 2
    assert [p.name for p in f.params] == ["v", "d"] and isinstance(f.body, ast.IfElse)
    assert g.body.kind == "tuple" and len(g.body.items) == 1
    (conv,) = program.networks[0].body[0].elements
    first, second = conv.node.args
    assert isinstance(first.value, ast.BinOp) and first.value.op == "**"
    assert isinstance(second.value, ast.ListExpr) and second.value.kind == "tuple"


def test_fmt_lays_out_the_new_syntax_and_keeps_its_meaning():
    text = ("def widths=[16,24,\n 40]\ndef md(v,d=8)=max(d,int(v+d/2)//d*d)\n"
            "network N(cfg=[2,3],big=false) {\n input 3x8x8\n conv(md(32*cfg [0]),(3,3),stride=2 if big else 1) "
            "-> conv(-2**2+widths [1]+cfg[0]**-1//1,1) -> conv(4 if not big and 1<=2 else 1,1)\n}\n")
    out = format_source(source_from_text(text, "f.cnn"))
    assert out == ("def widths = [16, 24,\n    40]\n\ndef md(v, d = 8) = max(d, int(v + d / 2) // d * d)\n\n"
                   "network N(cfg = [2, 3], big = false) {\n    input 3x8x8\n"
                   "    conv(md(32 * cfg[0]), (3, 3), stride=2 if big else 1) -> conv(-2 ** 2 + widths[1] + "
                   "cfg[0] ** -1 // 1, 1) -> conv(4 if not big and 1 <= 2 else 1, 1)\n}\n")
    assert format_source(source_from_text(out, "f.cnn")) == out


def test_rendered_values_are_python_with_the_same_meaning():
    text = net("conv(-(w ** 2) + cfg[0] * 2 if not big or w >= 2 else max(cfg), 1)",
               params="cfg = [6, 12], w = 3, big = false")
    layer = compiled(text).network.body.items[0]
    rendered = dict(layer.args)["filters"].text
    assert pyast.dump(pyast.parse(rendered, mode="eval")) == pyast.dump(pyast.parse(
        "(-(w ** 2) + cfg[0] * 2) if ((not big) or (w >= 2)) else max(cfg)", mode="eval"))


def test_lists_from_the_command_line_and_from_python(tmp_path):
    from cnndsl.settings import parse_setting

    assert parse_setting("cfg=[6, 12,24]") == ("cfg", (6, 12, 24))
    assert parse_setting("c=[[1, 2], (3, 4.5)]") == ("c", ((1, 2), (3, 4.5)))
    assert parse_setting("m=reflect") == ("m", "reflect") and parse_setting("e=") == ("e", "")
    text = net("conv(cfg[1], 1)", params="cfg = [6, 12]")
    assert filters(text, cfg=[3, 7]) == [7]  # a Python list is the language's list
    spec = tmp_path / "l.cnn"
    spec.write_text(text)
    from conftest import run_cli

    result = run_cli("summary", str(spec), "--set", "cfg=[2, 9]")
    assert result.returncode == 0, result.stderr
    assert "9" in result.stdout


def test_a_list_constant_is_not_shared_with_an_equal_list_of_other_types():
    """(1, 1) == (1, True) in Python: the shared constants keep them apart, so that a list
    made earlier in the process cannot stand in for one holding a boolean."""
    from cnndsl import ir

    plain = ir.Value.constant((1, 1))
    mixed = ir.Value.constant((1, True))
    assert plain is not mixed
    assert type(mixed.value[1]) is bool and type(plain.value[1]) is int
    assert ir.Value.constant((1, (2, False))).value == (1, (2, False))
    assert type(ir.Value.constant((1, (2, False))).value[1][1]) is bool
