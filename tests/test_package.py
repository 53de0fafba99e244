"""The package as a user installs it: the wheel built from this checkout, installed (not
editable) into fresh virtual environments, run from a folder outside the checkout.

One environment has no torch (`pip install cnndsl[highlight,lsp]`): check, compile,
summary, fmt and the SVG diagram of every built-in, the language server and the lexer
work, and each command that needs torch says which extra to install. The other has
`cnndsl[train]` (torch pinned to the local CPU wheel): list, check, compile, summary,
draw, a short train on the embedded digits, eval, and a model saved whole and loaded
in a new process. About two minutes on two cores, most of it installing torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.wheel

PACKAGE = ROOT / "cnndsl"
DATA = sorted(str(p.relative_to(ROOT)) for pattern in ("grammar/*.lark", "specs/*.cnn", "specs/*.toml",
                                                        "specs/examples/*.cnn", "pictures/*.html",
                                                        "codegen/templates/*.j2")
              for p in PACKAGE.glob(pattern))
BUILTINS = sorted(p.stem for p in (PACKAGE / "specs").glob("*.cnn"))
TORCH_PIN = os.environ.get("TORCH_PIN", "torch==2.13.0")  # the local CPU wheel, as the Makefile pins it


def run(command: list[str] | str, cwd: Path, env: dict | None = None, timeout: int = 600):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          shell=isinstance(command, str), executable="/bin/bash" if isinstance(command, str) else None,
                          env=env)


def venv_env(venv: Path, home: Path) -> dict:
    """The environment of a shell with `venv` activated, nothing of the checkout's on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               CNNDSL_CACHE_DIR=str(home / "cache"), PIP_DISABLE_PIP_VERSION_CHECK="1", NO_COLOR="1")
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The wheel and the sdist, built from a copy of the checkout's package files."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    shutil.copytree(PACKAGE, source / "cnndsl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = work / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                 str(source)], cwd=work)
    assert built.returncode == 0, built.stderr
    sdist = run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
                cwd=source)
    assert sdist.returncode == 0, sdist.stderr
    return out


def wheel_of(dist: Path) -> Path:
    (wheel,) = dist.glob("cnndsl-*.whl")
    return wheel


def make_venv(where: Path, *requirements: str) -> Path:
    venv = where / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], cwd=where)
    assert made.returncode == 0, made.stderr
    for group in requirements:
        installed = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", *group.split()],
                        cwd=where, env=venv_env(venv, where))
        assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.fixture(scope="module")
def bare(dist, tmp_path_factory) -> tuple[Path, Path]:
    """A venv with the wheel and the language tools' extras, and no torch."""
    home = tmp_path_factory.mktemp("bare")
    return make_venv(home, f"{wheel_of(dist)}[highlight,lsp]"), home


@pytest.fixture(scope="module")
def full(dist, tmp_path_factory) -> tuple[Path, Path]:
    """A venv with torch (the local CPU wheel) and the wheel's train extra."""
    home = tmp_path_factory.mktemp("full")
    return make_venv(home, TORCH_PIN, f"{wheel_of(dist)}[train]"), home


