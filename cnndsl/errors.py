"""The one base of every error a user can act on.

`CnndslError` carries a message (what went wrong), a hint (what to change) and,
where the error has a place in a spec, a `Span`. Library code raises these and never
prints; only the command line (`cnndsl.cli.main`) turns them into output and an exit
code. Nothing here imports click, torch or numpy.
"""

from __future__ import annotations

from .source import Span


class CnndslError(Exception):
    """A failure the user can act on: `message` says what, `hint` says what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, span: Span | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.span = span

    def __str__(self) -> str:
        return self.message + (f" ({self.hint})" if self.hint else "")


class UsageError(CnndslError):
    """A command-line value that cannot be used as given (`--set N`, `-o out.txt`)."""

    exit_code = 2


class MissingExtra(CnndslError):
    """A command whose optional dependencies are not installed."""

    def __init__(self, what: str, extra: str, missing: str | None = None) -> None:
        lacking = f" ({missing} is not installed)" if missing else ""
        super().__init__(f"{what} needs the '{extra}' extra{lacking}",
                         f"pip install 'cnndsl[{extra}]'")
        self.extra = extra


class InternalError(CnndslError):
    """A check of cnndsl's own work failed: a bug to report, never the user's input."""

    exit_code = 70
