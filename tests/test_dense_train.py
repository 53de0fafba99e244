"""Training beyond classification (issue 12): short runs on the embedded `shapes` and
`placed-digits` that must reach a stated metric, eval and predict from their
checkpoints, resume to the weights of an unbroken run, and the CLI's errors for data a
spec cannot learn. Small specs written here and few epochs keep this within CI's budget
(the full figures are in benchmarks/dense_train.py).
"""

from __future__ import annotations


import json

import numpy as np
import pytest
from PIL import Image

import cnndsl
from conftest import run_cli_in_process

SEGMENTER = """network TinySeg(num_classes = 4) {
    input 3 x 16 x 16
    conv(16, 3, pad=1) -> relu -> conv(16, 3, pad=2, dilation=2) -> relu
    conv(16, 3, pad=4, dilation=4) -> relu -> conv(num_classes, 1)
}
"""
LOCALISER = """network TinyLoc(num_classes = 10) {
    input 1 x 24 x 24
    conv(16, 3, pad=1) -> relu -> maxpool(2) -> conv(32, 3, pad=1) -> relu -> maxpool(2)
    fc(64) -> relu -> fc(num_classes + 4)
}
"""
FAST = dict(optimizer="adam", batch_size=16)
BACKGROUND_ONLY = 0.22  # shapes' mIoU when every pixel is called background (its share / 4 classes)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "run"
    history = cnndsl.fit(SEGMENTER, "shapes", out=out, epochs=10, lr=0.02, **FAST)
    return history


def test_a_segmenter_learns_shapes_and_eval_and_predict_read_its_checkpoint(segmenter, tmp_path):
    result = segmenter.result
    assert result["task"] == "segmentation" and result["monitor"] == "val_miou"
    assert result["test_miou"] >= 0.27 > BACKGROUND_ONLY, result
    assert result["test_pixel_accuracy"] > 0.85
    assert set(result["test_iou"]) == {"background", "circle", "square", "triangle"}
    assert all("val_miou" in m for m in segmenter.metrics)
    scored = cnndsl.evaluate(segmenter.out)
    assert scored["miou"] == pytest.approx(result["test_miou"]) and len(scored["iou"]) == 4
    image = tmp_path / "big.png"
    picture = np.zeros((40, 48, 3), np.uint8)
    picture[10:30, 12:36] = (250, 40, 40)
    Image.fromarray(picture).save(image)
    (answer,) = cnndsl.predict(segmenter.out, image, out=tmp_path / "masks")
    with Image.open(answer["mask"]) as mask:
        assert mask.mode == "P" and mask.size == (48, 40)  # at the image's own size, ids in a palette
        assert set(np.unique(np.asarray(mask))) <= {0, 1, 2, 3}
    assert abs(sum(answer["classes"].values()) - 1) < 1e-6


def test_a_localiser_learns_placed_digits(tmp_path):
    history = cnndsl.fit(LOCALISER, "placed-digits", out=tmp_path / "run", epochs=5, lr=0.003, **FAST)
    result = history.result
    assert result["task"] == "localisation" and result["monitor"] == "val_box_iou"
    assert result["test_box_iou"] >= 0.45 and result["test_box_hits"] >= 0.45, result
    assert result["test_accuracy"] >= 0.4, result
    canvas = np.zeros((24, 24), np.uint8)
    canvas[4:16, 6:14] = 255
    Image.fromarray(canvas).save(tmp_path / "digit.png")
    (answer,) = cnndsl.predict(tmp_path / "run", tmp_path / "digit.png", out=tmp_path / "drawn")
    x0, y0, x1, y1 = answer["box"]
    assert 0 <= x0 < x1 <= 24 and 0 <= y0 < y1 <= 24 and answer["class"] in [str(d) for d in range(10)]
    with Image.open(answer["drawn"]) as drawn:
        assert drawn.mode == "RGB" and drawn.width >= 24


def test_a_resumed_segmentation_run_ends_with_the_weights_of_an_unbroken_one(tmp_path):
    from cnndsl.train import checkpoint

    def digest(out):
        return checkpoint.tensor_digest(checkpoint.weights_of(checkpoint.load(out / checkpoint.LAST)[1]))

    # a constant rate, so that a 1-epoch run is the first epoch of a 2-epoch one
    cnndsl.fit(SEGMENTER, "shapes", out=tmp_path / "whole", epochs=2, lr=0.005, schedule="constant", **FAST)
    cnndsl.fit(SEGMENTER, "shapes", out=tmp_path / "parts", epochs=1, lr=0.005, schedule="constant", **FAST)
    cnndsl.fit(SEGMENTER, "shapes", out=tmp_path / "parts", resume=True, epochs=2)
    assert digest(tmp_path / "whole") == digest(tmp_path / "parts")


