"""The language server's memory between keystrokes: what an edit did not change is not
computed again, and the answer is the one `lsp.analyze` (every network of the file
compiled afresh, which is `cnndsl check --network N` for each N) would give.

- **Parse, per top-level definition.** The text is cut before each line that starts a
  definition at column 0 (`network`, `block`, `def`, `let`, `from`), with the comment and
  blank lines just above it; each piece is parsed alone, laid out at its own line, and
  kept by its text and line: an edit inside one block parses that block again. Where a
  piece does not parse alone (a typo, or an unclosed bracket that runs into the next
  piece), its own errors are the quick answer and the whole file's parse gives the
  complete one (`WHOLE`), so syntax errors are the parser's own; a file long enough to
  meet the parser's token limit is parsed whole.
- **The front end once.** `compiler.front_end` (imports, variants, names: what is the same
  for every network) runs once per version, not once per network.
- **Each network's check, kept by what it reads.** A network's result is kept under the
  exact definitions it reaches (by name, transitively, the syntax trees themselves: an
  unchanged definition is the very object its cached piece gave), the text of every
  imported file, and the file's switch names. An edit to a block re-checks the networks
  that reach it, and no other.

`Update` is one version's work: the front end at once, then the networks the edit
reached, one `step` at a time (the server runs the quick ones before it first answers and
the rest between messages, so a newer keystroke overtakes them). `analysis(final=True)`
is the whole answer once every network is checked.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from .. import ast, ir
from ..compiler import Compiled, back_end, front_end
from ..diagnostics import ERROR, CompileError, Diagnostic
from ..source import MAX_SOURCE_BYTES, SourceFile, Span

_START = re.compile(r"^(?:network|block|def|let|from)\b", re.M)
WHOLE = "\x00whole file"  # the step that parses the whole file (no network has this name)
MAX_PIECES_TEXT = 20_000  # the parser's token limit counts a whole file: longer texts are parsed whole


# -- what the server answers ------------------------------------------------------------

@dataclass
class Analysis:
    """What the compiler said about one version of a document."""

    source: SourceFile
    program: ast.Program | None = None
    compiled: list[Compiled] = field(default_factory=list)  # one per network that compiles
    partial: list[Compiled] = field(default_factory=list)  # networks with errors: their shapes so far

    @property
    def shown(self) -> list[Compiled]:
        """What hover and inlay hints read: the networks that compile, and the partial ones."""
        return self.compiled + self.partial
    diagnostics: list[Diagnostic] = field(default_factory=list)
    per_network: dict = field(default_factory=dict)  # Checked by name, in an Update's analysis


def at_imports(program: ast.Program | None, source: SourceFile, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """A diagnostic inside an imported file, shown at the import that brings the file in
    (the editor shows this document's diagnostics): `in blocks.cnn:3:5: ...`."""
    if program is None or not program.imports:
        return diagnostics
    from ..passes.imports import display_path

    files = {}
    for imp in program.imports:
        files.setdefault(display_path(imp, source.path), imp)
    out = []
    for d in diagnostics:
        imp = files.get(d.span.file) if d.span.file != source.path else None
        if imp is None:
            out.append(d)
            continue
        where = f"{d.span.file}:{d.span.line}:{d.span.column}"
        out.append(Diagnostic(d.severity, imp.module_span, f"in {where}: {d.message}", d.hint, d.code))
    return out


def known_anywhere(tree) -> bool:
    from ..traverse import walk

    return isinstance(tree, ir.Network) and any(
        isinstance(node, ir.Layer) and node.stats is not None for node in walk(tree.body))


def unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """A block's problem is found once per network that uses it: say it once."""
    seen: set = set()
    kept = []
    for d in diagnostics:
        key = (d.severity, d.span, d.message)
        if key not in seen:
            seen.add(key)
            kept.append(d)
    return kept


# -- parse, piece by piece -------------------------------------------------------------

_COMMENTS_ABOVE = re.compile(r"(?:^[ \t]*(?:#[^\n]*)?\n)*\Z", re.M)


def pieces(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each piece: the lines before the first definition, then each
    definition with the comment and blank lines just above it (a variant's own comment),
    up to the next."""
    starts = [0]
    for match in _START.finditer(text):
        above = _COMMENTS_ABOVE.search(text, starts[-1], match.start())
        begin = above.start() if above is not None else match.start()
        if begin > starts[-1]:
            starts.append(begin)
    bounds = starts + [len(text)]
    out, line = [], 1
    for begin, end in zip(bounds, bounds[1:]):
        out.append((line, text[begin:end]))
        line += text.count("\n", begin, end)
    return out


class Parser:
    """Parses a document's versions, keeping each piece's syntax tree by (line, text)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kept: dict[tuple[int, str], ast.Program] = {}

    def parse(self, source: SourceFile, whole: bool = True) -> ast.Program:
        """The program `parse.parse(source)` gives; raises its `CompileError`. Where a piece
        does not parse: with `whole`, the whole file is parsed (its syntax errors are the
        answer); else `PieceError` says the piece's own, quickly."""
        from ..parse import parse

        if len(source.text) >= MAX_PIECES_TEXT or "\x00" in source.text:
            return parse(source)
        kept, programs = {}, []
        for line, text in pieces(source.text):
            program = self.kept.get((line, text))
            if program is None:
                try:
                    program = parse(SourceFile(self.path, "\n" * (line - 1) + text))
                except CompileError as exc:
                    if not whole:
                        raise PieceError(exc.diagnostics) from None
                    return parse(source)  # the whole file's syntax errors, as `cnndsl check` says them
            kept[(line, text)] = program
            programs.append(program)
        self.kept = kept
        return merged(programs, source)


class PieceError(CompileError):
    """A piece's own syntax errors: what the whole file's parse is likely to say."""


def merged(programs: list[ast.Program], source: SourceFile) -> ast.Program:
    """One program of the pieces' programs, in order, spanning their definitions."""
    kinds = ("lets", "blocks", "networks", "defs", "variants", "imports")
    parts = {kind: tuple(d for p in programs for d in getattr(p, kind)) for kind in kinds}
    spans = [p.span for p in programs if any(getattr(p, kind) for kind in kinds)]
    if not spans:
        return ast.Program((), (), (), source.whole)
    first, last = spans[0], spans[-1]
    span = Span(source.path, first.line, first.column, last.end_line, last.end_column)
    return ast.Program(parts["lets"], parts["blocks"], parts["networks"], span, defs=parts["defs"],
                       variants=parts["variants"], imports=parts["imports"])


# -- what each network reads -------------------------------------------------------------

class Reach:
    """The definitions each network reaches, from the syntax tree of the file (before its
    imports are linked: an imported name reaches its `from` line, and the imported files'
    texts are part of every key). Each definition's names are found once."""

    def __init__(self) -> None:
        self.names: dict[int, tuple[object, frozenset, tuple]] = {}  # id -> (definition, names, switches)

    def of(self, definition) -> tuple[frozenset, tuple]:
        found = self.names.get(id(definition))
        if found is None or found[0] is not definition:
            found = (definition, _names_used(definition), _switches(definition))
            self.names[id(definition)] = found
        return found[1], found[2]

    def keys(self, program: ast.Program, imported: tuple) -> dict[str, tuple]:
        """network or variant name -> the key its check is kept under."""
        table: dict[str, object] = {}
        for imp in program.imports:
            for name, _ in imp.names:
                table.setdefault(name, imp)
        for kind in ("defs", "lets", "blocks", "networks", "variants"):
            for definition in getattr(program, kind):
                table.setdefault(definition.name, definition)
        switches = tuple(sorted({s for d in _all(program) for s in self.of(d)[1]}))
        live = {id(d) for d in _all(program)}
        self.names = {k: v for k, v in self.names.items() if k in live}
        keys = {}
        for definition in (*program.networks, *program.variants):
            keys[definition.name] = (tuple(self.closure(table, definition)), imported, switches)
        return keys

    def closure(self, table: dict, start) -> list:
        seen, order, stack = {id(start)}, [], [start]
        while stack:
            definition = stack.pop()
            order.append(definition)
            if isinstance(definition, ast.ImportDef):
                continue
            names, _ = self.of(definition)
            for name in sorted(names):
                used = table.get(name)
                if used is not None and id(used) not in seen:
                    seen.add(id(used))
                    stack.append(used)
        return order


def same_key(old: tuple, new: tuple) -> bool:
    """The same definitions (the very objects: an unchanged piece's), imported texts and switches."""
    (old_reached, *old_rest), (new_reached, *new_rest) = old, new
    return len(old_reached) == len(new_reached) and all(a is b for a, b in zip(old_reached, new_reached)) \
        and old_rest == new_rest


def _all(program: ast.Program):
    return (*program.defs, *program.lets, *program.blocks, *program.networks, *program.variants)


def _names_used(definition) -> frozenset:
    from ..passes.imports import _references

    names = set(_references(definition))
    if isinstance(definition, ast.VariantDef):
        names.add(definition.family)
    return frozenset(names)


def _switches(definition) -> tuple:
    from ..passes.expand import switches_of

    if isinstance(definition, (ast.DefDef, ast.VariantDef)):
        return ()
    kind = {ast.LetDef: 0, ast.BlockDef: 1, ast.NetworkDef: 2}[type(definition)]
    parts = [(), (), ()]
    parts[kind] = (definition,)
    return tuple(sorted(switches_of(ast.Program(*parts, definition.span))))


# -- one version's check ---------------------------------------------------------------------

@dataclass
class Checked:
    """One network's own result: its diagnostics past the front end's, and its tree."""

    key: tuple  # (the definitions it reaches, the imported files' texts, the switch names)
    errors: list[Diagnostic]
    warnings: list[Diagnostic]
    tree: object  # ir.Network, or None
    seconds: float  # the CPU time of its check (this thread's), which orders the next ones


@dataclass
class Document:
    """What is kept of one open document between its versions."""

    path: str
    parser: Parser = None
    reach: Reach = field(default_factory=Reach)
    checked: dict[str, Checked] = field(default_factory=dict)  # by network or variant name
    whole_seconds: float = 0.0  # the CPU time of the last parse of the whole file

    def __post_init__(self) -> None:
        self.parser = Parser(self.path)

    def begin(self, text: str) -> "Update":
        return Update(self, text)


class Update:
    """One version of a document: parsed and through the front end at once; `step` checks
    one network the edit reached (the quickest first); `done` when none is left."""

    def __init__(self, document: Document, text: str) -> None:
        self.document = document
        self.source = SourceFile(document.path, text)
        self.program: ast.Program | None = None
        self.front = None
        self.early: list[Diagnostic] = []  # a size or syntax problem: the whole answer
        self.names: list[str] = []
        self.keys: dict[str, tuple] = {}
        self.pending: list[str] = []
        self.version = None  # the client's version of the text
        self.cpu_start, self.cpu_first = 0.0, None  # the server's process time at the keystroke; ms to its first answer
        self._start()

    def _start(self) -> None:
        text = self.source.text
        if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
            self.early = [Diagnostic.error(self.source.whole, f"source is over the {MAX_SOURCE_BYTES:,}-byte limit",
                                           None)]
            return
        try:
            self.program = self.document.parser.parse(self.source, whole=False)
        except PieceError as exc:  # the piece's errors first; the whole file's parse is pending
            self.early = list(exc.diagnostics)
            self.pending = [WHOLE]
            return
        except CompileError as exc:
            self.early = list(exc.diagnostics)
            return
        self._checks()

    def _checks(self) -> None:
        """The front end, and the networks the edit reached, pending."""
        self.names = [n.name for n in self.program.networks] + [v.name for v in self.program.variants]
        self.front = front_end(self.source, {}, False, self.program)
        if self.front.stopped or not self.names:
            return
        imported = tuple(sorted((path, s.text) for path, s in self.front.sources.items()))
        self.keys = self.document.reach.keys(self.program, imported)
        checked = self.document.checked
        stale = [n for n in self.names if n not in checked or not same_key(checked[n].key, self.keys[n])]
        self.pending = sorted(stale, key=self._seconds)

    @property
    def done(self) -> bool:
        return not self.pending

    def _seconds(self, name: str) -> float:
        if name == WHOLE:
            return self.document.whole_seconds
        checked = self.document.checked.get(name)
        return checked.seconds if checked is not None else 0.0

    def predicted(self) -> float:
        """CPU seconds the next step is expected to take (its last time; 0 if never checked)."""
        return self._seconds(self.pending[0]) if self.pending else 0.0

    def remaining(self) -> float:
        return sum(self._seconds(n) for n in self.pending)

    def _whole(self) -> None:
        """The whole file's parse, where a piece had a syntax error: its errors are the answer."""
        from ..parse import parse

        start = time.thread_time()
        try:
            self.program = parse(self.source)
        except CompileError as exc:
            self.early = list(exc.diagnostics)
        else:  # the pieces were cut wrong: go on as if they had parsed
            self.early = []
            self._checks()
        self.document.whole_seconds = time.thread_time() - start

    def step(self) -> None:
        name = self.pending.pop(0)
        if name == WHOLE:
            self._whole()
            return
        start = time.thread_time()
        try:
            compiled = back_end(self.front, name, inherit=False)
        except CompileError as exc:
            errors = [d for d in exc.diagnostics if d.severity == ERROR]
            warnings = [d for d in exc.diagnostics if d.severity != ERROR]
            tree = getattr(exc, "tree", None)
        else:
            errors, warnings, tree = [], list(compiled.warnings), compiled.network
        self.document.checked[name] = Checked(self.keys[name], errors, warnings, tree,
                                              time.thread_time() - start)

    def finish(self) -> None:
        while self.pending:
            self.step()

    def analysis(self, final: bool = True, previous=None):
        """The `lsp.Analysis` of this version: with `final`, every network (`finish` first);
        else the networks checked so far, with the previous version's diagnostics of those
        still pending where the edit left every line where it was."""
        if final:
            self.finish()
        analysis = Analysis(self.source, self.program)
        if self.program is None or self.front is None:
            analysis.diagnostics = list(self.early)
            return analysis
        if not self.names or self.front.stopped:
            analysis.diagnostics = _front_only(self.front, bool(self.names))
            return analysis
        front_errors = [d for d in self.front.diagnostics if d.severity == ERROR]
        front_warnings = [d for d in self.front.diagnostics if d.severity != ERROR]
        seen = set(self.front.diagnostics)
        diagnostics = []
        for name in self.names:
            if name in self.pending:
                diagnostics += _stale(previous, name, self.source)
                continue
            checked = self.document.checked[name]
            errors = front_errors + [d for d in checked.errors if d not in seen]
            warnings = front_warnings + [d for d in checked.warnings if d not in seen]
            if errors:
                diagnostics += errors + warnings
                if known_anywhere(checked.tree):
                    analysis.partial.append(Compiled(checked.tree, self.source, []))
            else:
                diagnostics += warnings
                analysis.compiled.append(Compiled(checked.tree, self.source, warnings))
        analysis.diagnostics = unique(at_imports(self.program, self.source, diagnostics))
        analysis.per_network = {n: self.document.checked[n] for n in self.names if n not in self.pending}
        return analysis


def _front_only(front, has_networks: bool) -> list[Diagnostic]:
    """A file whose front end stopped (every network would say the same), or one with no
    network (its definitions' problems, as `resolve` says them, errors first)."""
    errors = [d for d in front.diagnostics if d.severity == ERROR]
    if not errors:
        return []
    return unique(errors + [d for d in front.diagnostics if d.severity != ERROR])


def _stale(previous, name: str, source: SourceFile) -> list[Diagnostic]:
    """The previous version's diagnostics of a network not yet checked again, where the
    lines are where they were (else none: they would point at the wrong lines)."""
    if previous is None or previous.source.text.count("\n") != source.text.count("\n"):
        return []
    checked = getattr(previous, "per_network", {}).get(name)
    return [] if checked is None else checked.errors + checked.warnings


__all__ = ["Analysis", "Document", "Parser", "Reach", "Update", "at_imports", "known_anywhere", "merged", "pieces",
           "unique"]
