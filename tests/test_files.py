"""The file system's edges, as a user meets them with the real `cnndsl` command: writes go
through symbolic links and keep the target's mode; what is not a regular file (a device,
a FIFO, a directory) is refused and left as it was, except `-` (standard output); reads
are bounded by the bytes read, not by what `stat` says; a file name need not be UTF-8."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cnndsl.atomic import write_atomic, write_target
from cnndsl.errors import UsageError
from cnndsl.source import MAX_SOURCE_BYTES

from conftest import ROOT, run_cli

MESSY = "network  M ( ) {\n  input 1x8x8\n     conv(2,3)\n}\n"
TIDY = "network M() {\n    input 1x8x8\n    conv(2, 3)\n}\n"


def clean(result, code: int) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)


def bounded_cli(*args: str, memory: int = 1 << 31, timeout: int = 60):
    """`cnndsl` with its address space capped, so that an unbounded read fails the test
    instead of exhausting the machine."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, preexec_fn=cap)


# -- writes --------------------------------------------------------------------------------------

def test_compile_writes_through_a_symlink_to_its_target(tmp_path: Path):
    target = tmp_path / "real" / "target.py"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "link.py"
    link.symlink_to(target)
    result = run_cli("compile", "lenet5", "-o", str(link))
    clean(result, 0)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "class LeNet5(nn.Module):" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.py"]  # no temporary left
    dangling = tmp_path / "dangling.py"
    dangling.symlink_to(tmp_path / "real" / "new.py")
    clean(run_cli("compile", "lenet5", "-o", str(dangling)), 0)
    assert dangling.is_symlink() and "class LeNet5" in (tmp_path / "real" / "new.py").read_text()


def test_fmt_keeps_a_symlinked_spec_a_link_and_a_private_spec_private(tmp_path: Path):
    spec = tmp_path / "private.cnn"
    spec.write_text(MESSY)
    spec.chmod(0o600)
    link = tmp_path / "linked.cnn"
    link.symlink_to(spec.name)
    clean(run_cli("fmt", str(link)), 0)
    assert link.is_symlink() and spec.read_text() == TIDY
    assert stat.S_IMODE(spec.stat().st_mode) == 0o600
    spec.write_text(MESSY)
    clean(run_cli("fmt", str(spec)), 0)
    assert spec.read_text() == TIDY and stat.S_IMODE(spec.stat().st_mode) == 0o600


def test_a_fifo_is_refused_and_left_a_fifo(tmp_path: Path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    result = run_cli("compile", "lenet5", "-o", str(fifo))
    clean(result, 2)
    assert "FIFO" in result.stderr and "'-' for standard output" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "to-pipe.svg"
    link.symlink_to(fifo)
    result = run_cli("draw", "lenet5", "-o", str(link))
    clean(result, 2)
    assert "FIFO" in result.stderr and link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_device_is_refused_and_left_a_device(tmp_path: Path):
    if os.geteuid() == 0:  # root could replace /dev/null itself: use a private node like it instead
        device = tmp_path / "null"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    else:
        device = Path("/dev/null")
    result = run_cli("compile", "lenet5", "-o", str(device))
    clean(result, 2)
    assert "character device" in result.stderr
    assert stat.S_ISCHR(os.lstat(device).st_mode)
    with pytest.raises(UsageError, match="character device"):
        write_target("/dev/null")
    with pytest.raises(UsageError, match="directory"):
        write_atomic(tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["null"] if os.geteuid() == 0 else [])


def test_dash_is_standard_output(tmp_path: Path):
    result = run_cli("compile", "lenet5", "-o", "-")
    clean(result, 0)
    assert result.stdout == run_cli("compile", "lenet5").stdout and "class LeNet5" in result.stdout
    assert not (ROOT / "-").exists()


# -- reads ---------------------------------------------------------------------------------------

def test_an_endless_file_whose_size_reads_as_zero_is_bounded():
    assert os.stat("/dev/zero").st_size == 0
    result = bounded_cli("check", "/dev/zero")
    clean(result, 1)
    assert f"over the {MAX_SOURCE_BYTES:,}-byte limit" in result.stderr


def test_a_pipe_longer_than_the_limit_is_bounded():
    result = subprocess.run([sys.executable, "-m", "cnndsl", "check", "/dev/stdin"], capture_output=True,
                            cwd=ROOT, timeout=60, input=b"# " + b"x" * (3 * MAX_SOURCE_BYTES) + b"\n")
    assert result.returncode == 1 and b"byte limit" in result.stderr and b"Traceback" not in result.stderr


# -- names ---------------------------------------------------------------------------------------

def test_a_file_name_that_is_not_utf8(tmp_path: Path):
    good = os.path.join(os.fsencode(tmp_path), b"bad\xff.cnn")
    with open(good, "wb") as handle:
        handle.write(TIDY.encode())
    out = tmp_path / "out.py"
    result = run_cli("compile", os.fsdecode(good), "-o", str(out))
    clean(result, 0)
    assert "class M(nn.Module):" in out.read_text()
    compile(out.read_text(), "out.py", "exec")
    bad = os.path.join(os.fsencode(tmp_path), b"err\xfe.cnn")
    with open(bad, "wb") as handle:
        handle.write(b"network E() {\n    input 1x8x8\n    convv(2, 3)\n}\n")
    result = run_cli("check", os.fsdecode(bad))
    clean(result, 1)
    assert "err\\xfe.cnn:3:5" in result.stderr and "did you mean 'conv'" in result.stderr
    result = run_cli("compile", "lenet5", "-o", os.fsdecode(os.path.join(os.fsencode(tmp_path), b"o\xfe.py")))
    clean(result, 0)
    assert "o\\xfe.py" in result.stderr
