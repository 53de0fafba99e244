"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A path that is a symbolic link is written through: the link stays, its target gets the
new contents. A file that exists keeps its mode. What is not a regular file (a device,
a FIFO, a socket, a directory) is refused rather than replaced, except `-`, which means
standard output and is written to it directly.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

from .errors import UsageError
from .source import display_name as _show

STDOUT = "-"

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def write_target(path: str | Path) -> tuple[Path, os.stat_result | None]:
    """The regular file a write to `path` replaces (a link's final target) and its status
    (None when it does not exist yet); `UsageError` for anything else."""
    target = Path(os.path.realpath(path))
    try:
        status = os.stat(target)
    except FileNotFoundError:
        return target, None
    except OSError as exc:
        raise UsageError(f"cannot write {_show(path)}: {exc.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _KINDS if test(status.st_mode)), "not a regular file")
        shown = _show(path) if target == Path(os.path.abspath(path)) else f"{_show(path)} (-> {_show(target)})"
        raise UsageError(f"cannot write {shown}: it is {kind}, not a regular file",
                         "give the path of a file to create or replace, or '-' for standard output")
    return target, status


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Replace the file at `path` (through a symbolic link) by `data` in one rename."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if os.fspath(path) == STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target, status = write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _mode(status))
        if status is not None and hasattr(os, "fchown"):
            try:  # keep the owner where we may (root writing a user's file)
                os.fchown(fd, status.st_uid, status.st_gid)
            except OSError:
                pass
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_directory(target.parent)


def _mode(status: os.stat_result | None) -> int:
    """The existing file's mode, or the one open() would give a new file."""
    if status is not None:
        return stat.S_IMODE(status.st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask  # mkstemp makes 0600


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
