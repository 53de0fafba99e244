"""Grammar and parser: every construct of the language becomes the expected syntax tree,
and a syntax error becomes a diagnostic at the right line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnndsl import CompileError, ast
from cnndsl.compiler import source_from_text
from cnndsl.parse import parse

ROOT = Path(__file__).resolve().parent.parent


def p(text: str) -> ast.Program:
    return parse(source_from_text(text, "g.cnn"))


def net_body(text: str) -> tuple[ast.Chain, ...]:
    return p(text).networks[-1].body


def elements(text: str) -> tuple[ast.Element, ...]:
    """The elements of the one chain of a network's body."""
    body = net_body(text)
    assert len(body) == 1, body
    return body[0].elements


def wrap(line: str, params: str = "") -> str:
    return f"network N({params}) {{\n    input 3x32x32\n    {line}\n}}\n"


def syntax_error(text: str):
    with pytest.raises(CompileError) as info:
        p(text)
    (diag,) = info.value.diagnostics
    assert diag.severity == "error"
    return diag


# -- files, comments, definitions ------------------------------------------------------

def test_empty_file_and_comment_only_file_parse_to_empty_program():
    for text in ("", "\n\n", "# only a comment\n", "   # indented comment\n\n# another\n"):
        program = p(text)
        assert program.lets == () and program.blocks == () and program.networks == ()


def test_comments_everywhere_are_ignored():
    text = (
        "# header\n"
        "let CONV = conv(8, 3)  # trailing\n"
        "# between\n"
        "network N() {  # after brace\n"
        "    # inside\n"
        "    input 3x32x32  # after input\n"
        "    CONV -> relu  # after chain\n"
        "}\n"
    )
    program = p(text)
    assert [d.name for d in program.lets] == ["CONV"]
    (chain,) = program.networks[0].body
    assert [e.node.name for e in chain.elements] == ["CONV", "relu"]


def test_let_definition_holds_a_chain():
    program = p("let BLOCK = conv(8, 3, pad=1) -> relu\nlet POOL = maxpool(2)\n")
    assert [d.name for d in program.lets] == ["BLOCK", "POOL"]
    chain = program.lets[0].chain
    assert [e.node.name for e in chain.elements] == ["conv", "relu"]
    conv = chain.elements[0].node
    assert isinstance(conv, ast.Call)
    assert [a.name for a in conv.args] == [None, None, "pad"]
    assert [a.value.value for a in conv.args] == [8, 3, 1]


def test_network_and_block_with_parameters_and_defaults():
    program = p(
        "block Stage(out, k = 3, stride = 1,) {\n    conv(out, k, stride=stride)\n}\n"
        "network Net(classes = 10, width = 16, p = 0.5, flag = true) {\n"
        "    input 3x32x32\n    Stage(width)\n}\n"
    )
    (block,) = program.blocks
    assert block.name == "Stage"
    assert [pa.name for pa in block.params] == ["out", "k", "stride"]
    assert block.params[0].default is None
    assert block.params[1].default.value == 3
    (network,) = program.networks
    assert network.name == "Net"
    defaults = {pa.name: pa.default for pa in network.params}
    assert defaults["classes"].value == 10
    assert isinstance(defaults["p"].value, float) and defaults["p"].value == 0.5
    assert isinstance(defaults["flag"], ast.Bool) and defaults["flag"].value is True


def test_network_without_parameters():
    (network,) = p("network N() {\n    input 3x8x8\n    relu\n}\n").networks
    assert network.params == ()


def test_definition_positions_are_kept():
    program = p("\n\nnetwork   Net() {\n    input 3x8x8\n    relu\n}\n")
    net = program.networks[0]
    assert (net.span.line, net.span.column) == (3, 1)
    assert (net.name_span.line, net.name_span.column) == (3, 11)


# -- input --------------------------------------------------------------------------------

def test_input_shape_literal_with_per_dimension_spans():
    program = p("network N() {\n    input 3x224x224\n    relu\n}\n")
    decl = program.networks[0].input
    assert [d.value for d in decl.dims] == [3, 224, 224]
    assert [(d.span.line, d.span.column) for d in decl.dims] == [(2, 11), (2, 13), (2, 17)]


def test_input_with_parameter_names_and_spaces():
    program = p("network N(c = 1, size = 28) {\n    input c x size x (size + 4)\n    relu\n}\n")
    dims = program.networks[0].input.dims
    assert isinstance(dims[0], ast.Var) and dims[0].name == "c"
    assert isinstance(dims[1], ast.Var) and dims[1].name == "size"
    assert isinstance(dims[2], ast.BinOp) and dims[2].op == "+"


