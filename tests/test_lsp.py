"""`cnndsl lsp`: started as an editor starts it, spoken to in LSP's JSON-RPC over stdio
(Content-Length framing): diagnostics on open and change, hover, go-to-definition,
completion, signature help, formatting, symbols, rename, semantic tokens, quick fixes,
inlay hints, and requests a server must answer with an error and survive."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from queue import Empty, Queue

import pytest

from cnndsl.compiler import source_from_text
from cnndsl.tools.lsp import _nodes, analyze, definition_span, hover_text
from cnndsl.summary import rows

from conftest import ROOT

SMALL = """\
let CONV = conv(8, 3, pad=1)

block Res(planes, stride = 1) {
    residual {
        conv1: conv(planes, 3, stride=stride, pad=1, bias=false) -> bn1: batchnorm -> relu
        conv2: conv(planes, 3, pad=1, bias=false) -> bn2: batchnorm
    } shortcut downsample: projection
    relu
}

network Small(classes = 10) {
    input 3x16x16
    stem: CONV -> relu
    layer1: [Res(8) -> Res(16, stride=2)]
    pool: adaptive_avgpool(1)
    fc: fc(classes)
}
"""

# A 5x5 filter on a 3x3 volume: the compiler's error points at the conv (line 3).
BAD = "network Bad() {\n    input 3x3x3\n    c1: conv(8, 5) -> relu\n}\n"


class Client:
    """A minimal LSP client: frames messages, reads the server's in a thread."""

    def __init__(self, command: tuple[str, ...] = (sys.executable, "-m", "cnndsl", "lsp"), cwd=ROOT) -> None:
        self.process = subprocess.Popen(list(command), cwd=cwd,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.messages: Queue = Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            headers = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                line = line.decode("ascii").strip()
                if not line:
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers["content-length"]))
            self.messages.put(json.loads(body))

    def send(self, payload: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **payload}).encode("utf-8")
        self.send_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send_raw(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        return self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)

    def wait(self, match, timeout: float = 20.0) -> dict:
        while True:
            try:
                message = self.messages.get(timeout=timeout)
            except Empty:  # stop the server first: reading the stderr of a live, silent one would block
                self.process.kill()
                self.process.wait(timeout=10)
                raise AssertionError("no answer from the server; stderr: "
                                     + self.process.stderr.read(10000).decode(errors="replace")) from None
            if match(message):
                return message

    def diagnostics(self, uri: str) -> dict:
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                         and m["params"]["uri"] == uri)["params"]

    def close(self) -> int:
        self.request("shutdown", {})
        self.notify("exit", {})
        try:
            return self.process.wait(timeout=10)
        finally:
            self.process.kill()
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                stream.close()


def start(options: dict | None = None) -> Client:
    c = Client()
    answer = c.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {},
                                      **({"initializationOptions": options} if options is not None else {})})
    capabilities = answer["result"]["capabilities"]
    assert capabilities["hoverProvider"] and capabilities["definitionProvider"]
    c.notify("initialized", {})
    return c


@pytest.fixture(scope="module")
def client():
    c = start()
    yield c
    assert c.close() == 0


def open_doc(client: Client, name: str, text: str) -> str:
    uri = (ROOT / "specs" / name).as_uri()  # never written: the server reads the buffer
    client.notify("textDocument/didOpen",
                  {"textDocument": {"uri": uri, "languageId": "cnn", "version": 1, "text": text}})
    return uri


def test_a_bad_spec_gets_its_diagnostic_at_the_right_range(client: Client):
    uri = open_doc(client, "bad_lsp_test.cnn", BAD)
    published = client.diagnostics(uri)
    assert len(published["diagnostics"]) == 1
    diagnostic = published["diagnostics"][0]
    assert diagnostic["severity"] == 1 and diagnostic["source"] == "cnndsl"
    assert "5x5" in diagnostic["message"] or "larger" in diagnostic["message"], diagnostic["message"]
    start = diagnostic["range"]["start"]
    assert start == {"line": 2, "character": 8}  # 0-based: `conv(8, 5)` on line 3, column 9

    # The user fixes the filter: the diagnostics are withdrawn on change.
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": 2},
        "contentChanges": [{"text": BAD.replace("conv(8, 5)", "conv(8, 3)")}]})
    assert client.diagnostics(uri)["diagnostics"] == []


