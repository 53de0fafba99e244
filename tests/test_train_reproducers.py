"""Regression tests for the training and data defects of shared/reproducers (items 2, 16):
each input once ended in an internal error (exit 70), in memory exhaustion, was silently
accepted, or left a file behind. Each now gets a user error before any work is done.

Most are checked at the library call that a command makes (the error type is what the
command line turns into `error: ...` and exit 1); a few through the real command.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_cli_in_process

TINY = "network Tiny(num_classes = 10) {\n    input 1x8x8\n    conv(4, 3, pad=1) -> relu -> maxpool(2) -> fc(num_classes)\n}\n"


def user_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    return done.stderr


# ---------------------------------------------------------------- data
def test_the_data_package_imports_nothing_of_train():
    for path in (ROOT / "cnndsl" / "data").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert not target.startswith("..train") and not target.startswith("cnndsl.train"), (path, target)


def _request():
    from cnndsl.data.fit import FitRequest

    return FitRequest((1, 8, 8))


def test_npz_labels_of_2_to_the_40_are_a_data_error_not_a_class_list(tmp_path):
    from cnndsl.data import open_dataset
    from cnndsl.data.errors import DataError

    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.uint8), y=np.array([2**40] + [0] * 19))
    started = time.perf_counter()
    with pytest.raises(DataError, match="class label of 1,099,511,627,776"):
        open_dataset(str(path), _request(), 10)
    assert time.perf_counter() - started < 10  # it once built a list of 2**40 names


def _idx(dtype_code: int, array: np.ndarray, dims=None) -> bytes:
    dims = array.shape if dims is None else dims
    big = {0x08: ">u1", 0x0C: ">i4"}[dtype_code]
    return bytes([0, 0, dtype_code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims) + \
        array.astype(big).tobytes()


def test_mnist_int32_labels_of_2_to_the_31_minus_1(tmp_path):
    from cnndsl.data import open_dataset
    from cnndsl.data.errors import DataError

    images = np.zeros((10, 8, 8), np.uint8)
    labels = np.arange(10)
    labels[3] = 2**31 - 1
    for stem in ("train", "t10k"):
        (tmp_path / f"{stem}-images-idx3-ubyte").write_bytes(_idx(0x08, images))
        (tmp_path / f"{stem}-labels-idx1-ubyte").write_bytes(_idx(0x0C, labels))
    with pytest.raises(DataError, match="class label of 2,147,483,647"):
        open_dataset(str(tmp_path), _request(), 10)


def test_an_idx_header_whose_dims_product_wraps_is_refused(tmp_path):
    from cnndsl.data.errors import DataError
    from cnndsl.data.idx import read_idx

    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx(0x08, np.zeros(0, np.uint8), dims=(2**31, 2**31, 4)))  # 2**64 bytes: wraps to 0
    with pytest.raises(DataError, match="header promises"):
        read_idx(path)


def test_synthetic_data_too_large_for_memory_is_refused():
    from cnndsl.data import open_dataset
    from cnndsl.data.errors import DataError

    with pytest.raises(DataError, match="GiB in memory"):
        open_dataset("synthetic:99999999999", _request(), 10)


# ---------------------------------------------------------------- recipe and options
@pytest.mark.parametrize("field, value, says", [
    ("momentum", -1.0, "momentum must not be negative"),
    ("warmup_epochs", -1.0, "warmup_epochs must not be negative"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("beta2", 1.5, "beta2 must be in [0, 1)"),
    ("weight_decay", float("inf"), "weight_decay must be a finite number"),
])
def test_out_of_range_recipe_values_are_recipe_errors(field, value, says):
    from cnndsl.train.errors import TrainError
    from cnndsl.train.recipe import build_recipe

    with pytest.raises(TrainError, match=says.replace("[", r"\[").replace(")", r"\)")):
        build_recipe({}, {field: value})


@pytest.mark.parametrize("minutes", [-1.0, float("nan"), float("inf")])
def test_checkpoint_minutes_must_be_zero_or_positive(tmp_path, minutes):
    from cnndsl.train.errors import TrainError
    from cnndsl.train.loop import RunOptions

    with pytest.raises(TrainError, match="--checkpoint-minutes"):
        RunOptions(spec="lenet5", out=tmp_path, checkpoint_minutes=minutes).check()


def test_the_command_reports_a_negative_momentum_and_nan_minutes(tmp_path):
    err = user_error(run_cli_in_process("train", "lenet5", "--momentum", "-1", "--out", str(tmp_path / "a")))
    assert "momentum must not be negative" in err
    err = user_error(run_cli_in_process("train", "lenet5", "--checkpoint-minutes", "nan", "--out", str(tmp_path / "b")))
    assert "--checkpoint-minutes" in err


# ---------------------------------------------------------------- crafted checkpoints
def _meta() -> dict:
    return {"spec": TINY, "network": "Tiny", "params": {}, "input": [1, 8, 8], "outputs": 10,
            "recipe": {}, "data": {"source": "digits", "task": "classification", "classes": [str(i) for i in range(10)],
                                   "normalize": {"mean": [0.3], "std": [0.4], "scale": 16.0}}}


def _weights():
    import torch

    torch.manual_seed(0)
    import cnndsl

    return cnndsl.build(TINY).state_dict()


@pytest.mark.parametrize("change, says", [
    (lambda m: m.update(params=[1, 2]), "'params'"),
    (lambda m: m.update(params={"network": "Other"}), "'params'"),
    (lambda m: m.update(input="1x8x8"), "'input'"),
    (lambda m: m["data"].pop("normalize"), "'data.normalize'"),
    (lambda m: m["data"]["normalize"].update(mean=[0.1, 0.2, 0.3], std=[1, 1, 1]), "'data.normalize'"),
    (lambda m: m["data"].update(classes=None), "'data.classes'"),
])
def test_crafted_metadata_with_valid_checksums_is_a_checkpoint_error(tmp_path, change, says):
    import torch

    from cnndsl.train import checkpoint
    from cnndsl.train.errors import CheckpointError
    from cnndsl.train.inference import load_model

    meta = _meta()
    change(meta)
    path = tmp_path / "crafted.safetensors"
    checkpoint.save(path, _weights(), meta)  # the checksums are computed: only the content is wrong
    with pytest.raises(CheckpointError, match=says):
        load_model(path, torch.device("cpu"))


def test_a_crafted_checkpoint_through_eval_and_resume_is_a_user_error(tmp_path):
    from cnndsl.train import checkpoint

    meta = _meta()
    meta["params"] = {"network": "Other"}
    run = tmp_path / "run"
    checkpoint.save(run / checkpoint.LAST, _weights(), {**meta, "progress": {}, "optimizer": {}, "scheduler": {}})
    assert "'params'" in user_error(run_cli_in_process("eval", str(run / checkpoint.LAST)))
    assert "'params'" in user_error(run_cli_in_process("train", "--resume", "--out", str(run)))


def test_a_spec_path_stored_in_a_checkpoint_is_never_read(tmp_path):
    import torch

    from cnndsl.diagnostics import CompileError
    from cnndsl.train import checkpoint
    from cnndsl.train.inference import load_model

    secret = tmp_path / "secret.cnn"
    secret.write_text("SECRET-MARKER-4242 network Tiny {\n    input 1x8x8\n    fc(10)\n}\n")
    meta = _meta()
    meta["spec"] = str(secret)
    path = tmp_path / "crafted.safetensors"
    checkpoint.save(path, _weights(), meta)
    with pytest.raises(CompileError) as caught:
        load_model(path, torch.device("cpu"))
    assert "SECRET-MARKER" not in str(caught.value) and "SECRET-MARKER" not in repr(caught.value.diagnostics)
    done = run_cli_in_process("eval", str(path))
    assert done.returncode == 1 and "SECRET-MARKER" not in done.stderr + done.stdout


# ---------------------------------------------------------------- temporary files (item 2)
_KILLED_WRITER = """
import os, sys, time
from pathlib import Path
import torch
from cnndsl.train import checkpoint
real = os.fsync
def stall(fd):
    Path(sys.argv[2]).write_text("ready")  # the checkpoint's bytes are all written: now be killed
    time.sleep(120)