def test_input_numbers_with_spaces():
    dims = p("network N() {\n    input 3 x 32 x 32\n    relu\n}\n").networks[0].input.dims
    assert [d.value for d in dims] == [3, 32, 32]


def test_flat_input():
    dims = p("network N() {\n    input 784\n    fc(10)\n}\n").networks[0].input.dims
    assert [d.value for d in dims] == [784]


# -- chains and continuation -------------------------------------------------------------

def test_chain_with_arrows():
    els = elements(wrap("INPUT -> conv(8, 3) -> relu -> maxpool(2) -> fc(10)"))
    assert [e.node.name for e in els] == ["INPUT", "conv", "relu", "maxpool", "fc"]
    assert isinstance(els[0].node, ast.Ref) and isinstance(els[1].node, ast.Call)


def test_each_body_line_is_a_chain():
    body = net_body("network N() {\n    input 3x8x8\n    conv(4, 3)\n    relu\n}\n")
    assert len(body) == 2
    assert body[1].elements[0].node.name == "relu"
    assert (body[1].span.line, body[1].span.column) == (4, 5)


@pytest.mark.parametrize("text", [
    "network N() {\n    input 3x8x8\n    conv(4, 3) ->\n        relu ->\n        fc(10)\n}\n",
    "network N() {\n    input 3x8x8\n    conv(4, 3)\n        -> relu\n        -> fc(10)\n}\n",
    "network N() {\n    input 3x8x8\n    conv(4, 3) ->   # a comment after the arrow\n\n        relu\n"
    "        # a comment before the leading arrow\n        -> fc(10)\n}\n",
    "network N() {\n    input 3x8x8\n    conv(4,\n         3) -> relu \\\n    -> fc(10)\n}\n",
])
def test_line_continuation(text):
    body = net_body(text)
    assert len(body) == 1
    assert [e.node.name for e in body[0].elements] == ["conv", "relu", "fc"]


def test_continued_element_keeps_its_own_position():
    text = "network N() {\n    input 3x8x8\n    conv(4, 3)\n        -> relu\n}\n"
    (chain,) = net_body(text)
    relu = chain.elements[1]
    assert (relu.span.line, relu.span.column) == (4, 12)


def test_crlf_line_endings():
    text = "network N() {\r\n    input 3x8x8\r\n    conv(4, 3) ->\r\n    relu\r\n}\r\n"
    (chain,) = net_body(text)
    assert [e.node.name for e in chain.elements] == ["conv", "relu"]


# -- groups, repetition, optionals, labels ------------------------------------------------

def test_group_is_one_element():
    els = elements(wrap("[conv(8, 3) -> relu] -> fc(10)"))
    assert len(els) == 2
    group = els[0].node
    assert isinstance(group, ast.Group)
    assert [e.node.name for e in group.chains[0].elements] == ["conv", "relu"]


def test_group_over_several_lines():
    text = "network N() {\n    input 3x8x8\n    stage: [\n        conv(8, 3)\n        relu\n    ]\n}\n"
    (el,) = elements(text)
    assert el.label == "stage"
    assert isinstance(el.node, ast.Group) and len(el.node.chains) == 2


@pytest.mark.parametrize("count, expected", [
    ("3", ast.Num), ("N", ast.Var), ("(N + 1)", ast.BinOp), ("(2 * N - 1)", ast.BinOp),
])
def test_repetition_count_forms(count, expected):
    (el,) = elements(wrap(f"[conv(8, 3) -> relu]*{count}", "N = 2"))
    assert isinstance(el.node, ast.Repeat)
    assert isinstance(el.node.count, expected)


def test_repetition_of_a_single_call_and_nested_repetition():
    (el,) = elements(wrap("[[conv(8, 3) -> relu]*2 -> maxpool(2)]*3"))
    outer = el.node
    assert isinstance(outer, ast.Repeat) and outer.count.value == 3
    inner = outer.node.chains[0].elements[0].node
    assert isinstance(inner, ast.Repeat) and inner.count.value == 2
    (el,) = elements(wrap("conv(8, 3)*4"))
    assert isinstance(el.node, ast.Repeat) and isinstance(el.node.node, ast.Call)


def test_optional_and_repeated_optional():
    els = elements(wrap("conv(8, 3) -> POOL? -> [conv(8, 3) -> relu]*2? -> fc(10)"))
    assert isinstance(els[1].node, ast.Optional) and els[1].node.node.name == "POOL"
    assert isinstance(els[2].node, ast.Optional) and isinstance(els[2].node.node, ast.Repeat)


