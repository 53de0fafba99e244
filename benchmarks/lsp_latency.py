"""Keystroke latency of the language server, over real JSON-RPC on stdio with a real
`cnndsl lsp` subprocess: from a keystroke (an incremental `textDocument/didChange`) to
the first `publishDiagnostics` that answers it, and to the complete, final list (the
server's `$/cnndsl/checked` notification, asked for with `checkedNotifications`, follows
the last publish of a version).

    .venv/bin/python benchmarks/lsp_latency.py [--rounds N]

Three documents:
- (a) the ResNet family file, specs/resnet.cnn (11 networks): the keystrokes edit the
  Bottleneck's conv1 line, which 9 of them use and all 11 reach;
- (b) a user's file holding ResNet-152 alone, importing Bottleneck from the built-in
  resnet: the keystrokes edit its stem line;
- (c) a small spec (the two-block network of tests/test_lsp.py): its stem line.
The keystrokes type ` -> relu` one character at a time at the end of the line and delete
it again: the states in between are syntax errors, unknown names and whole networks, as
when one types. Typing starts a second after the document is opened; the next keystroke
is sent once the previous one's final list came.

For each: the median, 90th percentile and maximum of both times, and their ratio to the
goal (issue 14: under 20 ms); the server's CPU time per keystroke (from /proc), the load
average before and after; and each document's complete list checked against
`lsp.analyze` (every network compiled afresh, as `cnndsl check --network N` does) for the
final text of every keystroke. Writes the same to benchmarks/results/lsp_latency.txt.
On a shared machine, read the wall times with the load and the CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 20.0
TYPED = " -> relu"

RESNET152 = """\
# ResNet-152 as a user writes it, with the built-in Bottleneck
from resnet import Bottleneck

network resnet152(num_classes = 1000) {
    input 3x224x224
    conv1: conv(64, 7, stride=2, pad=3, bias=false) -> bn1: batchnorm -> relu
        -> maxpool: maxpool(3, stride=2, pad=1)
    layer1: [Bottleneck(64) -> Bottleneck(64)*2]
    layer2: [Bottleneck(128, 2) -> Bottleneck(128)*7]
    layer3: [Bottleneck(256, 2) -> Bottleneck(256)*35]
    layer4: [Bottleneck(512, 2) -> Bottleneck(512)*2]
    avgpool: adaptive_avgpool(1)
    fc: fc(num_classes)
}
"""

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


class Server:
    def __init__(self) -> None:
        cnndsl = Path(sys.executable).with_name("cnndsl")
        command = [str(cnndsl), "lsp"] if cnndsl.exists() else [sys.executable, "-m", "cnndsl", "lsp"]
        self.process = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=open(os.environ.get("LSP_STDERR", os.devnull), "wb"))
        self.messages: Queue = Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.messages.put((time.perf_counter(), json.loads(stream.read(length))))

    def send(self, payload: dict) -> float:
        body = json.dumps({"jsonrpc": "2.0", **payload}).encode()
        sent = time.perf_counter()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()
        return sent

    def wait(self, match, timeout: float = 60.0) -> tuple[float, dict]:
        while True:
            at, message = self.messages.get(timeout=timeout)
            if match(message):
                return at, message

    def cpu_seconds(self) -> float:
        """The server process's user + system CPU time so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _is(method: str, version: int):
    return lambda m: m.get("method") == method and m["params"].get("version") == version


def keystrokes(text: str, marker: str) -> tuple[int, list[tuple[int, int, str]]]:
    """The line holding `marker` and the (start, end, text) edits that type and delete TYPED at its end."""
    lines = text.split("\n")
    line = next(i for i, t in enumerate(lines) if marker in t)
    end = len(lines[line])
    edits = [(end + i, end + i, ch) for i, ch in enumerate(TYPED)]
    edits += [(end + i - 1, end + i, "") for i in range(len(TYPED), 0, -1)]
    return line, edits


