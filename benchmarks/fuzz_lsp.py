"""Fuzzing the language server's messages: `cnndsl lsp` started as an editor starts it,
sent random hostile JSON-RPC over stdio, and held to three oracles:

    every request with an id gets one answer (a result or a JSON-RPC error), in time;
    no answer is an internal error (-32603: a handler raised) and nothing is a traceback
    on stderr;
    the server keeps serving: after each batch, a hover on a known document is right.

What it sends (`message(rng)`): broken framing (Content-Length missing, negative, huge,
not a number, a body shorter than it says), bodies that are not JSON or not an object,
unknown methods, ids of every JSON type, requests with parameters of the wrong types
(a position as a string, a line of -1 or 2**80, a missing field, deep nesting), positions
past the end of a document, requests on documents never opened, changes whose ranges are
reversed or out of range, documents that are huge, deeply nested, full of NUL bytes,
unpaired surrogates or very long lines, and valid requests between them.

    .venv/bin/python benchmarks/fuzz_lsp.py --messages 2000 [--seed N]
    .venv/bin/python benchmarks/fuzz_campaign.py --lsp 2000      # the same, as a campaign mode

`tests/test_lsp_fuzz.py` runs a bounded campaign on every CI run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

ROOT = Path(__file__).resolve().parent.parent
ANSWER_SECONDS = 30.0  # a generous bound on one answer on a loaded machine: a hang, not a speed goal

KNOWN = "network Known() {\n    input 3x8x8\n    c1: conv(8, 3, pad=1) -> relu\n    fc(10)\n}\n"
KNOWN_URI = (ROOT / "specs" / "fuzz_known.cnn").as_uri()  # never written: the server reads the buffer
REQUESTS = ("textDocument/hover", "textDocument/definition", "textDocument/completion",
            "textDocument/signatureHelp", "textDocument/rename", "textDocument/prepareRename",
            "textDocument/formatting", "textDocument/documentSymbol", "textDocument/semanticTokens/full",
            "textDocument/inlayHint", "textDocument/codeAction", "textDocument/references")
WEIRD_NUMBERS = (-1, -(2**31), 2**31, 2**31 - 1, 2**53, 2**80, 1e308, -0.0, 0.5, float("nan"))
WEIRD_VALUES = (None, True, "", "0", [], {}, [[[[[]]]]], {"line": "x"}, "\ud800", "\x00" * 3)


class Server:
    """`cnndsl lsp` in a subprocess: framed writes, a reader thread for its answers and one
    for its stderr."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "cnndsl", "lsp"], cwd=ROOT, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.answers: Queue = Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.next_id = 1000000

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            headers = {}
            while True:
                line = stream.readline()
                if not line:
                    self.answers.put(None)
                    return
                line = line.decode("ascii", "replace").strip()
                if not line:
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.answers.put(json.loads(stream.read(int(headers["content-length"]))))

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)

    def send_raw(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, payload) -> None:
        self.send_raw(frame(json.dumps(payload).encode("utf-8")))

    def request(self, method: str, params) -> int:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def close(self) -> None:
        try:
            self.send({"jsonrpc": "2.0", "id": 1, "method": "shutdown"})
            self.send({"jsonrpc": "2.0", "method": "exit"})
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        finally:
            self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
                try:
                    stream.close()
                except OSError:  # a pipe the server closed first
                    pass


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


@dataclass
class Sent:
    """What one fuzz step sent: the raw bytes, and the ids whose answers are due."""

    kind: str
    data: bytes
    ids: list = field(default_factory=list)


def _position(rng: random.Random) -> dict:
    pick = rng.random()
    if pick < 0.4:
        return {"line": rng.randrange(0, 8), "character": rng.randrange(0, 40)}
    if pick < 0.7:
        return {"line": rng.choice(WEIRD_NUMBERS), "character": rng.choice(WEIRD_NUMBERS)}
    if pick < 0.85:
        return {"line": rng.choice(WEIRD_VALUES)}
    return rng.choice(WEIRD_VALUES)


def _document(rng: random.Random) -> str:
    kind = rng.choice(("known", "huge", "nested", "nul", "surrogate", "long line", "crlf", "empty", "many nets"))
    if kind == "known":
        return KNOWN
    if kind == "huge":
        return KNOWN + "# " + "x" * rng.choice((1 << 16, (1 << 20) + 1, 3 << 20)) + "\n"
    if kind == "nested":
        n = rng.choice((50, 500, 20000))
        return "network N() {\n    input 3x8x8\n    " + "[" * n + "relu" + "]" * n + "\n}\n"
    if kind == "nul":
        return KNOWN.replace("conv", "co\x00nv")
    if kind == "surrogate":
        return KNOWN.replace("relu", "re\ud800lu")
    if kind == "long line":
        return "network N() {\n    input 3x8x8\n    relu" + " -> relu" * rng.choice((100, 5000)) + "\n}\n"
    if kind == "crlf":
        return KNOWN.replace("\n", "\r\n")
    if kind == "empty":
        return ""
    return "".join(KNOWN.replace("Known", f"Net{i}") for i in range(rng.choice((2, 50))))