def test_seed_pattern_parses_as_written():
    els = elements(wrap("INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC"))
    assert len(els) == 4
    assert isinstance(els[1].node, ast.Repeat) and els[1].node.count.name == "M"
    inner = els[1].node.node.chains[0].elements
    assert isinstance(inner[0].node, ast.Repeat) and inner[0].node.count.name == "N"
    assert isinstance(inner[1].node, ast.Optional)


def test_labels_name_one_element():
    els = elements(wrap("conv1: conv(8, 3) -> relu -> features: [conv(8, 3)]*2"))
    assert [e.label for e in els] == ["conv1", None, "features"]
    assert els[0].label_span.column == 5
    assert isinstance(els[2].node, ast.Repeat)


# -- concat and residual ------------------------------------------------------------------

def test_concat_branches_one_per_line():
    text = ("network N() {\n    input 3x8x8\n    concat {\n        b1: conv(4, 1)\n"
            "        b2: conv(4, 1) -> conv(4, 3, pad=1)\n        maxpool(3, stride=1, pad=1)\n    }\n}\n")
    (el,) = elements(text)
    concat = el.node
    assert isinstance(concat, ast.Concat)
    assert len(concat.branches) == 3
    assert [b.elements[0].label for b in concat.branches] == ["b1", "b2", None]
    assert (concat.span.line, concat.span.column) == (3, 5)


@pytest.mark.parametrize("tail, label, target", [
    ("", None, None),
    (" shortcut projection", None, "projection"),
    (" shortcut downsample: projection", "downsample", "projection"),
    (" shortcut identity", None, "identity"),
])
def test_residual_with_shortcut(tail, label, target):
    text = ("network N() {\n    input 8x8x8\n    residual {\n        conv(8, 3, pad=1) -> relu\n"
            f"        conv(8, 3, pad=1)\n    }}{tail}\n    relu\n}}\n")
    body = net_body(text)
    residual = body[0].elements[0].node
    assert isinstance(residual, ast.Residual)
    assert len(residual.body) == 2
    if target is None:
        assert residual.shortcut is None
    else:
        assert residual.shortcut.label == label
        assert residual.shortcut.node.name == target
    assert body[1].elements[0].node.name == "relu"


# -- expressions --------------------------------------------------------------------------

def arg_values(line: str, params: str = "") -> tuple[ast.Expr, ...]:
    (el,) = elements(wrap(line, params))
    return tuple(a.value for a in el.node.args)


def test_int_and_float_literals():
    values = arg_values("f(1, 2.5, 3., .5, 1e-3, 2.5E+2, 0)")
    kinds = [type(v.value) for v in values]
    assert kinds == [int, float, float, float, float, float, int]
    assert [v.value for v in values] == [1, 2.5, 3.0, 0.5, 0.001, 250.0, 0]


def test_arithmetic_precedence_and_associativity():
    (expr,) = arg_values("f(a + b * c - d)")
    # ((a + (b * c)) - d)
    assert expr.op == "-" and expr.right.name == "d"
    assert expr.left.op == "+" and expr.left.right.op == "*"
    (expr,) = arg_values("f((a + b) * c)")
    assert expr.op == "*" and expr.left.op == "+"
    (expr,) = arg_values("f(a // 2 % 3 / 4)")
    assert expr.op == "/" and expr.left.op == "%" and expr.left.left.op == "//"
    (expr,) = arg_values("f(-a * 2)")
    assert expr.op == "*" and isinstance(expr.left, ast.Neg)


def test_booleans_and_strings():
    values = arg_values('f(true, false, "reflect", "")')
    assert isinstance(values[0], ast.Bool) and values[0].value is True
    assert isinstance(values[1], ast.Bool) and values[1].value is False
    assert isinstance(values[2], ast.Str) and values[2].value == "reflect"
    assert values[3].value == ""


def test_keyword_arguments_and_trailing_comma():
    (el,) = elements(wrap('conv(64, 3, stride=2, pad=1, padding_mode="reflect",)'))
    args = el.node.args
    assert [a.name for a in args] == [None, None, "stride", "pad", "padding_mode"]
    assert args[4].value.value == "reflect"
    assert (args[2].span.line, args[2].span.column) == (3, 17)


def test_call_with_no_arguments():
    (el,) = elements(wrap("relu()"))
    assert isinstance(el.node, ast.Call) and el.node.args == ()


