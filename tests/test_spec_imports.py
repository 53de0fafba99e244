"""Imports between specs (issue 11): `from resnet50 import Bottleneck` (a built-in by name)
and `from "blocks.cnn" import Pair` (a file relative to the importing one). What an
imported definition uses comes with it; cycles, missing files and names, clashes and
errors inside an imported file are diagnostics at file:line:col; the language server's
go-to-definition follows imports."""

from __future__ import annotations

import pytest

from cnndsl import CompileError
from cnndsl.compiler import compile_network, generate, read_source
from cnndsl.tools.fmt import format_source
from cnndsl.tools.lsp import analyze, definition_span

from conftest import run_cli

torch = pytest.importorskip("torch")

from cnndsl.api import load_generated  # noqa: E402

BLOCKS = """\
# shared blocks
def base = 8

block Conv(out) {
    conv(out, 3, pad=1) -> relu
}

block Pair(out = base) {
    Conv(out) -> Conv(out * 2)
}

block Broken() {
    conv(4, 9) -> Missing
}
"""


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "blocks.cnn").write_text(BLOCKS)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "more.cnn").write_text('from "../blocks.cnn" import Conv\n\nblock Three() {\n'
                                               '    Conv(3)\n}\n')
    return tmp_path


def write(folder, text: str, name: str = "main.cnn"):
    path = folder / name
    path.write_text(text)
    return path


def compiled(path):
    return compile_network(read_source(path))


def errors(path) -> list:
    with pytest.raises(CompileError) as info:
        compiled(path)
    return info.value.diagnostics


def test_a_file_and_a_builtin_imported_with_what_they_use(folder):
    path = write(folder, 'from "blocks.cnn" import Pair\nfrom resnet50 import Bottleneck\nfrom "lib/more.cnn" import Three\n\n'
                 "network N() {\n    input 3x16x16\n    a: Pair -> b: Bottleneck(8) -> c: Three\n}\n")
    result = compiled(path)
    code = generate(result)
    assert "class Conv(nn.Module)" in code and "class Pair(nn.Module)" in code and "class Bottleneck(nn.Module)" in code
    assert f"From {folder / 'blocks.cnn'}:4." in code  # the class says where it is written
    model = load_generated(code).N()
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert keys["a.conv1.conv.weight"] == (8, 3, 3, 3) and keys["a.conv2.conv.weight"] == (16, 8, 3, 3)
    assert keys["b.conv3.weight"] == (32, 8, 1, 1) and keys["b.downsample.0.weight"] == (32, 16, 1, 1)
    assert keys["c.conv.conv.weight"] == (3, 32, 3, 3)  # lib/more.cnn's import is relative to lib/
    assert tuple(model(torch.zeros(1, 3, 16, 16)).shape) == (1, 3, 16, 16)


@pytest.mark.parametrize("line, message, where", [
    ('from "nope.cnn" import X', 'cannot import "nope.cnn": no such file', ("main.cnn", 1, 6)),
    ('from "blocks.cnn" import Pear', "\"blocks.cnn\" has no block, let, def or network named 'Pear'",
     ("main.cnn", 1, 26)),
    ("from resnt50 import Bottleneck", "no built-in named 'resnt50'", ("main.cnn", 1, 6)),
    ('from "blocks.cnn" import Broken', "unknown layer or block 'Missing'", ("blocks.cnn", 13, 19)),
    ('from "blocks.cnn" import Conv\nblock Conv() { relu }',
     "'Conv' is imported here (from \"blocks.cnn\") and defined at line 2", ("main.cnn", 1, 26)),
    ('from "a.cnn" import A', "import cycle: a.cnn -> b.cnn -> a.cnn", ("b.cnn", 1, 6)),
    ('from "main.cnn" import N', "import cycle: main.cnn -> main.cnn", ("main.cnn", 1, 6)),
    ('from "blocks.cnn" import Pair\nfrom "other.cnn" import Uses', "'base' comes from \"other.cnn\" and from "
     '"blocks.cnn"', ("main.cnn", 2, 25)),
    ('from "bad.cnn" import S', "unexpected '->'", ("bad.cnn", 2, 15)),
    ('from "bad.cnn" import S', '"bad.cnn" has errors (above)', ("main.cnn", 1, 6)),
])
def test_import_errors_point_where_they_are(folder, line, message, where):
    (folder / "a.cnn").write_text('from "b.cnn" import B\nblock A() { relu }\n')
    (folder / "b.cnn").write_text('from "a.cnn" import A\nblock B() { relu }\n')
    (folder / "bad.cnn").write_text("block S() {\n    conv(4, 3 -> relu\n}\n")
    (folder / "other.cnn").write_text("def base = 4\nblock Other(base = 2) {\n    conv(base, 1)\n}\n"
                                      "block Uses() {\n    conv(base, 1)\n}\n")
    path = write(folder, f"{line}\n\nnetwork N() {{\n    input 3x16x16\n    conv(4, 3)\n}}\n")
    found = [d for d in errors(path) if message in d.message]
    assert found, errors(path)
    file, line_no, column = where
    assert found[0].span.file.endswith(file) and (found[0].span.line, found[0].span.column) == (line_no, column)


