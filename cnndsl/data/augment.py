"""Augmentations that move the targets with the image: masks and boxes go where the
pixels go.

The same two moves as classification's (`batches.random_crop`, `batches.random_flip`),
for a whole batch on the device: a random crop with padding (each image shifted by up to
`padding` pixels each way, the gap filled with zeros) and a horizontal flip with
probability 1/2. A mask is shifted and flipped with its image, the uncovered border
becoming IGNORE (255: no label); a box (fractions x0, y0, x1, y1 in columns 1..4 of a
localisation target) is shifted and mirrored, then clipped to the image.
"""

from __future__ import annotations

import torch

from .dataset import IGNORE, LOCALISATION, SEGMENTATION


def shifts(b: int, padding: int, device, generator: torch.Generator | None = None):
    """Per image (dy, dx) in 0 .. 2*padding: the crop's corner in the padded image."""
    dy = torch.randint(0, 2 * padding + 1, (b,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=device, generator=generator)
    return dy, dx


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, padding: int, fill: float = 0) -> torch.Tensor:
    """Images (B, C, H, W) or masks (B, H, W) cropped at (dy, dx) from their padded selves:
    output pixel (r, c) is input pixel (r + dy - padding, c + dx - padding)."""
    planes = x if x.dim() == 4 else x[:, None]
    b, c, h, w = planes.shape
    padded = torch.nn.functional.pad(planes, (padding, padding, padding, padding), value=fill)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, channel, rows, cols]
    return out if x.dim() == 4 else out[:, 0]


def shift_boxes(y: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, padding: int, h: int, w: int) -> torch.Tensor:
    """Localisation targets with their boxes moved as `shift` moves the pixels, clipped to the image."""
    out = y.clone()
    move_x = (padding - dx).to(y.dtype) / w
    move_y = (padding - dy).to(y.dtype) / h
    out[:, 1] = (y[:, 1] + move_x).clamp(0, 1)
    out[:, 3] = (y[:, 3] + move_x).clamp(0, 1)
    out[:, 2] = (y[:, 2] + move_y).clamp(0, 1)
    out[:, 4] = (y[:, 4] + move_y).clamp(0, 1)
    return out


def flip_targets(y: torch.Tensor, flip: torch.Tensor, task: str) -> torch.Tensor:
    """Masks mirrored left-right where `flip`; boxes' x0, x1 become 1 - x1, 1 - x0 there."""
    if task == SEGMENTATION:
        return torch.where(flip[:, None, None], y.flip(2), y)
    mirrored = y.clone()
    mirrored[:, 1], mirrored[:, 3] = 1 - y[:, 3], 1 - y[:, 1]
    return torch.where(flip[:, None], mirrored, y)


def augment_pair(x: torch.Tensor, y: torch.Tensor, task: str, padding: int, flip: bool,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of images (B, C, H, W) and their targets, cropped and flipped together."""
    if task not in (SEGMENTATION, LOCALISATION):
        raise ValueError(f"augment_pair moves masks and boxes, not {task} targets")
    b, _, h, w = x.shape
    if padding > 0:
        dy, dx = shifts(b, padding, x.device, generator)
        x = shift(x, dy, dx, padding)
        y = shift(y, dy, dx, padding, IGNORE) if task == SEGMENTATION else shift_boxes(y, dy, dx, padding, h, w)
    if flip:
        flipped = torch.rand(b, device=x.device, generator=generator) < 0.5
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
        y = flip_targets(y, flipped, task)
    return x, y
