"""`cnndsl lsp`: a language server for `.cnn` files, a reader of the compiler's results.

Editors talk to it over stdio (pygls). On every open, change (incremental) and save it
checks the buffer and publishes its diagnostics, errors and warnings alike, with the
compiler's own messages and hints: what the edit did not change is kept
(`incremental.py`), the quick part is answered at once and the rest follows between
messages, and the complete list is `analyze`'s (every network compiled afresh). Hover shows what the checked IR
knows of the layer (or block, group, network) under the cursor: its output shape,
parameter count and receptive field, once per instance where a block is used more than
once. Go-to-definition jumps to blocks, `let`s and parameters, from the syntax tree.
Completion, signature help, document symbols, rename, semantic tokens, quick fixes and
inlay hints (each line's output shape, the notes' `[55x55x96]`) come from `assist.py`;
formatting from `fmt.py`.

The analysis (`analyze`, `hover_text`, `definition_span`, `assist`) is plain Python
over the compiler's values and knows nothing of LSP; `serve` wraps it in pygls, which
is imported only there, so `cnndsl` runs without the `lsp` extra installed. A request
whose parameters do not fit LSP's types (a negative position, one past 2**31-1) gets a
JSON-RPC error, and a message with a broken header is answered with one and skipped:
the server reads on from the next header.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

import click

from ..errors import CnndslError, MissingExtra
from .. import ast, ir
from ..compiler import Compiled, compile_network
from ..diagnostics import ERROR, CompileError, Diagnostic
from ..node import replace
from ..report import editor_message
from ..passes import link_imports, resolve
from ..passes.shapes import fmt_shape
from ..source import MAX_SOURCE_BYTES, SourceFile, Span
from ..summary import describe
from .incremental import Analysis, Document
from .incremental import at_imports as _at_imports, known_anywhere as _known_anywhere, unique as _unique
from ..traverse import Visitor

MAX_INSTANCES_SHOWN = 8
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def analyze(text: str, path: str) -> Analysis:
    """Parse the text and compile every network in it; collect all diagnostics. (The
    server's `incremental.Update` gives the same, keeping what an edit did not change.)"""
    source = SourceFile(path, text)
    analysis = Analysis(source)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        analysis.diagnostics.append(Diagnostic.error(
            source.whole, f"source is over the {MAX_SOURCE_BYTES:,}-byte limit", None))
        return analysis
    from ..parse import parse

    try:
        analysis.program = parse(source)
        if not analysis.program.networks and not analysis.program.variants:
            resolve(link_imports(analysis.program, None, source))  # blocks and lets alone: compile_network resolves the rest
    except CompileError as exc:  # the tree, where there is one, still serves go-to-definition
        analysis.diagnostics += exc.diagnostics
        return analysis
    names = [n.name for n in analysis.program.networks] + [v.name for v in analysis.program.variants]
    for name in names:
        try:
            compiled = _compile(analysis.program, source, name)
        except CompileError as exc:
            analysis.diagnostics += exc.diagnostics
            tree = getattr(exc, "tree", None)  # the compiler's partial IR: unknown parts have stats None
            if _known_anywhere(tree):
                analysis.partial.append(Compiled(tree, source, []))
            continue
        analysis.compiled.append(compiled)
        analysis.diagnostics += compiled.warnings
    analysis.diagnostics = _unique(_at_imports(analysis.program, source, analysis.diagnostics))
    return analysis


def _compile(program: ast.Program, source: SourceFile, name: str) -> Compiled:
    """`compiler.compile_network` from the tree already parsed (one parse per keystroke)."""
    return compile_network(source, {}, network=name, program=program)


def same_code(old: str, new: str) -> bool:
    """Whether two texts have the same tokens at the same places, comments aside (an
    edit inside a comment, or of trailing spaces): the compiler would say the same."""
    from .assist import code_tokens

    if _over_limit(old) or _over_limit(new):  # the size decides, not the tokens (a long comment)
        return False
    old_lines, new_lines = old.split("\n"), new.split("\n")
    if len(old_lines) != len(new_lines):
        return False
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
    if not changed:
        return True
    first, last = changed[0], changed[-1] + 1  # tokens end at a line's end (a string too): the lines between decide
    old_part, new_part = "\n".join(old_lines[first:last]), "\n".join(new_lines[first:last])
    if '"' in old_part or '"' in new_part:
        return code_tokens(old) == code_tokens(new)
    return code_tokens(old_part) == code_tokens(new_part)


def _over_limit(text: str) -> bool:
    return len(text) * 4 > MAX_SOURCE_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES


# -- hover --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Shown:
    """One IR node that hover can show, where the source says it is."""

    span: Span
    rank: int  # which of several nodes at one span speaks for them: lower first
    kind: str  # `conv`, `block Res`, `group`: the same for every instance of one thing
    title: str  # `conv 3x3/1 64 pad 1`: what this instance is
    path: str
    stats: ir.Stats
    instance: str = ""  # the module path of the block instance it sits in ("" at the top)


def _join(prefix: str, name: str | None) -> str:
    if name is None:
        return prefix
    return f"{prefix}.{name}" if prefix else str(name)


class _Nodes(Visitor):
    """Collects what hover and inlay hints can show; visits carry the module prefix and
    the path of the block instance being walked."""

    def __init__(self) -> None:
        self.shown: list[_Shown] = []

    def add(self, node, rank: int, kind: str, title: str, path: str, instance: str, span=None) -> None:
        if node.stats is not None:  # None: its output is not known (an error before it)
            self.shown.append(_Shown(span or node.span, rank, kind, title, path, node.stats, instance))

    def visit_Unknown(self, node: ir.Unknown, prefix: str, instance: str) -> None:
        pass  # an element that failed: nothing to show

    # A composite whose output is not known may hold parts that are (a side output reading
    # an earlier layer, the layers of a block before its error): each is shown where known.

    def visit_Layer(self, node: ir.Layer, prefix: str, instance: str) -> None:
        if node.stats is not None:
            self.add(node, 0, node.kind, describe(node), _join(prefix, node.name), instance)

    def visit_Seq(self, node: ir.Seq, prefix: str, instance: str) -> None:
        inner = _join(prefix, node.name)
        if node.name is not None:
            self.add(node, 2, "group", "group", inner, instance)
        self.generic_visit(node, inner, instance)

    def visit_BlockInstance(self, node: ir.BlockInstance, prefix: str, instance: str) -> None:
        path, title = _join(prefix, node.name), f"block {node.block}"
        self.add(node, 1, title, title, path, instance)
        self.add(node, 3, title, title, path, path, span=node.body.span)
        self.generic_visit(node.body, path, path)

    def visit_Concat(self, node: ir.Concat, prefix: str, instance: str) -> None:
        kind = "split" if node.split else "concat" if node.op == "cat" else node.op  # add { ... }, mul { ... }
        self.add(node, 2, kind, kind, prefix, instance)
        self.generic_visit(node, prefix, instance)

    def visit_Residual(self, node: ir.Residual, prefix: str, instance: str) -> None:
        self.add(node, 2, "residual", "residual", prefix, instance)
        self.generic_visit(node.body, prefix, instance)
        if node.shortcut.applied:
            self.generic_visit(node.shortcut, _join(prefix, node.shortcut.name), instance)

    def visit_Gate(self, node: ir.Gate, prefix: str, instance: str) -> None:
        self.add(node, 2, "gate", "gate", prefix, instance)
        self.generic_visit(node.body, prefix, instance)

    def visit_Side(self, node: ir.Side, prefix: str, instance: str) -> None:
        self.add(node, 2, "side", "side output", prefix, instance)
        self.generic_visit(node, prefix, instance)


def _nodes(network: ir.Network) -> list[_Shown]:
    """Every layer, block instance, named group and composite of the network, with the
    module path the generated code gives it (as `summary.rows` computes it)."""
    walker = _Nodes()
    if network.body.stats is not None:  # None in a partial network: its output is not known
        walker.shown.append(_Shown(network.span, 4, "network", f"network {network.name}", "", network.body.stats))
    walker.generic_visit(network.body, "", "")
    return walker.shown


def _offset(source: SourceFile, line: int, column: int) -> int:
    lines = source.text.split("\n")[: max(0, line - 1)]
    return sum(len(text) + 1 for text in lines) + column - 1


def _contains(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) < (span.end_line, span.end_column)


def _size(source: SourceFile, span: Span) -> int:
    return _offset(source, span.end_line, span.end_column) - _offset(source, span.line, span.column)


def _stat_line(stats: ir.Stats) -> str:
    return f"output {fmt_shape(stats.out_shape)} · {stats.params:,} parameters · receptive field {stats.rf_text}"


def hover_text(analysis: Analysis, line: int, column: int) -> str | None:
    """Markdown for the innermost node at 1-based (line, column), or None."""
    from .assist import init_hover

    for compiled in analysis.shown:  # a target of the network's init { ... }
        found = init_hover(compiled.network, line, column, analysis.source.path)
        if found is not None:
            return found
    line, column = _past_label(analysis.source, line, column)
    candidates: list[tuple[str, _Shown]] = []
    for compiled in analysis.shown:
        for node in _nodes(compiled.network):
            if node.span.file == analysis.source.path and _contains(node.span, line, column):
                candidates.append((compiled.network.name, node))
    word = _word_at(analysis.source, line, column)
    let = _let_named(analysis.program, word) if word else None
    if let is not None and not _contains(let.span, line, column):
        return _let_hover(analysis, let)
    if not candidates:
        return None
    smallest = min(_size(analysis.source, n.span) for _, n in candidates)
    tied = [(net, n) for net, n in candidates if _size(analysis.source, n.span) == smallest]
    rank = min(n.rank for _, n in tied)
    chosen = [(net, n) for net, n in tied if n.rank == rank]
    return _describe_instances(chosen, len(analysis.shown) > 1)


def _describe_instances(chosen: list[tuple[str, _Shown]], many_networks: bool) -> str:
    first = chosen[0][1]
    if len(chosen) == 1:
        where = f" `{first.path}`" if first.path else ""
        return f"**{first.title}**{where}\n\n{_stat_line(first.stats)}"
    same = all(node.kind == first.kind for _, node in chosen)
    lines = [f"**{first.kind}**: {len(chosen)} instances" if same else f"**{len(chosen)} layers**", ""]
    for network, node in chosen[:MAX_INSTANCES_SHOWN]:
        place = f"{network}: " if many_networks else ""
        lines.append(f"- {place}`{node.path or '(top)'}` {node.title}: {_stat_line(node.stats)}")
    if len(chosen) > MAX_INSTANCES_SHOWN:
        lines.append(f"- ... and {len(chosen) - MAX_INSTANCES_SHOWN} more")
    return "\n".join(lines)


def _past_label(source: SourceFile, line: int, column: int) -> tuple[int, int]:
    """On the label of `conv1: conv(64, 3)`, the position of what it labels."""
    text = source.line_text(line)
    for match in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*", text):
        if match.start() <= column - 1 < match.end():
            return line, match.end() + 1
    return line, column


def _let_hover(analysis: Analysis, let: ast.LetDef) -> str:
    """A `let` name where it is used: its definition, and the layers it became."""
    text = analysis.source.line_text(let.span.line).strip()
    found = []
    for compiled in analysis.shown:
        for node in _nodes(compiled.network):
            if node.rank == 0 and _inside(node.span, let.span):
                found.append((compiled.network.name, node))
    head = f"```cnn\n{text}\n```"
    if not found:
        return head
    return head + "\n\n" + _describe_instances(found, len(analysis.shown) > 1)


def _inside(inner: Span, outer: Span) -> bool:
    return (outer.line, outer.column) <= (inner.line, inner.column) and \
        (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column)


# -- go to definition ---------------------------------------------------------------

def _word_at(source: SourceFile, line: int, column: int) -> str | None:
    text = source.line_text(line)
    hash_at = _comment_start(text)
    for match in _WORD.finditer(text):
        if match.start() <= column - 1 <= match.end():  # on the word, or just after it
            if hash_at is not None and match.start() >= hash_at:
                return None
            return match.group()
    return None


def _comment_start(text: str) -> int | None:
    in_string = False
    for i, ch in enumerate(text):
        if ch == '"':
            in_string = not in_string
        elif ch == "#" and not in_string:
            return i
    return None


def _let_named(program: ast.Program | None, name: str | None) -> ast.LetDef | None:
    if program is None or name is None:
        return None
    return next((let for let in program.lets if let.name == name), None)


def _name_span(source: SourceFile, span: Span, keyword: str, name: str) -> Span:
    """The span of NAME in `keyword NAME` at the start of a definition."""
    text = source.line_text(span.line)
    match = re.compile(rf"{keyword}\s+({re.escape(name)})\b").search(text, span.column - 1)
    if match is None:
        return span
    return Span(span.file, span.line, match.start(1) + 1, span.line, match.end(1) + 1)


def definition_span(analysis: Analysis, line: int, column: int) -> Span | None:
    """Where the block, `let` or parameter named under the cursor is defined."""
    program = analysis.program
    word = _word_at(analysis.source, line, column)
    if program is None or word is None:
        return None
    for definition in (*program.defs, *program.blocks, *program.networks):  # a parameter, in its own definition
        if _contains(definition.span, line, column):
            for param in definition.params or ():
                if param.name == word:
                    return Span(param.span.file, param.span.line, param.span.column,
                                param.span.line, param.span.column + len(param.name))
    for named in (*program.blocks, *program.defs):
        if named.name == word:
            return named.name_span
    let = _let_named(program, word)
    if let is not None:
        return _name_span(analysis.source, let.span, "let", let.name)
    for network in (*program.networks, *program.variants):
        if network.name == word:
            return network.name_span
    return _imported_definition(program, analysis.source, word)


def _imported_definition(program: ast.Program, source: SourceFile, word: str) -> Span | None:
    """Where an imported name is defined, in the file it comes from."""
    from ..passes.context import Context
    from ..passes.imports import Linker, definitions

    for imp in program.imports:
        if word not in [name for name, _ in imp.names]:
            continue
        imported = Linker(Context(source)).module(imp, source.path, ())
        definition = definitions(imported).get(word) if imported is not None else None
        if definition is not None:
            return getattr(definition, "name_span", definition.span)
    return None


# -- what the editing help reads ------------------------------------------------------

def inlay_hints(analysis: Analysis) -> list[tuple[int, str]]:
    """(line, label) for each line of a network or block whose output shape is known: the
    shape after the last thing on the line, `[HxWxC]`, one per distinct instance."""
    from . import assist

    nodes = []
    for compiled in analysis.shown:
        for node in _nodes(compiled.network):
            if node.rank == 4:
                continue
            nodes.append(((compiled.network.name, node.instance), node.span, node.stats,
                          _size(analysis.source, node.span)))
    shapes = assist.line_shapes(nodes, analysis.source.path)
    if analysis.program is not None:
        by_name = {c.network.name: c.network for c in analysis.shown}
        for network in analysis.program.networks:
            if network.input is not None and network.name in by_name:
                shapes.setdefault(network.input.span.line, [by_name[network.name].input])
    return [(line, assist.inlay_label(found)) for line, found in sorted(shapes.items())]


# -- the server ---------------------------------------------------------------------

def path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


@dataclass
class _State:
    analyses: dict = field(default_factory=dict)  # uri -> Analysis (the last published)
    documents: dict = field(default_factory=dict)  # uri -> incremental.Document: what is kept between versions
    updates: dict = field(default_factory=dict)  # uri -> incremental.Update whose networks are still being checked
    inlay_hints: bool = True  # the client's `initializationOptions.inlayHints` / `cnndsl.inlayHints`
    checked_notifications: bool = False  # `initializationOptions.checkedNotifications`: say when a version is done
    warm: bool = False  # the syntax-error path is loaded (`_warm_up`)


# The first answer to an edit comes once the networks it reached that fit in this time are
# checked (with what the edit did not reach, and the file's syntax and names); where more
# is left, the complete list follows as the rest are checked between messages.
QUICK_SECONDS = 0.010


def _warm_up() -> None:
    """The first syntax error of a session would load Lark's tables and match the syntax
    error examples (half a second): done once, before the user's first typo."""
    from ..parse import parse

    try:
        parse(SourceFile("<warm-up>", "network N() {\n    input 3x8x8\n    conv(8, 3 -> relu\n}\n"))
    except CompileError:
        pass


def _unchanged(previous: Analysis, text: str) -> bool:
    return previous.source.text == text or same_code(previous.source.text, text)


def serve() -> None:
    """Run the language server over stdin and stdout until the client says exit."""
    from lsprotocol import types as lsp
    from pygls.lsp.server import LanguageServer

    from .. import __version__

    server = LanguageServer("cnndsl", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
    _quiet_client_errors()
    state = _State()
    _register_documents(server, state, lsp)
    _register_reading(server, state, lsp)
    _register_editing(server, state, lsp)
    _run_stdio(server)


def _quiet_client_errors() -> None:
    """pygls logs a traceback for each request it answers with an error the client caused
    (parameters of the wrong type, a document not open): the editor's log would fill with
    tracebacks that are no bug. Those records are left out; an internal error (a handler
    that raised something else) keeps its traceback, for a bug report."""
    import logging

    from pygls.exceptions import JsonRpcException, JsonRpcInternalError

    class ClientErrors(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            error = record.exc_info[1] if record.exc_info else None
            if isinstance(error, JsonRpcException) and not isinstance(error, JsonRpcInternalError):
                return False
            return not record.getMessage().startswith("Unable to deserialize message")

    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.addFilter(ClientErrors())
    logger = logging.getLogger("pygls")
    logger.addHandler(handler)
    logger.propagate = False


def _to_range(lsp, document, line: int, column: int, end_line: int, end_column: int):
    """1-based compiler positions to the client's 0-based UTF-16 range."""
    codec, lines = document.position_codec, document.lines
    start = codec.position_to_client_units(lines, lsp.Position(line - 1, column - 1))
    end = codec.position_to_client_units(lines, lsp.Position(end_line - 1, end_column - 1))
    return lsp.Range(start=start, end=end)


def _span_range(lsp, document, span: Span):
    return _to_range(lsp, document, span.line, span.column, span.end_line, span.end_column)


def _text(document) -> str:
    """The document's text for the token-level features (symbols, semantic tokens,
    completion, rename, formatting); empty for one over the source size limit, whose one
    diagnostic says so: a scan of megabytes would keep the server from answering."""
    text = document.source
    return "" if _over_limit(text) else text


def _open_document(server, uri: str):
    """The document the client opened at `uri`. pygls would read any other from disk (a
    missing file, a directory, a device); a request for one gets a JSON-RPC error instead."""
    from urllib.parse import unquote

    from pygls.exceptions import JsonRpcInvalidParams

    document = server.workspace.text_documents.get(unquote(uri))
    if document is None:
        raise JsonRpcInvalidParams(f"{uri!r} is not an open document: open it first (textDocument/didOpen)")
    return document


def _cursor(server, state: _State, uri: str, position):
    """The document, its analysis and the 1-based (line, column) of an LSP position."""
    document = _open_document(server, uri)
    lines = document.lines
    if position.line >= len(lines):
        return document, state.analyses.get(uri), len(lines) + 1, 1
    at = document.position_codec.position_from_client_units(lines, position)
    return document, state.analyses.get(uri), at.line + 1, min(at.character, len(lines[at.line])) + 1


class _Checking:
    """Diagnostics for each version of a document: the quick part at once, the rest
    between messages (`incremental.Update`), each published as it comes."""

    def __init__(self, server, state: _State, lsp, to_lsp) -> None:
        self.server, self.state, self.lsp, self.to_lsp = server, state, lsp, to_lsp

    def publish(self, uri: str, document, version, analysis: Analysis, final: bool, update=None) -> None:
        if analysis.program is None:
            previous = self.state.analyses.get(uri)
            analysis.program = previous.program if previous is not None else None  # go-to-definition mid-edit
        self.state.analyses[uri] = analysis
        shown = [self.to_lsp(document, d) for d in analysis.diagnostics if d.span.file == analysis.source.path]
        self.server.text_document_publish_diagnostics(
            self.lsp.PublishDiagnosticsParams(uri=uri, version=version, diagnostics=shown))
        cpu = [0.0, 0.0]  # CPU milliseconds of this version's work: to its first publish, to this one
        if update is not None:
            cpu[1] = (time.process_time() - update.cpu_start) * 1000
            update.cpu_first = cpu[0] = cpu[1] if update.cpu_first is None else update.cpu_first
        if final and not self.state.warm:  # after the first answer, while the user reads it
            self.state.warm = True
            asyncio.get_running_loop().call_later(0.05, _warm_up)
        if final and self.state.checked_notifications:  # the list just published is complete
            self.server.protocol.notify("$/cnndsl/checked", {"uri": uri, "version": version,
                                                             "diagnostics": len(shown), "cpu_ms": cpu})

    def refresh(self, uri: str) -> None:
        started, cpu_start = time.perf_counter(), time.process_time()
        document = _open_document(self.server, uri)
        previous = self.state.analyses.get(uri)
        if uri not in self.state.updates and previous is not None and _unchanged(previous, document.source):
            # a save, an edit undone, or only comments or spaces between tokens: every result stands
            analysis = replace(previous, source=SourceFile(previous.source.path, document.source))
            self.publish(uri, document, document.version, analysis, True)
            return
        if uri not in self.state.documents:
            self.state.documents[uri] = Document(path_of(uri))
        update = self.state.documents[uri].begin(document.source)
        update.version, update.cpu_start, update.cpu_first = document.version, cpu_start, None
        while update.pending and time.perf_counter() - started + update.predicted() < QUICK_SECONDS:
            update.step()  # the quick networks the edit reached, before the first answer
        if update.remaining() <= QUICK_SECONDS or previous is None:
            self.state.updates.pop(uri, None)
            self.publish(uri, document, update.version, update.analysis(), True, update)
            return
        self.state.updates[uri] = update
        self.publish(uri, document, update.version, update.analysis(final=False, previous=previous), False, update)
        asyncio.get_running_loop().call_soon(self.go_on, uri, update)

    def go_on(self, uri: str, update) -> None:
        """One more network of a pending update, between messages: a newer keystroke's
        update takes its place (what was checked stays kept)."""
        if self.state.updates.get(uri) is not update:
            return
        document = self.server.workspace.text_documents.get(uri)
        if document is None:
            return
        try:
            if update.pending:
                update.step()
        except BaseException:  # a fault of the compiler's (logged by the loop): the next edit starts afresh
            del self.state.updates[uri]
            raise
        if update.pending:
            asyncio.get_running_loop().call_soon(self.go_on, uri, update)
            return
        del self.state.updates[uri]
        self.publish(uri, document, update.version, update.analysis(), True, update)
        if self.state.inlay_hints and _can_refresh(self.server):  # hints asked for in between were partial
            self.server.protocol.send_request(self.lsp.WORKSPACE_INLAY_HINT_REFRESH, None)


def _register_documents(server, state: _State, lsp) -> None:
    severity = {ERROR: lsp.DiagnosticSeverity.Error}

    def to_lsp(document, d: Diagnostic):
        return lsp.Diagnostic(range=_span_range(lsp, document, d.span), message=editor_message(d), source="cnndsl",
                              severity=severity.get(d.severity, lsp.DiagnosticSeverity.Warning),
                              code=d.code or None, data={"hint": d.hint, "message": d.message})

    checking = _Checking(server, state, lsp, to_lsp)
    refresh = checking.refresh

    @server.feature(lsp.INITIALIZE)
    def initialize(params: lsp.InitializeParams) -> None:
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("inlayHints"), bool):
            state.inlay_hints = options["inlayHints"]
        if isinstance(options, dict) and options.get("checkedNotifications") is True:
            state.checked_notifications = True

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def configuration(params: lsp.DidChangeConfigurationParams) -> None:
        settings = params.settings if isinstance(params.settings, dict) else {}
        settings = settings.get("cnndsl", settings)
        if isinstance(settings, dict) and isinstance(settings.get("inlayHints"), bool):
            state.inlay_hints = settings["inlayHints"]
            server.protocol.send_request(lsp.WORKSPACE_INLAY_HINT_REFRESH, None) \
                if _can_refresh(server) else None

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: lsp.DidOpenTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: lsp.DidChangeTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: lsp.DidSaveTextDocumentParams) -> None:
        refresh(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: lsp.DidCloseTextDocumentParams) -> None:
        for kept in (state.analyses, state.documents, state.updates):
            kept.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


def _can_refresh(server) -> bool:
    capabilities = server.client_capabilities
    workspace = getattr(capabilities, "workspace", None) if capabilities else None
    inlay = getattr(workspace, "inlay_hint", None) if workspace else None
    return bool(inlay and inlay.refresh_support)


def _register_reading(server, state: _State, lsp) -> None:
    from . import assist

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(params: lsp.HoverParams):
        document, analysis, line, column = _cursor(server, state, params.text_document.uri, params.position)
        text = hover_text(analysis, line, column) if analysis else None
        if text is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(params: lsp.DefinitionParams):
        document, analysis, line, column = _cursor(server, state, params.text_document.uri, params.position)
        span = definition_span(analysis, line, column) if analysis else None
        if span is None:
            return None
        if span.file != analysis.source.path:  # in an imported file
            from ..passes.imports import real_path

            start = lsp.Position(line=span.line - 1, character=span.column - 1)
            end = lsp.Position(line=span.end_line - 1, character=span.end_column - 1)
            return lsp.Location(uri=real_path(span.file).resolve().as_uri(), range=lsp.Range(start=start, end=end))
        return lsp.Location(uri=params.text_document.uri, range=_span_range(lsp, document, span))

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbols(params: lsp.DocumentSymbolParams):
        document = _open_document(server, params.text_document.uri)
        return [_symbol(lsp, document, d) for d in assist.scan(_text(document)).definitions]

    legend = lsp.SemanticTokensLegend(token_types=list(assist.TOKEN_TYPES),
                                      token_modifiers=list(assist.TOKEN_MODIFIERS))

    @server.feature(lsp.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, legend)
    def semantic_tokens(params: lsp.SemanticTokensParams):
        document = _open_document(server, params.text_document.uri)
        return lsp.SemanticTokens(data=_encode_tokens(lsp, document, assist.semantic_tokens(assist.scan(_text(document)))))

    @server.feature(lsp.TEXT_DOCUMENT_INLAY_HINT, lsp.InlayHintOptions(resolve_provider=False))
    def inlay_hint(params: lsp.InlayHintParams):
        analysis = state.analyses.get(params.text_document.uri)
        if not state.inlay_hints or analysis is None:
            return []
        document = _open_document(server, params.text_document.uri)
        first, last = params.range.start.line + 1, params.range.end.line + 1
        hints = []
        for line, label in inlay_hints(analysis):
            if first <= line <= last and line - 1 < len(document.lines):
                text = document.lines[line - 1].rstrip("\r\n")
                end = _to_range(lsp, document, line, len(text) + 1, line, len(text) + 1).start
                hints.append(lsp.InlayHint(position=end, label=label, kind=lsp.InlayHintKind.Type,
                                           padding_left=True))
        return hints


def _symbol(lsp, document, d):
    kinds = {"network": lsp.SymbolKind.Module, "block": lsp.SymbolKind.Class, "let": lsp.SymbolKind.Variable,
             "def": lsp.SymbolKind.Function}
    lines = document.lines
    end_line = min(d.end_line, len(lines))
    end_column = min(d.end_column, len(lines[end_line - 1].rstrip("\r\n")) + 1) if lines else 1
    whole = _to_range(lsp, document, d.line, d.column, end_line, end_column)
    name = d.name_token
    selection = _to_range(lsp, document, name.line, name.column, name.line, name.end)
    children = [lsp.DocumentSymbol(name=t.text, kind=lsp.SymbolKind.Field, detail="label",
                                   range=_to_range(lsp, document, t.line, t.column, t.line, t.end),
                                   selection_range=_to_range(lsp, document, t.line, t.column, t.line, t.end))
                for t in d.labels]
    detail = f"{d.keyword}" + (f"({', '.join(d.params)})" if d.keyword != "let" else "")
    return lsp.DocumentSymbol(name=d.name, kind=kinds[d.keyword], detail=detail, range=whole,
                              selection_range=selection, children=children)


def _encode_tokens(lsp, document, tokens) -> list[int]:
    """LSP's relative encoding: (delta line, delta start, length, type, modifiers) per token."""
    from . import assist

    data, last_line, last_start = [], 0, 0
    for line, column, length, kind, modifiers in tokens:
        where = _to_range(lsp, document, line, column, line, column + length)
        start, end = where.start, where.end
        delta_line = start.line - last_line
        delta_start = start.character - (last_start if delta_line == 0 else 0)
        bits = sum(1 << assist.TOKEN_MODIFIERS.index(m) for m in modifiers)
        data += [delta_line, delta_start, end.character - start.character, assist.TOKEN_TYPES.index(kind), bits]
        last_line, last_start = start.line, start.character
    return data


def _register_editing(server, state: _State, lsp) -> None:
    from . import assist

    item_kinds = {"layer": lsp.CompletionItemKind.Function, "block": lsp.CompletionItemKind.Class,
                  "let": lsp.CompletionItemKind.Variable, "param": lsp.CompletionItemKind.Variable,
                  "label": lsp.CompletionItemKind.Field, "keyword": lsp.CompletionItemKind.Keyword,
                  "argument": lsp.CompletionItemKind.Property, "builtin": lsp.CompletionItemKind.Module}

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["(", ",", " "]))
    def completion(params: lsp.CompletionParams):
        document, _, line, column = _cursor(server, state, params.text_document.uri, params.position)
        from ..resources import builtins

        items = assist.complete(assist.scan(_text(document)), _text(document), line, column, list(builtins()))
        return lsp.CompletionList(is_incomplete=False, items=[lsp.CompletionItem(
            label=i.label, kind=item_kinds[i.kind], detail=i.detail or None,
            documentation=i.documentation or None, insert_text=i.insert,
            insert_text_format=lsp.InsertTextFormat.Snippet if i.insert else None) for i in items])

    @server.feature(lsp.TEXT_DOCUMENT_SIGNATURE_HELP, lsp.SignatureHelpOptions(trigger_characters=["(", ","]))
    def signature_help(params: lsp.SignatureHelpParams):
        document, _, line, column = _cursor(server, state, params.text_document.uri, params.position)
        found = assist.signature_help(assist.scan(_text(document)), line, column)
        if found is None:
            return None
        parameters = [lsp.ParameterInformation(label=p, documentation=d or None)
                      for p, d in zip(found.parameters, found.docs)]
        return lsp.SignatureHelp(signatures=[lsp.SignatureInformation(
            label=found.label, documentation=found.documentation or None, parameters=parameters,
            active_parameter=found.active)], active_signature=0, active_parameter=found.active)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(params: lsp.DocumentFormattingParams):
        document = _open_document(server, params.text_document.uri)
        return _format_edits(lsp, document)

    _register_rename(server, state, lsp)

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    def code_action(params: lsp.CodeActionParams):
        document = _open_document(server, params.text_document.uri)
        return _quick_fixes(lsp, document, params)