def test_a_syntax_error_and_a_warning_are_published(client: Client):
    uri = open_doc(client, "syntax_lsp_test.cnn", "network N() {\n    input 3x8x8\n    conv(8, 3 -> relu\n}\n")
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    assert diagnostic["range"]["start"]["line"] == 2 and diagnostic["code"] == "syntax"
    uri = open_doc(client, "warn_lsp_test.cnn", "network W() {\n    input 3x7x7\n    conv(4, 3, stride=3)\n}\n")
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    assert diagnostic["severity"] == 2 and diagnostic["range"]["start"] == {"line": 2, "character": 4}


def test_hover_shows_shape_parameters_and_receptive_field(client: Client):
    uri = open_doc(client, "small_lsp_test.cnn", SMALL)
    assert client.diagnostics(uri)["diagnostics"] == []
    answer = client.request("textDocument/hover",
                            {"textDocument": {"uri": uri}, "position": {"line": 14, "character": 14}})
    value = answer["result"]["contents"]["value"]
    assert "`pool`" in value and "output 16x1x1" in value and "0 parameters" in value
    # Inside a block used twice: one line per instance, each with its own shape.
    answer = client.request("textDocument/hover",
                            {"textDocument": {"uri": uri}, "position": {"line": 4, "character": 18}})
    value = answer["result"]["contents"]["value"]
    assert "2 instances" in value
    assert "`layer1.0.conv1` conv 3x3/1 8 pad 1: output 8x16x16 · 576 parameters · receptive field 5x5" in value
    assert "`layer1.1.conv1` conv 3x3/2 16 pad 1: output 16x8x8 · 1,152 parameters" in value
    nothing = client.request("textDocument/hover",
                             {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 0}})
    assert nothing["result"] is None


def test_definition_of_a_block_and_a_let(client: Client):
    uri = open_doc(client, "def_lsp_test.cnn", SMALL)
    client.diagnostics(uri)
    block = client.request("textDocument/definition",
                           {"textDocument": {"uri": uri}, "position": {"line": 13, "character": 24}})
    assert block["result"]["uri"] == uri
    assert block["result"]["range"] == {"start": {"line": 2, "character": 6}, "end": {"line": 2, "character": 9}}
    let = client.request("textDocument/definition",
                         {"textDocument": {"uri": uri}, "position": {"line": 12, "character": 11}})
    assert let["result"]["range"] == {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 8}}


# -- the analysis behind the server, called directly ----------------------------------

def test_hover_paths_are_the_summary_paths():
    """The hover walker must name layers as the generated module does."""
    for spec in ["specs/vgg16_bn.cnn", "specs/alexnet.cnn"]:
        analysis = analyze((ROOT / spec).read_text(), spec)
        (compiled,) = analysis.compiled
        walked = [n.path for n in _nodes(compiled.network) if n.rank == 0]
        assert walked == [row.path for row in rows(compiled.network)]


def test_hover_on_a_label_a_let_use_and_a_block_call():
    analysis = analyze(SMALL, "small.cnn")
    assert hover_text(analysis, 5, 10).startswith("**conv**: 2 instances")  # on `conv1:`
    let_use = hover_text(analysis, 13, 12)  # CONV in `stem: CONV`
    assert "let CONV = conv(8, 3, pad=1)" in let_use and "`stem`" in let_use and "224 parameters" in let_use
    call = hover_text(analysis, 14, 30)  # Res(16, stride=2)
    assert call.startswith("**block Res** `layer1.1`") and "output 16x8x8" in call
    assert "receptive field 27x27" in hover_text(analysis, 11, 10)  # the network's name


def test_definition_of_a_parameter_and_nothing_in_a_comment():
    analysis = analyze(SMALL, "small.cnn")
    span = definition_span(analysis, 5, 40)  # `stride` in stride=stride
    assert (span.line, span.column, span.end_column) == (3, 19, 25)
    assert definition_span(analysis, 14, 5) is None  # a label is not a reference
    commented = analyze(SMALL.replace("stem: CONV", "stem: CONV  # not Res"), "c.cnn")
    assert definition_span(commented, 13, 25) is None


def test_every_network_of_a_file_is_checked():
    text = SMALL + "\nnetwork Broken() {\n    input 3x4x4\n    conv(8, 7)\n}\n"
    analysis = analyze(text, "two.cnn")
    assert [c.network.name for c in analysis.compiled] == ["Small"]
    assert [d.span.line for d in analysis.diagnostics] == [21]
    assert source_from_text(text).line_text(21).strip() == "conv(8, 7)"