def _uri(rng: random.Random) -> object:
    return rng.choice((KNOWN_URI, KNOWN_URI, (ROOT / "specs" / "never_opened.cnn").as_uri(), "not a uri",
                       "file:///", "file:///%00", "", None, 5, "untitled:Untitled-1"))


def _request(rng: random.Random, server: Server) -> Sent:
    method = rng.choice(REQUESTS)
    params: object = {"textDocument": {"uri": _uri(rng)}, "position": _position(rng)}
    if method == "textDocument/rename":
        params["newName"] = rng.choice(("Y", "", "1x", "class", "a" * 5000, None))
    if method in ("textDocument/inlayHint", "textDocument/codeAction"):
        params["range"] = {"start": _position(rng), "end": _position(rng)}
        params["context"] = {"diagnostics": rng.choice(([], [{}], None))}
    if method in ("textDocument/formatting",):
        params["options"] = rng.choice(({"tabSize": 4, "insertSpaces": True}, {}, None, {"tabSize": -1}))
    if rng.random() < 0.1:
        params = rng.choice(WEIRD_VALUES)
    server.next_id += 1
    msg_id: object = server.next_id
    if rng.random() < 0.1:
        msg_id = rng.choice(("a string id", -5, 2**80, 1.5))  # JSON-RPC allows strings and numbers
    body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode()
    return Sent(f"request {method}", frame(body), [msg_id])


def _change(rng: random.Random) -> Sent:
    if rng.random() < 0.3:
        changes = [{"text": _document(rng)}]
    else:
        changes = [{"range": {"start": _position(rng), "end": _position(rng)}, "text": rng.choice(
            ("x", "", "\n", "}", "conv(", "\ud800", "relu -> " * 50))} for _ in range(rng.choice((1, 1, 3)))]
    params = {"textDocument": {"uri": _uri(rng), "version": rng.choice((2, 1, -1, 2**40, None))},
              "contentChanges": changes}
    body = json.dumps({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params}).encode()
    return Sent("didChange", frame(body))


def _framing(rng: random.Random) -> Sent:
    body = json.dumps({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}}).encode()
    kind = rng.choice(("no length", "negative", "huge", "not a number", "short body", "blank lines",
                       "two headers", "garbage"))
    if kind == "no length":
        return Sent("framing: no length", b"Content-Type: application/json\r\n\r\n")
    if kind == "negative":
        return Sent("framing: negative length", b"Content-Length: -5\r\n\r\n" + body)
    if kind == "huge":
        return Sent("framing: huge length", b"Content-Length: 99999999999999999999\r\n\r\n" + body)
    if kind == "not a number":
        return Sent("framing: not a number", b"Content-Length: twelve\r\n\r\n" + body)
    if kind == "short body":  # says more than it sends: what follows completes it (here, not JSON)
        return Sent("framing: short body", b"Content-Length: %d\r\n\r\n" % (len(body) + 40) + body + b"x" * 40)
    if kind == "blank lines":
        return Sent("framing: blank lines", b"\r\n\r\n" + frame(body))
    if kind == "two headers":
        return Sent("framing: two headers", b"Content-Length: 3\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    return Sent("framing: garbage", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) + b"\r\n")


def _body(rng: random.Random, server: Server) -> Sent:
    kind = rng.choice(("not json", "not an object", "batch", "no method", "unknown method", "deep", "no jsonrpc"))
    server.next_id += 1
    if kind == "not json":
        return Sent("body: not JSON", frame(b'{"jsonrpc": "2.0", "id": 1, "method": "textDocument/hover", '))
    if kind == "not an object":
        return Sent("body: not an object", frame(rng.choice((b"[]", b"5", b'"x"', b"null", b"true"))))
    if kind == "batch":
        return Sent("body: batch", frame(json.dumps([{"jsonrpc": "2.0", "method": "initialized"}] * 3).encode()))
    if kind == "no method":
        return Sent("body: no method", frame(json.dumps({"jsonrpc": "2.0", "id": server.next_id}).encode()))
    if kind == "unknown method":
        body = {"jsonrpc": "2.0", "id": server.next_id, "method": rng.choice(("foo/bar", "", "textDocument/x"))}
        return Sent("body: unknown method", frame(json.dumps(body).encode()), [server.next_id])
    if kind == "deep":
        n = rng.choice((100, 5000, 100000))
        return Sent("body: deep nesting", frame(b'{"jsonrpc": "2.0", "method": "x", "params": ' + b"[" * n
                                                + b"]" * n + b"}"))
    body = {"id": server.next_id, "method": "textDocument/hover", "params": {}}
    return Sent("body: no jsonrpc", frame(json.dumps(body).encode()))


def message(rng: random.Random, server: Server) -> Sent:
    pick = rng.random()
    if pick < 0.45:
        return _request(rng, server)
    if pick < 0.65:
        return _change(rng)
    if pick < 0.75:
        params = {"textDocument": {"uri": _uri(rng), "languageId": "cnn", "version": 1, "text": _document(rng)}}
        return Sent("didOpen", frame(json.dumps({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                                                 "params": params}).encode()))
    if pick < 0.87:
        return _framing(rng)
    return _body(rng, server)


class LspFailure(Exception):
    pass


def start() -> Server:
    server = Server()
    first = server.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {}})
    answer = wait_for(server, {first})
    if "result" not in answer[first]:
        raise LspFailure(f"initialize failed: {answer[first]}")
    server.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    return server


