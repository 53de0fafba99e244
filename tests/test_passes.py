"""Per-pass golden tests, as sqlglot keeps fixtures per rule.

Each `tests/passes/<pass>/<case>.cnn` is compiled through `passes.PIPELINE` up to and
including the pass `<pass>` (a function of that name in the pipeline), and the tree that
pass returns, dumped by `cnndsl.traverse.dump`, followed by the diagnostics gathered so
far, must equal `<case>.expected` beside it. A first line `# set: N=2 POOL=false` gives
`--set` values.

To write or rewrite the expected files after a deliberate change, run

    CNNDSL_REGENERATE=1 .venv/bin/python -m pytest tests/test_passes.py

and read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnndsl import passes, traverse
from cnndsl.diagnostics import CompileError
from cnndsl.passes.context import Context
from cnndsl.settings import parse_settings
from cnndsl.source import SourceFile

HERE = Path(__file__).resolve().parent / "passes"
CASES = sorted(HERE.glob("*/*.cnn"))
STEPS = {step.__name__: step for step in passes.PIPELINE}
REGENERATE = os.environ.get("CNNDSL_REGENERATE") == "1"


def run_through(path: Path) -> str:
    """The dump of the tree after the pass named by the case's folder, and the diagnostics."""
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0] if text else ""
    params = parse_settings(first.removeprefix("# set:").split()) if first.startswith("# set:") else {}
    context = Context(SourceFile(path.name, text), params)
    tree = context.source
    for step in passes.PIPELINE:
        try:
            tree = step(tree, context)
        except CompileError as error:
            context.extend(error.diagnostics)
            context.stop()
        if step.__name__ == path.parent.name or context.stopped:
            break
    out = [traverse.dump(tree) if traverse.is_node(tree) else f"{tree!r}\n", "-- diagnostics --\n"]
    out += [f"{d.severity} {d.span.line}:{d.span.column} [{d.code}] {d.message}\n" for d in context.diagnostics]
    if context.stopped:
        out.append(f"-- stopped after {step.__name__} --\n")
    return "".join(out)


def test_every_pass_has_fixtures_and_every_folder_is_a_pass():
    folders = {p.name for p in HERE.iterdir() if p.is_dir()}
    assert folders == set(STEPS)


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_pass_golden(path: Path):
    expected = path.with_suffix(".expected")
    actual = run_through(path)
    if REGENERATE or not expected.exists():
        expected.write_text(actual, encoding="utf-8")
        if not REGENERATE:
            pytest.fail(f"wrote {expected.name}; check it and commit it")
    assert actual == expected.read_text(encoding="utf-8")


LETS_IN_A_ROW = """
let P = [Q -> relu]
let Q = [R -> relu]
let R = conv(8, 3, pad=1)
let S = [P -> relu]
let T = [S -> relu]
let U = [T -> relu]
network N(classes = 10) {
    input 3x8x8
    U -> global_avgpool -> fc(classes)
}
"""


def test_resolve_reads_each_lets_own_uses_however_many_lets_there_are():
    """resolve checks a body once where variants share it (by the body's id): a let's body
    is a tuple made for the check, and an id of a freed one came back for a later let,
    which then got the uses of an earlier one: `'Q' uses itself: Q -> R -> Q` here, and
    `'Block' uses itself` in mobilenetv3.cnn."""
    context = Context(SourceFile("lets.cnn", LETS_IN_A_ROW), {}, False, None)
    tree = passes.resolve(passes.parse(SourceFile("lets.cnn", LETS_IN_A_ROW), context), context)
    assert tree is not None and not context.errors, [d.message for d in context.errors]