# -- the editing features, over stdio ---------------------------------------------------

def at(uri: str, line: int, character: int) -> dict:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}


def change(client: Client, uri: str, version: int, line: int, character: int, text: str) -> None:
    """One incremental edit: insert `text` at the position, as an editor sends a keystroke."""
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": uri, "version": version},
        "contentChanges": [{"range": {"start": {"line": line, "character": character},
                                      "end": {"line": line, "character": character}}, "text": text}]})


def test_the_server_announces_every_feature(client: Client):
    capabilities = client.request("initialize", {"processId": None, "capabilities": {}})
    # pygls answers a second initialize too; what matters is the first one's capabilities
    for name in ("completionProvider", "signatureHelpProvider", "documentFormattingProvider",
                 "documentSymbolProvider", "renameProvider", "semanticTokensProvider", "codeActionProvider",
                 "inlayHintProvider"):
        assert name in capabilities.get("result", {}).get("capabilities", {}), name


def test_completion_offers_layers_blocks_lets_parameters_labels_and_builtins(client: Client):
    text = SMALL.replace("    fc: fc(classes)\n", "    fc: fc(classes)\n    \n    side(pool) fc(\n")
    uri = open_doc(client, "complete_lsp_test.cnn", text)
    client.diagnostics(uri)
    items = {i["label"]: i for i in client.request("textDocument/completion", at(uri, 16, 4))["result"]["items"]}
    assert items["conv"]["detail"].startswith("conv(filters, size, stride=1, pad=0")
    assert items["conv"]["insertText"] == "conv(${1:filters}, ${2:size})"
    assert items["Res"]["detail"] == "Res(planes, stride)" and items["Res"]["kind"] == 7  # Class
    assert items["CONV"]["kind"] == 6 and items["classes"]["detail"] == "parameter of Small"
    assert "planes" not in items  # Res's parameter, not the network's
    inside = client.request("textDocument/completion", at(uri, 17, 18))["result"]["items"]
    details = {i["label"]: i.get("detail") for i in inside}
    assert details["units="] == "units" and details["bias="] == "bias=true" and "conv" not in details
    labels = [i["label"] for i in client.request("textDocument/completion", at(uri, 17, 9))["result"]["items"]]
    assert {"stem", "layer1", "pool", "fc"} <= set(labels) and "conv" not in labels
    uri2 = open_doc(client, "import_lsp_test.cnn", "import res\n")
    names = [i["label"] for i in client.request("textDocument/completion", at(uri2, 0, 10))["result"]["items"]]
    assert "resnet50" in names and "vgg16" in names and "conv" not in names


def test_signature_help_inside_a_layer_marks_the_argument_being_typed(client: Client):
    text = "network S() {\n    input 3x8x8\n    conv(8, 3, pad=1, stride=\n}\n"
    uri = open_doc(client, "signature_lsp_test.cnn", text)
    client.diagnostics(uri)  # a syntax error: signature help works from the text regardless
    help_ = client.request("textDocument/signatureHelp", at(uri, 2, 29))["result"]
    (signature,) = help_["signatures"]
    assert signature["label"].startswith("conv(filters, size, stride=1, pad=0")
    assert signature["parameters"][help_["activeParameter"]]["label"] == "stride=1"
    second = client.request("textDocument/signatureHelp", at(uri, 2, 12))["result"]
    assert second["activeParameter"] == 1  # the filter size, after one comma
    assert client.request("textDocument/signatureHelp", at(uri, 1, 6))["result"] is None


def test_formatting_is_cnndsl_fmt(client: Client):
    from cnndsl.tools.fmt import format_text

    messy = "network  F( classes=10 ){\n  input 3x8x8\n  conv(8,3,pad = 1)->relu\n    ->fc(classes)\n}\n"
    uri = open_doc(client, "format_lsp_test.cnn", messy)
    client.diagnostics(uri)
    (edit,) = client.request("textDocument/formatting", {"textDocument": {"uri": uri},
                                                        "options": {"tabSize": 4, "insertSpaces": True}})["result"]
    assert edit["newText"] == format_text(messy) and "conv(8, 3, pad=1) -> relu" in edit["newText"]
    assert edit["range"]["start"] == {"line": 0, "character": 0}
    broken = open_doc(client, "format_broken_lsp_test.cnn", "network F() {\n    conv(8,\n")
    client.diagnostics(broken)
    assert client.request("textDocument/formatting", {"textDocument": {"uri": broken},
                                                      "options": {"tabSize": 4, "insertSpaces": True}})["result"] is None


