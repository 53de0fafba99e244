"""The VS Code extension in editors/vscode/: its TextMate grammar, run by
`vscode-tmgrammar-test` (npm; installed into editors/vscode/node_modules on the first
run) over the hand-written cases in editors/vscode/test/ and over every spec in specs/,
whose assertions are written here from the language server's own reading of each token;
the grammar is what make_grammar.py writes from the layer table; the manifest's pieces
fit together."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from cnndsl.tools.assist import scan

from conftest import ROOT

VSCODE = ROOT / "editors" / "vscode"
RUNNER = VSCODE / "node_modules" / ".bin" / "vscode-tmgrammar-test"

_KEYWORD_SCOPES = {"let": "storage.type.let.cnn", "def": "storage.type.def.cnn", "block": "storage.type.block.cnn",
                   "network": "storage.type.network.cnn", "true": "constant.language.boolean.cnn",
                   "false": "constant.language.boolean.cnn", "x": "keyword.operator.dimension.cnn",
                   **{w: "keyword.operator.logical.cnn" for w in ("and", "or", "not", "if", "else")},
                   "for": "keyword.control.repeat.cnn"}
_DEFINITION_SCOPES = {"let": "variable.other.constant.cnn", "def": "entity.name.function.def.cnn",
                      "block": "entity.name.type.block.cnn", "network": "entity.name.type.network.cnn"}


def expected_scope(tok, next_text: str) -> str | None:
    """The scope the grammar must give a token, from what the language server makes of it."""
    if tok.kind == "comment":
        return "comment.line.number-sign.cnn"
    if tok.kind == "string":
        return "string.quoted.double.cnn"
    if tok.kind == "number":
        return "constant.numeric.shape.cnn" if "x" in tok.text else "constant.numeric.cnn"
    if tok.kind == "op" and tok.text == "->":
        return "keyword.operator.arrow.cnn"
    if tok.kind != "name":
        return None
    if tok.role == "keyword":
        return _KEYWORD_SCOPES.get(tok.text, "keyword.control.cnn")
    if tok.definition and tok.role in _DEFINITION_SCOPES:
        return _DEFINITION_SCOPES[tok.role]
    if tok.role == "label" and next_text == ":":
        return "entity.name.label.cnn"
    if tok.role == "kwarg":
        return "variable.parameter.cnn"
    if tok.role == "layer" and next_text != ":":
        return "support.function.layer.cnn"
    return None


def syntax_test(text: str, title: str) -> str:
    """The spec with an assertion line under each line for each token we know the scope of."""
    out = [f'# SYNTAX TEST "source.cnn" "{title}"']
    tokens = [t for t in scan(text).tokens if t.kind != "newline"]
    by_line: dict[int, list] = {}
    for tok, nxt in zip(tokens, tokens[1:] + [None]):
        by_line.setdefault(tok.line, []).append((tok, nxt.text if nxt is not None and nxt.line == tok.line else ""))
    for number, line in enumerate(text.split("\n"), start=1):
        out.append(line)
        if line.startswith("#"):
            continue  # read as an assertion line by the test runner: not tokenized
        for tok, next_text in by_line.get(number, []):
            scope = expected_scope(tok, next_text)
            if scope is None:
                continue
            column = tok.column - 1
            width = len(tok.text)
            out.append(f"# <{'-' * width} {scope}" if column == 0 else f"#{' ' * (column - 1)}{'^' * width} {scope}")
    return "\n".join(out) + "\n"


def npm_ready() -> None:
    if RUNNER.exists():
        return
    npm = shutil.which("npm")
    assert npm, "the grammar tests need Node.js and npm (Node 20)"
    result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefer-offline"], cwd=VSCODE,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and RUNNER.exists(), result.stdout + result.stderr


def test_the_grammar_is_what_make_grammar_writes():
    sys.path.insert(0, str(VSCODE))
    try:
        import make_grammar
    finally:
        sys.path.remove(str(VSCODE))
    committed = (VSCODE / "syntaxes" / "cnn.tmLanguage.json").read_text()
    assert committed == make_grammar.text(), "run .venv/bin/python editors/vscode/make_grammar.py"


def test_the_manifest_names_the_grammar_the_language_and_the_server():
    manifest = json.loads((VSCODE / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert language["id"] == grammar["language"] == "cnn" and language["extensions"] == [".cnn"]
    assert json.loads((VSCODE / grammar["path"]).read_text())["scopeName"] == grammar["scopeName"]
    configuration = json.loads((VSCODE / language["configuration"]).read_text())
    assert configuration["comments"]["lineComment"] == "#"
    assert ["(", ")"] in configuration["brackets"] and ["{", "}"] in configuration["brackets"]
    extension = (VSCODE / manifest["main"]).read_text()
    assert 'args: ["lsp"]' in extension and "inlayHints" in extension
    assert set(manifest["contributes"]["configuration"]["properties"]) == {"cnndsl.path", "cnndsl.inlayHints"}
    node = shutil.which("node")
    assert node, "the extension's checks need Node.js"
    checked = subprocess.run([node, "--check", str(VSCODE / manifest["main"])], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_grammar_over_every_spec(tmp_path):
    npm_ready()
    specs = sorted((ROOT / "specs").glob("*.cnn")) + sorted((ROOT / "specs" / "examples").glob("*.cnn"))
    assert len(specs) > 20
    asserted = 0
    for spec in specs:
        test = syntax_test(spec.read_text(), f"specs/{spec.relative_to(ROOT / 'specs')}")
        asserted += sum(1 for line in test.splitlines() if re.match(r"#\s*(\^|<-)", line))
        (tmp_path / spec.name).write_text(test)
    for case in (VSCODE / "test").glob("*.cnn"):
        shutil.copy(case, tmp_path / f"case_{case.name}")
    result = subprocess.run([str(RUNNER), "-g", str(VSCODE / "syntaxes" / "cnn.tmLanguage.json"),
                             str(tmp_path / "*.cnn")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert result.stdout.count("run successfuly") == len(specs) + len(list((VSCODE / "test").glob("*.cnn")))
    assert asserted > 1000  # thousands of tokens checked, not a handful


@pytest.mark.parametrize("line, scopes", [
    ("    conv1: conv(64, 3)", ["entity.name.label.cnn", "support.function.layer.cnn", "constant.numeric.cnn"]),
])
def test_assertions_are_written_under_their_tokens(line, scopes):
    test = syntax_test(f"network N() {{\n{line}\n}}\n", "t").splitlines()
    under = test[test.index(line) + 1:test.index(line) + 1 + len(scopes)]
    assert [u.split()[-1] for u in under] == scopes
    assert under[0].index("^") == line.index("conv1")
