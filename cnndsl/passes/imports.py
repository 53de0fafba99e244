"""Pass 1, link_imports: `from resnet import Bottleneck` and `from "blocks.cnn" import A, B`
bring definitions of another spec into this one.

A module written as a name is a built-in (`cnndsl list`; a variant's name reads its
family's file); one in quotes is a file, relative to the importing file. An imported name
is a block, a `let`, a `def` or a network (a variant's too) of that file; what it uses
there (other blocks, lets, defs) comes with it, under its own name. The imported file's
own imports are linked first; a file that imports itself, directly or through others, is
a cycle. Imported definitions keep their spans, so a diagnostic inside one points into
its file. Every problem is a diagnostic at the import statement (or inside the imported
file); the program that comes out has no imports left to follow.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import compress
from operator import attrgetter
from pathlib import Path

from .. import ast, resources
from ..diagnostics import CompileError
from ..node import replace
from ..source import SourceError, SourceFile, Span, read_source
from ..traverse import of_type, walk
from .context import Context, alone, finish
from .resolve import suggest
from .variants import derive_variants

MAX_IMPORT_DEPTH = 32
_KINDS = ("defs", "lets", "blocks", "networks")


def module_path(imp: ast.ImportDef, importing: str) -> Path | None:
    """The file an import names: a built-in's spec, or a path relative to the importing file
    (a built-in's own imports are relative to the built-ins' folder); None: no such built-in."""
    if not imp.quoted:
        entry = resources.catalog().get(imp.module)
        return entry.path if entry is not None else None
    base = Path(importing).parent if importing and not importing.startswith("<") else Path.cwd()
    if importing.startswith("specs/") and not Path(importing).exists():
        base = resources.specs_dir()
    return base / imp.module


def _display(path: Path, resolved: Path | None = None, specs: Path | None = None) -> str:
    """How an imported file is named in its spans: a built-in as `specs/NAME.cnn` (as
    `cnndsl compile NAME` names it), any other file by its path. `resolved`, `specs`: the
    path and the built-ins' folder resolved, where the caller has them already."""
    try:
        if (resolved or path.resolve()).parent == (specs or resources.specs_dir().resolve()):
            return f"specs/{path.name}"
    except OSError:
        pass
    return str(path)


def display_path(imp: ast.ImportDef, importing: str) -> str | None:
    """The name the imported file's spans carry (see `_display`), or None for no such built-in."""
    path = module_path(imp, importing)
    return _display(path) if path is not None else None


def real_path(display: str) -> Path:
    """The file a span's name stands for: `specs/NAME.cnn` is a built-in's spec."""
    if display.startswith("specs/") and not Path(display).exists():
        return resources.specs_dir() / display[len("specs/"):]
    return Path(display)


def definitions(program: ast.Program) -> dict[str, object]:
    """The program's definitions by name: defs, lets, blocks and networks."""
    found: dict[str, object] = {}
    for kind in _KINDS:
        for definition in getattr(program, kind):
            found.setdefault(definition.name, definition)
    return found


_REFERRING = frozenset({ast.Call, ast.Ref, ast.Var, ast.FuncCall})  # the nodes that name what they use
_NAME = attrgetter("name")


def _references(definition) -> set[str]:
    """The names a definition uses: layers, lets and blocks in its chains, functions and
    values in its expressions (those in its labels' {...} too); not its own parameters."""
    own = {p.name for p in getattr(definition, "params", None) or ()}
    nodes = list(walk(definition))  # walked once, its nodes picked by class in C
    kinds = list(map(type, nodes))
    names = set(map(_NAME, compress(nodes, map(_REFERRING.__contains__, kinds))))
    for element in of_type(nodes, ast.Element, kinds):
        for piece in element.template or ():
            if not isinstance(piece, str):
                names.update(n.name for n in walk(piece) if isinstance(n, (ast.Var, ast.FuncCall)))
    return (names - own) | set(map(_NAME, of_type(nodes, ast.FuncCall, kinds)))


def closure(program: ast.Program, name: str, table: dict | None = None, uses=_references) -> list:
    """The definition `name` and every definition of `program` it uses, directly or not.
    `table`: the program's `definitions`, where the caller has them; `uses`: a
    definition's references (`_references`, or a memo of it)."""
    table = definitions(program) if table is None else table
    seen, order, stack = {name}, [], [name]
    while stack:
        definition = table[stack.pop()]
        order.append(definition)
        for used in sorted(uses(definition)):
            if used in table and used not in seen:
                seen.add(used)
                stack.append(used)
    return order


