"""Which optional dependencies ("extras" of the package) each part of cnndsl needs.

`pip install cnndsl` is the compiler alone: check, compile, summary, list, fmt and the
SVG diagram import neither torch nor numpy. The extras of pyproject.toml add the rest;
this is the one table of which command needs which extra and which modules each extra
brings, so that a command whose extra is missing says what to install (a
`MissingExtra`, exit 1) instead of failing on an import.
"""

from __future__ import annotations

from importlib.util import find_spec

from .errors import MissingExtra

# extra -> the top-level modules it installs (as pyproject.toml lists its packages)
PROVIDES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "train": ("torch", "numpy", "sklearn", "safetensors", "PIL", "tqdm"),
    "viz": ("matplotlib", "numpy", "PIL"),
    "onnx": ("torch", "onnx", "onnxruntime", "onnxscript"),
    "lsp": ("pygls", "lsprotocol"),
    "highlight": ("pygments",),
}

# command -> (the extra it needs, the modules checked before it runs)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "build": ("torch", ("torch",)),
    "train": ("train", ("torch", "numpy", "safetensors")),
    "eval": ("train", ("torch", "numpy", "safetensors")),
    "predict": ("train", ("torch", "numpy", "safetensors", "PIL")),
    "viz": ("train", ("torch", "numpy", "safetensors", "PIL")),
    "serve": ("train", ("torch", "numpy", "safetensors")),
    "export": ("onnx", ("torch",)),
    "lsp": ("lsp", ("pygls", "lsprotocol")),
}


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(command: str, what: str | None = None) -> None:
    """Raise `MissingExtra` when a module `command` needs is not installed (no import is made)."""
    if command not in COMMANDS:
        return
    extra, modules = COMMANDS[command]
    missing = [m for m in modules if not _installed(m)]
    if missing:
        raise MissingExtra(what or f"cnndsl {command}", extra, missing[0])


def extra_of(module: str | None, command: str | None = None) -> str | None:
    """The extra that installs `module` (a name from ModuleNotFoundError), preferring the
    command's own extra; None for a module no extra provides."""
    root = (module or "").split(".")[0]
    if command in COMMANDS and root in PROVIDES[COMMANDS[command][0]]:
        return COMMANDS[command][0]
    return next((extra for extra, modules in PROVIDES.items() if root in modules), None)


def from_import_error(exc: ModuleNotFoundError, command: str | None, what: str | None = None) -> MissingExtra | None:
    """A `MissingExtra` for an optional module that failed to import, else None."""
    extra = extra_of(exc.name, command)
    if extra is None:
        return None
    return MissingExtra(what or (f"cnndsl {command}" if command else "this"), extra, (exc.name or "").split(".")[0])


__all__ = ["COMMANDS", "PROVIDES", "extra_of", "from_import_error", "require"]
