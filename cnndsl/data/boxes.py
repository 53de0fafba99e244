"""Localisation data: every image with one object, its class and its box.

Two forms:
- a folder with `boxes.csv` or `boxes.json` and the images (in `DIR/images/` or in `DIR`
  itself). The CSV has a header naming the columns `file,label,x0,y0,x1,y1` (or
  `xmin,ymin,xmax,ymax`); the JSON is a list of `{"file": ..., "label": ..., "box":
  [x0, y0, x1, y1]}`. Boxes are in pixels of the image (x right, y down, x1 and y1 past
  the last pixel); a label is a class name or an id.
- an `.npz` with `boxes` (N x 4 pixels) and `y` (labels) beside `x`.

Each target becomes a row (class id, x0, y0, x1, y1) with the box as fractions of the
image's width and height, so resizing an image leaves its box as it is. A listed file
that is missing, an image without a box, a box outside its image or empty, a second box
for one image (this is localisation, not detection), a class id beyond the spec's head:
each a `DataError` naming the file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .dataset import LOCALISATION, Dataset, Split, carve
from .errors import DataError
from .fit import FitRequest
from .masks import class_names
from .pixels import image_size, images_in, plan_images, read_pixels

TABLES = ("boxes.csv", "boxes.json")
TEST_FRACTION = 0.1
_COLUMNS = (("x0", "y0", "x1", "y1"), ("xmin", "ymin", "xmax", "ymax"))


def box_table(root: Path) -> Path | None:
    return next((root / name for name in TABLES if (root / name).is_file()), None)


def _csv_rows(path: Path) -> list[tuple[str, str, list]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or ())
        corners = next((c for c in _COLUMNS if set(c) <= fields), None)
        if not {"file", "label"} <= fields or corners is None:
            raise DataError(f"{path}: the header names {sorted(fields)}; expected file,label,x0,y0,x1,y1",
                            "write the first line as: file,label,x0,y0,x1,y1")
        return [(row["file"], row["label"], [row[c] for c in corners], reader.line_num) for row in reader]


def _json_rows(path: Path) -> list[tuple[str, str, list]]:
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"file", "label", "box"} <= set(e)
                                                and isinstance(e["box"], list) for e in entries):
        raise DataError(f"{path}: expected a list of {{\"file\": ..., \"label\": ..., \"box\": [x0, y0, x1, y1]}}")
    return [(str(e["file"]), str(e["label"]), e["box"], i + 1) for i, e in enumerate(entries)]


def _box(values: list, where: str, height: int, width: int) -> list[float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in values)
    except (TypeError, ValueError):
        raise DataError(f"{where}: the box {values} is not four numbers x0, y0, x1, y1") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise DataError(f"{where}: the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or outside the "
                        f"{width}x{height} image", "boxes are x0, y0, x1, y1 in pixels with x0 < x1, y0 < y1")
    return [x0 / width, y0 / height, x1 / width, y1 / height]


def _label_ids(labels: list[str], classes_file_dir: Path, head: int | None) -> tuple[list[int], list[str]]:
    if all(label.strip().isdigit() for label in labels):
        ids = [int(label) for label in labels]
        count = head if head is not None else max(ids) + 1
        return ids, class_names(classes_file_dir, max(count, max(ids) + 1))
    names = class_names(classes_file_dir, 0)
    names = names if set(labels) <= set(names) else sorted(set(labels))
    return [names.index(label) for label in labels], names


def check_label(label: int, where: str, classes: int | None) -> None:
    if label < 0:
        raise DataError(f"{where}: negative class id {label}", "labels are 0 .. classes-1")
    if classes is not None and label >= classes:
        raise DataError(f"{where}: class id {label}, but the spec's head scores {classes} classes "
                        f"(0..{classes - 1})", f"pass --set num_classes={label + 1} (or the spec's class parameter)")


def _targets(root: Path, table: Path, rows: list, classes: int | None) -> tuple[list[Path], np.ndarray, list[str]]:
    folder = root / "images" if (root / "images").is_dir() else root
    seen: dict[str, int] = {}
    paths, boxes = [], []
    for file, _, values, line in rows:
        where = f"{table}:{line} ({file})"
        if file in seen:
            raise DataError(f"{where}: a second box for {file} (first at line {seen[file]})",
                            "localisation takes one object per image")
        seen[file] = line
        path = folder / file
        if not path.is_file():
            raise DataError(f"{where}: no image {path}", "list only images that exist, by their name in " + str(folder))
        height, width, _ = image_size(path)
        paths.append(path)
        boxes.append(_box(values, where, height, width))
    for image in images_in(folder):
        if image.name not in seen:
            raise DataError(f"{image}: an image without a box in {table.name}", "add its row, or remove the image")
    ids, names = _label_ids([label for _, label, _, _ in rows], root, classes)
    for (file, _, _, line), label in zip(rows, ids):
        check_label(label, f"{table}:{line} ({file})", classes)
    return paths, np.column_stack([np.asarray(ids, np.float32), np.asarray(boxes, np.float32)]), names


def finish(name: str, everything: Split, val_fraction: float, classes: list[str], **extra) -> Dataset:
    rest, test = carve(everything, TEST_FRACTION, classification=False)
    train, val = carve(rest, val_fraction / (1 - TEST_FRACTION), classification=False)
    return Dataset(name, train, val, test, classes, kind=LOCALISATION, **extra)


def load_box_folder(root: Path, val_fraction: float, request: FitRequest) -> Dataset:
    table = box_table(root)
    rows = _csv_rows(table) if table.suffix == ".csv" else _json_rows(table)
    if not rows:
        raise DataError(f"{table}: no boxes listed")
    paths, targets, names = _targets(root, table, rows, request.classes)
    channels, resize = plan_images(paths, request, root.name)
    size = tuple(request.shape[1:]) if resize else None
    x = np.stack([read_pixels(p, channels, size) for p in paths])
    notes = [f"resized to {request.shape[1]}x{request.shape[2]}"] if resize else []
    return finish(root.name, Split(x, targets), val_fraction, names, notes=notes)


def boxes_from_arrays(arrays: dict, name: str, val_fraction: float, where: str, classes: int | None,
                      inputs) -> Dataset:
    """A localisation Dataset from `x`, `y` (labels) and `boxes` (N x 4 pixels)."""
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"{where}: 'boxes' needs the images 'x' and the labels 'y' beside it")
    x = inputs(arrays["x"], where, "x")
    labels, boxes = np.asarray(arrays["y"]), np.asarray(arrays["boxes"], dtype=np.float64)
    if x.ndim != 4 or boxes.shape != (len(x), 4) or labels.shape != (len(x),) or \
            not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: expected N x C x H x W images, N integer labels 'y' and N x 4 'boxes'; found "
                        f"{x.shape}, {labels.dtype} {labels.shape} and {boxes.shape}")
    height, width = x.shape[2:]
    rows = [_box(b, f"{where}: boxes[{i}]", height, width) for i, b in enumerate(boxes.tolist())]
    for i, label in enumerate(labels.tolist()):
        check_label(label, f"{where}: y[{i}]", classes)
    count = classes if classes is not None else int(labels.max(initial=0)) + 1
    named = arrays.get("classes")
    names = [str(c) for c in named] if named is not None and len(named) >= count else [str(i) for i in range(count)]
    targets = np.column_stack([labels.astype(np.float32), np.asarray(rows, np.float32)])
    return finish(name, Split(x, targets), val_fraction, names,
                  scale=255.0 if x.dtype == np.uint8 else 1.0)
