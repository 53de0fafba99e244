"""Where the files that ship inside the package live: the grammar, the built-in specs
and their training recipes. Read through `importlib.resources`, so that a wheel, an
editable install and a source checkout all find the same files. This is the one place
that knows these paths.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

PACKAGE = "cnndsl"


def grammar_text() -> str:
    """The text of `cnndsl/grammar/cnn.lark`."""
    return resources.files(PACKAGE).joinpath("grammar", "cnn.lark").read_text(encoding="utf-8")


def specs_dir() -> Path:
    """The folder of built-in specs, `cnndsl/specs/` (examples in `specs/examples/`)."""
    return Path(str(resources.files(PACKAGE).joinpath("specs")))


@lru_cache(maxsize=1)
def builtins() -> dict[str, Path]:
    """The built-in specs by name: every `specs/NAME.cnn`."""
    return {p.stem: p for p in sorted(specs_dir().glob("*.cnn"))}

