"""`cnndsl lsp`: a language server for `.cnn` files, a reader of the compiler's results.

Editors talk to it over stdio (pygls). On every open, change and save it runs the
compiler on the buffer and publishes its diagnostics, errors and warnings alike, with
the compiler's own messages and hints. Hover shows what the checked IR knows of the
layer (or block, group, network) under the cursor: its output shape, parameter count
and receptive field, once per instance where a block is used more than once.
Go-to-definition jumps to blocks, `let`s and parameters, from the syntax tree.

The analysis (`analyze`, `hover_text`, `definition_span`) is plain Python over the
compiler's values and knows nothing of LSP; `serve` wraps it in pygls, which is
imported only there, so `cnndsl` runs without the `lsp` extra installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

import click

from ..errors import MissingExtra
from .. import ast, ir
from ..compiler import Compiled, compile_network
from ..diagnostics import ERROR, CompileError, Diagnostic
from ..report import editor_message
from ..passes import resolve
from ..passes.shapes import fmt_shape
from ..source import MAX_SOURCE_BYTES, SourceFile, Span
from ..summary import describe

MAX_INSTANCES_SHOWN = 8
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Analysis:
    """What the compiler said about one version of a document."""

    source: SourceFile
    program: ast.Program | None = None
    compiled: list[Compiled] = field(default_factory=list)  # one per network that compiles
    diagnostics: list[Diagnostic] = field(default_factory=list)


def analyze(text: str, path: str) -> Analysis:
    """Parse the text and compile every network in it; collect all diagnostics."""
    source = SourceFile(path, text)
    analysis = Analysis(source)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        analysis.diagnostics.append(Diagnostic.error(
            source.whole, f"source is over the {MAX_SOURCE_BYTES:,}-byte limit", None))
        return analysis
    from ..parse import parse

    try:
        analysis.program = parse(source)
        resolve(analysis.program)
    except CompileError as exc:  # the tree, where there is one, still serves go-to-definition
        analysis.diagnostics += exc.diagnostics
        return analysis
    for network in analysis.program.networks:
        try:
            compiled = compile_network(source, {}, network=network.name)
        except CompileError as exc:
            analysis.diagnostics += exc.diagnostics
            continue
        analysis.compiled.append(compiled)
        analysis.diagnostics += compiled.warnings
    analysis.diagnostics = _unique(analysis.diagnostics)
    return analysis


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """A block's problem is found once per network that uses it: say it once."""
    seen: set = set()
    kept = []
    for d in diagnostics:
        key = (d.severity, d.span, d.message)
        if key not in seen:
            seen.add(key)
            kept.append(d)
    return kept


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


def _join(prefix: str, name: str | None) -> str:
    if name is None:
        return prefix
    return f"{prefix}.{name}" if prefix else str(name)


def _nodes(network: ir.Network) -> list[_Shown]:
    """Every layer, block instance, named group and composite of the network, with the
    module path the generated code gives it (as `summary.rows` computes it)."""
    shown = [_Shown(network.span, 4, "network", f"network {network.name}", "", network.body.stats)]

    def scope(seq: ir.Seq, prefix: str) -> None:
        for item in seq.items:
            member(item, prefix)

    def member(node, prefix: str) -> None:
        if getattr(node, "stats", None) is None:
            return
        if isinstance(node, ir.Layer):
            shown.append(_Shown(node.span, 0, node.kind, describe(node), _join(prefix, node.name), node.stats))
        elif isinstance(node, ir.Seq):
            inner = _join(prefix, node.name)
            if node.name is not None:
                shown.append(_Shown(node.span, 2, "group", "group", inner, node.stats))
            scope(node, inner)
        elif isinstance(node, ir.BlockInstance):
            path = _join(prefix, node.name)
            shown.append(_Shown(node.span, 1, f"block {node.block}", f"block {node.block}", path, node.stats))
            shown.append(_Shown(node.body.span, 3, f"block {node.block}", f"block {node.block}", path, node.stats))
            scope(node.body, path)
        elif isinstance(node, ir.Concat):
            shown.append(_Shown(node.span, 2, "concat", "concat", prefix, node.stats))
            for branch in node.branches:
                member(branch, prefix)
        elif isinstance(node, ir.Residual):
            shown.append(_Shown(node.span, 2, "residual", "residual", prefix, node.stats))
            scope(node.body, prefix)
            if node.shortcut.applied:
                for layer in node.shortcut.layers:
                    member(layer, _join(prefix, node.shortcut.name))
        elif isinstance(node, ir.Side):
            shown.append(_Shown(node.span, 2, "side", "side output", prefix, node.stats))
            member(node.node, prefix)

    scope(network.body, "")
    return shown