# -- syntax errors ------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, column, message", [
    ("network N() {\n    input 3x8x8\n    conv(4, 3) relu\n}\n", 3, 16, "unexpected 'relu'"),
    ("network N() {\n    input 3x8x8\n    conv(4, 3 -> relu\n}\n", 3, 15, "unexpected '->'"),
    ("network N() {\n    input 3x8x8\n    conv(4, 3) -> $\n}\n", 3, 19, "unexpected character '$'"),
    ("network N() {\n    input 3x8x8\n    conv(4, 'x')\n}\n", 3, 13, "unexpected character"),
    ("network N() {\n    input 3x8x8\n    conv(4, 3)\n", 3, 15, "unexpected end of file"),
    ("network N( {\n}\n", 1, 12, "unexpected"),
    ("let = conv(4, 3)\n", 1, 5, "unexpected"),
    ("network N() {\n    input 3x8x8\n    conv1 = conv(4, 3)\n}\n", 3, 11, "unexpected"),
])
def test_syntax_error_positions(text, line, column, message):
    diag = syntax_error(text)
    assert (diag.span.line, diag.span.column) == (line, column), diag
    assert message in diag.message
    assert diag.span.file == "g.cnn"


def test_syntax_error_hints():
    assert "'->' is missing" in syntax_error(wrap("conv(4, 3) relu")).hint
    assert "double quotes" in syntax_error(wrap("conv(4, 3, padding_mode='reflect')")).hint
    assert "':'" in syntax_error(wrap("conv1 = conv(4, 3)")).hint


@pytest.mark.parametrize("line", [
    "conv(4, 3 -> relu", "conv(4, 3 3)", "conv(4 +)", "conv(4, 3) -> -> relu", "conv(4, 3))", "[conv(4, 3)",
    "conv(4, 3)* ", "conv(4 // , 3)", "a: b: relu", "conv(4, 3, pad=)", "residual { relu } shortcut",
])
def test_syntax_error_hints_name_tokens_as_written(line):
    """A hint lists what was expected in the user's terms, never a parser-internal terminal name."""
    diag = syntax_error(wrap(line))
    text = f"{diag.message} {diag.hint or ''}"
    assert "anon" not in text.lower() and "__" not in text
    assert diag.span.line in (3, 4)


def test_nul_byte_is_a_diagnostic():
    diag = syntax_error("network N() {\n  in\x00put\n}\n")
    assert (diag.span.line, diag.span.column) == (2, 5)
    assert "NUL" in diag.message


def test_deep_brackets_are_refused_cleanly():
    text = wrap("[" * 200 + "relu" + "]" * 200)
    diag = syntax_error(text)
    assert "nested" in diag.message
    assert diag.span.line == 3


def test_deep_parentheses_in_expression_are_refused_cleanly():
    text = wrap("conv(" + "(" * 300 + "1" + ")" * 300 + ", 3)")
    diag = syntax_error(text)
    assert "nested" in diag.message


def test_long_flat_expression_is_refused_cleanly():
    text = wrap("conv(" + " + ".join(["1"] * 2000) + ", 3)")
    diag = syntax_error(text)
    assert "nested" in diag.message and diag.span.line == 3


@pytest.mark.parametrize("text, line, column, message", [
    (wrap("conv(1234567890123456789012, 3)"), 3, 10, "number too large"),
    (wrap("residual {\n        input 3x8x8\n    }"), 4, 9, "'input' belongs in a network body"),
    (wrap("concat {\n        input 3x8x8\n    }"), 4, 9, "'input' belongs in a network body"),
    ("block B() {\n    input 3x8x8\n}\n", 2, 5, "a block takes its input"),
    ("network N() {\n    input 3x8x8\n    input 3x8x8\n}\n", 3, 5, "a second 'input' line"),
])
def test_errors_raised_while_lowering_are_compile_errors(text, line, column, message):
    """Errors found while building the syntax tree come out as CompileError, not Lark's VisitError."""
    diag = syntax_error(text)
    assert (diag.span.line, diag.span.column) == (line, column), diag
    assert message in diag.message


def test_the_grammar_has_no_lalr_conflicts():
    """Lark resolves a shift/reduce conflict silently (as a shift) unless strict; the
    runtime parser is not strict, so this test is where a conflict would show."""
    import io
    import logging

    from lark import Lark, logger

    text = (ROOT / "cnndsl" / "grammar" / "cnn.lark").read_text(encoding="utf-8")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        Lark(text, parser="lalr", lexer="basic")
        clean = stream.getvalue()
        ambiguous = text.replace('?sum: product | sum "+" product', '?sum: product | sum "+" sum')
        assert ambiguous != text
        Lark(ambiguous, parser="lalr", lexer="basic")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert "conflict" not in clean.lower(), clean
    assert "Shift/Reduce conflict" in stream.getvalue()  # the check sees one when there is one