def _format_edits(lsp, document):
    """The whole document, formatted by `cnndsl fmt`; nothing where it does not parse."""
    from .fmt import format_source

    if _over_limit(document.source):
        return None  # its diagnostic says it is over the size limit
    try:
        formatted = format_source(SourceFile(path_of(document.uri), document.source))
    except (CompileError, CnndslError):
        return None  # the diagnostics already say why
    if formatted == document.source:
        return []
    lines = document.lines
    end = lsp.Position(line=len(lines), character=0)
    return [lsp.TextEdit(range=lsp.Range(start=lsp.Position(line=0, character=0), end=end), new_text=formatted)]


def _register_rename(server, state: _State, lsp) -> None:
    from pygls.exceptions import JsonRpcInvalidRequest

    from . import assist

    def targets(params):
        document, _, line, column = _cursor(server, state, params.text_document.uri, params.position)
        return document, assist.rename_targets(assist.scan(_text(document)), line, column)

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(params: lsp.PrepareRenameParams):
        document, found = targets(params)
        if found is None:
            return None
        tok = found[0]
        return lsp.PrepareRenamePlaceholder(
            range=_to_range(lsp, document, tok.line, tok.column, tok.line, tok.end), placeholder=tok.text)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    def rename(params: lsp.RenameParams):
        document, found = targets(params)
        if found is None:
            raise JsonRpcInvalidRequest("only a block, a let or a parameter can be renamed")
        why = assist.check_new_name(params.new_name)
        if why is not None:
            raise JsonRpcInvalidRequest(why)
        edits = [lsp.TextEdit(range=_to_range(lsp, document, t.line, t.column, t.line, t.end),
                              new_text=params.new_name) for t in found[1]]
        return lsp.WorkspaceEdit(changes={params.text_document.uri: edits})