def _offset(source: SourceFile, line: int, column: int) -> int:
    lines = source.text.split("\n")[: max(0, line - 1)]
    return sum(len(text) + 1 for text in lines) + column - 1


def _contains(span: Span, line: int, column: int) -> bool:
    return (span.line, span.column) <= (line, column) < (span.end_line, span.end_column)


def _size(source: SourceFile, span: Span) -> int:
    return _offset(source, span.end_line, span.end_column) - _offset(source, span.line, span.column)


def _stat_line(stats: ir.Stats) -> str:
    return f"output {fmt_shape(stats.out_shape)} · {stats.params:,} parameters · receptive field {stats.rf}x{stats.rf}"


def hover_text(analysis: Analysis, line: int, column: int) -> str | None:
    """Markdown for the innermost node at 1-based (line, column), or None."""
    line, column = _past_label(analysis.source, line, column)
    candidates: list[tuple[str, _Shown]] = []
    for compiled in analysis.compiled:
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
    return _describe_instances(chosen, len(analysis.compiled) > 1)


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
    for compiled in analysis.compiled:
        for node in _nodes(compiled.network):
            if node.rank == 0 and _inside(node.span, let.span):
                found.append((compiled.network.name, node))
    head = f"```cnn\n{text}\n```"
    if not found:
        return head
    return head + "\n\n" + _describe_instances(found, len(analysis.compiled) > 1)


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
    for definition in (*program.blocks, *program.networks):  # a parameter, in its own definition
        if _contains(definition.span, line, column):
            for param in definition.params:
                if param.name == word:
                    return Span(param.span.file, param.span.line, param.span.column,
                                param.span.line, param.span.column + len(param.name))
    for block in program.blocks:
        if block.name == word:
            return block.name_span
    let = _let_named(program, word)
    if let is not None:
        return _name_span(analysis.source, let.span, "let", let.name)
    for network in program.networks:
        if network.name == word:
            return network.name_span
    return None


# -- the server ---------------------------------------------------------------------

def path_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def serve() -> None:
    """Run the language server over stdin and stdout until the client says exit."""
    from lsprotocol import types as lsp
    from pygls.lsp.server import LanguageServer

    from .. import __version__

    server = LanguageServer("cnndsl", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Full)
    analyses: dict[str, Analysis] = {}
    severity = {ERROR: lsp.DiagnosticSeverity.Error}

    def to_range(document, span: Span):
        codec, lines = document.position_codec, document.lines
        start = codec.position_to_client_units(lines, lsp.Position(span.line - 1, span.column - 1))
        end = codec.position_to_client_units(lines, lsp.Position(span.end_line - 1, span.end_column - 1))
        return lsp.Range(start=start, end=end)

    def to_lsp(document, d: Diagnostic):
        return lsp.Diagnostic(range=to_range(document, d.span), message=editor_message(d), source="cnndsl",
                              severity=severity.get(d.severity, lsp.DiagnosticSeverity.Warning),
                              code=d.code or None)

    def refresh(uri: str) -> None:
        document = server.workspace.get_text_document(uri)
        analysis = analyze(document.source, path_of(uri))
        previous = analyses.get(uri)
        if analysis.program is None and previous is not None:
            analysis.program = previous.program  # go-to-definition still works mid-edit
        analyses[uri] = analysis
        server.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=document.version,
            diagnostics=[to_lsp(document, d) for d in analysis.diagnostics if d.span.file == analysis.source.path]))

    def cursor(uri: str, position):
        document = server.workspace.get_text_document(uri)
        at = document.position_codec.position_from_client_units(document.lines, position)
        return document, analyses.get(uri), at.line + 1, at.character + 1

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
        analyses.pop(params.text_document.uri, None)
        server.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(params: lsp.HoverParams):
        document, analysis, line, column = cursor(params.text_document.uri, params.position)
        text = hover_text(analysis, line, column) if analysis else None
        if text is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(params: lsp.DefinitionParams):
        document, analysis, line, column = cursor(params.text_document.uri, params.position)
        span = definition_span(analysis, line, column) if analysis else None
        if span is None:
            return None
        return lsp.Location(uri=params.text_document.uri, range=to_range(document, span))

    server.start_io()


@click.command("lsp")
def lsp_command() -> None:
    """Run the language server on stdin and stdout (for editors; see docs/language-tools.md)."""
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        raise MissingExtra("the language server", "lsp", "pygls") from None
    serve()


__all__ = ["Analysis", "analyze", "definition_span", "hover_text", "lsp_command", "serve"]