def run(path: Path, text: str, marker: str, rounds: int) -> dict:
    """Per keystroke: (ms to the first publish, ms to the final one, diagnostics in it); the texts typed."""
    server = Server()
    server.send({"id": 1, "method": "initialize", "params": {
        "processId": os.getpid(), "capabilities": {}, "initializationOptions": {"checkedNotifications": True}}})
    server.wait(lambda m: m.get("id") == 1)
    server.send({"method": "initialized", "params": {}})
    uri = path.as_uri()
    server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "cnn", "version": 1, "text": text}}})
    server.wait(_is("$/cnndsl/checked", 1))
    time.sleep(1.0)  # a user looks at the file before typing (the server loads its syntax-error path meanwhile)
    line, edits = keystrokes(text, marker)
    version, times, texts, lines, first_cpus = 1, [], [], text.split("\n"), []
    cpu = server.cpu_seconds()
    for _ in range(rounds):
        for start, stop, typed in edits:
            version += 1
            sent = server.send({"method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": start},
                                              "end": {"line": line, "character": stop}}, "text": typed}]}})
            first, published = server.wait(_is("textDocument/publishDiagnostics", version))
            while True:  # a second publish of the version is its complete list; the notification follows it
                at, message = server.wait(lambda m: m.get("params", {}).get("version") == version)
                if message["method"] == "$/cnndsl/checked":
                    first_cpus.append(message["params"]["cpu_ms"])  # [to the first publish, to the final]
                    break
                published = message
            final = [(d["range"]["start"]["line"] + 1, d["message"]) for d in published["params"]["diagnostics"]]
            times.append(((first - sent) * 1000, (at - sent) * 1000, final))
            lines[line] = lines[line][:start] + typed + lines[line][stop:]
            texts.append("\n".join(lines))
    cpu = server.cpu_seconds() - cpu
    server.send({"id": 2, "method": "shutdown"})
    server.wait(lambda m: m.get("id") == 2)
    server.send({"method": "exit"})
    server.process.wait(timeout=10)
    return {"times": times, "texts": texts, "cpu_ms": cpu * 1000 / len(times),
            "first_cpu_ms": (statistics.median(c[0] for c in first_cpus), statistics.median(c[1] for c in first_cpus))}


def agrees(path: Path, result: dict) -> int:
    """How many keystrokes' final list (line and message of each diagnostic, in order)
    differs from `lsp.analyze`'s of the same text (a fresh compile of every network)."""
    sys.path.insert(0, str(ROOT))
    from cnndsl.report import editor_message
    from cnndsl.tools.lsp import analyze

    wrong = 0
    for text, (_, _, final) in zip(result["texts"], result["times"]):
        fresh = [(d.span.line, editor_message(d)) for d in analyze(text, str(path)).diagnostics
                 if d.span.file == str(path)]
        wrong += fresh != final
    return wrong


def report(title: str, result: dict, wrong: int) -> list[str]:
    firsts = sorted(t[0] for t in result["times"])
    finals = sorted(t[1] for t in result["times"])

    def line(name: str, times: list[float]) -> str:
        median, p90 = statistics.median(times), times[int(0.9 * (len(times) - 1))]
        return (f"  {name:<18} median {median:6.1f} ms  p90 {p90:6.1f} ms  max {times[-1]:6.1f} ms   "
                f"median/goal {median / GOAL_MS:.2f}  p90/goal {p90 / GOAL_MS:.2f}")

    return [f"{title}: {len(firsts)} keystrokes", line("first diagnostics", firsts),
            line("final diagnostics", finals),
            f"  server CPU a keystroke: {result['cpu_ms']:.1f} ms in all (/proc); in its handler, median "
            f"{result['first_cpu_ms'][0]:.1f} ms to the first diagnostics, "
            f"{result['first_cpu_ms'][1]:.1f} ms to the final",
            f"  final lists that differ from lsp.analyze's: {wrong}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    load_before = os.getloadavg()
    lines = [f"LSP keystroke -> diagnostics over stdio JSON-RPC, goal < {GOAL_MS:.0f} ms "
             f"({platform.python_version()}, {os.cpu_count()} CPUs; --rounds {args.rounds})"]
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("(a) specs/resnet.cnn, the family file (11 networks), the Bottleneck's conv1 line",
                  ROOT / "cnndsl" / "specs" / "resnet.cnn", None, "conv1: conv(width(planes, groups, base_width), 1"),
                 ("(b) a user's resnet152.cnn (one network, Bottleneck imported from resnet), its stem line",
                  Path(tmp) / "resnet152.cnn", RESNET152, "conv1: conv(64, 7"),
                 ("(c) a small spec (two blocks), its stem line", Path(tmp) / "small.cnn", SMALL, "stem: CONV")]
        for title, path, text, marker in cases:
            text = path.read_text() if text is None else text
            if not path.exists():
                path.write_text(text)
            result = run(path, text, marker, args.rounds)
            lines += report(title, result, agrees(path, result))
    load_after = os.getloadavg()
    lines.append(f"load average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
                 f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / "lsp_latency.txt"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