def _quick_fixes(lsp, document, params):
    from . import assist

    actions = []
    lines = [line.rstrip("\r\n") for line in document.lines]
    codec = document.position_codec
    for diagnostic in params.context.diagnostics:
        data = diagnostic.data if isinstance(diagnostic.data, dict) else {}
        message, _, hint = diagnostic.message.partition("\nhint: ")
        start = codec.position_from_client_units(document.lines, diagnostic.range.start)
        end = codec.position_from_client_units(document.lines, diagnostic.range.end)
        for fix in assist.fixes(lines, data.get("message", message), data.get("hint", hint),
                                start.line + 1, start.character + 1, end.line + 1, end.character + 1):
            edit = lsp.TextEdit(range=_to_range(lsp, document, fix.line, fix.column, fix.line, fix.end_column),
                                new_text=fix.new_text)
            actions.append(lsp.CodeAction(title=fix.title, kind=lsp.CodeActionKind.QuickFix,
                                          diagnostics=[diagnostic], is_preferred=True,
                                          edit=lsp.WorkspaceEdit(changes={params.text_document.uri: [edit]})))
    return actions


# -- reading JSON-RPC robustly -------------------------------------------------------

MAX_MESSAGE_BYTES = 64 * 2**20
_LENGTH = re.compile(rb"^content-length:\s*(\S*)\s*$", re.I)


