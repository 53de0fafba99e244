"""`cnndsl viz`: the filter grid and the activation sheet of a small trained LeNet-5."""

from __future__ import annotations

import numpy as np
from conftest import run_cli_in_process
from picture_checkpoint import lenet_checkpoint
from PIL import Image

import cnndsl
from cnndsl.pictures.viz import LABEL, ROW_HEIGHT, filter_grid, grid_size, probes


def test_grid_size_is_near_square():
    assert grid_size(64) == (8, 8)  # AlexNet's 64 first-layer filters, as the notes show them
    assert grid_size(96) == (10, 10)
    assert grid_size(6) == (3, 2)


def test_rgb_filters_keep_their_colour_and_are_normalised_per_filter():
    weight = np.zeros((64, 3, 11, 11), dtype=np.float32)
    weight[0, 0] = 1.0  # a red filter
    weight[1, 2, :, :5] = 0.001  # a tiny blue half: stretched to the full range anyway
    image = np.asarray(filter_grid(weight, cell=44, gap=4))
    side = 44  # 11 x 4
    assert image.shape == (8 * side + 9 * 4, 8 * side + 9 * 4, 3)
    red = image[4:4 + side, 4:4 + side]
    assert (red[..., 0] == 255).all() and (red[..., 1] == 0).all() and (red[..., 2] == 0).all()
    blue = image[4:4 + side, 8 + side:8 + 2 * side]
    assert blue[:, :20, 2].min() == 255 and blue[:, 24:, 2].max() == 0


def test_probes_fold_the_activation_into_the_layer_before():
    found = probes(cnndsl.compile_spec("lenet5").network, ("conv",))
    assert [(p.name, p.path, p.label, p.shape) for p in found] == [
        ("c1", "tanh1", "conv 5×5, 6 · tanh", (6, 28, 28)), ("c3", "tanh2", "conv 5×5, 16 · tanh", (16, 10, 10)),
        ("c5", "tanh3", "conv 5×5, 120 · tanh", (120, 1, 1))]
    resnet = probes(cnndsl.compile_spec("resnet18").network, ("conv",))
    assert resnet[0].path == "relu" and resnet[1].path == "layer1.0.relu1"


def test_viz_filters_draws_lenets_six_filters(tmp_path):
    out = tmp_path / "filters.png"
    done = run_cli_in_process("viz", "filters", str(lenet_checkpoint()), "-o", str(out))
    assert done.returncode == 0, done.stderr
    image = np.asarray(Image.open(out).convert("L"))
    side = 5 * 9  # 5x5 filters at 48 pixels a cell: 9 pixels a weight
    assert image.shape == (2 * side + 3 * 4, 3 * side + 4 * 4)
    for i in range(6):
        r, c = divmod(i, 3)
        tile = image[4 + r * (side + 4):4 + r * (side + 4) + side, 4 + c * (side + 4):4 + c * (side + 4) + side]
        assert tile.min() == 0 and tile.max() == 255  # each filter stretched to its own range
    assert "6 filters of c1" in done.stderr


def test_viz_activations_one_row_per_convolution(tmp_path):
    from sklearn.datasets import load_digits

    digit = tmp_path / "digit.png"
    Image.fromarray((load_digits().images[0] * 255 / 16).astype(np.uint8)).save(digit)
    out = tmp_path / "act.png"
    done = run_cli_in_process("viz", "activations", str(lenet_checkpoint()), str(digit), "-o", str(out))
    assert done.returncode == 0, done.stderr
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] == LABEL + 8 + ROW_HEIGHT * 4  # the input and three convolutions
    first_row = image[LABEL + 8 + ROW_HEIGHT + LABEL:LABEL + 8 + 2 * ROW_HEIGHT - 4, 12:12 + 6 * 76]
    assert (first_row[..., 2] > first_row[..., 0] + 60).mean() > 0.05  # blue activation ink
    assert "3 convolution(s)" in done.stderr


def test_viz_errors_are_messages(tmp_path):
    done = run_cli_in_process("viz", "filters", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "f.png"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")
    done = run_cli_in_process("viz", "filters", str(bad), "-o", str(tmp_path / "f.png"))
    assert done.returncode == 1 and "Traceback" not in done.stderr and "checkpoint" in done.stderr
    done = run_cli_in_process("viz", "filters", str(bad), "-o", str(tmp_path / "f.svg"))
    assert done.returncode == 2 and ".png" in done.stderr
