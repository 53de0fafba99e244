"""The house's bars (issue 10), checked on every run so that they stay true:

- no function in cnndsl/ is over 60 lines or above complexity 20 (radon's measure);
- the compiler never `eval`s (values are `cnndsl.expr` trees, evaluated by walking them),
  and the modules that build, fold and emit those values use no regular expressions
  (the generated text is never scanned; parse and names read the user's source with them).
  `api`, which runs the generated module for `build`, is not part of the compiler; nor is
  `node`, which compiles the records' `__init__`s from their field names as `dataclasses`
  does (never a value, never the user's text).

The import graph's acyclicity has its own test (tests/test_imports.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from radon.complexity import cc_visit

PACKAGE = Path(__file__).resolve().parent.parent / "cnndsl"
MODULES = sorted(PACKAGE.rglob("*.py"))
COMPILER = [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in
            {"passes", "codegen"} | {f"{m}.py" for m in ("parse", "lower", "ast", "ir", "layers", "expr",
                                                          "compiler", "traverse")}]
VALUES = [p for p in COMPILER if p.relative_to(PACKAGE).parts[0] == "codegen"
          or p.relative_to(PACKAGE).as_posix() in ("expr.py", "layers.py", "ir.py", "passes/expand.py",
                                                   "passes/shapes.py")]
MAX_LINES = 60
MAX_COMPLEXITY = 20


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_over_60_lines(path):
    long = [f"{f.name} ({f.end_lineno - f.lineno + 1} lines, line {f.lineno})"
            for f in _functions(path) if f.end_lineno - f.lineno + 1 > MAX_LINES]
    assert not long, f"split by step: {long}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_above_complexity_20(path):
    blocks = cc_visit(path.read_text(encoding="utf-8"))
    found = []
    for block in blocks:
        found.append(block)
        found.extend(getattr(block, "methods", []))
        found.extend(getattr(block, "closures", []))
    high = [f"{b.name} ({b.complexity}, line {b.lineno})" for b in found if b.complexity > MAX_COMPLEXITY]
    assert not high, f"split by step: {high}"


@pytest.mark.parametrize("path", COMPILER, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_compiler_never_evals(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    evals = [n.lineno for n in calls if isinstance(n.func, ast.Name) and n.func.id in ("eval", "exec")]
    assert not evals, f"eval/exec at lines {evals}"


@pytest.mark.parametrize("path", VALUES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_values_and_generated_text_are_never_scanned_with_regular_expressions(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    regex = [n.lineno for n in imports
             if isinstance(n, ast.Import) and any(a.name == "re" for a in n.names)
             or isinstance(n, ast.ImportFrom) and n.module == "re"]
    assert not regex, f"`re` imported at lines {regex}"
