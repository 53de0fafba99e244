"""The parser's fast path (cnndsl/descent.py) reads every file it accepts exactly as Lark's
LALR parser with lower.py does: the same nodes with the same spans, and it accepts no file
that Lark rejects. Checked on every spec in the repository, on the programs written in the
tests, and on seeded random mutations of the built-in specs (most of them syntax errors)."""

from __future__ import annotations

import ast as pyast
import random
from pathlib import Path

import pytest

from cnndsl import descent
from cnndsl.compiler import source_from_text
from cnndsl.errors import CnndslError
from cnndsl.lower import lower
from cnndsl.parse import _expression_parser, _parse_all, parse

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "cnndsl" / "specs").rglob("*.cnn"))
FILES = sorted(set(SPECS) | set((ROOT / "tests").rglob("*.cnn")))


def lark(source):
    """Lark's path alone: the parse tree, lowered; None for a file with an error."""
    try:
        return lower(_parse_all(source), source, _expression_parser(source))
    except CnndslError:
        return None


def same_or_declined(text: str, name: str = "m.cnn") -> str:
    source = source_from_text(text, name)
    fast = descent.read(source)
    if fast is None:
        return "declined"
    slow = lark(source)
    assert slow is not None, f"the fast path accepts what Lark rejects:\n{text}"
    assert fast == slow, f"the fast path reads it otherwise than Lark:\n{text}"
    return "same"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_spec_file_reads_alike(path):
    same_or_declined(path.read_text(encoding="utf-8"), str(path))


def test_the_fast_path_reads_every_built_in_spec():
    """The speed-up is real: no built-in falls back to Lark."""
    declined = [p.name for p in SPECS if descent.read(source_from_text(p.read_text(encoding="utf-8"), p.name)) is None]
    assert declined == []


def _test_programs() -> list[str]:
    """The programs written as string constants in the test files."""
    found = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.Constant) and isinstance(node.value, str) and "{" in node.value \
                    and any(word in node.value for word in ("network ", "block ", "def ")) and "\x00" not in node.value:
                found.append(node.value)
    return found


def test_the_programs_in_the_tests_read_alike():
    results = [same_or_declined(text) for text in _test_programs()]
    assert results.count("same") > 150  # most are well formed: the fast path reads them


PIECES = ["(", ")", "[", "]", "{", "}", ",", "->", "\n", " ", "*", "?", "=", ":", "x", "1", "(2)", "-", "input",
          "not ", " if ", " else ", "**", "#c\n", "\n->", '"a{i}"', ".", "1.5", "e", "shortcut", "residual", "side ",
          "concat", "for i", '"', "//", "(3)", "x 2", "\n\n", "side(a.b) ", ".4", "side(a.4) ",
          "init {\n conv: zeros\n}\n", "init", "init=", '"x" conv', "?(true)",
          "add {\n", "mul {", "from(a) ", "from(a.4) ", " reads(a.4)", " reads(low)", "reads"]


def _mutant(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(text))
        roll = rng.random()
        if roll < 0.4:
            text = text[:at] + text[at + rng.randint(1, 4):]
        elif roll < 0.8:
            text = text[:at] + rng.choice(PIECES) + text[at:]
        else:
            other = rng.randrange(len(text))
            text = text[:at] + text[other:other + rng.randint(1, 10)] + text[at:]
    return text


@pytest.mark.parametrize("seed", range(4))
def test_mutated_specs_are_read_alike_or_left_to_lark(seed):
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8") for p in SPECS] + _test_programs()
    results = [same_or_declined(_mutant(rng, rng.choice(texts))) for _ in range(250)]
    assert results.count("same") >= 10 and results.count("declined") >= 100


def test_parse_uses_the_fast_path_and_lark_gives_the_errors():
    good = "network N() {\n    input 3x32x32\n    conv(8, 3) -> relu\n}\n"
    assert parse(source_from_text(good, "g.cnn")) == lark(source_from_text(good, "g.cnn"))
    bad = "network N() {\n    input 3x32x32\n    conv(8, 3) -> -> relu\n}\n"
    assert descent.read(source_from_text(bad, "b.cnn")) is None
    with pytest.raises(CnndslError) as info:
        parse(source_from_text(bad, "b.cnn"))
    assert info.value.diagnostics[0].span.line == 3


@pytest.mark.parametrize("text", [
    "def f = " + "-" * 5000 + "1\n",  # deeper than the passes allow: Lark's path refuses it
    "def f = " + "not " * 3000 + "true\n",
    "network N() {\n    input 3x8x8\n    " + "side " * 3000 + "relu\n}\n",
    "def f = " + "(" * 60 + "1" + ")" * 60 + "\n",
])
def test_hostile_depth_is_left_to_lark(text):
    assert descent.read(source_from_text(text, "h.cnn")) is None
    with pytest.raises(CnndslError):
        parse(source_from_text(text, "h.cnn"))


def test_too_many_tokens_are_left_to_lark():
    many = "def f = [" + "a, " * descent.MAX_TOKENS + "]\n"
    assert descent.read(source_from_text(many, "t.cnn")) is None
    huge = "def f = [" + "a, " * 300_000 + "]\n"  # declined once matched, before its tokens are read
    assert descent.read(source_from_text(huge, "t.cnn")) is None


@pytest.mark.parametrize("end", ["", "  ", " \t\f", "\n", "\n  ", "  # a comment  ", "\n# a comment\n\n"])
def test_the_fast_path_reads_a_file_however_it_ends(end):
    """Blanks, a comment or line breaks after the last token (END takes trailing blanks
    in two matches: the blanks, then nothing)."""
    assert same_or_declined("network N() {\n    input 3x8x8\n    conv(8, 3) -> relu\n}" + end) == "same"