def _run_stdio(server) -> None:
    """pygls's stdio loop, except that a broken header or a request whose parameters do
    not fit gets a JSON-RPC error and the server reads on (pygls would go silent), and
    that each message is read whole in one hop to the reading thread."""
    import asyncio
    import sys
    import threading

    from pygls.io_ import StdoutWriter

    server._stop_event = threading.Event()
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    try:
        asyncio.run(_read_loop(server, sys.stdin.buffer))
    except BrokenPipeError:
        pass
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


async def _read_loop(server, stream) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    while not server._stop_event.is_set():
        body, problem = await loop.run_in_executor(server.thread_pool, _read_message, stream)
        if problem is not None:
            _send_error(server.protocol, None, -32700, problem + "; skipped to the next header")
        elif body is None:
            return
        else:
            _handle(server.protocol, body)


def _read_message(stream) -> tuple[bytes | None, str | None]:
    """One message's body; or a problem with its header (the body that follows is then
    skipped: reading resumes at the next `Content-Length`); or (None, None) at the end."""
    length, problem = None, None
    while True:  # one header block, up to its empty line
        header = stream.readline()
        if not header:
            return None, None
        if not header.strip():
            if length is None and problem is None:
                continue  # stray blank lines between messages
            break
        at = header.lower().rfind(b"content-length:")
        if at < 0:
            continue  # Content-Type, or what is left of a skipped body
        value = _LENGTH.match(header[at:].rstrip(b"\r\n"))
        text = value.group(1).decode("ascii", "replace") if value else ""
        if text.isdigit() and int(text) <= MAX_MESSAGE_BYTES:
            length, problem = int(text), None
        else:
            length, problem = None, f"bad Content-Length header {text!r}"
    if problem is not None:
        return None, problem
    body = stream.read(length)
    return (body, None) if len(body) == length else (None, None)