def test_document_symbols_are_networks_blocks_lets_and_labels(client: Client):
    uri = open_doc(client, "symbols_lsp_test.cnn", SMALL)
    client.diagnostics(uri)
    symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})["result"]
    assert [(s["name"], s["kind"]) for s in symbols] == [("CONV", 13), ("Res", 5), ("Small", 2)]
    res = symbols[1]
    assert res["range"]["start"]["line"] == 2 and res["range"]["end"]["line"] == 8
    assert res["selectionRange"] == {"start": {"line": 2, "character": 6}, "end": {"line": 2, "character": 9}}
    assert [c["name"] for c in res["children"]] == ["conv1", "bn1", "conv2", "bn2", "downsample"]
    assert [c["name"] for c in symbols[2]["children"]] == ["stem", "layer1", "pool", "fc"]


def apply(text: str, edits: list[dict]) -> str:
    lines = text.split("\n")
    for edit in sorted(edits, key=lambda e: (e["range"]["start"]["line"], e["range"]["start"]["character"]),
                       reverse=True):
        start, end = edit["range"]["start"], edit["range"]["end"]
        assert start["line"] == end["line"]
        line = lines[start["line"]]
        lines[start["line"]] = line[:start["character"]] + edit["newText"] + line[end["character"]:]
    return "\n".join(lines)


def test_rename_a_block_a_let_and_a_parameter(client: Client):
    uri = open_doc(client, "rename_lsp_test.cnn", SMALL)
    client.diagnostics(uri)

    def rename(line: int, character: int, new: str) -> str:
        answer = client.request("textDocument/rename", {**at(uri, line, character), "newName": new})
        return apply(SMALL, answer["result"]["changes"][uri])

    renamed = rename(13, 14, "Basic")  # on a use of Res
    assert renamed.count("Basic") == 3 and "Res" not in renamed
    renamed = rename(2, 20, "step")  # Res's `stride`: its definition, its use, and the call's keyword
    assert "block Res(planes, step = 1)" in renamed and "stride=step" in renamed and "Res(16, step=2)" in renamed
    assert analyze(renamed, "r.cnn").diagnostics == []  # still compiles, to the same network
    renamed = rename(0, 5, "STEM")
    assert renamed.startswith("let STEM = ") and "stem: STEM" in renamed
    prepared = client.request("textDocument/prepareRename", at(uri, 0, 5))["result"]
    assert prepared["placeholder"] == "CONV"
    assert client.request("textDocument/prepareRename", at(uri, 4, 10))["result"] is None  # a label
    refused = client.request("textDocument/rename", {**at(uri, 0, 5), "newName": "conv"})
    assert "error" in refused and "layer kind" in refused["error"]["message"]


def test_semantic_tokens_tell_layers_blocks_lets_parameters_and_labels_apart(client: Client):
    uri = open_doc(client, "tokens_lsp_test.cnn", SMALL)
    client.diagnostics(uri)
    data = client.request("textDocument/semanticTokens/full", {"textDocument": {"uri": uri}})["result"]["data"]
    legend = ("keyword", "function", "class", "variable", "parameter", "property", "number", "string",
              "comment", "operator", "enumMember", "namespace")
    decoded, line, start = {}, 0, 0
    lines = SMALL.split("\n")
    for i in range(0, len(data), 5):
        dl, ds, length, kind, modifiers = data[i:i + 5]
        line, start = line + dl, (start + ds if dl == 0 else ds)
        decoded[(line, lines[line][start:start + length])] = (legend[kind], modifiers)
    assert decoded[(2, "Res")] == ("class", 1)  # declaration
    assert decoded[(13, "Res")] == ("class", 0)
    assert decoded[(4, "conv")] == ("function", 2)  # defaultLibrary
    assert decoded[(4, "planes")][0] == "parameter" and decoded[(4, "conv1")] == ("property", 1)
    assert decoded[(12, "CONV")][0] == "variable" and decoded[(10, "network")][0] == "keyword"
    assert decoded[(0, "8")][0] == "number"


