"""The Pygments lexer: found through its entry point, every spec lexed without an error
token, the parts told apart, and diagnostics coloured on a terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator

from cnndsl.compiler import source_from_text
from cnndsl.diagnostics import Diagnostic
from cnndsl.report import render
from cnndsl.tools.highlight import highlight_line
from cnndsl.tools.highlight import CnnLexer
from cnndsl.parse import parser

from conftest import ROOT, SPECS

ALL_SPECS = sorted(SPECS.rglob("*.cnn"))


def test_registered_as_a_pygments_plugin():
    assert isinstance(get_lexer_by_name("cnn"), CnnLexer)
    assert isinstance(get_lexer_for_filename("specs/vgg16.cnn"), CnnLexer)


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_spec_lexes_without_errors(path: Path):
    text = path.read_text(encoding="utf-8")
    tokens = list(CnnLexer().get_tokens(text))
    assert [t for t, v in tokens if t in Error] == []
    assert "".join(v for _, v in tokens) == text


def test_the_parts_of_a_spec_are_told_apart():
    text = ('let POOL = maxpool(2)  # 2x2\nnetwork N(k = 3) {\n    input 3x32x32\n'
            '    c1: conv(8, k, pad=1) -> POOL?pool -> side [fc(10)] -> dropout(0.5, inplace=true)\n}\n')
    kinds: dict = {}
    for kind, value in CnnLexer().get_tokens(text):
        kinds.setdefault(value, kind)  # where a word first appears
    assert kinds["let"] in Keyword and kinds["POOL"] is Name.Constant
    assert kinds["# 2x2"] in Comment and kinds["network"] in Keyword and kinds["N"] is Name.Class
    assert kinds["3x32x32"] in Number and kinds["c1"] is Name.Label and kinds["conv"] is Name.Builtin
    assert kinds["pad"] is Name.Attribute and kinds["->"] in Operator and kinds["pool"] is Name.Variable
    assert kinds["side"] in Keyword and kinds["true"] is Keyword.Constant and kinds["0.5"] in Number.Float


def test_every_keyword_of_the_grammar_is_a_keyword():
    """Token-driven: a keyword added to the grammar is highlighted as one."""
    lexer = CnnLexer()
    words = {str(t.pattern.value) for t in parser().terminals
             if t.pattern.type == "str" and str(t.pattern.value).isidentifier()}
    assert {"let", "network", "block", "side", "residual"} <= words
    for word in words - {"x", "true", "false"}:
        ((kind, value), *_) = lexer.get_tokens(word)
        assert kind in Keyword, word


def test_diagnostics_show_the_highlighted_line_only_in_colour():
    source = source_from_text("network N() {\n    input 3x3x3\n    c1: conv(8, 5)\n}\n", "h.cnn")
    d = Diagnostic.error(source.span_at(source.text.index("conv(")), "filter larger than input", "use 3")
    plain = render([d], {"h.cnn": source})
    assert " 3 |     c1: conv(8, 5)" in plain and "\x1b[" not in plain
    coloured = render([d], {"h.cnn": source}, color=True, highlight=highlight_line)
    line = next(x for x in coloured.splitlines() if x.startswith(" 3 |"))
    assert "\x1b[" in line and line.count("\x1b[") >= 4  # the label, conv and the numbers are coloured


def test_diagnostics_render_without_pygments():
    code = ("import sys; sys.modules['pygments'] = None\n"
            "from cnndsl.compiler import source_from_text\n"
            "from cnndsl.diagnostics import Diagnostic\n"
            "from cnndsl.report import render\n"
            "from cnndsl.tools import line_highlighter\n"
            "s = source_from_text('network N() {\\n}\\n', 'p.cnn')\n"
            "assert line_highlighter() is None\n"
            "print(render([Diagnostic.error(s.span_at(0), 'boom')], {'p.cnn': s}, color=True,\n"
            "             highlight=line_highlighter()))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert " 1 | network N() {" in result.stdout


def test_pygmentize_highlights_a_spec():
    pygmentize = Path(sys.executable).with_name("pygmentize")
    result = subprocess.run([str(pygmentize), "-l", "cnn", "-f", "terminal", str(SPECS / "lenet5.cnn")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" in result.stdout and "LeNet5" in result.stdout


def test_rich_finds_the_lexer_by_file_name():
    from rich.console import Console
    from rich.syntax import Syntax

    syntax = Syntax.from_path(str(SPECS / "lenet5.cnn"))
    assert isinstance(syntax.lexer, CnnLexer)
    console = Console(force_terminal=True, color_system="truecolor", width=100)
    with console.capture() as captured:
        console.print(syntax)
    assert "LeNet5" in captured.get() and "\x1b[" in captured.get()