def test_the_cli_names_what_does_not_fit(tmp_path):
    spec = tmp_path / "seg.cnn"
    spec.write_text(SEGMENTER)
    classifier = tmp_path / "cls.cnn"
    classifier.write_text("network C() {\n    input 3 x 16 x 16\n    conv(4, 3) -> relu -> fc(4)\n}\n")
    done = run_cli_in_process("train", str(classifier), "--data", "shapes", "--out", str(tmp_path / "r1"),
                              "--epochs", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "segmentation data" in done.stderr and "per pixel" in done.stderr
    root = tmp_path / "pairs"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.full((16, 16), 9 if i == 2 else 1, np.uint8)).save(root / "masks" / f"{i}.png")
    done = run_cli_in_process("train", str(spec), "--data", str(root), "--out", str(tmp_path / "r2"), "--epochs", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "2.png" in done.stderr and "class id 9" in done.stderr and "hint:" in done.stderr
    done = run_cli_in_process("train", str(spec), "--data", "shapes", "--out", str(tmp_path / "r3"), "--epochs", "1",
                              "--loss", "hinge")
    assert done.returncode == 1 and "does not apply to segmentation" in done.stderr


def test_viz_overlays_the_mask_and_the_drawing_page_shows_it(segmenter, tmp_path):
    import http.client
    import threading

    from cnndsl.pictures.serve import make_server
    from cnndsl.pictures.viz import load, overlay_picture

    image = tmp_path / "shape.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(image)
    picture, said = overlay_picture(load(str(segmenter.out)), str(image))
    assert picture.mode == "RGB" and picture.width >= 16 and "%" in said
    server = make_server(str(segmenter.out), "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
        conn.request("GET", "/info")
        info = json.loads(conn.getresponse().read())
        ink = np.zeros((56, 56))
        ink[10:40, 10:40] = 1.0
        body = json.dumps({"width": 56, "height": 56, "pixels": ink.reshape(-1).tolist()})
        conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        reply = json.loads(conn.getresponse().read())
        conn.close()
    finally:
        server.shutdown()
        server.server_close()
    assert info["task"] == "segmentation"
    mask = reply["mask"]
    assert (mask["height"], mask["width"]) == (16, 16) and len(mask["ids"]) == 256
    assert set(mask["ids"]) <= {0, 1, 2, 3} and len(mask["colours"]) == 4
    assert abs(sum(g["probability"] for g in reply["guesses"]) - 1) < 1e-6


def test_the_python_api_takes_masks_and_boxes_as_arrays(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 16, 16), dtype=np.uint8)
    masks = (x[:, 0] > 128).astype(np.uint8)  # ids 0 and 1 only: the head's 4 classes still fit
    history = cnndsl.fit(SEGMENTER, {"x": x, "masks": masks}, out=tmp_path / "seg", epochs=1, **FAST)
    assert history.result["task"] == "segmentation" and history.result["test_samples"] == 4
    grey = rng.integers(0, 256, (40, 1, 24, 24), dtype=np.uint8)
    boxes = np.tile([2, 3, 12, 20], (40, 1))
    history = cnndsl.fit(LOCALISER, {"x": grey, "y": np.arange(40) % 10, "boxes": boxes}, out=tmp_path / "loc",
                         epochs=1, **FAST)
    assert history.result["task"] == "localisation" and 0 <= history.result["test_box_iou"] <= 1


def test_a_recipe_files_set_table_gives_the_specs_parameters_beneath_the_command_line(tmp_path):
    from cnndsl.train.errors import TrainError

    spec = tmp_path / "seg.cnn"
    spec.write_text(SEGMENTER.replace("TinySeg(num_classes = 4)", "TinySeg(num_classes = 2, width = 4)")
                    .replace("conv(16, 3, pad=1)", "conv(width, 3, pad=1)"))
    (tmp_path / "seg.train.toml").write_text("epochs = 1\nbatch_size = 32\n\n[set]\nnum_classes = 4\nwidth = 5\n")
    history = cnndsl.fit(spec, "shapes", out=tmp_path / "a", params={"width": 6})  # shapes has 4 classes
    run = json.loads((history.out / "run.json").read_text())
    assert run["params"] == {"num_classes": 4, "width": 6} and run["recipe"]["epochs"] == 1
    first_weight = next(iter(history.model.state_dict().values()))
    assert first_weight.shape[0] == 6  # --set width=6 over the file's width = 5
    (tmp_path / "seg.train.toml").write_text("[set]\nwidth = [1, 2]\n")
    with pytest.raises(TrainError, match=r"\[set\] must map"):
        cnndsl.fit(spec, "shapes", out=tmp_path / "b")


SEG_AUX = """network SegAux(num_classes = 4) {
    input 3 x 16 x 16
    conv(8, 3, pad=1) -> relu
    aux: side conv(num_classes, 1)
    conv(8, 3, pad=1) -> relu
    out: conv(num_classes, 1)
    outputs(out, aux)
}
"""


def test_an_aux_output_adds_its_weighted_loss(tmp_path):
    import torch

    from cnndsl.data import open_dataset
    from cnndsl.data.fit import FitRequest
    from cnndsl.train.inference import load_model, preprocessor
    from cnndsl.train.losses import pixel_cross_entropy

    history = cnndsl.fit(SEG_AUX, "shapes", out=tmp_path / "run", epochs=1, aux_weight=0.5, **FAST)
    model, meta = load_model(history.out / "best.safetensors", torch.device("cpu"))
    test = open_dataset("shapes", FitRequest((3, 16, 16), classes=4), 4).test
    with torch.no_grad():
        out = model(preprocessor(meta, torch.device("cpu"))(torch.from_numpy(test.x)))
    y = torch.from_numpy(test.y)
    by_hand = pixel_cross_entropy(out["out"], y) + 0.5 * pixel_cross_entropy(out["aux"], y)
    assert history.result["test_loss"] == pytest.approx(float(by_hand), rel=1e-4)
    assert float(pixel_cross_entropy(out["aux"], y)) > 0.1  # the aux term is not negligible


def test_a_classifier_with_named_outputs_trains_on_out_plus_its_weighted_aux(tmp_path):
    spec = """network CD(num_classes = 10) {
    input 1 x 8 x 8
    conv(8, 3, pad=1) -> relu
    aux: side fc(num_classes)
    out: fc(num_classes)
    outputs(out, aux)
}
"""
    history = cnndsl.fit(spec, "digits", out=tmp_path / "run", epochs=3, lr=0.01, **FAST)
    assert history.result["task"] == "classification" and history.result["test_accuracy"] > 0.8
    scored = cnndsl.evaluate(tmp_path / "run")
    assert scored["accuracy"] == pytest.approx(history.result["test_accuracy"])


def test_the_built_in_unet_trains_on_shapes_with_its_recipe(tmp_path):
    history = cnndsl.fit("unet", "shapes", out=tmp_path / "run", params={"size": 16, "base": 2}, epochs=1)
    run = json.loads((history.out / "run.json").read_text())
    assert run["params"] == {"size": 16, "pad": 1, "base": 2, "in_channels": 3, "num_classes": 4}
    assert run["recipe"]["loss"] == "cross_entropy_dice" and run["recipe"]["optimizer"] == "adam"
    assert history.result["task"] == "segmentation" and 0 <= history.result["test_miou"] <= 1


def test_the_built_in_localizer_trains_on_placed_digits_with_its_recipe(tmp_path):
    history = cnndsl.fit("localizer", "placed-digits", out=tmp_path / "run", epochs=1,
                         params={"size": 24, "width": 4, "hidden": 16})
    result = history.result
    assert result["task"] == "localisation" and result["monitor"] == "val_box_iou"
    assert 0 <= result["test_box_iou"] <= 1 and 0 <= result["test_box_hits"] <= 1
    run = json.loads((history.out / "run.json").read_text())
    assert run["recipe"]["optimizer"] == "adam" and run["recipe"]["batch_size"] == 32  # localizer.train.toml
    (answer,) = cnndsl.predict(history.out, _digit_png(tmp_path), out=tmp_path / "drawn")
    assert len(answer["box"]) == 4 and answer["class"] in [str(d) for d in range(10)]


def _digit_png(tmp_path):
    canvas = np.zeros((24, 24), np.uint8)
    canvas[4:16, 6:14] = 255
    Image.fromarray(canvas).save(tmp_path / "digit.png")
    return tmp_path / "digit.png"
