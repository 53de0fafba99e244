"""Syntax highlighting for `.cnn` files: a Pygments lexer, beside the pipeline.

Registered as the `pygments.lexers` entry point `cnn`, so that `pygmentize -l cnn`,
Sphinx, MkDocs and `rich` colour specs, and passed to `report.render` (by the CLI and fmt) to show the
source line of a diagnostic in colour on a terminal. The vocabulary comes from the
compiler itself: keywords from `grammar/cnn.lark` (a keyword added there is coloured
without a change here), layer kinds and shortcut kinds from `layers.py`. Only the
pieces that need a colour are told apart; the grammar decides what is valid.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pygments.formatters import TerminalFormatter
from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from ..expr import FUNCTIONS
from ..layers import RULES, SHORTCUTS
from ..passes.inits import FUNCTIONS as INIT_FUNCTIONS, LAST_NORM
from ..resources import grammar_text

_CONSTANTS = ("true", "false")


def _grammar_keywords() -> tuple[str, ...]:
    """Every quoted word of the grammar ("network", "side", ...), less the constants
    and the `x` of `input 3 x 32 x 32`, which is an operator there."""
    found = set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', grammar_text()))
    return tuple(sorted(found - set(_CONSTANTS) - {"x"}))


def _layer_words() -> tuple[str, ...]:
    kinds = set(RULES) | {k.upper() for k in RULES} | {"INPUT"}
    return tuple(sorted(kinds))


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class CnnLexer(RegexLexer):
    """The .cnn language of cnndsl: CNNs as chains of layers (`conv(64, 3) -> relu`)."""

    name = "cnndsl"
    aliases = ["cnn", "cnndsl"]
    filenames = ["*.cnn"]
    mimetypes = ["text/x-cnndsl"]

    tokens = {
        "root": [
            (r"[ \t\f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"\\[ \t\f]*\r?\n", Text),  # a line continuation
            (r"#.*$", Comment.Single),
            (rf"(let)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Constant)),
            (rf"(def)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (rf"(block|network)(\s+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"({_NAME})(\s*)(:)", bygroups(Name.Label, Whitespace, Punctuation)),
            (rf"({_NAME})(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (rf"(\?)({_NAME})", bygroups(Operator, Name.Variable)),  # an explicit switch: POOL?pool
            (words(_grammar_keywords(), suffix=r"\b"), Keyword),
            (words(_CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (words(SHORTCUTS, suffix=r"\b"), Name.Builtin.Pseudo),
            (words(tuple(FUNCTIONS), suffix=r"\b(?=\s*\()"), Name.Builtin),
            (words((*INIT_FUNCTIONS, LAST_NORM, "sqrt"), suffix=r"\b"), Name.Builtin),  # init { conv: zeros }
            (words(_layer_words(), suffix=r"\b"), Name.Builtin),
            (r"\d+(x\d+)+\b", Number),  # a shape: 3x224x224
            (r"\d+\.\d*([eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+([eE][-+]?\d+)?", Number.Float),
            (r"\d+", Number.Integer),
            (r'"[^"\\\n]*"', String.Double),
            (r"\bx\b", Operator.Word),  # input in_channels x size x size
            (_NAME, Name),
            (r"->", Operator),
            (r"\*\*|//|==|!=|<=|>=|[-+*/%?=<>]", Operator),
            (r"[()\[\]{},:.]", Punctuation),  # `.` of input.channels
        ],
    }


@lru_cache(maxsize=1)
def _formatter() -> TerminalFormatter:
    return TerminalFormatter()


def highlight_line(line: str) -> str:
    """One source line with ANSI colours, for a diagnostic on a terminal."""
    from pygments import highlight

    return highlight(line, CnnLexer(), _formatter()).rstrip("\n")


__all__ = ["CnnLexer", "highlight_line"]