def test_the_wheel_and_the_sdist_carry_grammar_specs_recipes_page_and_templates(dist):
    assert "cnndsl/grammar/cnn.lark" in DATA and "cnndsl/specs/lenet5.train.toml" in DATA and len(BUILTINS) >= 20
    in_wheel = set(zipfile.ZipFile(wheel_of(dist)).namelist())
    (sdist,) = dist.glob("cnndsl-*.tar.gz")
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert [f for f in DATA if f not in in_wheel] == []
    assert [f for f in DATA if f not in in_sdist] == []
    metadata = zipfile.ZipFile(wheel_of(dist)).read("cnndsl-0.1.0.dist-info/METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "torch" in r and "extra ==" not in r] == [], "torch must be an extra"
    assert any("torch>=2.4" in r and "extra == \"torch\"" in r for r in requires)
    assert any("torch>=2.4" in r and "extra == \"train\"" in r for r in requires)


# Every built-in through the command's own entry point, in one process (a process a
# command would cost a minute on two cores); `cnndsl` itself is run by the shell below.
EVERY_BUILT_IN = """
import contextlib, io, shutil, sys
from pathlib import Path
from cnndsl.cli import main
from cnndsl.resources import specs_dir

def cnndsl(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
    if code != 0:
        sys.exit(f"cnndsl {' '.join(args)}: exit {code}: {err.getvalue()}")
    return out.getvalue()

assert str(specs_dir()).startswith(sys.prefix + "/lib/"), specs_dir()
for name in Path("names").read_text().split():
    Path(name + ".check").write_text(cnndsl("check", name))
    cnndsl("compile", name, "-o", name + ".py")
    Path(name + ".summary").write_text(cnndsl("summary", name))
    cnndsl("draw", name, "-o", name + ".svg")
    shutil.copy(specs_dir() / (name + ".cnn"), ".")
"""
SHELL = """
set -euo pipefail
cnndsl list | cut -d' ' -f1 > names
python every.py
cnndsl check resnet50 && cnndsl draw resnet50 -o shell.svg && cnndsl compile lenet5 | python -c 'import ast, sys; ast.parse(sys.stdin.read())'
cnndsl fmt --check *.cnn
"""


def test_without_torch_every_built_in_checks_compiles_summarises_formats_and_draws(bare, tmp_path):
    venv, home = bare
    env = venv_env(venv, home)
    no_torch = run(["python", "-c", "import torch"], cwd=tmp_path, env=env)
    assert no_torch.returncode == 1 and "No module named 'torch'" in no_torch.stderr
    (tmp_path / "every.py").write_text(EVERY_BUILT_IN)
    done = run(SHELL, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "names").read_text().split() == BUILTINS
    for name in BUILTINS:
        assert "is well-formed" in (tmp_path / f"{name}.check").read_text(), name
        assert (tmp_path / f"{name}.py").read_text() == (ROOT / "generated" / f"{name}.py").read_text(), name
        assert "(input)" in (tmp_path / f"{name}.summary").read_text(), name
        assert "<svg" in (tmp_path / f"{name}.svg").read_text()[:200], name
    assert f"0 file(s) would be reformatted, {len(BUILTINS)} unchanged" in done.stdout + done.stderr


def test_the_wheel_imported_as_a_zip_lists_and_compiles_the_built_ins(bare, dist, tmp_path):
    """The wheel itself on PYTHONPATH (zipimport, no files on disk): `list` shows every built-in,
    and one that imports from another spec file compiles to the golden; the specs' copy goes
    with the process."""
    from cnndsl.resources import catalog

    venv, home = bare
    run(["python", "-m", "pip", "uninstall", "-q", "-y", "cnndsl"], cwd=tmp_path, env=venv_env(venv, home))
    try:
        env = {**venv_env(venv, home), "PYTHONPATH": str(wheel_of(dist)), "TMPDIR": str(tmp_path)}
        where = run(["python", "-c", "import cnndsl; print(cnndsl.__file__)"], cwd=tmp_path, env=env)
        assert ".whl" in where.stdout, where.stdout + where.stderr
        listed = run(["python", "-m", "cnndsl", "list"], cwd=tmp_path, env=env)
        names = [line.split()[0] for line in listed.stdout.splitlines()]
        assert sorted(names) == sorted(catalog()) and set(BUILTINS) <= set(names), listed.stdout + listed.stderr
        made = run(["python", "-m", "cnndsl", "compile", "lraspp_mobilenet_v3_large"], cwd=tmp_path, env=env)
        assert made.stdout == (ROOT / "generated" / "lraspp_mobilenet_v3_large.py").read_text(), made.stderr
        assert not list(tmp_path.glob("cnndsl-specs-*"))
    finally:
        reinstalled = run(["python", "-m", "pip", "install", "-q", "--no-compile", "--no-deps", str(wheel_of(dist))],
                          cwd=tmp_path, env=venv_env(venv, home))
        assert reinstalled.returncode == 0, reinstalled.stderr


def test_without_torch_the_language_server_and_the_lexer_work(bare, tmp_path):
    from test_lsp import BAD, Client

    venv, home = bare
    (tmp_path / "net.cnn").write_text("network Tiny() {\n    input 1x8x8\n    conv(4, 3) -> relu -> fc(2)\n}\n")
    lexed = run(["pygmentize", "-l", "cnn", "-f", "html", "net.cnn"], cwd=tmp_path, env=venv_env(venv, home))
    assert lexed.returncode == 0, lexed.stderr
    assert '<span class="kd">network</span>' in lexed.stdout and '<span class="mi">3</span>' in lexed.stdout
    client = Client((str(venv / "bin" / "cnndsl"), "lsp"), cwd=tmp_path)
    client.request("initialize", {"processId": None, "rootUri": tmp_path.as_uri(), "capabilities": {}})
    client.notify("initialized", {})
    uri = (tmp_path / "bad.cnn").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "cnn", "version": 1,
                                                            "text": BAD}})
    (diagnostic,) = client.diagnostics(uri)["diagnostics"]
    assert diagnostic["range"]["start"]["line"] == 2 and "larger than its input" in diagnostic["message"]
    assert client.close() == 0


