"""What a run shows while it trains: a tqdm bar with loss, accuracy and images per
second when stderr is a terminal, one plain line per epoch when it is not (a log file,
CI). Only rank 0 shows anything.
"""

from __future__ import annotations

import sys

import click


def fmt_metric(record: dict) -> str:
    parts = [f"epoch {record['epoch']}/{record['epochs']}", f"train_loss {record['train_loss']:.4f}"]
    if record.get("train_accuracy") is not None:
        parts.append(f"train_acc {100 * record['train_accuracy']:.2f}%")
    if record.get("val_loss") is not None:
        parts.append(f"val_loss {record['val_loss']:.4f}")
    if record.get("val_accuracy") is not None:
        parts.append(f"val_acc {100 * record['val_accuracy']:.2f}%")
    parts.append(f"{record['images_per_second']:,.0f} img/s")
    parts.append(f"{record['seconds']:.1f} s")
    return "  ".join(parts)


class Progress:
    def __init__(self, enabled: bool, bar: bool | None = None) -> None:
        self.enabled = enabled
        self.bar_enabled = enabled and (sys.stderr.isatty() if bar is None else bar)
        self._bar = None

    def note(self, text: str) -> None:
        if self.enabled:
            if self._bar is not None:
                self._bar.write(text, file=sys.stderr)
            else:
                click.echo(text, err=True)

    def start_epoch(self, epoch: int, epochs: int, batches: int, done: int) -> None:
        if self.bar_enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=batches, initial=done, desc=f"epoch {epoch}/{epochs}", unit="batch",
                             leave=False, file=sys.stderr, dynamic_ncols=True)

    def step(self, loss: float | None, accuracy: float | None, images_per_second: float) -> None:
        if self._bar is not None:
            shown = {"img/s": f"{images_per_second:,.0f}"}
            if loss is not None:
                shown["loss"] = f"{loss:.4f}"
            if accuracy is not None:
                shown["acc"] = f"{100 * accuracy:.1f}%"
            self._bar.set_postfix(shown, refresh=False)
            self._bar.update(1)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def end_epoch(self, record: dict) -> None:
        self.close()
        if self.enabled:
            click.echo(fmt_metric(record), err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
