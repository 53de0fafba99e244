"""The `cnndsl` command, run as a user runs it: compile, check, summary, list; bad
input of every kind gives a clean message and exit code, never a traceback; and the
commands that only read specs never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, run_cli

OK_SPEC = "network Tiny(classes = 10, width = 8) {\n    input 3x16x16\n    conv(width, 3, pad=1) -> relu -> maxpool(2)? -> fc(classes)\n}\n"


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.cnn"
    path.write_text(OK_SPEC)
    return path


def no_traceback(result) -> None:
    assert "Traceback" not in result.stdout + result.stderr
    assert "internal error" not in result.stderr
    assert result.returncode in (0, 1, 2), (result.returncode, result.stderr)


# -- compile --------------------------------------------------------------------------------------

def test_compile_prints_the_module(tiny):
    result = run_cli("compile", str(tiny))
    assert result.returncode == 0, result.stderr
    compile(result.stdout, "tiny.py", "exec")
    assert "class Tiny(nn.Module):" in result.stdout
    assert result.stderr == ""


def test_compile_output_file(tiny, tmp_path):
    out = tmp_path / "out" / "tiny_model.py"
    result = run_cli("compile", str(tiny), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr and "Tiny" in result.stderr
    assert out.read_text() == run_cli("compile", str(tiny)).stdout
    assert [p.name for p in out.parent.iterdir()] == ["tiny_model.py"]  # no temporary left behind


def test_compile_output_file_is_not_touched_on_error(tmp_path):
    bad = tmp_path / "bad.cnn"
    bad.write_text("network B() {\n    input 3x8x8\n    convv(8, 3)\n}\n")
    out = tmp_path / "model.py"
    out.write_text("previous contents\n")
    result = run_cli("compile", str(bad), "-o", str(out))
    assert result.returncode == 1
    assert out.read_text() == "previous contents\n"


def test_compile_with_set(tiny):
    result = run_cli("compile", str(tiny), "--set", "classes=7", "--set", "width=4", "--set", "maxpool=false")
    assert result.returncode == 0, result.stderr
    assert "classes: int = 7, width: int = 4" in result.stdout
    assert "nn.Conv2d(3, width, kernel_size=3, padding=1)" in result.stdout
    assert "nn.MaxPool2d" not in result.stdout
    assert "nn.Linear(width * 16 * 16, classes)" in result.stdout
    assert "x = torch.flatten(x, 1)  # 1024" in result.stdout


def test_compile_builtin_by_name():
    result = run_cli("compile", "lenet5", "--set", "num_classes=5")
    assert result.returncode == 0, result.stderr
    assert "class LeNet5(nn.Module):" in result.stdout
    assert "num_classes: int = 5" in result.stdout


def test_set_value_cannot_inject_code(tiny, tmp_path):
    spec = tmp_path / "tag.cnn"
    spec.write_text("network Tagged(tag = 1) {\n    input 3x8x8\n    relu\n}\n")
    payload = 'x""" + str(print("INJECTED")) + """'
    result = run_cli("compile", str(spec), "--set", f"tag={payload}")
    assert result.returncode == 0, result.stderr
    run = subprocess.run([sys.executable, "-c", result.stdout + "\nprint('ran')\n"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "ran\n"


def test_file_name_cannot_inject_code(tmp_path):
    spec = tmp_path / 'evil""" + str(print("INJECTED")) + """.cnn'
    spec.write_text("network Named() {\n    input 3x8x8\n    relu\n}\n")
    result = run_cli("compile", str(spec))
    assert result.returncode == 0, result.stderr
    run = subprocess.run([sys.executable, "-c", result.stdout + "\nprint('ran')\n"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "ran\n"


# -- check, summary, list -----------------------------------------------------------------------

def test_check_reports_shapes_and_parameters(tiny):
    result = run_cli("check", str(tiny))
    assert result.returncode == 0
    params = 8 * 3 * 9 + 8 + 8 * 8 * 8 * 10 + 10
    assert f"network Tiny is well-formed: 3x16x16 -> 10, {params:,} parameters" in result.stdout


def test_check_with_set_that_breaks_the_shapes(tiny):
    result = run_cli("check", str(tiny), "--set", "width=0")
    assert result.returncode == 1
    assert f"{tiny}:3:10" in result.stderr
    no_traceback(result)


def test_summary_table(tiny):
    result = run_cli("summary", str(tiny))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["path", "layer", "output", "params", "activations", "MACs", "RF"]
    rows = {line.split()[0]: line for line in lines[2:] if line and not line.startswith("-")}
    assert "8x16x16" in rows["conv"] and "224" in rows["conv"]
    assert "8x8x8" in rows["pool"]
    assert "(flattens 8x8x8)" in rows["fc"]
    assert f"parameters: {8 * 3 * 9 + 8 + 512 * 10 + 10:,}" in result.stdout


def test_summary_table_for_vgg16():
    result = run_cli("summary", "vgg16")
    assert result.returncode == 0
    assert "parameters: 138,357,544" in result.stdout
    assert "features.0" in result.stdout and "classifier.6" in result.stdout


def test_list_names_every_builtin_first():
    result = run_cli("list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    names = [line.split()[0] for line in lines]
    files = sorted(p.stem for p in (ROOT / "specs").glob("*.cnn"))
    assert [name for name in names if name in files] == files  # the spec files in order, each at the margin
    assert {"lenet5", "vgg16"} <= set(names)
    # A family's variants follow its file's line, indented.
    family = names.index("cifar_resnet")
    assert names[family + 1:family + 3] == ["resnet20", "resnet56"]
    assert all(line.startswith("  ") for line in lines[family + 1:family + 3])
    assert not lines[family].startswith(" ")


def test_list_without_its_specs_says_the_install_is_incomplete(monkeypatch, capsys, tmp_path):
    import cnndsl.cli
    import cnndsl.resources

    monkeypatch.setattr(cnndsl.resources, "specs_dir", lambda: tmp_path / "specs")
    monkeypatch.setattr(sys, "argv", ["cnndsl", "list"])
    cnndsl.resources.catalog.cache_clear()
    try:
        with pytest.raises(SystemExit) as done:
            cnndsl.cli.main()
    finally:
        cnndsl.resources.catalog.cache_clear()
    assert done.value.code == 1
    err = capsys.readouterr().err
    assert f"no built-in specs in {tmp_path / 'specs'}" in err and "reinstall" in err


def test_list_layers():
    result = run_cli("list", "--layers")
    assert result.returncode == 0
    kinds = [line.split("(")[0] for line in result.stdout.splitlines()]
    for kind in ("conv", "maxpool", "avgpool", "minpool", "adaptive_avgpool", "global_avgpool", "fc",
                 "flatten", "dropout", "batchnorm", "lrn", "relu", "leaky_relu", "elu", "sigmoid", "tanh",
                 "maxout", "softmax"):
        assert kind in kinds, kind


# -- bad input --------------------------------------------------------------------------------

BAD_FILES = {
    "garbage.cnn": bytes(range(256)) * 8,
    "latin1.cnn": "network N() {\n    input 3x8x8 # caf\xe9\n}\n".encode("latin-1"),
    "nul.cnn": b"network N() {\n\x00\x00\n}\n",
    "empty.cnn": b"",
    "blank.cnn": b"\n\n   \n",
    "bom_only.cnn": b"\xef\xbb\xbf",
    "only_brace.cnn": b"}",
    "unterminated.cnn": b'network N() {\n    input 3x8x8\n    conv(8, 3, padding_mode="reflect\n}\n',
    "unicode_name.cnn": "network N() {\n    input 3x8x8\n    caf\u00e9: conv(8, 3)\n}\n".encode(),
    "huge_int.cnn": b"network N() {\n    input 3x8x8\n    conv(99999999999999999999999999, 3)\n}\n",
    "huge_float.cnn": b"network N() {\n    input 3x8x8\n    dropout(1e999)\n}\n",
    "no_input.cnn": b"network N() {\n    relu\n}\n",
    "deep.cnn": b"network N() {\n    input 3x8x8\n    " + b"[" * 5000 + b"relu" + b"]" * 5000 + b"\n}\n",
    "deep_parens.cnn": b"network N() {\n    input 3x8x8\n    conv(" + b"(" * 5000 + b"8" + b")" * 5000 + b", 3)\n}\n",
    "long_sum.cnn": b"network N() {\n    input 3x8x8\n    conv(" + b"+".join([b"1"] * 20000) + b", 3)\n}\n",
    "long_chain.cnn": b"network N() {\n    input 3x8x8\n    " + b" -> ".join([b"relu"] * 30000) + b"\n}\n",
    "many_repeats.cnn": b"network N() {\n    input 3x8x8\n    conv(8,3,pad=1)*1000000000\n}\n",
    "nested_repeats.cnn": b"network N() {\n    input 3x8x8\n    [[[[relu*1000]*1000]*1000]*1000]*1000\n}\n",
    "big_input.cnn": b"network N() {\n    input 3x100000x100000\n    relu\n}\n",
    "huge_fc.cnn": b"network N() {\n    input 3x8x8\n    fc(100000000) -> fc(100000000)\n}\n",
    "crlf_bad.cnn": b"network N() {\r\n    input 3x8x8\r\n    conv(8, 3) relu\r\n}\r\n",
    "lone_cr.cnn": b"network N() {\r    input 3x8x8\r    relu\r}\r",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["check", "compile", "summary"])
def test_bad_files_never_give_a_traceback(tmp_path, name, command):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    result = run_cli(command, str(path))
    no_traceback(result)
    if result.returncode != 0:
        assert result.returncode == 1
        assert result.stderr.startswith("error"), result.stderr[:300]
        assert f"--> {path}:" in result.stderr


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "big.cnn"
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\nnetwork N() {\n    input 3x8x8\n    relu\n}\n")
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert "over the 1,048,576-byte limit" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize("args, code, words", [
    (["check", "no/such/file.cnn"], 1, "no such file"),
    (["check", "missing.cnn"], 1, "no such file"),
    (["check", "nosuchbuiltin"], 1, "no file and no built-in named 'nosuchbuiltin'"),
    (["check", "lenet"], 1, "did you mean 'lenet5'?"),
    (["compile", "lenet5", "--set", "N"], 2, "is not NAME=VALUE"),
    (["compile", "lenet5", "--set", "=3"], 2, "is not NAME=VALUE"),
    (["compile", "lenet5", "--set", "1x=3"], 2, "is not NAME=VALUE"),
    (["compile", "lenet5", "--set", "num_clases=3"], 1, "did you mean 'num_classes'?"),
    (["compile", "lenet5", "--set", "num_classes=abc"], 1, "must be a whole number"),
    (["compile", "lenet5", "--set", "num_classes=2.5"], 1, "must be a whole number"),
    (["compile", "lenet5", "--set", "num_classes=nan"], 1, "not a finite number"),
    (["summary", "lenet5", "--set", "num_classes=inf"], 1, "not a finite number"),
    (["compile", "lenet5", "--set", "num_classes=0"], 1, "must be at least 1"),
    (["compile", "lenet5", "--set", "num_classes=99999999999999999999999"], 1, "too large"),
    (["compile", "lenet5", "--set", "in_channels=true"], 1, "positive whole number"),
    (["compile", "vgg16", "--set", "size=16"], 1, "larger than its input"),
    (["compile", "lenet5", "--network", "Nope"], 1, "no network named 'Nope'"),
    (["summary", "lenet5", "--style", "nope"], 2, "Invalid value for '--style'"),
    (["check"], 2, "Missing argument"),
    (["frobnicate"], 2, "No such command"),
])
def test_bad_arguments(args, code, words):
    result = run_cli(*args)
    no_traceback(result)
    assert result.returncode == code, result.stderr
    assert words in result.stderr


def test_directory_as_spec(tmp_path):
    folder = tmp_path / "folder.cnn"
    folder.mkdir()
    result = run_cli("check", str(folder))
    no_traceback(result)
    assert result.returncode == 1 and "is a directory" in result.stderr
    result = run_cli("compile", "lenet5", "-o", str(folder))
    no_traceback(result)
    assert result.returncode != 0 and "directory" in result.stderr


def test_spec_from_stdin_pipe():
    result = run_cli("check", "/dev/stdin", input="network P() {\n    input 1x4x4\n    conv(2, 3)\n}\n")
    no_traceback(result)
    assert result.returncode == 0 and "network P is well-formed: 1x4x4 -> 2x2x2" in result.stdout


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("cnndsl ")
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("compile", "check", "summary", "list"):
        assert command in result.stdout


# -- no torch ------------------------------------------------------------------------------

TORCH_FREE = [
    ["check", "vgg16"],
    ["compile", "vgg16"],
    ["summary", "vgg16", "--style", "cs231n"],
    ["summary", "lenet5"],
    ["list"],
    ["list", "--layers"],
    ["check", "specs/examples/pattern.cnn", "--set", "POOL=false", "--format", "json"],
    ["check", "no_such.cnn"],
]


@pytest.mark.parametrize("args", TORCH_FREE, ids=lambda a: " ".join(a))
def test_commands_do_not_import_torch(args):
    script = (
        "import sys\n"
        "from cnndsl.cli import main\n"
        f"sys.argv = ['cnndsl', *{args!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "sys.stderr.write(f'\\nHEAVY={heavy}\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.stderr.rstrip().endswith("HEAVY=[]"), result.stderr[-500:]
