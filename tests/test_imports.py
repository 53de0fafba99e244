"""The import graph of `cnndsl/` has no cycle, counting the imports inside functions too:
the stages import earlier stages only, and the readers and tools import the compiler,
never the other way round. Each module is parsed with `ast`, not imported."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cnndsl"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The cnndsl modules that `name` imports anywhere in its text (functions included)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, name, is_package)
            # `from . import ir` imports the module cnndsl.ir; `from .ir import Layer` imports cnndsl.ir
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import cnndsl.passes.shapes.x` -> the module part
                target = target.rpartition(".")[0]
            if target.startswith("cnndsl"):
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. Importing `cnndsl.train.errors` runs
    `cnndsl/train/__init__.py` first, so a target's packages count as imported with it,
    less the importer's own packages: those are initialised before it runs at all."""
    table = modules()
    known = set(table)
    edges = {}
    for name, path in table.items():
        targets = imports(name, path, known)
        own = _packages(name) | {name}
        for target in list(targets):
            targets |= _packages(target) - own
        targets.discard(name)
        edges[name] = targets
    return edges


def _packages(name: str) -> set[str]:
    """`cnndsl.passes.shapes` -> {`cnndsl.passes`, `cnndsl`}."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    edges = graph()
    assert "cnndsl.diagnostics" in edges["cnndsl.parse"]  # from .diagnostics import ...
    assert "cnndsl.report" in edges["cnndsl.cli"]  # inside a function
    assert "cnndsl.tools.highlight" in edges["cnndsl.tools"]  # inside a function, from a package
    assert "cnndsl.ir" in edges["cnndsl.summary"]  # from . import ir
    assert "cnndsl.train" in edges["cnndsl.pictures.serve"]  # from ..train.errors import ... runs train/__init__
    assert "cnndsl" in edges["cnndsl.tools.lsp"]  # from .. import __version__: an explicit import counts
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_compiler_imports_neither_tools_nor_pictures_nor_the_cli():
    edges = graph()
    compiler = ("cnndsl.source", "cnndsl.diagnostics", "cnndsl.errors", "cnndsl.parse", "cnndsl.lower",
                "cnndsl.ast", "cnndsl.ir", "cnndsl.layers", "cnndsl.expr", "cnndsl.compiler", "cnndsl.api")
    for name in (n for n in edges if n in compiler or n.startswith(("cnndsl.passes", "cnndsl.codegen"))):
        bad = {t for t in edges[name] if t.startswith(("cnndsl.tools", "cnndsl.pictures", "cnndsl.cli",
                                                       "cnndsl.report", "cnndsl.train"))}
        assert not bad, f"{name} imports {sorted(bad)}"