NEEDS_AN_EXTRA = {
    "train lenet5 --data digits": "train",
    "eval runs/none --data digits": "train",
    "predict runs/none digit.png": "train",
    "viz filters runs/none -o f.png": "train",
    "serve runs/none": "train",
    "export lenet5 --onnx lenet5.onnx": "onnx",
    "draw lenet5 -o lenet5.png": "viz",
}


def test_without_torch_each_command_that_needs_it_names_its_extra(bare, tmp_path):
    venv, home = bare
    env = venv_env(venv, home)
    for command, extra in NEEDS_AN_EXTRA.items():
        done = run(f"cnndsl {command}", cwd=tmp_path, env=env)
        assert done.returncode == 1, (command, done.stderr)
        assert f"needs the '{extra}' extra" in done.stderr and f"pip install 'cnndsl[{extra}]'" in done.stderr, \
            (command, done.stderr)
        assert "bug" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    api = run(["python", "-c", "import cnndsl\ntry:\n cnndsl.build('lenet5')\nexcept cnndsl.errors.MissingExtra as e:"
               "\n print(e)"], cwd=tmp_path, env=env)
    assert api.stdout.strip() == ("cnndsl.build needs the 'torch' extra (torch is not installed) "
                                  "(pip install 'cnndsl[torch]')"), api.stdout + api.stderr


WITH_TORCH = """
set -euo pipefail
python -c 'import cnndsl, sys; assert cnndsl.__file__.startswith(sys.prefix), cnndsl.__file__'
cnndsl list > list.txt
cnndsl check vgg16 > check.txt
cnndsl compile resnet50 -o resnet50.py 2> compile.txt
cnndsl summary vgg16 --style cs231n > summary.txt
cnndsl draw googlenet -o googlenet.svg 2> draw.txt
cnndsl train lenet5 --data digits --out run --epochs 3 > train.txt 2>&1
cnndsl eval run --data digits > eval.txt
python -c 'import cnndsl, torch; torch.save(cnndsl.build("resnet20", num_classes=7).eval(), "whole.pt")'
python -c 'import torch; m = torch.load("whole.pt", weights_only=False); print(type(m).__module__, m(torch.zeros(1, 3, 32, 32)).shape)' > load.txt
"""


def test_the_installed_wheel_lists_checks_compiles_summarises_draws_and_trains(full, tmp_path):
    venv, home = full
    done = run(WITH_TORCH, cwd=tmp_path, env=venv_env(venv, home))
    assert done.returncode == 0, done.stderr + "".join(p.read_text() for p in tmp_path.glob("*.txt"))
    from cnndsl.resources import catalog  # the checkout's: every spec file and the variants declared in them

    assert [line.split()[0] for line in (tmp_path / "list.txt").read_text().splitlines()] == list(catalog())
    assert "network VGG16 is well-formed: 3x224x224 -> 1000, 138,357,544 parameters" in \
        (tmp_path / "check.txt").read_text()
    assert (tmp_path / "resnet50.py").read_text() == (ROOT / "generated" / "resnet50.py").read_text()
    assert "TOTAL params: 138,344,128 weights" in (tmp_path / "summary.txt").read_text()
    assert (tmp_path / "googlenet.svg").read_text().count("Inception") >= 1
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["network"] == "LeNet5" and result["epochs"] == 3 and result["test_accuracy"] > 0.5
    assert f"accuracy {100 * result['test_accuracy']:.2f}%" in (tmp_path / "eval.txt").read_text()
    module, shape = (tmp_path / "load.txt").read_text().split(" ", 1)
    assert module.startswith("cnndsl.built.resnet20_") and shape.strip() == "torch.Size([1, 7])"
