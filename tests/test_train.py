"""`cnndsl train`, `eval` and `predict` as a user runs them: the command's entry point
(in this process, `run_cli_in_process`; the real command in a subprocess where the process
is what is tested: a kill, a Ctrl-C, torch not imported), a tiny network written here on
the embedded digits, a few epochs.

What is checked: the run directory's contents and formats (safetensors, no pickle),
eval and predict from the checkpoint alone, the recipe file and its overrides, resuming
after SIGKILL and after Ctrl-C to the same weights as an uninterrupted run, a diverging
loss that keeps the last good checkpoint, damaged checkpoints, and that none of it
prints a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli_in_process

TINY = """# a small convnet for 8x8 digits
network Tiny(num_classes = 10, in_channels = 1) {
    input in_channels x 8 x 8
    conv(8, 3, pad=1) -> relu -> maxpool(2) -> fc(num_classes)
}
"""
FAST = ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "32", "--no-progress"]


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.cnn"
    path.write_text(TINY)
    return path


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def fails(done: subprocess.CompletedProcess, code: int = 1) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    return done.stderr


def weights_digest(path: Path) -> str:
    from cnndsl.train import checkpoint

    meta, tensors = checkpoint.load(path)
    return checkpoint.tensor_digest(checkpoint.weights_of(tensors))


def test_train_eval_predict_and_a_diverging_resume(tiny, tmp_path):
    out = tmp_path / "run"
    done = ok(run_cli_in_process("train", str(tiny), "--data", "digits", "--out", str(out), "--epochs", "3", *FAST))
    assert "test accuracy" in done.stdout
    assert {p.name for p in out.iterdir()} >= {"checkpoint.safetensors", "best.safetensors", "metrics.jsonl",
                                               "result.json", "run.json", "model.py"}
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert {"epoch", "train_loss", "val_loss", "val_accuracy", "images_per_second", "seconds"} <= set(m)
    result = json.loads((out / "result.json").read_text())
    assert result["test_accuracy"] > 0.7 and result["test_samples"] == 359

    raw = (out / "checkpoint.safetensors").read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    meta = json.loads(header["__metadata__"]["cnndsl"])
    assert meta["spec"] == TINY and meta["recipe"]["epochs"] == 3 and meta["recipe"]["optimizer"] == "adam"
    assert "optimizer/0/exp_avg" in header and meta["scheduler"]["last_epoch"] > 0
    assert b"\x80\x04" not in raw[:16] and not raw.startswith(b"PK")  # neither a pickle nor torch.save's zip

    evaluated = json.loads(ok(run_cli_in_process("eval", str(out), "--json")).stdout)
    assert evaluated["accuracy"] == pytest.approx(result["test_accuracy"]) and evaluated["samples"] == 359

    # a test digit as a PNG file, bright ink on black as the training images
    import numpy as np
    from PIL import Image

    from cnndsl.data import open_dataset
    from cnndsl.data.fit import FitRequest

    test = open_dataset("digits", FitRequest((1, 8, 8)), 10).test
    images = []
    for i in range(2):
        images.append(tmp_path / f"digit{i}.png")
        Image.fromarray(test.x[i, 0]).save(images[-1])
    predicted = json.loads(ok(run_cli_in_process("predict", str(out / "best.safetensors"), *map(str, images),
                                      "-k", "3", "--json")).stdout)
    assert len(predicted) == 2 and all(len(p["top"]) == 3 for p in predicted)
    top = predicted[0]["top"]
    assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"] > 0
    assert sum(t["probability"] for t in top) <= 1.0 + 1e-6
    assert predicted[0]["top"][0]["class"] in [str(d) for d in range(10)]
    text = ok(run_cli_in_process("predict", str(out), str(images[0]))).stdout
    assert text.startswith(str(images[0])) and "%" in text
    assert np.isfinite([t["probability"] for t in top]).all()

    # a diverging loss stops the run and keeps the last good checkpoint
    good = weights_digest(out / "checkpoint.safetensors")
    (out / "result.json").unlink()  # make it an unfinished run that --resume can extend
    err = fails(run_cli_in_process("train", "--resume", "--out", str(out), "--optimizer", "sgd"))
    assert "cannot switch the optimizer" in err
    err = fails(run_cli_in_process("train", "--resume", "--out", str(out), "--epochs", "5", "--lr", "1e30",
                                   "--no-progress"))
    assert "error:" in err and ("nan" in err.lower() or "inf" in err.lower())
    assert "last good checkpoint" in err and "lower --lr" in err
    assert weights_digest(out / "checkpoint.safetensors") == good


def test_recipe_file_beside_the_spec_and_command_line_overrides(tiny, tmp_path):
    (tmp_path / "tiny.train.toml").write_text('epochs = 1\noptimizer = "adamw"\nlr = 0.004\nbatch_size = 64\n')
    out = tmp_path / "run"
    ok(run_cli_in_process("train", str(tiny), "--out", str(out), "--batch-size", "16", "--no-progress"))
    run = json.loads((out / "run.json").read_text())
    assert run["recipe"]["optimizer"] == "adamw" and run["recipe"]["lr"] == 0.004  # from the file
    assert run["recipe"]["batch_size"] == 16  # the option wins
    assert run["recipe_file"].endswith("tiny.train.toml")

    (tmp_path / "tiny.train.toml").write_text("epoch = 1\n")
    err = fails(run_cli_in_process("train", str(tiny), "--out", str(tmp_path / "bad"), "--no-progress"))
    assert "unknown recipe field 'epoch'" in err and "did you mean 'epochs'" in err


def test_help_lists_every_recipe_field_with_its_default():
    from cnndsl.train.recipe import FIELDS

    text = " ".join(ok(run_cli_in_process("train", "--help")).stdout.split())  # undo click's wrapping
    for name, spec in FIELDS.items():
        assert "--" + name.replace("_", "-") in text, name
    assert "[default: 0.05]" in text and "[default: cross_entropy]" in text


def test_train_commands_do_not_import_torch_until_run():
    code = ("import sys, cnndsl.cli; cnndsl.cli.cli.main(['train', '--help'], standalone_mode=False); "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


def _start(tiny: Path, out: Path, epochs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnndsl", "train", str(tiny), "--out", str(out),
                             "--epochs", str(epochs), "--schedule", "cosine", *FAST], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_sigkill_and_after_ctrl_c_gives_the_weights_of_an_unbroken_run(tiny, tmp_path):
    epochs = 12
    whole = tmp_path / "whole"
    ok(run_cli_in_process("train", str(tiny), "--out", str(whole), "--epochs", str(epochs), "--schedule", "cosine",
                          *FAST))
    expected = json.loads((whole / "result.json").read_text())["rank_weight_digests"][0]
    assert expected == weights_digest(whole / "checkpoint.safetensors")

    killed = tmp_path / "killed"
    proc = _start(tiny, killed, epochs)
    _wait_for(killed / "checkpoint.safetensors", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (killed / "result.json").exists(), "the run ended before it could be killed"
    err = fails(run_cli_in_process("train", str(tiny), "--out", str(killed), "--no-progress"))
    assert "unfinished run" in err and "--resume" in err
    done = ok(run_cli_in_process("train", "--resume", "--out", str(killed), "--no-progress"))
    assert "resuming" in done.stderr
    assert json.loads((killed / "result.json").read_text())["rank_weight_digests"][0] == expected
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == epochs

    stopped = tmp_path / "stopped"
    proc = _start(tiny, stopped, epochs)
    _wait_for(stopped / "checkpoint.safetensors", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "continue with: cnndsl train --resume" in err
    ok(run_cli_in_process("train", "--resume", "--out", str(stopped), "--no-progress"))
    assert json.loads((stopped / "result.json").read_text())["rank_weight_digests"][0] == expected


def test_damaged_checkpoints_are_reported_not_loaded(tmp_path):
    import torch

    from cnndsl.train import checkpoint
    from cnndsl.train.errors import CheckpointError

    path = tmp_path / "model.safetensors"
    checkpoint.save(path, {"w": torch.arange(64, dtype=torch.float32)}, {"spec": TINY})
    assert checkpoint.load(path)[0]["spec"] == TINY
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated|damaged"):
        checkpoint.load(path)
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF  # inside the tensor's bytes: the structure stays valid
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum.*corrupted"):
        checkpoint.load(path)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a cnndsl checkpoint"):
        checkpoint.load(tmp_path / "foreign.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 3)
    err = fails(run_cli_in_process("predict", str(tmp_path / "junk.safetensors"), "x.png"))
    assert err.startswith("error: ") and "truncated" in err and "hint: " in err


def test_mismatched_data_says_what_to_do(tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (i * 40, 10, 200)).save(tmp_path / "pets" / name / f"{i}.png")
    err = fails(run_cli_in_process("train", "lenet5", "--data", str(tmp_path / "pets"), "--out", str(tmp_path / "r")))
    assert "3 channels but the spec's input has 1" in err and "--set in_channels=3" in err
    err = fails(run_cli_in_process("train", "lenet5", "--data", str(tmp_path / "pets"), "--set", "in_channels=3",
                        "--out", str(tmp_path / "r")))
    assert "8x8 but the spec's input is 32x32" in err and "--resize" in err
    err = fails(run_cli_in_process("train", "lenet5", "--data", str(tmp_path / "pets"), "--set", "in_channels=3",
                        "--resize", "--out", str(tmp_path / "r")))
    assert "2 classes but LeNet5 outputs 10" in err and "--set num_classes=2" in err
    err = fails(run_cli_in_process("train", "lenet5", "--data", str(tmp_path / "nowhere")))
    assert "no dataset at" in err


def test_auxiliary_outputs_add_weighted_losses():
    import torch
    import torch.nn.functional as F

    from cnndsl.train.loop import combined_loss

    logits, aux = torch.randn(4, 3), torch.randn(4, 3)
    y = torch.tensor([0, 1, 2, 1])
    main, loss = combined_loss((logits, aux), y, F.cross_entropy, 0.3)
    assert torch.equal(main, logits)
    assert torch.allclose(loss, F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(aux, y))
    assert torch.allclose(combined_loss(logits, y, F.cross_entropy, 0.3)[1], F.cross_entropy(logits, y))
