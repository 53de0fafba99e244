"""The command-line options that several commands share, declared once."""

from __future__ import annotations

import click

SET_OPTION = click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
                          help="Give a network parameter or an optional's switch a value (repeatable).")
NETWORK_OPTION = click.option("--network", default=None, help="Which network of the file (default: the last).")


def complete_spec(ctx, param, incomplete: str) -> list:
    """Shell completion for a SPEC: the built-ins' names, then files (`cnndsl summary res<TAB>`)."""
    from click.shell_completion import CompletionItem

    from .resources import builtins

    names = [CompletionItem(name, help="built-in") for name in builtins() if name.startswith(incomplete)]
    return names + [CompletionItem(incomplete, type="file")]


SPEC_ARGUMENT = click.argument("spec", shell_complete=complete_spec)
