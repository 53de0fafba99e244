"""`cnndsl fmt`: the canonical layout, its invariants (same parse tree, idempotent,
independent of the input's spacing, comments kept), and the command as CI runs it."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from lark.exceptions import UnexpectedInput

from cnndsl.compiler import source_from_text
from cnndsl.tools.fmt import _is_keyword, _tokens, format_source, format_text
from cnndsl.parse import parser

from conftest import ROOT, SPECS, run_cli

ALL_SPECS = sorted(SPECS.rglob("*.cnn"))

MESSY = """\
   # header comment


let   A=conv( 32,3 ,pad = 1 )# trailing a
let B   =  maxpool(2)   ->
   relu     # after arrow
block Basic( out , k, stride=1 , pad = -1 ) {

   conv: conv(out, k, stride = stride, pad=pad*2+ -1, bias = false)->bn: batchnorm(eps=0.001)->relu


   # comment before close
}
block Bottleneck(planes, stride = 1) {
  residual {     # y = relu(body(x) + shortcut(x))
     conv1: conv(planes, 1, bias=false) -> bn1: batchnorm -> relu
        conv3: conv(planes *4, 1,
                 bias=false) -> bn3: batchnorm
   } shortcut downsample: projection
  relu
}
network N(classes=10, POOL = false) {
input 3 x 32 x (16*2)
  x1: [A -> relu]*2 -> B?pool -> [Basic(8, 3)]*(classes // 5)
  concat { a: A
     b: Basic(4,1) }
    -> side [ fc(10) ]
  features: [
  [A -> relu]
  -> [A]   # one
  -> A    # two is longer
  ]
  fc(classes)
}
# the end


"""

CANONICAL = """\
# header comment

let A = conv(32, 3, pad=1)  # trailing a

let B = maxpool(2)
    -> relu  # after arrow

block Basic(out, k, stride = 1, pad = -1) {
    conv: conv(out, k, stride=stride, pad=pad * 2 + -1, bias=false) -> bn: batchnorm(eps=0.001) -> relu

    # comment before close
}

block Bottleneck(planes, stride = 1) {
    residual {  # y = relu(body(x) + shortcut(x))
        conv1: conv(planes, 1, bias=false) -> bn1: batchnorm -> relu
        conv3: conv(planes * 4, 1,
            bias=false) -> bn3: batchnorm
    } shortcut downsample: projection
    relu
}

network N(classes = 10, POOL = false) {
    input 3 x 32 x (16 * 2)
    x1: [A -> relu]*2 -> B?pool -> [Basic(8, 3)]*(classes // 5)
    concat { a: A
        b: Basic(4, 1) }
        -> side [fc(10)]
    features: [
           [A -> relu]
        -> [A]  # one
        -> A    # two is longer
    ]
    fc(classes)
}
# the end
"""


def comments(text: str) -> list[str]:
    return [c.rstrip() for c in re.findall(r"#[^\n]*", text)]


def test_messy_input_gets_the_canonical_layout():
    assert format_text(MESSY) == CANONICAL


def test_output_parses_to_the_same_tree_and_is_a_fixed_point():
    out = format_text(MESSY)
    assert parser().parse(out) == parser().parse(MESSY)
    assert format_text(out) == out


def test_comments_are_kept_in_order():
    assert comments(format_text(MESSY)) == comments(MESSY)
    assert len(comments(MESSY)) == 8


@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda p: str(p.relative_to(SPECS)))
def test_every_spec_is_formatted(path: Path):
    source = source_from_text(path.read_text(encoding="utf-8"), str(path))
    assert format_source(source) == source.text, f"run: cnndsl fmt {path.relative_to(ROOT)}"


def _respace(text: str, rng: random.Random) -> str:
    """The same tokens and line breaks with random horizontal whitespace: spaces and tabs
    between tokens on a line (never joining two tokens that were apart) and random
    indentation."""
    tokens = _tokens(text)
    out = [text[: tokens[0].start_pos], str(tokens[0])]
    for a, b in zip(tokens, tokens[1:]):
        gap = text[a.end_pos : b.start_pos]
        if "\n" in gap:
            head, _, _ = gap.rpartition("\n")
            gap = head + "\n" + rng.choice(["", " ", "\t", "        ", "   "])
        elif "#" not in gap and "\\" not in gap and not (_is_keyword(a) and str(b) == "("):
            lowest = 1 if gap else 0
            gap = "".join(rng.choice(" \t") for _ in range(rng.randint(lowest, 3)))
        out += [gap, str(b)]
    out.append(text[tokens[-1].end_pos :])
    return "".join(out)


def _parses(path: Path) -> bool:
    try:
        parser().parse(path.read_text(encoding="utf-8"))
    except UnexpectedInput:  # reported by test_every_spec_is_formatted
        return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_layout_does_not_depend_on_the_input_spacing(seed: int):
    rng = random.Random(seed)
    for text in [MESSY] + [p.read_text(encoding="utf-8") for p in ALL_SPECS if _parses(p)]:
        respaced = _respace(text, rng)
        assert parser().parse(respaced) == parser().parse(text)
        assert format_text(respaced) == format_text(text)


def test_trailing_arrow_moves_to_the_next_line_and_backslash_joins():
    text = "network N() {\n    input 3x8x8\n    conv(4, 3) ->   # why\n  relu\n    fc(10) \\\n  -> relu\n}\n"
    assert format_text(text) == (
        "network N() {\n    input 3x8x8\n    conv(4, 3)  # why\n        -> relu\n    fc(10) -> relu\n}\n")


def test_operators_and_unary_minus():
    text = "let X = conv(-1 + 2*3 - -4, a=-(2), b = 7 // 2 % 3)*(N- 1)\n"
    assert format_text(text) == "let X = conv(-1 + 2 * 3 - -4, a=-(2), b=7 // 2 % 3)*(N - 1)\n"


def test_a_keyword_before_a_parenthesis_keeps_its_spacing():
    text = "network N() {\n    input  (2 * 2) x 8 x 8\n    a: conv(4, 3)\n    b: side(a)   fc(2)\n    relu\n}\n"
    assert format_text(text) == (
        "network N() {\n    input (2 * 2) x 8 x 8\n    a: conv(4, 3)\n    b: side(a) fc(2)\n    relu\n}\n")
    assert parser().parse(format_text(text)) == parser().parse(text)


def test_a_file_of_comments_only_and_an_empty_file():
    assert format_text("\n\n  # a\n\n\n# b   \n\n") == "# a\n\n# b\n"
    assert format_text("") == ""


def test_fmt_check_lists_changed_files_and_exits_1(tmp_path: Path):
    good = tmp_path / "good.cnn"
    bad = tmp_path / "bad.cnn"
    good.write_text(CANONICAL)
    bad.write_text(MESSY)
    result = run_cli("fmt", "--check", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.strip() == f"would reformat {bad}"
    assert bad.read_text() == MESSY  # --check changes nothing


def test_fmt_rewrites_files_in_place(tmp_path: Path):
    bad = tmp_path / "bad.cnn"
    bad.write_text(MESSY)
    result = run_cli("fmt", str(bad))
    assert result.returncode == 0, result.stderr
    assert bad.read_text() == CANONICAL
    assert run_cli("fmt", "--check", str(bad)).returncode == 0


def test_fmt_reads_stdin():
    result = run_cli("fmt", "-", input=MESSY)
    assert result.returncode == 0 and result.stdout == CANONICAL


def test_fmt_reports_a_syntax_error_as_a_diagnostic(tmp_path: Path):
    broken = tmp_path / "broken.cnn"
    broken.write_text("network N() {\n    input 3x8x8\n    conv(4, 3 -> relu\n}\n")
    result = run_cli("fmt", str(broken))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{broken}:3:" in result.stderr
    assert broken.read_text().startswith("network N() {\n    input 3x8x8\n    conv(4, 3 -> relu")


def test_ci_specs_are_formatted():
    """What CI runs: `cnndsl fmt --check specs`."""
    result = run_cli("fmt", "--check", "specs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"0 file(s) would be reformatted, {len(ALL_SPECS)} unchanged" in result.stderr


def test_a_side_outputs_path_stays_tight():
    """`side(backbone.4)`: `.4` lexes as a number, and stays against the name before it."""
    text = "network N() {\n    input 3x8x8\n    g: [a: [conv(4, 1) -> relu]]\n    s: side(g.a.0) fc(2)\n" \
        "    t: side(g.a.1)   fc(2)\n    outputs(s, t)\n}\n"
    assert format_text(text) == text.replace(")   fc", ") fc")
    assert format_text(text.replace("g.a.0", "g .a .0")) == text.replace(")   fc", ") fc")
