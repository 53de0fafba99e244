"""Fitting a dataset to the spec's input: checks first, changes only when asked.

A dataset whose channel count or image size differs from the spec's `input` line is an
error that says which and how to fix it: `--resize` scales the images, and
`--convert-channels` turns colour into grey (ITU-R 601 luma) or grey into colour
(repeated), or the spec can be compiled for the data with `--set`. `--data digits` is
always fitted, since it is the embedded default and has 8x8 images. Images given to a
spec whose input is a vector are flattened when the sizes agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import DataError
from .dataset import SEGMENTATION, Dataset, ImageFiles, Split

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class FitRequest:
    """The spec's input shape, what the user allows, and how to phrase the hints."""

    shape: tuple[int, ...]  # (C, H, W) or (F,)
    resize: bool = False
    convert_channels: bool = False
    channel_param: str | None = None  # the spec parameter that sets the input channels
    classes: int | None = None  # the class scores of a dense head (masks' and boxes' ids are checked against it)

    def channels_hint(self, have: int) -> str:
        fixes = [f"--set {self.channel_param}={have} to compile the spec for {have}-channel input"] \
            if self.channel_param else [f"change the spec's input line to {have} x ..."]
        fixes.append("--convert-channels to convert the images")
        return "pass " + ", or ".join(fixes)


def channel_plan(have: int, request: FitRequest, name: str) -> int:
    """The channel count the data will have: `have`, or the spec's when converting is allowed."""
    want = request.shape[0]
    if have == want:
        return have
    convertible = {(3, 1), (4, 1), (1, 3), (4, 3)}
    if request.convert_channels and (have, want) in convertible:
        return want
    if request.convert_channels:
        raise DataError(f"{name} images have {have} channels and the spec's input has {want}: "
                        "there is no sensible conversion", request.channels_hint(have))
    raise DataError(f"{name} images have {have} channel{'s' if have != 1 else ''} but the spec's input has "
                    f"{want}", request.channels_hint(have))


def size_plan(have: tuple[int, int], request: FitRequest, name: str) -> bool:
    """Whether the images must be resized; an error when they must be and may not be."""
    want = tuple(request.shape[1:])
    if tuple(have) == want:
        return False
    if request.resize:
        return True
    raise DataError(f"{name} images are {have[0]}x{have[1]} but the spec's input is {want[0]}x{want[1]}",
                    f"pass --resize to scale them to {want[0]}x{want[1]}, or change the spec's input size")


def convert_channels(x: np.ndarray, want: int) -> np.ndarray:
    have = x.shape[1]
    if have == want:
        return x
    if want == 1:
        grey = np.tensordot(x[:, :3].astype(np.float32), _LUMA, axes=([1], [0]))[:, None]
        return np.rint(grey).clip(0, 255).astype(np.uint8) if x.dtype == np.uint8 else grey.astype(x.dtype)
    if have == 1:
        return np.repeat(x, want, axis=1)
    return np.ascontiguousarray(x[:, :want])


def resize_images(x: np.ndarray, size: tuple[int, int], chunk: int = 2048) -> np.ndarray:
    """Bilinear resizing (antialiased when shrinking), in chunks to bound the memory."""
    import torch
    import torch.nn.functional as F

    out = np.empty(x.shape[:2] + tuple(size), dtype=x.dtype)
    shrinking = size[0] < x.shape[2] or size[1] < x.shape[3]
    for start in range(0, len(x), chunk):
        part = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk])).float()
        scaled = F.interpolate(part, size=size, mode="bilinear", align_corners=False, antialias=shrinking)
        if x.dtype == np.uint8:
            scaled = scaled.round_().clamp_(0, 255).to(torch.uint8)
        out[start:start + chunk] = scaled.numpy()
    return out


def fit_dataset(dataset: Dataset, request: FitRequest, always: bool = False) -> Dataset:
    """`dataset` shaped to `request.shape`, or a `DataError` saying why it cannot be.

    `always` fits without asking (the embedded digits)."""
    if always:
        request = replace(request, resize=True, convert_channels=True)
    have = dataset.sample_shape
    if isinstance(dataset.train.x, ImageFiles):  # the reader already planned its own fit
        return dataset
    want = tuple(request.shape)
    if dataset.kind is not None and len(want) != 3:
        raise DataError(f"{dataset.name} is {dataset.kind} data of images but the spec's input is a vector of "
                        f"{want[0]}", "train it on a spec whose input is C x H x W")
    if len(want) == 1:
        if int(np.prod(have)) != want[0]:
            raise DataError(f"{dataset.name} samples have shape {'x'.join(map(str, have))} "
                            f"({int(np.prod(have))} values) but the spec's input is a vector of {want[0]}",
                            "change the spec's input line to match the data")
        if len(have) > 1:
            dataset.notes.append(f"flattened {'x'.join(map(str, have))} to {want[0]}")
            return dataset.map(lambda x: x.reshape(len(x), -1))
        return dataset
    if len(have) != 3:
        raise DataError(f"{dataset.name} samples are vectors of {have[0]} values but the spec's input is "
                        f"{'x'.join(map(str, want))} images", "change the spec's input line to match the data")
    channels = channel_plan(have[0], request, dataset.name)
    if channels != have[0]:
        dataset.notes.append(f"converted {have[0]} channel(s) to {channels}")
        dataset = dataset.map(lambda x: convert_channels(x, channels))
    if size_plan(have[1:], request, dataset.name):
        dataset.notes.append(f"resized {have[1]}x{have[2]} to {want[1]}x{want[2]}")
        dataset = dataset.map(lambda x: resize_images(x, want[1:]))
        if dataset.kind == SEGMENTATION:
            dataset = _resize_masks(dataset, want[1:])
    return dataset


def _resize_masks(dataset: Dataset, size: tuple[int, int]) -> Dataset:
    """Masks scaled with their images, by nearest neighbour so that class ids stay ids."""
    import torch
    import torch.nn.functional as F

    def scaled(split: Split) -> Split:
        masks = torch.from_numpy(np.ascontiguousarray(split.y))[:, None].float()
        out = F.interpolate(masks, size=tuple(size), mode="nearest")[:, 0].to(torch.uint8).numpy()
        return Split(split.x, out)

    return replace(dataset, train=scaled(dataset.train), val=scaled(dataset.val), test=scaled(dataset.test))
