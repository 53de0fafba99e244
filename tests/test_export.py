"""ONNX export: the file runs in onnxruntime at batch sizes 1 and 3 and computes what the
PyTorch model computes (atol 1e-4), from a spec and from a training checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import cnndsl
from cnndsl.tools.export import export_onnx

from conftest import run_cli_in_process

# The less common layers: reflect padding, min pooling, LRN, a ceil-mode pool, maxout.
ODD = """\
network Odd(classes = 5) {
    input 3x20x20
    conv(8, 3, pad=1, padding_mode="reflect") -> leaky_relu -> minpool(2) -> norm(5)
    maxpool(3, stride=2, ceil=true) -> conv(12, 3) -> maxout(2) -> elu -> flatten
    dropout(0.3) -> fc(16) -> sigmoid -> fc(classes) -> softmax
}
"""


def assert_same_function(path: Path, model, input_shape) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.name == "input" and not isinstance(graph_input.shape[0], int)  # a dynamic batch
    assert graph_input.shape[1:] == list(input_shape)
    model.eval()
    for batch in (1, 3):
        x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(batch))
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            want = model(x).numpy()
        assert got.shape == want.shape and got.shape[0] == batch
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("spec", ["lenet5", ODD], ids=["lenet5", "odd-layers"])
def test_export_runs_in_onnxruntime_like_pytorch(spec: str, tmp_path: Path):
    torch.manual_seed(0)
    model = cnndsl.build(spec)
    path = tmp_path / "model.onnx"
    assert export_onnx(model, model.cnndsl_input, path) == ["output"]
    onnx.checker.check_model(str(path))
    assert_same_function(path, model, model.cnndsl_input)


def test_export_a_checkpoint_from_the_command_line(tmp_path: Path):
    from cnndsl.train import checkpoint

    torch.manual_seed(1)
    model = cnndsl.build(ODD, classes=7)
    with torch.no_grad():  # weights no fresh build would have
        for p in model.parameters():
            p.add_(0.5)
    ckpt = tmp_path / "best.safetensors"
    meta = {"spec": ODD, "network": "Odd", "params": {"classes": 7}, "input": [3, 20, 20], "outputs": 7,
            "data": {"task": "classification", "source": "synthetic", "classes": [str(c) for c in range(7)],
                     "normalize": {"mean": [0.5] * 3, "std": [0.25] * 3, "scale": 1.0}}}
    checkpoint.save(ckpt, model.state_dict(), meta)
    out = tmp_path / "odd.onnx"
    result = run_cli_in_process("export", str(ckpt), "--onnx", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stderr and "Odd" in result.stderr
    assert_same_function(out, model, (3, 20, 20))


def test_export_errors_are_messages_not_tracebacks(tmp_path: Path):
    missing = run_cli_in_process("export", "no_such_model", "--onnx", str(tmp_path / "x.onnx"))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no file and no built-in named 'no_such_model'" in missing.stderr
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00\x01")
    result = run_cli_in_process("export", str(damaged), "--onnx", str(tmp_path / "y.onnx"))
    assert result.returncode == 1 and "Traceback" not in result.stderr and "damaged" in result.stderr
    assert not (tmp_path / "y.onnx").exists()


def test_the_light_commands_load_no_heavy_module():
    """compile, check, summary, list and fmt never import torch, onnx, pygls or Pygments."""
    code = ("import sys\n"
            "from cnndsl.cli import cli\n"
            "for args in (['compile', 'lenet5'], ['check', 'vgg16'], ['summary', 'lenet5'], ['list'],\n"
            "             ['fmt', '--check', 'specs/lenet5.cnn']):\n"
            "    try:\n"
            "        cli.main(args=args, standalone_mode=False)\n"
            "    except SystemExit as exc:\n"
            "        assert not exc.code, (args, exc.code)\n"
            "heavy = sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'onnxscript', 'pygls', 'lsprotocol',\n"
            "                           'pygments') if m in sys.modules)\n"
            "print('HEAVY', heavy)\n")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


def test_export_goes_through_the_atomic_writer(tmp_path: Path):
    """--onnx onto a symlink writes its target, keeps the target's mode and leaves no
    temporary; onto a FIFO it is refused before the model is built."""
    import os
    import stat

    target = tmp_path / "real.onnx"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "link.onnx"
    link.symlink_to(target)
    result = run_cli_in_process("export", "lenet5", "--onnx", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o640
    onnx.checker.check_model(str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.onnx", "real.onnx"]
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    result = run_cli_in_process("export", "lenet5", "--onnx", str(fifo))
    assert result.returncode == 2 and "FIFO" in result.stderr and "Traceback" not in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
