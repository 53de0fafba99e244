"""What a run shows while it trains. Only rank 0 shows anything.

- stderr a terminal with a width: a tqdm bar per epoch with loss, accuracy, images per
  second and the whole run's ETA (not the epoch's);
- a terminal that reports 0 columns (under `script`, some CI runners): fixed-width plain
  status lines, at most one every few seconds, where tqdm would draw nothing;
- not a terminal (a log file, CI) or `--no-progress`: one plain line per epoch.
"""

from __future__ import annotations

import os
import sys
import time

import click

PLAIN_EVERY_SECONDS = 5.0
PLAIN_WIDTH = 78


DENSE_SHOWN = (("val_miou", "val_mIoU"), ("val_pixel_accuracy", "val_pixel_acc"), ("val_box_iou", "val_box_IoU"),
               ("val_box_hits", "val_IoU>0.5"))


def fmt_metric(record: dict) -> str:
    parts = [f"epoch {record['epoch']}/{record['epochs']}", f"train_loss {record['train_loss']:.4f}"]
    if record.get("train_accuracy") is not None:
        parts.append(f"train_acc {100 * record['train_accuracy']:.2f}%")
    if record.get("val_loss") is not None:
        parts.append(f"val_loss {record['val_loss']:.4f}")
    if record.get("val_accuracy") is not None:
        parts.append(f"val_acc {100 * record['val_accuracy']:.2f}%")
    if record.get("val_top5") is not None:
        parts.append(f"val_top5 {100 * record['val_top5']:.2f}%")
    for name, shown in DENSE_SHOWN:
        if record.get(name) is not None:
            parts.append(f"{shown} {100 * record[name]:.2f}%")
    parts.append(f"{record['images_per_second']:,.0f} img/s")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


def fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def terminal_columns() -> int | None:
    """stderr's width; 0 when a terminal reports none; None when stderr is no terminal."""
    if not sys.stderr.isatty():
        return None
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except OSError:
        return 0


class Progress:
    def __init__(self, enabled: bool, bar: bool | None = None) -> None:
        self.enabled = enabled
        columns = terminal_columns() if enabled else None
        self.bar_enabled = enabled and (columns is not None if bar is None else bar)
        self.plain = self.bar_enabled and not columns  # forced on, or a terminal of 0 columns
        self._bar = None
        self.total, self.done, self.first_done, self.started = 0, 0, 0, time.perf_counter()
        self.epoch_label, self.epoch_steps, self.epoch_done, self.last_plain = "", 0, 0, 0.0

    def note(self, text: str) -> None:
        if self.enabled:
            if self._bar is not None:
                self._bar.write(text, file=sys.stderr)
            else:
                click.echo(text, err=True)

    def start_run(self, epochs: int, steps_per_epoch: int, done: int) -> None:
        self.total, self.done, self.first_done = epochs * steps_per_epoch, done, done
        self.started = time.perf_counter()

    def eta(self) -> float | None:
        """Seconds left in the whole run, from the pace of the steps this process made."""
        made = self.done - self.first_done
        if made <= 0:
            return None
        return (self.total - self.done) * (time.perf_counter() - self.started) / made

    def start_epoch(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        self.epoch_label, self.epoch_steps, self.epoch_done = f"epoch {epoch}/{epochs}", batches, done
        if self.bar_enabled and not self.plain:
            from tqdm import tqdm

            self._bar = tqdm(total=batches, initial=done, desc=self.epoch_label, unit="batch",
                             leave=False, file=sys.stderr, dynamic_ncols=True)

    def step(self, loss: float | None, accuracy: float | None, images_per_second: float, steps: int = 1) -> None:
        self.done += steps
        self.epoch_done += steps
        if not self.bar_enabled:
            return
        shown = {"img/s": f"{images_per_second:,.0f}"}
        if loss is not None:
            shown["loss"] = f"{loss:.4f}"
        if accuracy is not None:
            shown["acc"] = f"{100 * accuracy:.1f}%"
        eta = self.eta()
        if eta is not None:
            shown["run eta"] = fmt_duration(eta)
        if self._bar is not None:
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(steps)
        elif self.plain and time.perf_counter() - self.last_plain >= PLAIN_EVERY_SECONDS:
            self.last_plain = time.perf_counter()
            text = f"{self.epoch_label} {self.epoch_done}/{self.epoch_steps} " + " ".join(
                f"{k} {v}" for k, v in shown.items())
            click.echo(text[:PLAIN_WIDTH].ljust(PLAIN_WIDTH), err=True)

    def advance(self) -> None:
        """One step whose numbers were not read back (they are, every few steps, in `step`)."""

    def end_epoch(self, record: dict) -> None:
        self.close()
        if self.enabled:
            click.echo(fmt_metric(record), err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
