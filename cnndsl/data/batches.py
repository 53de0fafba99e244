"""Batches on the training device, and the augmentation applied to them there.

A split small enough to sit on the device is moved there once as a uint8 (or float)
tensor; each batch is then an index into it, so a GPU never waits on a Python data
loader. A larger split (an image folder too big to decode up front, or arrays above
the device budget) streams through a `DataLoader` whose workers index the arrays or
decode the files. Either way the raw batch is augmented (random crop with zero padding,
horizontal flip) and normalized on the device by `Preprocess`.

The order of an epoch is a permutation drawn from (seed, epoch) alone, padded and dealt
out by rank as `DistributedSampler` does, so that every process of a torchrun job agrees
on it and a resumed run can skip the batches it had already done.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import ImageFiles, Split


def epoch_order(n: int, epoch: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True) -> np.ndarray:
    """This rank's sample indices for one epoch.

    Training (`shuffle`) pads the permutation to a multiple of `world` so that every rank
    runs the same number of steps; evaluation deals `rank::world` without padding so
    that every sample is counted once."""
    if not shuffle:
        return np.arange(rank, n, world)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    if world > 1 and n % world:
        order = np.concatenate([order, order[: world - n % world]])
    return order[rank::world]


def batch_count(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


class _SplitDataset(torch.utils.data.Dataset):
    """One sample at a time, for the DataLoader's workers."""

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        x = self.split.x.load(i) if isinstance(self.split.x, ImageFiles) else self.split.x[i]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(self.split.y[i])


class Batches:
    """The batches of one split for one rank; `resident` says whether it lives on the device."""

    def __init__(self, split: Split, device: torch.device, resident: bool, workers: int = 0) -> None:
        self.split = split
        self.device = device
        self.resident = resident
        self.workers = workers
        if resident:
            x = split.x.load_all() if isinstance(split.x, ImageFiles) else split.x
            self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
            self.y = torch.from_numpy(np.ascontiguousarray(split.y)).to(device)

    def __len__(self) -> int:
        return len(self.split)

    def iterate(self, order: np.ndarray, batch_size: int, start_batch: int = 0):
        """Yield (inputs, targets) on the device for `order`, from batch `start_batch` on."""
        order = order[start_batch * batch_size:]
        if len(order) == 0:
            return
        if self.resident:
            index = torch.from_numpy(order).to(self.device)
            for start in range(0, len(index), batch_size):
                chosen = index[start:start + batch_size]
                yield self.x[chosen], self.y[chosen]
            return
        loader = torch.utils.data.DataLoader(
            _SplitDataset(self.split), batch_size=batch_size, sampler=order.tolist(), num_workers=self.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
            prefetch_factor=4 if self.workers else None)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def normalization(split: Split, scale: float, sample: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel (images) or per-feature (vectors) mean and standard deviation of the
    training inputs after dividing by `scale`, from a fixed sample of at most `sample`."""
    n = len(split)
    chosen = np.sort(np.random.default_rng(0).choice(n, min(n, sample if not isinstance(split.x, ImageFiles)
                                                           else 512), replace=False))
    if isinstance(split.x, ImageFiles):
        x = np.stack([split.x.load(i) for i in chosen]).astype(np.float64)
    else:
        x = split.x[chosen].astype(np.float64)
    x /= scale
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    mean = x.mean(axis=axes)
    std = np.maximum(x.std(axis=axes), 1e-6)
    return mean.tolist(), std.tolist()


class Preprocess:
    """Raw batch to network input on the device: scale, augment (training only), normalize."""

    def __init__(self, mean: list[float], std: list[float], scale: float, device: torch.device,
                 crop_padding: int = 0, flip: bool = False, channels_last: bool = False) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)
        self.std = torch.tensor(std, dtype=torch.float32, device=device)
        self.scale = scale
        self.crop_padding = crop_padding
        self.flip = flip
        self.channels_last = channels_last
        self.device = device

    def __call__(self, x: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None):
        x = x.to(self.device, non_blocking=True).float()
        if self.scale != 1.0:
            x = x / self.scale
        images = x.dim() == 4
        if augment and images:
            if self.crop_padding > 0:
                x = random_crop(x, self.crop_padding, generator)
            if self.flip:
                x = random_flip(x, generator)
        return self._normalize(x)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        images = x.dim() == 4
        view = (1, -1, 1, 1) if images else (1, -1)
        x = (x - self.mean.view(view)) / self.std.view(view)
        if self.channels_last and images:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def pair(self, x: torch.Tensor, y: torch.Tensor, task: str, augment: bool = False,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A dense task's batch: the images prepared as `__call__` does, the masks or boxes
        cropped and flipped with them (`augment.augment_pair`)."""
        from .augment import augment_pair

        x = x.to(self.device, non_blocking=True).float()
        if self.scale != 1.0:
            x = x / self.scale
        if augment and (self.crop_padding > 0 or self.flip):
            x, y = augment_pair(x, y, task, self.crop_padding, self.flip, generator)
        return self._normalize(x), y


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image shifted by up to `padding` pixels each way, the gap filled with zeros:
    torchvision's RandomCrop(size, padding), for a whole batch in one gather."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)
