"""benchmarks/gpu.py, the GPU check, runs its CPU-safe subset here (`--quick`: no
torch.compile), so that the script the device machine will run is known to work: every
path that exists on a CPU passes, the CUDA-only rows say pending."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_the_gpu_check_runs_its_cpu_subset(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_cpu_subset.json").read_text())
    assert results["environment"]["cuda"] is False
    for name in ("path_bf16_autocast", "path_channels_last_on", "path_channels_last_off", "path_gloo_torchrun",
                 "loop_lenet5_cpu"):
        assert results[name]["status"] == "passed", (name, results[name])
    assert results["path_bf16_autocast"]["precision"] == "bf16"
    assert results["path_channels_last_on"]["channels_last"] is True
    assert results["path_channels_last_off"]["channels_last"] is False
    assert results["path_gloo_torchrun"]["world_size"] == 1
    for name in ("path_fp16_gradscaler", "path_nccl_torchrun", "model_resnet50_compiled"):
        assert results[name]["status"] == "pending"
    assert "| path_bf16_autocast | passed |" in (tmp_path / "gpu_cpu_subset.md").read_text()