def test_an_error_inside_an_imported_block_shows_that_files_line(folder):
    path = write(folder, 'from "blocks.cnn" import Conv\n\nnetwork N() {\n    input 3x4x4\n    Conv(0)\n}\n')
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert f"--> {folder / 'blocks.cnn'}:5:10" in result.stderr
    assert " 5 |     conv(out, 3, pad=1) -> relu" in result.stderr  # the imported file's own line
    assert "conv 'filters' must be at least 1, got 0" in result.stderr
    result = run_cli("compile", str(path), "-o", str(folder / "out.py"))
    assert " 5 |     conv(out, 3, pad=1) -> relu" in result.stderr and "Traceback" not in result.stderr


def test_language_server_follows_imports(folder):
    text = 'from "blocks.cnn" import Pair, Conv\n\nnetwork N() {\n    input 3x16x16\n    Pair -> Conv(0)\n}\n'
    path = write(folder, text)
    analysis = analyze(text, str(path))
    span = definition_span(analysis, 5, 6)  # Pair, where it is used
    assert span.file == str(folder / "blocks.cnn") and (span.line, span.column) == (8, 7)
    span = definition_span(analysis, 1, 33)  # Conv, in the import line
    assert (span.line, span.column) == (4, 7)
    # the error inside blocks.cnn is shown at the import, where this document can show it
    (diag,) = [d for d in analysis.diagnostics if "filters" in d.message]
    assert diag.span.file == str(path) and (diag.span.line, diag.span.column) == (1, 6)
    assert diag.message.startswith(f"in {folder / 'blocks.cnn'}:5:10: conv 'filters'")


def test_fmt_keeps_imports():
    from cnndsl.compiler import source_from_text

    text = 'from   "blocks.cnn"  import Pair ,Conv\nfrom resnet50 import   Bottleneck\nnetwork N() {\n input 3x8x8\n Pair\n}\n'
    out = format_source(source_from_text(text, "f.cnn"))
    assert out == ('from "blocks.cnn" import Pair, Conv\nfrom resnet50 import Bottleneck\n\nnetwork N() {\n'
                   "    input 3x8x8\n    Pair\n}\n")


def test_the_language_server_answers_go_to_definition_in_the_imported_file(folder):
    from test_lsp import start

    text = 'from "blocks.cnn" import Pair\nfrom resnet50 import Bottleneck\n\nnetwork N() {\n    input 3x16x16\n' \
           '    Pair -> Bottleneck(8)\n}\n'
    path = write(folder, text)
    client = start()
    try:
        uri = path.as_uri()
        client.notify("textDocument/didOpen",
                      {"textDocument": {"uri": uri, "languageId": "cnn", "version": 1, "text": text}})
        assert client.diagnostics(uri)["diagnostics"] == []
        pair = client.request("textDocument/definition",
                              {"textDocument": {"uri": uri}, "position": {"line": 5, "character": 5}})["result"]
        assert pair["uri"] == (folder / "blocks.cnn").as_uri()
        assert pair["range"] == {"start": {"line": 7, "character": 6}, "end": {"line": 7, "character": 10}}
        builtin = client.request("textDocument/definition",
                                 {"textDocument": {"uri": uri}, "position": {"line": 5, "character": 14}})["result"]
        from cnndsl.resources import catalog

        spec = catalog()["resnet50"].path  # resnet50's family file
        lines = spec.read_text().splitlines()
        assert builtin["uri"] == spec.resolve().as_uri()
        assert lines[builtin["range"]["start"]["line"]].startswith("block Bottleneck(")
    finally:
        assert client.close() == 0
