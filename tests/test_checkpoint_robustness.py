"""Checkpoints under hostile conditions (cnndsl/train/checkpoint.py).

1. Loading never unpickles: the loader's source has no pickle and no torch.load, and a
   crafted pickle whose unpickling would run code, handed to `cnndsl eval`, ends in a
   clean error with the code never run.
2. A truncated or corrupted checkpoint (cut at many lengths, bytes flipped in the header,
   in the metadata and in the tensors) gets a clear error, never a traceback.
3. A run killed with SIGKILL at random points, several times, and resumed each time,
   ends with the same metrics as an uninterrupted run with the same seed. Tolerance:
   accuracy exactly equal, losses within 1e-6 (and in practice the final weights are
   bit-identical: the SHA-256 of the weights in result.json is compared too).
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli_in_process

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_SOURCE = ROOT / "cnndsl" / "train" / "checkpoint.py"
TINY = "network Tiny(num_classes = 10) {\n    input 1x8x8\n    conv(4, 3, pad=1) -> relu -> maxpool(2) -> fc(num_classes)\n}\n"
TRAIN = ["--data", "digits", "--epochs", "30", "--batch-size", "32", "--threads", "1", "--no-progress",
         "--checkpoint-minutes", "0.0005"]
ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def cnndsl(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cnndsl", *args], capture_output=True, text=True, cwd=cwd,
                            env=ENV, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def cnndsl_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`cnndsl` run in this process, for the calls that only check what it prints (a
    command's start costs seconds of torch import); the training runs, compared bit for
    bit with the killed ones, keep the subprocess and its fixed hash seed."""
    result = run_cli_in_process(*args, cwd=cwd)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """One uninterrupted run; its checkpoint is also the material for the damage tests."""
    base = tmp_path_factory.mktemp("reference")
    (base / "tiny.cnn").write_text(TINY)
    cnndsl("train", "tiny.cnn", "--out", "run", *TRAIN, cwd=base, check=True)
    return base


# -- 1. never unpickle -------------------------------------------------------------------------

def test_the_loader_has_no_pickle_and_no_torch_load():
    code = re.sub(r'"""[\s\S]*?"""|#[^\n]*', "", CHECKPOINT_SOURCE.read_text())
    assert "pickle" not in code and "torch.load" not in code and "weights_only" not in code
    assert "safetensors" in code
    loaders = [p for p in (ROOT / "cnndsl").rglob("*.py") if "torch.load(" in p.read_text()]
    for path in loaders:  # anywhere else in the package, torch.load must refuse pickled objects
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path}: {call}"


class _RunsCode:
    """Unpickling this runs `open(MARKER, 'w')`: the proof that a loader unpickled it."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("name", ["checkpoint.safetensors", "model.pt"])
def test_a_crafted_pickle_is_refused_and_never_run(tmp_path, name):
    marker = tmp_path / "UNPICKLED"
    _RunsCode.marker = str(marker)
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps({"state_dict": _RunsCode()}))
    result = cnndsl_in_process("eval", str(evil), cwd=tmp_path)
    assert result.returncode not in (0, 70), result.stderr
    assert "error" in result.stderr.lower() and len(result.stderr) < 2000
    assert not marker.exists(), "the pickle was unpickled"
    # A run directory whose checkpoint is the pickle: the same.
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(evil.read_bytes())
    result = cnndsl_in_process("eval", str(run), cwd=tmp_path)
    assert result.returncode not in (0, 70) and not marker.exists()


# -- 2. damaged checkpoints ---------------------------------------------------------------------

def _damaged(data: bytes, rng: random.Random):
    header = int.from_bytes(data[:8], "little")
    yield "empty", b""
    for cut in sorted({1, 7, 8, 9, 8 + header // 2, 8 + header, 8 + header + 1, len(data) // 2, len(data) - 1}):
        yield f"truncated to {cut} bytes", data[:cut]
    for region, (start, end) in {"length": (0, 8), "header": (8, 8 + header),
                                 "tensors": (8 + header, len(data))}.items():
        for _ in range(3):
            i = rng.randrange(start, end)
            yield f"byte {i} flipped in the {region}", data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]
    yield "tensor bytes zeroed", data[:8 + header] + bytes(len(data) - 8 - header)
    yield "a huge declared header", (1 << 62).to_bytes(8, "little") + data[8:]


def test_truncated_and_corrupted_checkpoints_get_a_clear_error(reference_run, tmp_path):
    """Every damage through the loader itself; three of them through `cnndsl eval` too."""
    from cnndsl.train.checkpoint import load
    from cnndsl.train.errors import CheckpointError

    good = reference_run / "run" / "checkpoint.safetensors"
    original = good.read_bytes()
    load(good)  # the undamaged file loads
    rng = random.Random(3)
    tried, through_cli = 0, 0
    for what, data in _damaged(original, rng):
        path = tmp_path / "damaged.safetensors"
        path.write_bytes(data)
        tried += 1
        try:
            load(path)
        except CheckpointError as exc:
            message = str(exc)
            assert "damaged.safetensors" in message, f"{what}: the error does not name the file: {message}"
            assert re.search(r"truncat|corrupt|damaged|not a safetensors|checksum|not a cnndsl", message, re.I), \
                f"{what}: unclear error: {message}"
            if what.startswith(("truncated to 9 ", "byte", "a huge")) and through_cli < 3:
                through_cli += 1
                result = cnndsl_in_process("eval", str(path), cwd=tmp_path)
                assert result.returncode not in (0, 70) and "damaged.safetensors" in result.stderr, result.stderr
            continue
        # The tensors and the metadata each carry a checksum: no damage may load.
        raise AssertionError(f"{what}: a damaged checkpoint was accepted")
    assert tried >= 20 and through_cli == 3


# -- 3. killed at random points, resumed --------------------------------------------------------

def _epochs_done(run: Path) -> int:
    metrics = run / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def test_a_run_killed_several_times_ends_like_an_uninterrupted_one(reference_run, tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    run = tmp_path / "run"
    rng = random.Random(11)
    kill_after = sorted(rng.sample(range(2, 28), 3))  # epochs completed before each kill
    kills = 0
    for target in kill_after:
        resume = ["--resume", "--out", "run"] if (run / "checkpoint.safetensors").exists() else \
            ["tiny.cnn", "--out", "run", "--overwrite", *TRAIN]
        args = ["train", *resume] if resume[0] == "--resume" else ["train", *resume]
        process = subprocess.Popen([sys.executable, "-m", "cnndsl", *args], cwd=tmp_path, env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while _epochs_done(run) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next epoch
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        assert "Traceback" not in process.stderr.read()
    assert kills == 3, "every kill must land while the run is training"
    final = cnndsl("train", "--resume", "--out", "run", cwd=tmp_path, check=True)
    assert "Traceback" not in final.stderr

    expected = json.loads((reference_run / "run" / "result.json").read_text())
    resumed = json.loads((run / "result.json").read_text())
    assert resumed["epochs"] == expected["epochs"] == 30
    assert resumed["test_accuracy"] == expected["test_accuracy"]
    assert resumed["last_test_accuracy"] == expected["last_test_accuracy"]
    assert abs(resumed["test_loss"] - expected["test_loss"]) <= 1e-6
    assert abs(resumed["last_test_loss"] - expected["last_test_loss"]) <= 1e-6
    assert resumed["rank_weight_digests"] == expected["rank_weight_digests"]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == list(range(1, 31)), "each epoch recorded once"
