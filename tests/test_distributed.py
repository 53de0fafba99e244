"""`torchrun --nproc-per-node 2 -m cnndsl train ...`: two CPU processes on the gloo
backend, DistributedDataParallel with each rank taking its share of every epoch.

Each rank hashes its final weights and rank 0 gathers the hashes into result.json; the
test checks that both ranks ended with identical weights, that those are the weights
rank 0 saved, that only one set of outputs was written, and that the metrics cover the
whole dataset rather than one rank's half.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

TINY = """network Tiny(num_classes = 10, in_channels = 1) {
    input in_channels x 8 x 8
    conv(8, 3, pad=1) -> batchnorm -> relu -> maxpool(2) -> fc(num_classes)
}
"""


def test_two_gloo_processes_end_with_identical_weights(tmp_path):
    from cnndsl.train import checkpoint

    spec = tmp_path / "tiny.cnn"
    spec.write_text(TINY)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "cnndsl", "train", str(spec), "--out", str(out), "--epochs", "2", "--batch-size", "64",
         "--optimizer", "sgd", "--lr", "0.05", "--no-progress", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "SIGABRT" not in done.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2
    first, second = result["rank_weight_digests"]
    assert first == second
    _, tensors = checkpoint.load(out / "checkpoint.safetensors")
    assert checkpoint.tensor_digest(checkpoint.weights_of(tensors)) == first
    assert done.stdout.count("test accuracy") == 1  # only rank 0 reports and writes
    assert result["test_samples"] == 359  # both ranks' shares of the test split, summed
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert result["test_accuracy"] > 0.3


def test_a_rank_ends_without_teardown_after_its_exit_handlers():
    """end_process: a world of one returns; a rank of a process group runs the exit
    handlers, flushes what it printed and leaves with 0, before interpreter finalization
    (where gloo's threads could abort the process after a successful run)."""
    script = """
import atexit, sys
from cnndsl.train.distributed import World, end_process
atexit.register(lambda: print("handler ran"))
end_process(World())
print("a world of one goes on", end="")
end_process(World(rank=1, size=2))
print("not reached")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a world of one goes onhandler ran\n"
