"""`cnndsl lsp`: started as an editor starts it, spoken to in LSP's JSON-RPC over stdio
(Content-Length framing): diagnostics on open and change, hover, go-to-definition."""

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
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
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
            except Empty:
                raise AssertionError("no answer from the server; stderr: "
                                     + self.process.stderr.read1(10000).decode(errors="replace")) from None
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


@pytest.fixture(scope="module")
def client():
    c = Client()
    answer = c.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {}})
    capabilities = answer["result"]["capabilities"]
    assert capabilities["hoverProvider"] and capabilities["definitionProvider"]
    c.notify("initialized", {})
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