def _handle(protocol, body: bytes) -> None:
    import json

    from pygls.exceptions import JsonRpcException

    try:
        raw = json.loads(body)
    except ValueError as exc:
        _send_error(protocol, None, -32700, f"not JSON: {exc}")
        return
    except RecursionError:  # json's C decoder has Python's recursion guard, near 1,000 levels
        _send_error(protocol, None, -32700, "JSON nested too deeply")
        return
    if not isinstance(raw, dict):
        _send_error(protocol, None, -32600, "a message must be a JSON object")
        return
    request = "id" in raw and "method" in raw  # it gets an answer; a notification or a response does not
    if raw.get("jsonrpc") != "2.0" or not ("method" in raw or "result" in raw or "error" in raw):
        _send_error(protocol, _plain_id(raw.get("id")), -32600,
                    'not a JSON-RPC 2.0 message: it needs "jsonrpc": "2.0" and a method, a result or an error')
        return
    try:
        message = protocol.structure_message(raw)
    except (JsonRpcException, RecursionError, TypeError, ValueError, KeyError):
        if request:
            detail = "its parameters do not fit LSP's types (a position must be 0 to 2**31-1)"
            _send_error(protocol, _plain_id(raw["id"]), -32602, f"{raw['method']}: {detail}")  # invalid params
        return
    protocol.handle_message(message)


def _plain_id(value):
    """A request id as JSON-RPC allows it (a string or a number), else null."""
    return value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def _send_error(protocol, msg_id, code: int, message: str) -> None:
    protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


@click.command("lsp")
def lsp_command() -> None:
    """Run the language server on stdin and stdout (for editors; see docs/language-tools.md)."""
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        raise MissingExtra("the language server", "lsp", "pygls") from None
    serve()


__all__ = ["Analysis", "analyze", "definition_span", "hover_text", "inlay_hints", "lsp_command", "serve"]