class Linker:
    """Reads, parses and links imported files, each once per compile."""

    def __init__(self, context: Context):
        self.context = context
        self.linked: dict[str, ast.Program] = {}  # by resolved path
        self.sources: dict[str, SourceFile] = {}  # the imported files, for diagnostics
        self.specs: Path | None = None  # the built-ins' folder, resolved once a compile
        self.used: dict[int, set[str]] = {}  # each definition's references, by its id (a file linked into
        # two others brings the same definitions twice)

    def link(self, program: ast.Program, path: str, stack: tuple[str, ...]) -> ast.Program:
        """`program` with its imports' definitions added before its own."""
        if not program.imports:
            return program
        own = definitions(program)
        brought: dict[str, tuple[object, ast.ImportDef]] = {}
        for imp in program.imports:
            imported = self.module(imp, path, stack)
            if imported is None:
                continue
            for name, span in imp.names:
                self.bring(imported, name, span, imp, own, brought)
        added = {kind: tuple(getattr_all(kind, brought)) for kind in _KINDS}
        return replace(program, imports=(), **{kind: (*added[kind], *getattr(program, kind)) for kind in _KINDS})

    def bring(self, imported: ast.Program, name: str, span: Span, imp: ast.ImportDef, own: dict,
              brought: dict) -> None:
        table = definitions(imported)
        if name not in table:
            guess = suggest(name, table)
            self.context.error(span, f"{_module_text(imp)} has no block, let, def or network named {name!r}",
                               f"did you mean {guess!r}?" if guess else
                               f"it defines: {', '.join(sorted(table)) or 'nothing'}", "import")
            return
        for definition in closure(imported, name, table, self.uses):
            if definition.name in own:
                local = own[definition.name]
                self.context.error(span, f"{definition.name!r} is imported here (from {_module_text(imp)}) and "
                                   f"defined at line {local.span.line}", "rename one of them", "import")
                return
            earlier = brought.get(definition.name)
            if earlier is not None and earlier[0] is not definition:
                self.context.error(span, f"{definition.name!r} comes from {_module_text(imp)} and from "
                                   f"{_module_text(earlier[1])}", "import it from one of them", "import")
                return
            brought.setdefault(definition.name, (definition, imp))

    def module(self, imp: ast.ImportDef, importing: str, stack: tuple[str, ...]) -> ast.Program | None:
        """The imported file's program, linked; None after a diagnostic."""
        path = module_path(imp, importing)
        if path is None:
            guess = suggest(imp.module, resources.catalog())
            self.context.error(imp.module_span, f"no built-in named {imp.module!r}",
                               (f"did you mean {guess!r}? " if guess else "") +
                               'a file is imported by its path in quotes: from "blocks.cnn" import Block', "import")
            return None
        resolved = path.resolve()
        key = str(resolved)
        if key in stack:
            chain = " -> ".join(Path(p).name for p in (*stack[stack.index(key):], key))
            self.context.error(imp.module_span, f"import cycle: {chain}",
                               "move what both files need into a third file that imports neither", "import")
            return None
        if len(stack) >= MAX_IMPORT_DEPTH:
            self.context.error(imp.module_span, f"imports nested more than {MAX_IMPORT_DEPTH} deep", None, "limit")
            return None
        if key not in self.linked:
            program = self.read(imp, path, resolved)
            if program is None:
                return None
            self.linked[key] = self.link(program, str(path), (*stack, key))
        return self.linked[key]

    def uses(self, definition) -> set[str]:
        """`_references(definition)`, found once a compile."""
        found = self.used.get(id(definition))
        if found is None:
            found = self.used[id(definition)] = _references(definition)
        return found

    def specs_dir(self) -> Path | None:
        """The built-ins' folder resolved (None where that fails: `_display` says why)."""
        if self.specs is None:
            try:
                self.specs = resources.specs_dir().resolve()
            except OSError:
                return None
        return self.specs

    def read(self, imp: ast.ImportDef, path: Path, resolved: Path) -> ast.Program | None:
        try:
            source = read_source(path).renamed(_display(path, resolved, self.specs_dir()))
        except SourceError as problem:
            self.context.error(imp.module_span, f"cannot import {_module_text(imp)}: {problem.message}",
                               f"the path is relative to this file: {path}", "import")
            return None
        self.sources[source.path] = source
        try:
            program = _parsed(source)
        except CompileError as exc:
            self.context.extend(exc.diagnostics)
            self.context.error(imp.module_span, f"{_module_text(imp)} has errors (above)", None, "import")
            return None
        return program


@lru_cache(maxsize=32)
def _parsed(source: SourceFile) -> ast.Program:
    """An imported file's program, by its name and text: a language server links the same
    imports at every keystroke (the syntax tree is immutable; a file that fails is not kept)."""
    from ..parse import parse

    return derive_variants(parse(source))


def getattr_all(kind: str, brought: dict) -> list:
    """The brought definitions that belong in the program's `kind` tuple."""
    types = {"defs": ast.DefDef, "lets": ast.LetDef, "blocks": ast.BlockDef, "networks": ast.NetworkDef}[kind]
    return [d for d, _ in brought.values() if isinstance(d, types)]


def _module_text(imp: ast.ImportDef) -> str:
    return f'"{imp.module}"' if imp.quoted else imp.module


def link_imports(program: ast.Program, context: Context | None = None,
                 source: SourceFile | None = None) -> ast.Program:
    """The program with every import followed (see the module's docstring); `source`: the
    importing file, where no context says it."""
    context, own = alone(context)
    if context.source is None and source is not None:
        context.source = source
    if not program.imports:
        return finish(program, context, own)
    path = context.source.path if context.source is not None else ""
    root = str(Path(path).resolve()) if path and not path.startswith("<") else path
    linker = Linker(context)
    linked = linker.link(program, path, (root,))
    context.sources.update(linker.sources)
    if context.errors:
        context.stop()
    return finish(linked, context, own)


__all__ = ["Linker", "closure", "definitions", "display_path", "link_imports", "module_path", "real_path"]
