"""Writes syntaxes/cnn.tmLanguage.json, the TextMate grammar of `.cnn` files, from the
compiler's own facts: the keywords the language server knows and the layer kinds of
`cnndsl/layers.py`'s table. `tests/test_vscode.py` fails when the committed grammar is
not what this script writes, so a new layer kind reaches the editor by rerunning it:

    .venv/bin/python editors/vscode/make_grammar.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from cnndsl.expr import FUNCTIONS  # noqa: E402
from cnndsl.layers import RULES, SHORTCUTS  # noqa: E402
from cnndsl.passes.inits import FUNCTIONS as INIT_FUNCTIONS, LAST_NORM  # noqa: E402

NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _words(words, case: str = "") -> str:
    return rf"\b(?{case}:" + "|".join(sorted(words, key=lambda w: (-len(w), w))) + r")\b"


def grammar() -> dict:
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "cnn",
        "scopeName": "source.cnn",
        "fileTypes": ["cnn"],
        "patterns": [{"include": "#comment"}, {"include": "#definition"}, {"include": "#code"}],
        "repository": {
            "comment": {"name": "comment.line.number-sign.cnn", "match": "#.*$"},
            "definition": {"patterns": [
                {"match": rf"^\s*(let)\s+({NAME})",
                 "captures": {"1": {"name": "storage.type.let.cnn"}, "2": {"name": "variable.other.constant.cnn"}}},
                {"match": rf"^\s*(def)\s+({NAME})",
                 "captures": {"1": {"name": "storage.type.def.cnn"}, "2": {"name": "entity.name.function.def.cnn"}}},
                {"match": rf"^\s*(block)\s+({NAME})",
                 "captures": {"1": {"name": "storage.type.block.cnn"}, "2": {"name": "entity.name.type.block.cnn"}}},
                {"match": rf"^\s*(network)\s+({NAME})",
                 "captures": {"1": {"name": "storage.type.network.cnn"},
                              "2": {"name": "entity.name.type.network.cnn"}}},
            ]},
            "code": {"patterns": [
                {"include": "#comment"},
                {"name": "string.quoted.double.cnn", "match": r'"[^"\\\n]*"'},
                {"name": "constant.numeric.shape.cnn", "match": r"\b\d+(?:x\d+)+\b"},
                {"name": "constant.numeric.cnn",
                 # `.4` is a number wherever it stands (after a name too: `side(backbone.4)`, as the
                 # lexer reads it); digits after a letter are part of the name (`conv1`)
                 "match": r"\.\d+(?:[eE][-+]?\d+)?|(?<![A-Za-z_])(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+)"},
                {"name": "constant.language.boolean.cnn", "match": r"\b(?:true|false)\b"},
                {"name": "keyword.control.cnn",
                 "match": _words(("input", "outputs", "concat", "split", "residual", "shortcut", "side", "gate",
                                  "init", "add", "mul", "reads"))},
                {"name": "keyword.operator.logical.cnn", "match": _words(("and", "or", "not", "if", "else"))},
                {"name": "keyword.control.repeat.cnn", "match": _words(("for",))},
                {"name": "keyword.control.cnn", "match": _words(("from", "import"))},
                {"match": rf"\b({NAME})\s*(:)(?!:)",
                 "captures": {"1": {"name": "entity.name.label.cnn"}, "2": {"name": "punctuation.separator.label.cnn"}}},
                {"match": rf"\b({NAME})\s*(=)(?!=)",
                 "captures": {"1": {"name": "variable.parameter.cnn"}, "2": {"name": "keyword.operator.assignment.cnn"}}},
                {"name": "support.function.layer.cnn", "match": _words(set(RULES) | set(SHORTCUTS), "i")},  # RELU is relu
                {"name": "support.function.builtin.cnn", "match": _words(FUNCTIONS) + r"(?=\s*\()"},
                {"name": "support.function.init.cnn", "match": _words((*INIT_FUNCTIONS, LAST_NORM, "sqrt"))},
                {"name": "entity.name.function.call.cnn", "match": rf"\b{NAME}(?=\s*\()"},
                {"name": "keyword.operator.arrow.cnn", "match": "->"},
                {"name": "keyword.operator.comparison.cnn", "match": r"==|!=|<=|>=|[<>]"},
                {"name": "keyword.operator.cnn", "match": r"\*\*|//|[-+*/%?]"},
                {"name": "keyword.operator.dimension.cnn", "match": r"\bx\b"},
                {"name": "punctuation.separator.comma.cnn", "match": ","},
                {"name": "punctuation.bracket.cnn", "match": r"[(){}\[\]]"},
                {"name": "variable.other.cnn", "match": NAME},
            ]},
        },
    }


def text() -> str:
    return json.dumps(grammar(), indent=2) + "\n"


if __name__ == "__main__":
    (HERE / "syntaxes" / "cnn.tmLanguage.json").write_text(text())
