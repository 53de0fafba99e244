"""Syntax errors by example, and every syntax error of a file at once.

The snippets of `cnndsl/syntax_errors.py` are grammar tests: each must fail to parse and
find its own hint. A file with several independent mistakes reports each at its line,
the same list through `check`, `check --format json` and `compile`."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

import cnndsl
import cnndsl.compiler
from cnndsl import CompileError
from cnndsl.compiler import source_from_text
from cnndsl.parse import parse, parser
from cnndsl.syntax_errors import EXAMPLES, failure, match

SNIPPETS = [(i, snippet) for i, example in enumerate(EXAMPLES) for snippet in example.snippets]


def errors(text: str) -> list:
    with pytest.raises(CompileError) as info:
        parse(source_from_text(text, "s.cnn"))
    return info.value.diagnostics


@pytest.mark.parametrize("index, snippet", SNIPPETS)
def test_every_snippet_fails_and_finds_its_own_example(index, snippet):
    exc = failure(parser().parse, snippet)
    assert exc is not None, f"{snippet!r} parses"
    assert match(exc, parser().parse) is EXAMPLES[index]
    (diagnostic,) = errors(snippet)  # one mistake, one diagnostic: the recovery adds none
    assert diagnostic.code == "syntax"


def test_no_two_examples_claim_the_same_parser_state():
    seen: dict = {}
    for index, snippet in SNIPPETS:
        exc = failure(parser().parse, snippet)
        key = (exc.state.position, exc.token.type)
        assert seen.setdefault(key, index) == index, f"{snippet!r} is claimed by examples {seen[key]} and {index}"


THREE = """network N() {
    input 3x8x8
    conv(4, 3) relu
    relu
    conv(4, 3, pad=)
    maxpool(2)
    fc(10 -> relu
}
"""


def test_three_independent_syntax_errors_give_three_diagnostics_at_their_lines():
    found = errors(THREE)
    assert [(d.span.line, d.span.column) for d in found] == [(3, 16), (5, 20), (7, 11)]
    assert [d.hint for d in found] == ["a '->' is missing between two layers on one line",
                                       "a keyword argument needs a value, as in pad=1", "a ')' is missing"]


def test_errors_in_several_definitions_are_each_reported():
    text = ("let A = conv(4, 3) relu\n"
            "block B {\n    relu\n}\n"
            "network N() {\n    input 3x8x8\n    conv(4,\n      3 -> relu\n    relu\n}\n")
    assert [d.span.line for d in errors(text)] == [1, 2, 8]


def test_check_compile_json_and_the_language_server_show_the_same_list(tmp_path):
    spec = tmp_path / "three.cnn"
    spec.write_text(THREE)
    as_json = json.loads(run_cli("check", "--format", "json", str(spec)).stdout)
    assert [(d["line"], d["column"]) for d in as_json] == [(3, 16), (5, 20), (7, 11)]
    from cnndsl.tools.lsp import analyze  # what the language server publishes

    assert [(d.span.line, d.span.column) for d in analyze(THREE, str(spec)).diagnostics] == [(3, 16), (5, 20), (7, 11)]
    for command in (("check",), ("compile",)):
        result = run_cli(*command, str(spec))
        assert result.returncode == 1
        assert [line for line in result.stderr.splitlines() if line.startswith("  --> ")] == [
            f"  --> {spec}:3:16", f"  --> {spec}:5:20", f"  --> {spec}:7:11"]


def test_a_network_without_parentheses_says_what_to_write():
    (d,) = errors("network Tiny {\n    input 3x8x8\n    relu\n}\n")
    assert (d.span.line, d.span.column) == (1, 14)
    assert d.message == "expected '(' after the name"
    assert "network Tiny() {" in d.hint
    (d,) = errors("block Widen {\n    relu\n}\n")
    assert "block Widen() {" in d.hint


def test_an_unclosed_bracket_is_reported_where_it_opens():
    (d,) = errors("network N() {\n    input 3x8x8\n    [conv(4, 3) -> relu\n    relu\n}\n")
    assert (d.span.line, d.span.column) == (3, 5)
    assert d.message == "'[' is never closed" and "']'" in d.hint


def test_a_pytorch_argument_name_hints_the_cnndsl_one():
    with pytest.raises(CompileError) as info:
        cnndsl.check("network N() {\n    input 3x8x8\n    conv(32, 3, padding=1)\n}\n")
    (d,) = info.value.diagnostics
    assert d.message == "conv has no parameter 'padding'"
    assert "'pad'" in d.hint and "padding_mode" not in d.hint


def test_an_input_written_height_width_channels_is_warned_about():
    (warning,) = cnndsl.check("network N() {\n    input 32x32x3\n    conv(4, 3)\n}\n")
    assert warning.code == "input-order" and warning.span.line == 2
    assert "input 3x32x32" in warning.hint
    assert cnndsl.check("network N() {\n    input 3x32x32\n    conv(4, 3)\n}\n") == []


def _two_lines(text: str) -> list[int]:
    """The first and last line of a spec's body that end a call (`... maxpool(3, stride=2)`)."""
    lines = text.split("\n")
    body = next(i for i, line in enumerate(lines) if line.startswith(("network", "block")))  # past the defs
    found = [i for i, line in enumerate(lines) if i > body and line.rstrip().endswith(")") and "(" in line
             and not line.lstrip().startswith(("#", "network", "block", "let", "def"))]
    return [found[0], found[-1]]


@pytest.mark.parametrize("mistake", ["a missing arrow", "a missing parenthesis"])
@pytest.mark.parametrize("name", ["alexnet", "googlenet", "lenet5", "preact_resnet18", "resnet50", "zfnet"])
def test_two_mistakes_in_a_builtin_give_two_diagnostics_and_no_cascade(name, mistake):
    text = cnndsl.compiler.load(name).text
    lines = text.split("\n")
    picked = _two_lines(text)
    assert picked[0] < picked[1]
    for i in picked:
        lines[i] = lines[i] + " relu" if mistake == "a missing arrow" else lines[i].rstrip()[:-1]
    found = errors("\n".join(lines))
    assert [d.span.line for d in found] == [i + 1 for i in picked], [d.message for d in found]


def test_recovery_from_many_errors_in_a_large_file_is_bounded(monkeypatch):
    """The fuzz campaign's seed 1202012 (a token-mutated mobilenet_v2 spec of 28,000
    characters with many errors): each error's recovery reparses the file up to its next
    error, and with a budget of 400,000 characters that took 2.3 s of CPU. The work, counted
    as the characters Lark reads before each error, stays under 160,000 now (about half a
    second), and the first errors are still reported."""
    from pathlib import Path

    import cnndsl.parse as parse_module

    path = Path(__file__).parent / "data" / "fuzz_open_seed1202012.cnn"
    read = []
    error = parse_module._error

    def counting(source, text, exc):
        read.append(getattr(exc, "pos_in_stream", None) or getattr(getattr(exc, "token", None), "start_pos", 0) or 0)
        return error(source, text, exc)

    monkeypatch.setattr(parse_module, "_error", counting)
    with pytest.raises(CompileError) as caught:
        parse(source_from_text(path.read_text(), str(path)))
    assert len(caught.value.diagnostics) >= 5
    assert all(d.span.line >= 1 for d in caught.value.diagnostics)
    assert sum(read) < 160_000, f"{len(read)} reparses read {sum(read):,} characters"


def test_recovery_scans_each_run_of_blank_lines_once(monkeypatch):
    """The fuzz campaign's seed 1205002 (a mutated vgg13_bn spec with nine errors): after each
    error the statement is blanked, and "does a `->` come next" was asked at every line break
    of the blanked run, each time scanning to its end: quadratic, 2.7 s of CPU. One scan
    answers for every line start before the next character that counts, so each recovery
    scan reads each character of the file at most once."""
    from pathlib import Path

    import cnndsl.parse as parse_module

    path = Path(__file__).parent / "data" / "fuzz_blanked_runs.cnn"
    text = path.read_text()
    scans: list = []  # every _Arrows, kept alive, with the characters its scans read
    original = parse_module._Arrows.next

    def counting(self, i):
        before = self.until
        answer = original(self, i)
        if i > before:  # a scan ran, from i to self.until
            if not hasattr(self, "read"):
                self.read = 0
                scans.append(self)
            self.read += self.until - i + 1
        return answer

    monkeypatch.setattr(parse_module._Arrows, "next", counting)
    with pytest.raises(CompileError) as caught:
        parse(source_from_text(text, str(path)))
    assert len(caught.value.diagnostics) >= 5
    assert scans and max(a.read for a in scans) <= len(text) + 1
