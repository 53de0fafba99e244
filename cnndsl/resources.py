"""Where the files that ship inside the package live: the grammar, the built-in specs
and their training recipes. Read beside this module where the package is a folder of
files (a wheel installed, an editable install, a source checkout), and through
`importlib.resources` otherwise (imported from a zip), so that every install finds the
same files; `importlib.resources` is imported only then, since it costs a command's start
some 10 ms. This is the one place
that knows these paths, and the one that maps a built-in's name to its spec.

A built-in is a spec file, `specs/NAME.cnn`, or a variant declared in one:
`network resnet50 = ResNet(layers = [3, 4, 6, 3])` in `specs/resnet.cnn` makes
`resnet50` a built-in, that file compiled with the network `resnet50` selected. A file
that declares variants is a family, named by its stem (`resnet`: the family's network
with its own defaults); the comment line right above a variant says what it is
(`cnndsl list` shows it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PACKAGE = "cnndsl"

# A variant declaration, as the built-ins write it: at the start of a line (the parser
# reads the same lines; tests/test_families.py checks that both find the same names).
_VARIANT = re.compile(r"^network[ \t]+([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*([A-Za-z_][A-Za-z0-9_]*)", re.M)


@dataclass(frozen=True)
class Builtin:
    """One built-in: its name, its spec file, the network it selects there (a variant's
    name, a family's; None: the file's last), its family (the file's stem) and its
    one-line account."""

    name: str
    path: Path
    network: str | None
    family: str
    about: str


_HERE = Path(__file__).parent  # the package's folder, where it is one


def _package():
    """The package's folder as a `Traversable`: a `Path` where the package is a folder of
    files, `importlib.resources`' reader of the zip otherwise."""
    if _HERE.is_dir():
        return _HERE
    from importlib import resources  # here, not at the top: a zip import alone needs it

    return resources.files(PACKAGE)


def grammar_text() -> str:
    """The text of `cnndsl/grammar/cnn.lark`."""
    return _package().joinpath("grammar", "cnn.lark").read_text(encoding="utf-8")


def specs_dir() -> Path:
    """The folder of built-in specs, `cnndsl/specs/` (examples in `specs/examples/`). Where
    the package is imported from a zip (the wheel itself on `sys.path`, a zipapp), the
    specs are copied once a process into a temporary folder of real files (`_unpacked`):
    every reader of a spec, its imports included, reads files."""
    specs = _package().joinpath("specs")
    folder = Path(str(specs))
    return folder if folder.is_dir() else _unpacked(specs)


_UNPACKED: list[Path] = []  # the process's copy of a zipped package's specs, made once


def _unpacked(specs) -> Path:
    import atexit  # here, not at the top: most processes never need a copy
    import shutil
    import tempfile

    if not _UNPACKED:
        folder = Path(tempfile.mkdtemp(prefix="cnndsl-specs-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _copy_tree(specs, folder)
        _UNPACKED.append(folder)
    return _UNPACKED[0]


def _copy_tree(source, target: Path) -> None:
    """Copy a `Traversable` folder (inside a zip) to the real folder `target`."""
    for entry in source.iterdir():
        if entry.is_dir():
            (target / entry.name).mkdir()
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def _title(line: str) -> str:
    return line.lstrip("# ").strip() if line.startswith("#") else ""


def _entries(path: Path) -> list[Builtin]:
    """The file's own entry (in a family's file, the family's network with its defaults),
    then one per variant, each described by the comment line above it."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    variants = list(_VARIANT.finditer(text))
    family = variants[0].group(2) if variants else None
    entries = [Builtin(path.stem, path, family, path.stem, _title(lines[0]) if lines else "")]
    for match in variants:
        line = text.count("\n", 0, match.start())  # 0-based line of the declaration
        about = _title(lines[line - 1].strip()) if line > 0 else ""
        entries.append(Builtin(match.group(1), path, match.group(1), path.stem, about))
    return entries


@lru_cache(maxsize=1)
def catalog() -> dict[str, Builtin]:
    """Every built-in by name: each spec file's stem, then the variants it declares."""
    table: dict[str, Builtin] = {}
    for path in sorted(specs_dir().glob("*.cnn")):
        for entry in _entries(path):
            table.setdefault(entry.name, entry)
    return table


def builtins() -> dict[str, Path]:
    """The built-ins by name, each with the spec file that holds it (see `catalog`)."""
    return {name: entry.path for name, entry in catalog().items()}


def families() -> dict[str, list[Builtin]]:
    """The built-ins grouped by spec file: a family's file first, then its variants."""
    groups: dict[str, list[Builtin]] = {}
    for entry in catalog().values():
        groups.setdefault(entry.family, []).append(entry)
    return groups
