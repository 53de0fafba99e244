"""What users reach for after the core (issue 16): fine-tuning (--init, --freeze, a lower
backbone rate), early stopping, best-k checkpoints, the plateau schedule, top-5,
per-class accuracy and the confusion matrix, CSV and TensorBoard logs, per-step logging,
the progress lines on a terminal of 0 columns, torchvision's download layouts, and the
Python API (`cnndsl.fit`, `evaluate`, `predict`, callbacks).

Runs are tiny (the 8x8 digits, a network of a few hundred weights, a few epochs) and go
through `cnndsl.fit`, the same `Run` the command drives; the command itself where what
is checked is its output.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnndsl
from conftest import ROOT, run_cli_in_process

TINY = "network Tiny(num_classes = 10) {\n    input 1x8x8\n    conv(4, 3, pad=1) -> relu -> maxpool(2) -> fc(num_classes)\n}\n"
FAST = {"optimizer": "adam", "lr": 0.01, "batch_size": 64, "threads": 1}


def fit(out: Path, spec=TINY, data="digits", **changes):
    return cnndsl.fit(spec, data, out=out, **{**FAST, **changes})


def tensors(path: Path) -> dict:
    from cnndsl.train import checkpoint

    return checkpoint.weights_of(checkpoint.load(path)[1])


def test_import_cnndsl_stays_torch_free_and_exports_the_training_api():
    code = "import sys, cnndsl; f = cnndsl.fit; e = cnndsl.evaluate; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "False", done.stderr


# ---------------------------------------------------------------- fine-tuning
def _five_class_digits():
    from cnndsl.data import open_dataset
    from cnndsl.data.fit import FitRequest
    from cnndsl.data.npz import dataset_from_arrays

    digits = open_dataset("digits", FitRequest((1, 32, 32)), 10)
    arrays = {}
    for part, split in digits.splits().items():
        keep = split.y < 5
        arrays[f"x_{part}"], arrays[f"y_{part}"] = split.x[keep], split.y[keep]
    return dataset_from_arrays(arrays, "digits 0-4")


def test_fine_tuning_lenet5_to_five_classes_keeps_frozen_weights_bit_for_bit(tmp_path):
    base = fit(tmp_path / "base", "lenet5", epochs=1, batch_size=128)
    start = tensors(base.out / "best.safetensors")
    tuned = fit(tmp_path / "tuned", "lenet5", _five_class_digits(), params={"num_classes": 5}, epochs=2,
                init=base.out / "best.safetensors", freeze="c1,c3", backbone_lr=0.1, batch_size=128)
    after = tensors(tuned.out / "checkpoint.safetensors")
    for name in ("c1.weight", "c1.bias", "c3.weight", "c3.bias"):
        assert after[name].numpy().tobytes() == start[name].numpy().tobytes(), name
    for name in ("c5.weight", "f6.weight"):
        assert after[name].numpy().tobytes() != start[name].numpy().tobytes(), name
    assert tuple(after["output.weight"].shape) == (5, 84)
    run = json.loads((tuned.out / "run.json").read_text())
    assert run["reinitialised"] == ["output.bias", "output.weight"]
    assert run["frozen"] == ["c1.weight", "c1.bias", "c3.weight", "c3.bias"]
    assert tuned.result["test_accuracy"] > 0.5 and tuned.result["test_samples"] == 180


def test_backbone_rate_and_a_torchvision_style_state_dict(tmp_path):
    import torch

    from cnndsl.train.errors import CheckpointError, TrainError
    from cnndsl.train.loop import Run, RunOptions

    model = cnndsl.build(TINY)
    pth = tmp_path / "weights.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, pth)  # as DDP saves them
    run = Run(RunOptions(spec=TINY, out=tmp_path / "r", init=str(pth), overrides={"lr": 0.1, "backbone_lr": 0.01}))
    run._setup()
    assert run.model.state_dict()["conv.weight"].equal(model.state_dict()["conv.weight"])
    rates = sorted((g["lr"], sum(p.numel() for p in g["params"])) for g in run.optimizer.param_groups)
    head = sum(p.numel() for n, p in run.model.named_parameters() if n.startswith("fc"))
    assert [r for r, _ in rates] == pytest.approx([0.001, 0.001, 0.1, 0.1])
    assert sum(n for r, n in rates if r == pytest.approx(0.1)) == head

    torch.save({k: v for k, v in model.state_dict().items() if k != "conv.bias"}, pth)
    with pytest.raises(CheckpointError, match="missing conv.bias"):
        fit(tmp_path / "bad", epochs=1, init=str(pth))
    with pytest.raises(TrainError, match="--freeze nothing"):
        fit(tmp_path / "bad2", epochs=1, freeze="nothing")


def test_the_run_starts_by_saying_the_trainable_and_frozen_counts(tmp_path):
    from cnndsl.train.loop import Run, RunOptions

    run = Run(RunOptions(spec=TINY, out=tmp_path / "r", overrides={"freeze": "conv"}, threads=1))
    run._setup()
    frozen = sum(p.numel() for n, p in run.model.named_parameters() if n.startswith("conv."))
    trainable = sum(p.numel() for n, p in run.model.named_parameters() if n.startswith("fc."))
    assert frozen == 4 * 9 + 4 and trainable == 4 * 16 * 10 + 10
    assert f"training Tiny ({trainable:,} trainable parameters, {frozen:,} frozen) on digits" in run._describe()


# ---------------------------------------------------------------- stopping and keeping
def test_early_stopping_stops_at_the_epoch_patience_says(tmp_path):
    # a rate so small that nothing changes: the monitored accuracy never improves after epoch 1
    history = fit(tmp_path / "run", epochs=10, lr=1e-12, optimizer="sgd", patience=2)
    assert history.result["stopped_early"] == 3 and history.result["epochs_run"] == 3
    assert [m["epoch"] for m in history.metrics] == [1, 2, 3]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_plateau_schedule_drops_the_rate_and_keep_best_keeps_k_files(tmp_path):
    history = fit(tmp_path / "run", epochs=4, lr=1e-9, optimizer="sgd", schedule="plateau",
                  plateau_patience=1, plateau_factor=0.5, keep_best=2, monitor="val_loss")
    lrs = [m["lr"] for m in history.metrics]
    assert lrs == pytest.approx([1e-9, 1e-9, 5e-10, 2.5e-10])
    kept = sorted(p.name for p in history.out.glob("best-epoch*.safetensors"))
    by_loss = sorted(history.metrics, key=lambda m: (m["val_loss"], -m["epoch"]))
    assert kept == sorted(f"best-epoch{m['epoch']}.safetensors" for m in by_loss[:2])


def test_callbacks_see_every_epoch_and_checkpoint_and_can_stop(tmp_path):
    class Recorder(cnndsl.Callback):
        def __init__(self):
            self.epochs, self.paths = [], []

        def on_epoch_end(self, run, record):
            self.epochs.append(record["epoch"])
            return record["epoch"] < 2  # False after epoch 2: stop

        def on_checkpoint(self, run, path):
            self.paths.append(Path(path).name)

    recorder = Recorder()
    history = fit(tmp_path / "run", epochs=6, callbacks=[recorder])
    assert recorder.epochs == [1, 2] and history.result["epochs_run"] == 2
    assert recorder.paths.count("checkpoint.safetensors") == 2 and "best.safetensors" in recorder.paths


# ---------------------------------------------------------------- numbers out
def test_tensorboard_and_csv_hold_the_runs_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = fit(tmp_path / "run", epochs=2, log=("csv", "tensorboard"), log_every=4)
    events = EventAccumulator(str(history.out / "tb"))
    events.Reload()
    val = [(e.step, e.value) for e in events.Scalars("epoch/val_accuracy")]
    assert val == [(m["epoch"], pytest.approx(m["val_accuracy"], rel=1e-6)) for m in history.metrics]
    steps = json.loads("[" + ",".join((history.out / "steps.jsonl").read_text().splitlines()) + "]")
    per_epoch = -(-len_train(history) // 64)
    assert [s["step"] for s in steps] == [s for s in range(1, 2 * per_epoch + 1)
                                          if (s - 1) % per_epoch + 1 in
                                          [i for i in range(1, per_epoch + 1) if i % 4 == 0 or i == per_epoch]]
    logged = [(e.step, e.value) for e in events.Scalars("step/loss")]
    assert logged == [(s["step"], pytest.approx(s["loss"], rel=1e-6)) for s in steps]
    assert all(np.isfinite(s["loss"]) and s["lr"] >= 0 for s in steps)
    assert steps[0]["lr"] > steps[len(steps) // 2]["lr"] > steps[-1]["lr"]  # the cosine schedule, per step
    rows = (history.out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,epochs,train_loss") and len(rows) == 3
    assert float(rows[2].split(",")[2]) == pytest.approx(history.metrics[1]["train_loss"])


def len_train(history) -> int:
    return json.loads((history.out / "run.json").read_text())["data"]["sizes"]["train"]


def test_top5_per_class_accuracy_and_the_confusion_matrix(tmp_path):
    history = fit(tmp_path / "run", epochs=2)
    assert all(m["val_top5"] >= m["val_accuracy"] for m in history.metrics)
    assert history.result["test_top5"] >= history.result["test_accuracy"]
    scored = cnndsl.evaluate(history.out)
    confusion = np.array(scored["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == scored["samples"] == 359
    assert np.trace(confusion) == scored["correct"]
    assert scored["per_class_accuracy"] == pytest.approx(list(np.diag(confusion) / confusion.sum(1)))
    assert scored["accuracy"] == pytest.approx(history.result["test_accuracy"])
    text = run_cli_in_process("eval", str(history.out))
    assert text.returncode == 0 and "true \\ predicted" in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.startswith("3 "))
    assert [int(v) for v in row.split()[2:]] == list(confusion[3])
    png = tmp_path / "confusion.png"
    done = run_cli_in_process("viz", "confusion", str(history.out), "-o", str(png))
    assert done.returncode == 0, done.stderr
    assert png.read_bytes().startswith(b"\x89PNG")


def test_progress_on_a_terminal_of_zero_columns_prints_fixed_width_lines(tmp_path):
    (tmp_path / "tiny.cnn").write_text(TINY)
    leader, follower = pty.openpty()  # a fresh pty reports 0 rows and 0 columns, as under `script`
    proc = subprocess.Popen([sys.executable, "-m", "cnndsl", "train", str(tmp_path / "tiny.cnn"), "--out",
                             str(tmp_path / "run"), "--epochs", "2", "--optimizer", "adam", "--threads", "1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=300)
    os.close(leader)
    assert proc.returncode == 0
    lines = b"".join(chunks).decode().replace("\r\n", "\n").split("\n")
    status = [line for line in lines if line.startswith("epoch 1/2 ") and "run eta" in line]
    assert status and all(len(line) == 78 for line in status), lines


# ---------------------------------------------------------------- data where users keep it
def test_torchvision_download_layouts_are_recognised(tmp_path):
    from test_data import write_cifar10, write_mnist

    from cnndsl.data import open_dataset
    from cnndsl.data.fit import FitRequest

    write_mnist(tmp_path / "tv" / "MNIST" / "raw", gz=False)
    mnist = open_dataset(str(tmp_path / "tv"), FitRequest((1, 8, 8)), 10)
    assert mnist.name == "mnist" and len(mnist.test) == 20
    write_cifar10(tmp_path / "tv2" / "cifar-10-batches-py")
    cifar = open_dataset(str(tmp_path / "tv2"), FitRequest((3, 32, 32)), 10)
    assert cifar.name == "cifar-10"


def test_fit_takes_arrays_and_predict_reads_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (120, 8, 8), dtype=np.uint8)
    y = (x.reshape(120, -1).mean(1) > 127.5).astype(np.int64)  # bright or dark
    spec = TINY.replace("num_classes = 10", "num_classes = 2")
    history = fit(tmp_path / "run", spec, (x, y), epochs=2)
    assert history.result["test_samples"] == 12 and history.model is not None
    image = tmp_path / "bright.png"
    Image.fromarray(np.full((8, 8), 250, np.uint8)).save(image)
    predicted = cnndsl.predict(history.out, [image], top_k=2)
    assert [t["class"] for t in predicted[0]["top"]] in (["1", "0"], ["0", "1"])
    assert sum(t["probability"] for t in predicted[0]["top"]) == pytest.approx(1.0, abs=1e-5)


def test_fit_resumes_a_run_as_the_command_does(tmp_path):
    first = fit(tmp_path / "run", epochs=2, log=("csv",))
    (first.out / "result.json").unlink()  # an unfinished run
    resumed = cnndsl.fit(TINY, out=tmp_path / "run", resume=True, epochs=3)
    assert [m["epoch"] for m in resumed.metrics] == [1, 2, 3]
    assert resumed.metrics[:2] == first.metrics
    assert json.loads((tmp_path / "run" / "result.json").read_text())["epochs_run"] == 3


# ---------------------------------------------------------------- start-up
def test_a_run_not_compiled_never_imports_torch_dynamo(tmp_path):
    # torch.optim's compile guards import torch._dynamo, about 1 s of a 2-core start-up (`make demo`)
    code = ("import sys, cnndsl.cli; cnndsl.cli.cli.main(sys.argv[1:], standalone_mode=False); "
            "print('torch._dynamo' in sys.modules, 'torch' in sys.modules)")
    args = ["train", "lenet5", "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress",
            "--optimizer", "sgd", "--threads", "1"]
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False True", done.stdout
    resumed = subprocess.run([sys.executable, "-c", code, "train", "--resume", "--out", str(tmp_path / "run"),
                              "--epochs", "2", "--no-progress", "--optimizer", "sgd"],
                             capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == "False True", resumed.stdout


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_the_eager_optimizers_step_and_save_as_torch_optims_do(name):
    import copy

    import torch

    from cnndsl.train.optimization import _COMPILED, _EAGER

    kwargs = {"lr": 0.1, "momentum": 0.9, "nesterov": True} if name == "sgd" else {"lr": 0.01}

    def steps(kind, count, state=None):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
        if state is not None:
            state = copy.deepcopy(state)  # loading shares the momentum tensors; the two runs must not
            model.load_state_dict(state[0])
        groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 5e-4},
                  {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
        optimizer = kind(groups, **kwargs)
        if state is not None:
            optimizer.load_state_dict(state[1])
        data = torch.Generator().manual_seed(count)
        for _ in range(count):
            x, y = torch.randn(16, 4, generator=data), torch.randint(0, 3, (16,), generator=data)
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return model.state_dict(), optimizer.state_dict()

    eager, plain = steps(_EAGER[name], 3), steps(_COMPILED[name], 3)
    assert all(torch.equal(eager[0][k], plain[0][k]) for k in plain[0])
    assert str(eager[1]["param_groups"]) == str(plain[1]["param_groups"])
    # a checkpoint of either resumes in the other to the same weights
    crossed, straight = steps(_EAGER[name], 2, plain), steps(_COMPILED[name], 2, plain)
    assert all(torch.equal(crossed[0][k], straight[0][k]) for k in straight[0])
    assert not torch.equal(crossed[0]["0.weight"], plain[0]["0.weight"])
