"""The pre-commit hooks that other repositories use: each `entry` is run as pre-commit
runs it (the entry's words, then the staged file names) on good and bad specs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT

GOOD = "network Good() {\n    input 3x8x8\n    conv(4, 3) -> relu -> fc(2)\n}\n"
MESSY = "network Good( ) {\n  input 3x8x8\n  conv(4,3)->relu -> fc( 2 )\n}\n"
BROKEN = "network Broken() {\n    input 3x3x3\n    conv(4, 5)\n}\n"


def hooks() -> dict:
    return {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


def run_hook(hook: dict, files: list[Path]) -> subprocess.CompletedProcess:
    assert all(re.search(hook["files"], str(f)) for f in files)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(shlex.split(hook["entry"]) + [str(f) for f in files], capture_output=True,
                          text=True, env=env, timeout=120)


def write(tmp_path: Path, **specs: str) -> dict[str, Path]:
    paths = {}
    for name, text in specs.items():
        paths[name] = tmp_path / f"{name}.cnn"
        paths[name].write_text(text)
    return paths


def test_the_hooks_are_declared():
    declared = hooks()
    assert set(declared) == {"cnndsl-check", "cnndsl-fmt"}
    for hook in declared.values():
        assert hook["language"] == "python" and hook["name"]
        assert re.search(hook["files"], "specs/x.cnn") and not re.search(hook["files"], "x.py")


def test_check_hook_checks_every_file_and_fails_on_any_error(tmp_path: Path):
    files = write(tmp_path, good=GOOD, broken=BROKEN, also_good=GOOD)
    result = run_hook(hooks()["cnndsl-check"], [files["good"], files["broken"], files["also_good"]])
    assert result.returncode == 1
    assert result.stdout.count("is well-formed") == 2  # the files after the broken one are checked too
    assert f"{files['broken']}:3:5" in result.stderr
    assert run_hook(hooks()["cnndsl-check"], [files["good"], files["also_good"]]).returncode == 0


def test_fmt_hook_fails_on_an_unformatted_file(tmp_path: Path):
    files = write(tmp_path, good=GOOD, messy=MESSY)
    result = run_hook(hooks()["cnndsl-fmt"], [files["good"], files["messy"]])
    assert result.returncode == 1 and f"would reformat {files['messy']}" in result.stdout
    assert files["messy"].read_text() == MESSY
    assert run_hook(hooks()["cnndsl-fmt"], [files["good"]]).returncode == 0
