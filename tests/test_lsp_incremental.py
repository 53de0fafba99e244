"""The language server between keystrokes (cnndsl/tools/incremental.py): what an edit did
not change is kept, what it reached is checked again, and the answer is the one a fresh
compile of every network gives (`lsp.analyze`, which is `cnndsl check --network N` for
each N): diagnostics, hover and inlay hints. In process for the bookkeeping, and over real
stdio JSON-RPC for what an editor sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnndsl import resources
from cnndsl.compiler import back_end, compile_network, front_end
from cnndsl.diagnostics import CompileError
from cnndsl.parse import parse
from cnndsl.source import SourceFile
from cnndsl.tools.incremental import WHOLE, Document, Parser, pieces
from cnndsl.tools.lsp import analyze, hover_text, inlay_hints

from conftest import ROOT
from test_lsp import Client, open_doc, start

RESNET = (resources.specs_dir() / "resnet.cnn").read_text()
CONV1 = "conv1: conv(width(planes, groups, base_width), 1, bias=false)"
BROKEN = RESNET.replace(CONV1, CONV1.replace("), 1,", "), 3,"))  # 3x3 unpadded: the body shrinks
BOTTLENECK_NETWORKS = ["resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
                       "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]


def same_analysis(a, b) -> bool:
    return (a.diagnostics == b.diagnostics and [c.network for c in a.compiled] == [c.network for c in b.compiled]
            and [c.network for c in a.partial] == [c.network for c in b.partial])


@pytest.mark.parametrize("path", sorted(resources.specs_dir().glob("*.cnn")), ids=lambda p: p.name)
def test_pieces_parse_as_the_whole_file(path: Path):
    text = path.read_text()
    source = SourceFile(f"specs/{path.name}", text)
    assert "".join(t for _, t in pieces(text)) == text
    assert Parser(source.path).parse(source) == parse(source)


def test_a_piece_that_does_not_parse_alone_gives_the_whole_files_errors():
    text = RESNET.replace("relu\n}\n\nblock Bottleneck", "relu\n\nblock Bottleneck", 1)  # BasicBlock left open
    source = SourceFile("r.cnn", text)
    with pytest.raises(CompileError) as whole:
        parse(source)
    with pytest.raises(CompileError) as pieced:
        Parser("r.cnn").parse(source)
    assert pieced.value.diagnostics == whole.value.diagnostics


@pytest.mark.parametrize("spec", ["resnet.cnn", "googlenet.cnn", "unet.cnn"])
def test_front_end_once_and_back_end_per_network_is_compile_network(spec: str):
    source = SourceFile(f"specs/{spec}", (resources.specs_dir() / spec).read_text())
    program = parse(source)
    front = front_end(source, {}, False, program)
    for network in [n.name for n in program.networks] + [v.name for v in program.variants]:
        assert back_end(front, network).network == compile_network(source, {}, network=network, program=program).network


def test_back_end_raises_what_compile_network_raises():
    source = SourceFile("b.cnn", BROKEN)
    front = front_end(source)
    with pytest.raises(CompileError) as split:
        back_end(front, "resnet50")
    with pytest.raises(CompileError) as whole:
        compile_network(source, network="resnet50")
    assert split.value.diagnostics == whole.value.diagnostics
    assert split.value.tree == whole.value.tree


def updated(document: Document, text: str):
    update = document.begin(text)
    pending = list(update.pending)
    return update, pending, update.analysis()


def test_an_edit_rechecks_exactly_the_networks_that_reach_it():
    document = Document("specs/resnet.cnn")
    _, pending, first = updated(document, RESNET)
    assert sorted(pending) == sorted(["ResNet", "resnet18", "resnet34", *BOTTLENECK_NETWORKS])
    # resnet152's own line: only resnet152 is checked again
    edited = RESNET.replace("resnet152 = ResNet(layers = [3, 8, 36, 3]", "resnet152 = ResNet(layers = [3, 8, 35, 3]")
    _, pending, analysis = updated(document, edited)
    assert pending == ["resnet152"]
    assert same_analysis(analysis, analyze(edited, "specs/resnet.cnn"))
    # the same text again: nothing to check; resnet18's own comment (its piece): resnet18 alone
    _, pending, _ = updated(document, edited)
    assert pending == []
    commented = edited.replace("# ResNet-18 (He et al. 2015)", "# ResNet-18, He et al. 2015")
    _, pending, analysis = updated(document, commented)
    assert pending == ["resnet18"] and same_analysis(analysis, analyze(commented, "specs/resnet.cnn"))
    # the Bottleneck: every network reaches it (ResNet's body names both blocks)
    _, pending, analysis = updated(document, BROKEN)
    assert sorted(pending) == sorted(first.per_network)
    assert same_analysis(analysis, analyze(BROKEN, "specs/resnet.cnn"))


def test_a_shape_error_in_a_block_reaches_every_network_using_it_and_its_fix_clears_all():
    document = Document("specs/resnet.cnn")
    updated(document, RESNET)
    _, _, broken = updated(document, BROKEN)
    (error,) = broken.diagnostics
    assert error.message == "the projection gives 256x56x56 but the body gives 256x54x54"
    users = {name for name, checked in broken.per_network.items() if error in checked.errors}
    assert users == set(BOTTLENECK_NETWORKS)  # and resnet18, 34 and ResNet (basic blocks) do not have it
    assert len(broken.partial) == 8 and len(broken.compiled) == 3
    _, pending, fixed = updated(document, RESNET)
    assert sorted(pending) == sorted(broken.per_network) and fixed.diagnostics == []
    assert all(not c.errors for c in fixed.per_network.values()) and len(fixed.compiled) == 11


def test_hover_and_inlay_hints_after_edits_are_a_fresh_compiles():
    document = Document("specs/resnet.cnn")
    texts = [RESNET, BROKEN, BROKEN.replace("bn3: batchnorm", "bn3: batchnorm -> rel"),
             BROKEN.replace("bn3: batchnorm", "bn3: batchnorm -> relu"), RESNET]
    line = next(i for i, t in enumerate(RESNET.split("\n"), 1) if CONV1 in t)
    for text in texts:
        _, _, analysis = updated(document, text)
        fresh = analyze(text, "specs/resnet.cnn")
        assert same_analysis(analysis, fresh)
        assert inlay_hints(analysis) == inlay_hints(fresh)
        for column in (9, 20, 58):
            assert hover_text(analysis, line, column) == hover_text(fresh, line, column)


def test_syntax_errors_and_a_file_without_networks():
    document = Document("x.cnn")
    for text in [RESNET.replace("conv3: conv(planes * 4", "conv3: conv(planes * "), "block B() {\n    relu\n}\n",
                 "block B() {\n    nope\n}\n", "", RESNET.replace("resnet18 = ResNet", "resnet18 = ResNett")]:
        _, _, analysis = updated(document, text)
        assert same_analysis(analysis, analyze(text, "x.cnn")), text[:40]


def test_a_syntax_error_answers_first_from_its_piece_then_from_the_whole_file():
    document = Document("specs/resnet.cnn")
    updated(document, RESNET)
    text = RESNET.replace(CONV1, CONV1 + " -")
    update = document.begin(text)
    assert update.pending == [WHOLE]
    quick = update.analysis(final=False)
    final = update.analysis()
    assert final.diagnostics == analyze(text, "specs/resnet.cnn").diagnostics
    assert [d.span for d in quick.diagnostics] == [d.span for d in final.diagnostics]


# -- over JSON-RPC ---------------------------------------------------------------------------

def checked(client: Client, uri: str, version: int) -> list[dict]:
    """The complete list of `version`: the last publish before the server says it is done."""
    last = None
    while True:
        message = client.wait(lambda m: m.get("params", {}).get("uri") == uri
                              and m["params"].get("version") == version)
        if message["method"] == "$/cnndsl/checked":
            assert last is not None and message["params"]["diagnostics"] == len(last)
            return last
        last = message["params"]["diagnostics"]


def change(client: Client, uri: str, version: int, old: str, new: str, text: str) -> str:
    at = text.index(old)
    line, column = text.count("\n", 0, at), at - text.rfind("\n", 0, at) - 1
    client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [
        {"range": {"start": {"line": line, "character": column},
                   "end": {"line": line, "character": column + len(old)}}, "text": new}]})
    return text[:at] + new + text[at + len(old):]


def test_over_stdio_an_edit_in_the_bottleneck_then_its_fix():
    client = start({"checkedNotifications": True})
    try:
        uri = (ROOT / "cnndsl" / "specs" / "resnet.cnn").as_uri()
        client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "cnn", "version": 1,
                                                                "text": RESNET}})
        assert checked(client, uri, 1) == []
        text = change(client, uri, 2, CONV1, CONV1.replace("), 1,", "), 3,"), RESNET)
        (error,) = checked(client, uri, 2)
        assert error["message"].startswith("the projection gives 256x56x56 but the body gives 256x54x54")
        line = error["range"]["start"]["line"]
        hover = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                      "position": {"line": line - 2, "character": 12}})
        assert "conv 3x3/1 64" in hover["result"]["contents"]["value"]  # the edited conv, in every instance
        hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}})["result"]
        fresh = inlay_hints(analyze(text, str(ROOT / "cnndsl" / "specs" / "resnet.cnn")))
        assert [(h["position"]["line"] + 1, h["label"]) for h in hints] == fresh
        change(client, uri, 3, CONV1.replace("), 1,", "), 3,"), CONV1, text)
        assert checked(client, uri, 3) == []
    finally:
        client.close()


def test_over_stdio_a_burst_of_keystrokes_ends_with_the_complete_list():
    """Keystrokes sent without waiting: each version may be overtaken by the next, and the
    last one's complete list is a fresh compile's."""
    client = start({"checkedNotifications": True})
    try:
        uri = open_doc(client, "burst_lsp_test.cnn", RESNET)
        checked(client, uri, 1)
        text, typed = RESNET, " -> rel"
        for i in range(1, len(typed) + 1):
            text = change(client, uri, i + 1, CONV1 + typed[:i - 1], CONV1 + typed[:i], text)
        final = checked(client, uri, len(typed) + 1)
        fresh = analyze(text, str(ROOT / "specs" / "burst_lsp_test.cnn")).diagnostics
        assert [(d["range"]["start"]["line"] + 1, d["message"].split("\n")[0]) for d in final] == \
            [(d.span.line, d.message) for d in fresh]
        assert "'rel'" in final[0]["message"]
    finally:
        client.close()


def test_over_stdio_a_split_answer_asks_the_client_to_fetch_inlay_hints_again():
    """Hints asked for between the first answer and the complete one are partial: the
    server asks a client that can refresh them to do so once the list is complete."""
    client = Client()
    client.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "initializationOptions": {
        "checkedNotifications": True}, "capabilities": {"workspace": {"inlayHint": {"refreshSupport": True}}}})
    client.notify("initialized", {})
    try:
        uri = open_doc(client, "refresh_lsp_test.cnn", RESNET)
        checked(client, uri, 1)
        change(client, uri, 2, CONV1, CONV1.replace("), 1,", "), 3,"), RESNET)
        first = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        # split: the 8 networks that use the Bottleneck take far over the first answer's 10 ms
        assert first["params"]["version"] == 2 and first["params"]["diagnostics"] == []
        assert len(checked(client, uri, 2)) == 1
        refresh = client.wait(lambda m: m.get("method") == "workspace/inlayHint/refresh")
        client.send({"id": refresh["id"], "result": None})
        hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
            "start": {"line": 0, "character": 0}, "end": {"line": 200, "character": 0}}})["result"]
        assert len(hints) == len(inlay_hints(analyze(RESNET.replace(CONV1, CONV1.replace("), 1,", "), 3,")),
                                                     str(ROOT / "specs" / "refresh_lsp_test.cnn"))))
    finally:
        client.close()
