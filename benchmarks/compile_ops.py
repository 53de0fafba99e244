"""Compile cost as a count: the Python bytecodes one cold parse + check + generate executes,
per pass, for each built-in named (all by default). Unlike CPU time, which a loaded 2-core
machine inflates, the count is the same every run, so a change of a few percent in the
Python work can be seen, and two commits compared exactly.

    .venv/bin/python benchmarks/compile_ops.py [NAME ...]

Work done in C (a long string joined, a dict probed, an attrgetter applied) is not
counted, nor is the cycle collector: the count is a guide to where the Python work goes,
not the bar. Issue 11's latency bar (25 ms of CPU, any built-in, in process) is judged by
compile_speed.py's times. The count once stood in for it, scaled from resnet152 at
979d9bc (2,700k bytecodes in 22.3 ms there), and the scale did not hold: the changes
since moved work into C, so a bytecode now costs about 14 ns where it cost 8 (at
c821cc2, efficientnet_v2_l: 3,388k bytecodes, 47.8 ms of CPU).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from compile_speed import cold  # noqa: E402
from cnndsl.codegen import generate_module  # noqa: E402
from cnndsl.compiler import builtins, load  # noqa: E402
from cnndsl.passes import PIPELINE, Context  # noqa: E402


class Counter:
    """A `sys.settrace` hook that counts the bytecodes run in every Python frame."""

    def __init__(self) -> None:
        self.ops = 0

    def __call__(self, frame, event, arg):
        if event != "call":
            return None
        frame.f_trace_opcodes = True
        return self.local

    def local(self, frame, event, arg):
        if event == "opcode":
            self.ops += 1
        return self.local


def passes_of(name: str, counter: Counter | None) -> list[tuple[str, int]]:
    """Each pass's bytecodes (and the code generator's) for one compile of `name`."""
    source = load(name)
    context = Context(source, {}, False, source.network)
    tree, out = source, []
    for step in (*PIPELINE, generate_module):
        before = counter.ops if counter else 0
        if counter:
            sys.settrace(counter)
        tree = generate_module(tree) if step is generate_module else step(tree, context)
        sys.settrace(None)
        out.append((getattr(step, "__name__", "codegen"), (counter.ops if counter else 0) - before))
    return out


def main() -> None:
    names = sys.argv[1:] or sorted(builtins())
    counter = Counter()
    for name in names:
        passes_of(name, None)  # the set-up a long-lived process keeps (parser, template)
        cold()
        gc.disable()
        per = passes_of(name, counter)
        gc.enable()
        shown = " ".join(f"{step}={ops / 1000:.0f}k" for step, ops in per)
        print(f"{name:30s} {sum(ops for _, ops in per) / 1000:8.0f}k  {shown}", flush=True)


if __name__ == "__main__":
    main()
