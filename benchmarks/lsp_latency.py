"""Keystroke latency of the language server: the time from a keystroke (an incremental
`textDocument/didChange`) to the `publishDiagnostics` that answers it, over real JSON-RPC
on stdio with a real `cnndsl lsp` subprocess, in specs/resnet.cnn.

    .venv/bin/python benchmarks/lsp_latency.py [--rounds N]

The keystrokes type ` -> relu` at the end of a line inside ResNet-152's Bottleneck, one
character at a time, and delete it again: the states in between are syntax errors,
unknown names and whole networks, as when one types. Prints the median, 90th percentile
and maximum, and their ratio to the goal (issue 14: under 20 ms), the median of the
keystrokes after which the network compiles whole (the full pipeline), and the same
texts' median through `lsp.analyze` in this process; writes the same to
benchmarks/results/lsp_latency.txt. On a shared machine, read it with its load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Queue

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 20.0
TYPED = " -> relu"


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


def diagnostics_of(version: int):
    return lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == version


def run(rounds: int) -> list[tuple[float, bool]]:
    """(milliseconds, whether the network compiled whole) per keystroke."""
    server = Server()
    server.send({"id": 1, "method": "initialize", "params": {"processId": os.getpid(), "capabilities": {}}})
    server.wait(lambda m: m.get("id") == 1)
    server.send({"method": "initialized", "params": {}})
    text = (ROOT / "specs" / "resnet.cnn").read_text()
    uri = (ROOT / "specs" / "resnet.cnn").as_uri()
    server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "cnn", "version": 1, "text": text}}})
    server.wait(diagnostics_of(1))
    line = next(i for i, t in enumerate(text.split("\n")) if "conv1: conv(width(planes, groups, base_width), 1" in t)  # the Bottleneck
    end = len(text.split("\n")[line])
    version, times = 1, []
    for _ in range(rounds):
        edits = [(end + i, end + i, ch) for i, ch in enumerate(TYPED)]
        edits += [(end + i - 1, end + i, "") for i in range(len(TYPED), 0, -1)]
        for start, stop, typed in edits:
            version += 1
            sent = server.send({"method": "textDocument/didChange", "params": {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line, "character": start},
                                              "end": {"line": line, "character": stop}}, "text": typed}]}})
            answered, message = server.wait(diagnostics_of(version))
            times.append(((answered - sent) * 1000, not message["params"]["diagnostics"]))
    server.send({"id": 2, "method": "shutdown"})
    server.wait(lambda m: m.get("id") == 2)
    server.send({"method": "exit"})
    server.process.wait(timeout=10)
    return times


def in_process(rounds: int) -> list[float]:
    """The same keystrokes' texts through `lsp.analyze` in this process: the compiler's
    share of the latency, the rest being JSON-RPC, pygls and the pipes."""
    sys.path.insert(0, str(ROOT))
    from cnndsl.tools.lsp import analyze

    lines = (ROOT / "specs" / "resnet.cnn").read_text().split("\n")
    line = next(i for i, t in enumerate(lines) if "conv1: conv(width(planes, groups, base_width), 1" in t)  # the Bottleneck
    states = [lines[line] + TYPED[:n] for n in range(1, len(TYPED) + 1)]
    states += [lines[line] + TYPED[:n] for n in range(len(TYPED) - 1, -1, -1)]
    times = []
    for _ in range(rounds):
        for state in states:
            text = "\n".join(lines[:line] + [state] + lines[line + 1:])
            start = time.perf_counter()
            analyze(text, "specs/resnet.cnn")
            times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    measured = run(args.rounds)
    times = sorted(ms for ms, _ in measured)
    whole = sorted(ms for ms, ok in measured if ok)
    compiler = statistics.median(in_process(args.rounds))
    median = statistics.median(times)
    p90 = times[int(0.9 * (len(times) - 1))]
    lines = [
        f"LSP keystroke -> diagnostics, specs/resnet.cnn, {len(times)} keystrokes over stdio JSON-RPC "
        f"({platform.python_version()}, {os.cpu_count()} CPUs)",
        f"median {median:.1f} ms   p90 {p90:.1f} ms   max {times[-1]:.1f} ms   min {times[0]:.1f} ms",
        f"goal < {GOAL_MS:.0f} ms: median/goal {median / GOAL_MS:.2f}, p90/goal {p90 / GOAL_MS:.2f}",
        f"the {len(whole)} keystrokes that leave the network whole (a full compile of ResNet-152): "
        f"median {statistics.median(whole):.1f} ms, median/goal {statistics.median(whole) / GOAL_MS:.2f}",
        f"the same texts through lsp.analyze in-process: median {compiler:.1f} ms "
        f"(the server's own share: {median - compiler:.1f} ms)",
        f"load average at the end: {os.getloadavg()[0]:.2f}",
    ]
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / "lsp_latency.txt"
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
