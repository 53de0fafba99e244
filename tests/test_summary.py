"""`cnndsl summary`: the table, JSON and CSV formats, `--depth` folding, the optional
columns, the object `cnndsl.summarize` returns, and shell completion of built-in names."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import pytest

import cnndsl
from cnndsl.compiler import builtins
from cnndsl.summary import Summary

from conftest import ROOT, run_cli


def table_totals(text: str) -> dict:
    """The totals a reader takes from the table's closing lines."""
    def number(pattern: str) -> int:
        match = re.search(pattern, text, re.M)
        assert match, pattern
        return int(match.group(1).replace(",", ""))

    return {"params": number(r"^parameters: ([\d,]+)$"), "trainable": number(r"^trainable: ([\d,]+);"),
            "frozen": number(r"; frozen: ([\d,]+) "), "macs": number(r"^multiply-accumulates: ([\d,]+) "),
            "activations": number(r"^activations: ([\d,]+) values"),
            "rf": number(r"^receptive field of the output: (\d+)x")}


@pytest.mark.parametrize("name", sorted(builtins()))
def test_json_totals_equal_the_table_for_every_builtin(name):
    summary = cnndsl.summarize(name)
    data = json.loads(summary.to_json())
    expected = table_totals(str(summary))
    assert {k: data["totals"][k] for k in expected} == expected
    # The rows add up to the totals, whole and folded to depth 1.
    for depth in (None, 1):
        rows = json.loads(summary.with_view(depth).to_json())["rows"]
        assert sum(r["params"] for r in rows) == expected["params"]
        assert sum(r["macs"] for r in rows) == expected["macs"]
        assert sum(r["frozen"] for r in rows) == expected["frozen"]
        assert sum(r["activations"] for r in rows) + data["totals"]["activations"] - sum(
            r["activations"] for r in data["rows"]) == expected["activations"]


def test_the_command_prints_json_and_csv():
    result = run_cli("summary", "resnet18", "--format", "json", "--depth", "2")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["network"] == "ResNet18" and data["depth"] == 2
    paths = [r["path"] for r in data["rows"]]
    assert paths[:4] == ["conv1", "bn1", "relu", "maxpool"]
    assert "layer1.0" in paths and "layer1.0.conv1" not in paths
    block = data["rows"][paths.index("layer2.0")]
    assert block["layer"] == "block BasicBlock" and block["input"] == [64, 56, 56] and block["output"] == [128, 28, 28]
    assert block["params"] == 230_144  # two 3x3 convs, two batch norms and the 1x1 projection with its batch norm
    assert data["totals"]["params"] == 11_689_512

    result = run_cli("summary", "lenet5", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["path"] for r in rows][:3] == ["c1", "tanh1", "s2"]
    assert rows[0]["kernel"] == "6x1x5x5" and rows[0]["input"] == "1x32x32" and rows[0]["params"] == "156"
    assert sum(int(r["params"]) for r in rows) == 61_706


def test_depth_folds_blocks_and_groups_like_torchinfo():
    text = str(cnndsl.summarize("resnet50").with_view(1))
    paths = [line.split()[0] for line in text.splitlines()[2:] if line and not line.startswith("-")][:11]
    assert paths == ["(input)", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "fc"]
    layer3 = next(line for line in text.splitlines() if line.startswith("layer3 "))
    assert "group" in layer3 and "1024x14x14" in layer3 and "7,098,368" in layer3


def test_optional_columns_kernel_input_trainable_frozen():
    text = str(cnndsl.summarize("resnet18").with_view(None, ("kernel", "input", "trainable", "frozen")))
    header = text.splitlines()[0].split()
    assert header == ["path", "layer", "output", "params", "activations", "MACs", "RF", "input", "kernel",
                      "trainable", "frozen"]
    conv1 = next(line.split() for line in text.splitlines() if line.startswith("conv1 "))
    assert conv1[-4:] == ["3x224x224", "64x3x7x7", "9,408", "0"]
    bn1 = next(line.split() for line in text.splitlines() if line.startswith("bn1 "))
    assert bn1[-2:] == ["128", "128"]
    result = run_cli("summary", "lenet5", "--columns", "kernel,weights")
    assert result.returncode == 2 and "no summary column named 'weights'" in result.stderr


def test_kernel_shapes_and_frozen_counts_are_the_modules():
    """The kernel column is each weight's shape in the built model; frozen counts its
    batch-norm running statistics (its buffers, less the step counters)."""
    model = cnndsl.build("resnet18")
    state = model.state_dict()
    summary = cnndsl.summarize("resnet18")
    for row in summary.rows:
        if row.kind in ("conv", "fc"):
            assert tuple(state[row.path + ".weight"].shape) == row.kernel, row.path
    buffers = sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    assert summary.totals.frozen == buffers
    assert summary.totals.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_summarize_is_still_a_str():
    summary = cnndsl.summarize("lenet5")
    assert isinstance(summary, str) and isinstance(summary, Summary)
    assert summary.splitlines()[0].startswith("path") and "parameters: 61,706" in summary
    assert str(summary) == summary.text and type(str(summary)) is str
    assert summary.totals.params == 61_706 and summary.rows[0].path == "c1"
    assert cnndsl.summarize("lenet5") == str(summary)  # equal to the plain text, as before


def test_cs231n_units_for_a_small_model():
    text = str(cnndsl.summarize("lenet5", style="cs231n"))
    assert "(0M)" not in text and "~= 0MB" not in text
    assert "61,470 weights (61K)" in text and "~= 36KB / image" in text
    assert "(138M)" in cnndsl.summarize("vgg16", style="cs231n")


def test_shell_completion_offers_builtin_names():
    env = {**os.environ, "_CNNDSL_COMPLETE": "bash_complete", "COMP_WORDS": "cnndsl summary res", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "cnndsl"], env=env, capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    offered = result.stdout.split()
    assert "plain,resnet152" in offered and "plain,resnet18" in offered
    assert not any(o.startswith("plain,vgg") for o in offered)
    assert "file,res" in offered  # and file names, for a spec of one's own


@pytest.mark.parametrize("command", ["check", "compile", "draw", "train", "export"])
def test_every_command_that_takes_a_spec_completes_builtin_names(command):
    env = {**os.environ, "_CNNDSL_COMPLETE": "bash_complete", "COMP_WORDS": f"cnndsl {command} res",
           "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "cnndsl"], env=env, capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    offered = result.stdout.split()
    assert "plain,resnet50" in offered and "file,res" in offered, (command, offered[:5])
