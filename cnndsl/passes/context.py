"""What every pass receives beside the tree: the choices of this compile (parameters,
strictness, which network) and the diagnostics gathered so far.

A pass reports every problem it finds with `error` or `warn` and goes on where it can;
one that leaves a tree the next pass cannot read calls `stop()`. The same diagnostic
reported twice (a block used twice, say) is kept once. Called alone, without a context,
a pass makes its own and raises `CompileError` at the end if it found errors: see
`alone` and `finish`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..diagnostics import ERROR, WARNING, CompileError, Diagnostic
from ..source import SourceFile
from ..traverse import walk, walk_ir_by_type


@dataclass
class Context:
    source: SourceFile | None = None
    params: dict = field(default_factory=dict)  # the --set values
    strict: bool = False
    network: str | None = None  # which network of the file; None: the last
    diagnostics: list[Diagnostic] = field(default_factory=list)
    stopped: bool = False  # a pass left a tree the next cannot read
    tree: object = None  # the tree after the last pass that ran (partial where there are errors)
    sources: dict = field(default_factory=dict)  # imported files by path, for their diagnostics' lines
    # What expand tells the shape pass of its tree: id(a block body made from an earlier use's
    # by putting in this use's leaf values, passes/leaves.py) -> (that body, the one it was
    # made from, the values put in), so that its shapes are the earlier body's (`shapes.reused`)
    leaf_copies: dict = field(default_factory=dict, repr=False)
    # What the shape pass tells the names pass: id(a chain it gave as an earlier chain's tree
    # at another receptive field, `receptive.Rebase`) -> (that chain, the earlier one), so that
    # its names are the earlier one's (`names.Naming.class_scope`)
    rebased: dict = field(default_factory=dict, repr=False)
    _seen: set = field(default_factory=set, repr=False)
    _walked: dict = field(default_factory=dict, repr=False)  # see `nodes`
    _grouped: dict = field(default_factory=dict, repr=False)  # see `by_type`

    def nodes(self, root) -> list:
        """`list(walk(root))`, walked once for each tree in this compile: the last passes
        (check_inits, check_emittable) each read the whole of one network body."""
        found = self._walked.get(id(root))
        if found is None or found[0] is not root:
            found = self._walked[id(root)] = (root, list(walk(root)))  # the root kept, so its id stays its own
        return found[1]

    def by_type(self, root) -> dict:
        """`walk_by_type(root)`, as `walk_ir_by_type` gives it for an IR tree: the nodes of
        `nodes(root)` by class, each class's in order, walked once for each tree in this
        compile (check_inits reads the layers, check_emittable five classes, where picking
        each from `nodes` took a pass per class)."""
        found = self._grouped.get(id(root))
        if found is None or found[0] is not root:
            found = self._grouped[id(root)] = (root, walk_ir_by_type(root))  # the root kept, so its id stays its own
        return found[1]

    def report(self, diagnostic: Diagnostic) -> None:
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            self.diagnostics.append(diagnostic)

    def error(self, span, message: str, hint: str | None = None, code: str = "") -> None:
        self.report(Diagnostic.error(span, message, hint, code))

    def warn(self, span, message: str, hint: str | None = None, code: str = "") -> None:
        self.report(Diagnostic.warning(span, message, hint, code))

    def extend(self, diagnostics) -> None:
        for diagnostic in diagnostics:
            self.report(diagnostic)

    def stop(self) -> None:
        self.stopped = True

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == WARNING]

    def failure(self) -> CompileError:
        """The error to raise: the errors first, in the order found, then the warnings;
        `.tree` and `.context` give what was built (for an editor's hover)."""
        error = CompileError(self.errors + self.warnings)
        error.tree = self.tree
        error.context = self
        return error


def alone(context: Context | None) -> tuple[Context, bool]:
    """The context a pass works in, and whether it made it itself (called alone)."""
    return (Context(), True) if context is None else (context, False)


def finish(tree, context: Context, own: bool):
    """A pass's result: the tree, or, for a pass called alone, `CompileError` if it erred."""
    context.tree = tree
    if own and context.errors:
        raise context.failure()
    return tree


__all__ = ["Context", "alone", "finish"]
