"""Segmentation and localisation data (issue 12): every format on tiny files written here,
with the errors that name the file; the embedded `shapes` and `placed-digits`; the
augmentation that moves masks and boxes with their images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnndsl.data import open_dataset
from cnndsl.data.augment import augment_pair
from cnndsl.data.dataset import IGNORE
from cnndsl.data.fit import FitRequest
from cnndsl.train.errors import DataError

RGB16 = FitRequest((3, 16, 16), classes=3)
RNG = np.random.default_rng(3)


def palette_png(path: Path, ids: np.ndarray) -> None:
    image = Image.fromarray(ids.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [255, 255, 255] * 253)
    image.save(path)


def mask_folder(root: Path, n: int = 10, size: int = 16, grey: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        ids = np.zeros((size, size), np.uint8)
        ids[: size // 2] = 1
        ids[:, : size // 4] = 2
        ids[0, 0] = IGNORE
        Image.fromarray(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i:03}.jpg")
        if grey:
            Image.fromarray(ids, mode="L").save(root / "masks" / f"{i:03}.png")
        else:
            palette_png(root / "masks" / f"{i:03}.png", ids)
    return root


def fails(data, request=RGB16, *words):
    with pytest.raises(DataError) as caught:
        open_dataset(str(data), request, 3)
    text = caught.value.message + " " + (caught.value.hint or "")
    for word in words:
        assert word in text, text
    return caught.value


@pytest.mark.parametrize("grey", [False, True], ids=["palette", "grey"])
def test_a_mask_folder_reads_palette_and_grey_masks_with_255_kept(tmp_path, grey):
    ds = open_dataset(str(mask_folder(tmp_path / "seg", grey=grey)), RGB16, 3)
    assert ds.task == "segmentation" and ds.classes == ["0", "1", "2"]
    assert sum(len(s) for s in ds.splits().values()) == 10 and len(ds.test) == 1
    mask = ds.train.y[0]
    assert mask.shape == (16, 16) and mask.dtype == np.uint8
    assert mask[0, 0] == IGNORE and mask[0, 8] == 1 and mask[15, 0] == 2 and mask[15, 15] == 0


def test_mask_folder_errors_name_the_file(tmp_path):
    root = mask_folder(tmp_path / "a")
    (root / "images" / "003.jpg").unlink()
    assert "003.png" in fails(root, RGB16, "mask without an image").message
    root = mask_folder(tmp_path / "b")
    (root / "masks" / "004.png").unlink()
    assert "004.jpg" in fails(root, RGB16, "image without a mask").message
    root = mask_folder(tmp_path / "c")
    palette_png(root / "masks" / "005.png", np.zeros((12, 16), np.uint8))
    assert "005.png" in fails(root, RGB16, "12x16", "16x16").message
    root = mask_folder(tmp_path / "d")
    palette_png(root / "masks" / "006.png", np.full((16, 16), 7, np.uint8))
    error = fails(root, RGB16, "class id 7", "3 classes", "--set num_classes=8")
    assert "006.png" in error.message
    root = mask_folder(tmp_path / "e")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "masks" / "001.png")
    assert "001.png" in fails(root, RGB16, "RGB mask", "palette").message


def test_mask_folder_resizes_masks_by_nearest_with_resize_and_refuses_without(tmp_path):
    root = mask_folder(tmp_path / "big", size=32)
    fails(root, RGB16, "--resize")
    ds = open_dataset(str(root), FitRequest((3, 16, 16), resize=True, classes=3), 3)
    assert ds.train.x.shape[1:] == (3, 16, 16) and ds.train.y.shape[1:] == (16, 16)
    assert set(np.unique(ds.train.y)) <= {0, 1, 2, IGNORE}  # nearest: no blended ids
    assert "resized to 16x16" in ds.notes


def test_voc_layout_pairs_by_mask_and_uses_its_lists(tmp_path):
    root = tmp_path / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for i in range(8):
        Image.fromarray(RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        if i < 6:  # VOC: most images have no mask, and that is fine
            palette_png(root / "SegmentationClass" / f"{i}.png", np.full((16, 16), i % 3, np.uint8))
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("0\n1\n2\n3\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("4\n5\n")
    ds = open_dataset(str(root), RGB16, 3)
    assert ds.task == "segmentation" and len(ds.test) == 2 and len(ds.train) + len(ds.val) == 4
    assert sorted(int(m[0, 0]) for m in ds.test.y) == [1, 2]


def test_npz_masks_and_their_errors(tmp_path):
    x = RNG.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    masks = RNG.integers(0, 3, (20, 16, 16)).astype(np.int64)
    np.savez(tmp_path / "seg.npz", x=x, masks=masks)
    ds = open_dataset(str(tmp_path / "seg.npz"), RGB16, 3)
    assert ds.task == "segmentation" and ds.sample_shape == (3, 16, 16)
    assert sum(len(s) for s in ds.splits().values()) == 20
    np.savez(tmp_path / "size.npz", x=x, masks=masks[:, :8])
    fails(tmp_path / "size.npz", RGB16, "size.npz", "8x16", "16x16")
    masks[7, 3, 3] = 5
    np.savez(tmp_path / "ids.npz", x=x, masks=masks)
    fails(tmp_path / "ids.npz", RGB16, "ids.npz", "masks[7]", "class id 5")
    np.savez(tmp_path / "count.npz", x=x, masks=masks[:19])
    fails(tmp_path / "count.npz", RGB16, "20 images but 19 masks")


def box_folder(root: Path, form: str = "csv", n: int = 12) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        image = np.zeros((20, 30), np.uint8)
        x0, y0 = i % 10, i % 8
        image[y0:y0 + 10, x0:x0 + 15] = 255
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        rows.append((f"{i}.png", ["cat", "dog"][i % 2], [x0, y0, x0 + 15, y0 + 10]))
    if form == "csv":
        lines = ["file,label,x0,y0,x1,y1"] + [f"{f},{label},{','.join(map(str, b))}" for f, label, b in rows]
        (root / "boxes.csv").write_text("\n".join(lines) + "\n")
    else:
        (root / "boxes.json").write_text(json.dumps([{"file": f, "label": label, "box": b} for f, label, b in rows]))
    return root


GREY20 = FitRequest((1, 20, 30), classes=2)


@pytest.mark.parametrize("form", ["csv", "json"])
def test_a_box_folder_gives_classes_and_boxes_as_fractions(tmp_path, form):
    ds = open_dataset(str(box_folder(tmp_path / "loc", form)), GREY20, 2)
    assert ds.task == "localisation" and ds.classes == ["cat", "dog"]
    y = np.concatenate([s.y for s in ds.splits().values()])
    assert y.shape == (12, 5) and set(y[:, 0]) == {0.0, 1.0}
    first = next(row for row in y if abs(row[1]) < 1e-6 and abs(row[2]) < 1e-6)  # image 0: box (0, 0, 15, 10)
    assert np.allclose(first[1:], [0, 0, 0.5, 0.5])


def test_box_folder_errors_name_the_file(tmp_path):
    root = box_folder(tmp_path / "a")
    (root / "images" / "3.png").unlink()
    fails(root, GREY20, "3.png", "no image")
    root = box_folder(tmp_path / "b")
    (root / "boxes.csv").write_text((root / "boxes.csv").read_text() + "2.png,cat,0,0,4,4\n")
    fails(root, GREY20, "2.png", "second box")
    root = box_folder(tmp_path / "c")
    (root / "boxes.csv").write_text((root / "boxes.csv").read_text().replace("5.png,dog,5,5,20,15",
                                                                             "5.png,dog,5,5,40,15"))
    fails(root, GREY20, "5.png", "outside the 30x20 image")
    root = box_folder(tmp_path / "d")
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(root / "images" / "extra.png")
    fails(root, GREY20, "extra.png", "without a box")
    root = box_folder(tmp_path / "e")
    text = (root / "boxes.csv").read_text().replace(",cat,", ",0,").replace(",dog,", ",4,")
    (root / "boxes.csv").write_text(text)
    fails(root, GREY20, "class id 4", "2 classes")


def test_npz_boxes(tmp_path):
    x = np.zeros((10, 1, 20, 30), np.uint8)
    boxes = np.tile([3, 2, 18, 12], (10, 1))
    np.savez(tmp_path / "loc.npz", x=x, y=np.arange(10) % 2, boxes=boxes)
    ds = open_dataset(str(tmp_path / "loc.npz"), GREY20, 2)
    assert ds.task == "localisation"
    assert np.allclose(ds.train.y[0, 1:], [0.1, 0.1, 0.6, 0.6])
    np.savez(tmp_path / "bad.npz", x=x, y=np.arange(10) % 2, boxes=boxes * 3)
    fails(tmp_path / "bad.npz", GREY20, "boxes[0]", "outside")


def test_the_embedded_sets_are_deterministic_and_drawn_at_the_specs_size():
    a = open_dataset("shapes", FitRequest((3, 24, 32), classes=4), 4)
    b = open_dataset("shapes", FitRequest((3, 24, 32), classes=4), 4)
    assert a.task == "segmentation" and a.classes == ["background", "circle", "square", "triangle"]
    assert a.train.x.shape[1:] == (3, 24, 32) and a.train.y.shape[1:] == (24, 32)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    assert set(np.unique(a.train.y)) == {0, 1, 2, 3}
    p = open_dataset("placed-digits", FitRequest((1, 32, 32), classes=10), 10)
    assert p.task == "localisation" and not p.flip_ok and p.train.x.shape[1:] == (1, 32, 32)
    boxes = p.train.y[:, 1:]
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert boxes.min() >= 0 and boxes.max() <= 1
    for image, row in zip(p.train.x[:20, 0], p.train.y[:20]):  # the ink is inside its box
        x0, y0, x1, y1 = np.rint(row[1:] * 32).astype(int)
        assert image[y0:y1, x0:x1].max() > 200
    with pytest.raises(DataError, match="at least 16x16"):
        from cnndsl.data.sources import _embedded_dense
        _embedded_dense("shapes", FitRequest((3, 8, 8)))


def test_augmentation_moves_masks_and_boxes_with_their_images():
    gen = torch.Generator().manual_seed(5)
    masks = torch.from_numpy(RNG.integers(0, 4, (16, 12, 12)).astype(np.uint8))
    x = (masks.float() * 10 + 1)[:, None].repeat(1, 3, 1, 1)  # each pixel's value names its class
    ax, am = augment_pair(x, masks, "segmentation", 3, True, gen)
    labelled = am != IGNORE
    assert torch.equal(ax[:, 0][labelled], am[labelled].float() * 10 + 1)
    assert (ax[:, 0][~labelled] == 0).all() and (~labelled).any()  # padding: black and unlabelled
    boxes, images = [], torch.zeros(16, 1, 20, 20)
    for i in range(16):
        x0, y0 = 2 + i % 6, 3 + i % 5
        images[i, 0, y0:y0 + 8, x0:x0 + 6] = 1
        boxes.append([i % 3, x0 / 20, y0 / 20, (x0 + 6) / 20, (y0 + 8) / 20])
    bx, by = augment_pair(images, torch.tensor(boxes), "localisation", 2, True, gen)
    for image, row in zip(bx[:, 0], by):
        rows, cols = torch.nonzero(image.any(1)).flatten(), torch.nonzero(image.any(0)).flatten()
        seen = torch.tensor([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]) / 20
        assert torch.allclose(row[1:], seen, atol=1e-6), (row, seen)