def test_quick_fixes_for_did_you_mean_and_shortcut_projection(client: Client):
    text = "network Q() {\n    input 3x8x8\n    covn(8, 3)\n}\n"
    uri = open_doc(client, "fix_lsp_test.cnn", text)
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    actions = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostic["range"], "context": {"diagnostics": [diagnostic]}})["result"]
    (action,) = actions
    assert action["title"] == "Change 'covn' to 'conv'" and action["kind"] == "quickfix"
    assert apply(text, action["edit"]["changes"][uri]) == text.replace("covn", "conv")

    text = "network P() {\n    input 8x8x8\n    residual {\n        conv(16, 3, pad=1)\n    }\n}\n"
    uri = open_doc(client, "fix2_lsp_test.cnn", text)
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    (action,) = client.request("textDocument/codeAction", {
        "textDocument": {"uri": uri}, "range": diagnostic["range"], "context": {"diagnostics": [diagnostic]}})["result"]
    fixed = apply(text, action["edit"]["changes"][uri])
    assert "    } shortcut projection\n" in fixed and analyze(fixed, "p.cnn").diagnostics == []


def test_inlay_hints_show_each_lines_output_shape(client: Client):
    uri = open_doc(client, "inlay_lsp_test.cnn", SMALL)
    client.diagnostics(uri)
    hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
        "start": {"line": 0, "character": 0}, "end": {"line": 17, "character": 0}}})["result"]
    by_line = {h["position"]["line"]: h for h in hints}
    assert by_line[11]["label"] == "[16x16x3]"  # input 3x16x16, as the notes write it
    assert by_line[12]["label"] == "[16x16x8]" and by_line[12]["position"]["character"] == len("    stem: CONV -> relu")
    assert by_line[13]["label"] == "[8x8x16]"  # the group's output
    assert by_line[14]["label"] == "[1x1x16]" and by_line[15]["label"] == "[10]"
    assert by_line[4]["label"] == "[16x16x8] | [8x8x16]"  # inside Res, once per distinct instance shape
    assert 1 not in by_line and 9 not in by_line  # blank line; the block's header


def test_inlay_hints_are_toggled_by_the_client():
    c = start({"inlayHints": False})
    try:
        uri = open_doc(c, "toggle_lsp_test.cnn", SMALL)
        c.diagnostics(uri)
        request = {"textDocument": {"uri": uri}, "range": {"start": {"line": 0, "character": 0},
                                                           "end": {"line": 17, "character": 0}}}
        assert c.request("textDocument/inlayHint", request)["result"] == []
        c.notify("workspace/didChangeConfiguration", {"settings": {"cnndsl": {"inlayHints": True}}})
        assert len(c.request("textDocument/inlayHint", request)["result"]) > 5
    finally:
        assert c.close() == 0


def test_bad_positions_get_an_error_and_the_server_goes_on(client: Client):
    uri = open_doc(client, "positions_lsp_test.cnn", SMALL)
    client.diagnostics(uri)
    for position in ({"line": -1, "character": 0}, {"line": 0, "character": -3},
                     {"line": 2**31, "character": 0}, {"line": 0, "character": 2**40}):
        answer = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": position})
        assert answer["error"]["code"] == -32602, answer
    far = client.request("textDocument/hover", at(uri, 2**31 - 1, 2**31 - 1))  # valid, past the end
    assert "error" not in far and far["result"] is None
    assert "output 16x1x1" in client.request("textDocument/hover", at(uri, 14, 14))["result"]["contents"]["value"]


@pytest.mark.parametrize("header", [b"Content-Length: abc", b"Content-Length: -5", b"Content-Length: 99999999999"])
def test_a_broken_header_gets_an_error_and_the_server_goes_on(client: Client, header: bytes):
    client.send_raw(header + b"\r\n\r\n" + b'{"jsonrpc": "2.0", "id": 999, "method": "shutdown"}')
    error = client.wait(lambda m: "error" in m and m.get("id") is None)
    assert error["error"]["code"] == -32700 and "Content-Length" in error["error"]["message"]
    uri = open_doc(client, "after_header_lsp_test.cnn", SMALL)
    assert client.diagnostics(uri)["diagnostics"] == []
    assert "output 16x1x1" in client.request("textDocument/hover", at(uri, 14, 14))["result"]["contents"]["value"]


