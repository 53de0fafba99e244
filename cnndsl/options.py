"""The command-line options that several commands share, declared once."""

from __future__ import annotations

import click

SET_OPTION = click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
                          help="Give a network parameter or an optional's switch a value (repeatable).")
NETWORK_OPTION = click.option("--network", default=None, help="Which network of the file (default: the last).")
