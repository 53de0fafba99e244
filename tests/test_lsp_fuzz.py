"""The language server under hostile JSON-RPC (benchmarks/fuzz_lsp.py): each defect the
fuzzer found, fenced off, and a bounded campaign. Every request gets one answer, none an
internal error, no traceback on stderr, and a hover afterwards still answers right."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import fuzz_lsp as fz  # noqa: E402


@pytest.fixture()
def server():
    s = fz.start()
    yield s
    s.close()


def send(server, payload) -> None:
    server.send_raw(fz.frame(payload if isinstance(payload, bytes) else json.dumps(payload).encode()))


def answer(server, msg_id) -> dict:
    return fz.wait_for(server, {msg_id})[msg_id]


def clean(server) -> None:
    fz.check_alive(server)
    text = b"".join(server.stderr).decode("utf-8", "replace")
    assert "Traceback" not in text, text[-2000:]


def test_a_message_without_jsonrpc_gets_an_error_and_the_server_lives(server):
    send(server, {"id": 7, "method": "textDocument/hover", "params": {}})  # pygls passed it on: the server died
    assert answer(server, 7)["error"]["code"] == -32600
    send(server, {"method": "textDocument/didChange", "params": {}})
    clean(server)


@pytest.mark.parametrize("depth", [2000, 100000])
def test_json_nested_deeper_than_the_decoder_goes_is_a_parse_error(server, depth):
    send(server, b'{"jsonrpc": "2.0", "id": 3, "method": "x", "params": ' + b"[" * depth + b"]" * depth + b"}")
    clean(server)


@pytest.mark.parametrize("uri", ["file:///", "file:///%00", "not a uri", (ROOT / "specs" / "never.cnn").as_uri(),
                                 "file:///dev/zero"])
def test_a_request_on_a_document_not_open_is_invalid_params_not_a_read_from_disk(server, uri):
    msg_id = server.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                   "position": {"line": 0, "character": 0}})
    error = answer(server, msg_id)["error"]
    assert error["code"] == -32602 and "not an open document" in error["message"]
    clean(server)


def test_parameters_of_the_wrong_type_are_invalid_params_without_a_traceback(server):
    msg_id = server.request("textDocument/hover", {"textDocument": {"uri": fz.KNOWN_URI},
                                                   "position": {"line": 2**80, "character": "x"}})
    assert answer(server, msg_id)["error"]["code"] == -32602
    send(server, {"jsonrpc": "2.0", "id": 9})  # neither a request nor a response
    assert answer(server, 9)["error"]["code"] == -32600
    send(server, {"jsonrpc": "2.0", "id": 10, "error": {"code": 1}})  # a response to no request
    clean(server)


def test_a_document_over_the_size_limit_then_back_under_it_is_analysed_again(server):
    """The over-the-limit analysis has no network; the same tokens with a long comment
    removed used to keep it ("only comments changed")."""
    huge = fz.KNOWN + "#" + "x" * (3 << 20)
    send(server, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": fz.KNOWN_URI, "languageId": "cnn", "version": 1, "text": huge}}})
    clean(server)  # reopens the document without the comment, and hovers


@pytest.mark.parametrize("method", ["textDocument/semanticTokens/full", "textDocument/documentSymbol",
                                    "textDocument/formatting", "textDocument/completion"])
def test_token_features_on_a_document_over_the_size_limit_answer_at_once_and_change_nothing(server, method):
    huge = fz.KNOWN + "#" + "x" * (3 << 20) + "\n"
    send(server, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": fz.KNOWN_URI, "languageId": "cnn", "version": 1, "text": huge}}})
    params = {"textDocument": {"uri": fz.KNOWN_URI}, "position": {"line": 2, "character": 4},
              "options": {"tabSize": 4, "insertSpaces": True}}
    reply = answer(server, server.request(method, params))
    assert "error" not in reply, reply
    if method == "textDocument/formatting":
        assert not reply["result"]  # no edit replaces the document with the formatting of nothing
    if method == "textDocument/semanticTokens/full":
        assert reply["result"]["data"] == []
    clean(server)


def test_a_bounded_campaign_of_hostile_messages():
    result = fz.campaign(messages=150, seed=20261201)
    assert result["tried"] == 150 and result["failed_batches"] == 0, result["failures"][:2]
