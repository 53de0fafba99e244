"""The modules `cnndsl.build` makes, importable by name.

`build` writes the generated source to `<cache>/<name>_<hash>.py`, the hash being that
of the source, and imports it as `cnndsl.built.<name>_<hash>`: a real module with a
file. So pickle and `torch.save` record where the class lives and a new process
imports it again from the same file, `torch.jit.script` reads its source, and
`copy.deepcopy`, `torch.export` and `torch.compile` see an ordinary class. The file is
what `cnndsl compile` prints, standalone: it imports torch and never cnndsl.

The cache is $CNNDSL_CACHE_DIR, else $XDG_CACHE_HOME/cnndsl/modules, else
~/.cache/cnndsl/modules; where that cannot be written, a folder of this user's in the
temporary directory. A module pickled on one machine loads on another only where the
same file is in the cache (build the same spec there once); a `state_dict` needs none.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import sys
import tempfile
import types
from pathlib import Path

from ..atomic import write_atomic


def _preferred() -> Path:
    if os.environ.get("CNNDSL_CACHE_DIR"):
        return Path(os.environ["CNNDSL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnndsl" / "modules"


def _fallback() -> Path:
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"cnndsl-modules-{user}"


# Where `import cnndsl.built.NAME` looks: the cache, then the fallback.
__path__ = [str(_preferred()), str(_fallback())]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
            return False  # someone else's folder: never import code from it
        return os.access(folder, os.W_OK)
    except OSError:
        return False


def module_name(code: str, network: str) -> str:
    """`<network>_<hash>`: the network's name in lower case (ASCII identifier characters
    only) and the first 16 hex digits of the source's SHA-256."""
    stem = re.sub(r"[^a-z0-9_]", "", network.lower()) or "network"
    return f"{stem}_{hashlib.sha256(code.encode('utf-8')).hexdigest()[:16]}"


def import_generated(code: str, network: str) -> types.ModuleType:
    """Write `code` to the cache (once) and import it as `cnndsl.built.<name>_<hash>`."""
    name = module_name(code, network)
    qualified = f"{__name__}.{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    for folder in (Path(p) for p in __path__):
        path = folder / f"{name}.py"
        if path.is_file() and path.read_text(encoding="utf-8") == code:
            break
        if _writable(folder):
            write_atomic(path, code)
            importlib.invalidate_caches()
            break
    else:
        raise OSError(f"no writable folder for generated modules (tried {', '.join(__path__)}); "
                      "set CNNDSL_CACHE_DIR to one")
    return importlib.import_module(qualified)


__all__ = ["import_generated", "module_name"]