def test_an_edit_inside_a_comment_keeps_the_analysis_and_a_backslash_does_not():
    from cnndsl.tools.lsp import same_code

    text = "network N() {  # the net\n    input 3x8x8\n    conv(8, 3)\n    -> relu\n}\n"
    assert same_code(text, text.replace("# the net", "# the network  "))
    assert not same_code(text, text.replace("conv(8, 3)", "conv(8, 3) \\"))
    assert same_code(text, text.replace("conv(8, 3)", "conv(8, 3)  # -> relu"))
    assert not same_code(text, text.replace("conv(8, 3)", "conv(8,  3)"))
    assert not same_code(text, text.replace("3x8x8\n", "3x8x8\n\n"))


PARTIAL = """\
network Two() {
    input 3x8x8
    c1: conv(8, 3, pad=1) -> relu
    c2: conv(8, 9)
    c3: conv(4, 1)
}
"""

THREE = """\
network Three() {
    input 3x8x8
    conv(8, 3, strde=2)
    maxpool(2, pad="x")
    conv(width, 3)
}
"""


def test_hover_and_inlay_hints_where_another_part_of_the_network_has_an_error(client: Client):
    uri = open_doc(client, "partial_lsp_test.cnn", PARTIAL)
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    assert diagnostic["range"]["start"]["line"] == 3
    value = client.request("textDocument/hover", at(uri, 2, 10))["result"]["contents"]["value"]
    assert "`c1`" in value and "output 8x8x8" in value and "224 parameters" in value
    assert client.request("textDocument/hover", at(uri, 4, 10))["result"] is None  # its input is not known
    hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
        "start": {"line": 0, "character": 0}, "end": {"line": 6, "character": 0}}})["result"]
    assert {h["position"]["line"]: h["label"] for h in hints} == {1: "[8x8x3]", 2: "[8x8x8]"}


UNKNOWN = """\
network Typo() {
    input 3x8x8
    c1: conv(8, 3, pad=1) -> relu
    frob(3)
    c3: conv(4, 1)
    side(c1) fc(10)
}
"""


def test_hover_and_inlay_hints_before_and_beside_an_unknown_layer_name(client: Client):
    uri = open_doc(client, "unknown_lsp_test.cnn", UNKNOWN)
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    assert diagnostic["range"]["start"]["line"] == 3 and "unknown layer or block 'frob'" in diagnostic["message"]
    value = client.request("textDocument/hover", at(uri, 2, 10))["result"]["contents"]["value"]
    assert "`c1`" in value and "output 8x8x8" in value and "224 parameters" in value
    assert client.request("textDocument/hover", at(uri, 4, 10))["result"] is None  # it reads frob's output
    value = client.request("textDocument/hover", at(uri, 5, 14))["result"]["contents"]["value"]
    assert "output 10" in value  # the side output reads c1, whose shape is known
    hints = client.request("textDocument/inlayHint", {"textDocument": {"uri": uri}, "range": {
        "start": {"line": 0, "character": 0}, "end": {"line": 7, "character": 0}}})["result"]
    assert {h["position"]["line"]: h["label"] for h in hints} == {1: "[8x8x3]", 2: "[8x8x8]", 5: "[10]"}


def test_three_independent_errors_are_three_diagnostics_at_their_lines(client: Client):
    uri = open_doc(client, "three_lsp_test.cnn", THREE)
    published = client.diagnostics(uri)["diagnostics"]
    assert sorted(d["range"]["start"]["line"] for d in published) == [2, 3, 4], published
    assert all(d["severity"] == 1 for d in published)


def test_typing_in_a_comment_is_answered(client: Client):
    text = "# a comment\n" + SMALL
    uri = open_doc(client, "comment_edit_lsp_test.cnn", text)
    assert client.diagnostics(uri)["diagnostics"] == []
    change(client, uri, 2, 0, 11, " more")  # inside the comment: the analysis stands
    assert client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                       and m["params"]["uri"] == uri and m["params"]["version"] == 2)["params"]["diagnostics"] == []
    change(client, uri, 3, 12, 17, " ")  # a trailing space after `input 3x16x16`
    assert client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                       and m["params"]["uri"] == uri and m["params"]["version"] == 3)["params"]["diagnostics"] == []
    hover = client.request("textDocument/hover", at(uri, 15, 14))["result"]["contents"]["value"]
    assert "`pool`" in hover and "output 16x1x1" in hover