os.fsync = stall
checkpoint.save(Path(sys.argv[1]) / checkpoint.LAST, {"w": torch.ones(1 << 20)}, {"k": 1})
"""


def test_a_checkpoint_writer_killed_mid_write_leaves_no_temporary_file(tmp_path):
    run, ready = tmp_path / "run", tmp_path / "ready"
    run.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(run), str(ready)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never got to fsync"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert sorted(p.name for p in run.iterdir()) == []  # no .checkpoint.safetensors.*.tmp


def test_resume_removes_temporary_files_a_killed_run_left(tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    run = tmp_path / "run"
    done = run_cli_in_process("train", str(tmp_path / "tiny.cnn"), "--out", str(run), "--epochs", "1", "--no-progress",
                              "--optimizer", "adam", "--lr", "0.01", "--val-fraction", "0.5")
    assert done.returncode == 0, done.stderr
    stale = [run / ".checkpoint.safetensors.k1ll3d.tmp", run / ".best.safetensors.12345.tmp",
             run / ".metrics.jsonl.abc123.tmp", run / ".best-epoch2.safetensors.99.tmp"]
    kept = run / ".someone-elses.tmp"  # not a file of the run: left alone
    kept.write_text("x")
    for path in stale:
        path.write_bytes(b"\0" * 4096)
    (run / "result.json").unlink()
    done = run_cli_in_process("train", "--resume", "--out", str(run), "--epochs", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in stale)
    assert [p.name for p in run.glob(".*.tmp")] == [kept.name]
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