def wait_for(server: Server, ids: set, seconds: float = ANSWER_SECONDS) -> dict:
    """The answers to `ids`, by id; LspFailure if the server dies or takes too long."""
    found: dict = {}
    deadline = time.monotonic() + seconds
    while ids - found.keys():
        try:
            message = server.answers.get(timeout=max(0.01, deadline - time.monotonic()))
        except Empty:
            raise LspFailure(f"no answer to request(s) {sorted(map(str, ids - found.keys()))} "
                             f"within {seconds:.0f} s") from None
        if message is None:
            raise LspFailure(f"the server exited (code {server.process.poll()})")
        if "method" not in message and message.get("id") in ids:
            found[message["id"]] = message
    return found


def check_alive(server: Server) -> None:
    """Reopen the known document and hover over its first conv: the server still serves."""
    server.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": KNOWN_URI, "languageId": "cnn", "version": 1, "text": KNOWN}}})
    probe = server.request("textDocument/hover", {"textDocument": {"uri": KNOWN_URI},
                                                  "position": {"line": 2, "character": 10}})
    answer = wait_for(server, {probe})[probe]
    value = ((answer.get("result") or {}).get("contents") or {}).get("value", "")
    if "output 8x8x8" not in value:
        raise LspFailure(f"after the batch, hover on a known conv answered {answer!r}")


def _problems(server: Server, answers: dict) -> list[str]:
    out = [f"request {i!r} got an internal error: {a['error'].get('message', '')[:200]}"
           for i, a in answers.items() if a.get("error", {}).get("code") == -32603]
    text = b"".join(server.stderr).decode("utf-8", "replace")
    if "Traceback" in text or "Error" in text:
        out.append("stderr: " + text[-600:])
    return out


def campaign(messages: int, seed: int = 0, batch: int = 25) -> dict:
    """`messages` random messages in batches; after each, every due answer and a live hover.
    A failure is recorded with the batch's kinds, and a fresh server takes over."""
    rng = random.Random(seed)
    tried, failed, by_kind, failures = 0, 0, {}, []
    server = start()
    try:
        while tried < messages:
            sent = [message(rng, server) for _ in range(min(batch, messages - tried))]
            tried += len(sent)
            for s in sent:
                by_kind.setdefault(s.kind.split(" ")[0].rstrip(":"), [0, 0])[0] += 1
            try:
                for s in sent:
                    server.send_raw(s.data)
                due = {i for s in sent for i in s.ids}
                answers = wait_for(server, due) if due else {}
                check_alive(server)
                problems = _problems(server, answers)
            except (LspFailure, OSError) as exc:
                problems = [str(exc)]
            if problems:
                failed += 1
                for s in sent:
                    by_kind[s.kind.split(" ")[0].rstrip(":")][1] += 1
                failures.append({"kinds": [s.kind for s in sent], "problems": problems,
                                 "sent": [s.data[:300].decode("utf-8", "replace") for s in sent]})
                server.close()
                server = start()
    finally:
        server.close()
    return {"tried": tried, "failed_batches": failed, "by_kind": by_kind, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    result = campaign(opts.messages, opts.seed)
    report(result, opts.seed)
    return 1 if result["failed_batches"] else 0


def report(result: dict, seed: int) -> None:
    lines = [f"lsp fuzz campaign (seed {seed}): {result['tried']:,} messages, "
             f"{result['failed_batches']} failed batches"]
    lines += [f"  {kind:<10} {n:>7,} sent {f:>4} in failed batches" for kind, (n, f) in sorted(result["by_kind"].items())]
    for failure in result["failures"][:10]:
        lines.append(f"  FAIL {failure['problems'][0][:300]}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz_lsp.txt").write_text(text)
    (out / "fuzz_lsp.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
