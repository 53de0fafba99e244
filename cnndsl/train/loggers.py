"""Where a run's numbers go, beside `metrics.jsonl` (always written).

    (always)     steps.jsonl with --log-every: {step, epoch, loss, lr} every N steps
    csv          metrics.csv (one row an epoch) and, with --log-every, steps.csv
    tensorboard  event files under tb/ for TensorBoard (the `tensorboard` package):
                 epoch/<metric> per epoch, step/loss and step/lr per logged step

The epoch files are rewritten whole from the run's records each epoch (atomically),
so a resumed run's files hold each epoch once. TensorBoard event files are
append-only; a resumed run appends from where it went on.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..atomic import write_atomic
from ..errors import MissingExtra
from .errors import TrainError

KINDS = ("csv", "tensorboard")
STEPS = "steps.jsonl"
TENSORBOARD_DIR = "tb"
LOGGED = (STEPS, "metrics.csv", "steps.csv")  # what a new run in the same directory removes


def _csv_text(rows: list[dict]) -> str:
    if not rows:
        return ""
    names = list(rows[0])
    for row in rows[1:]:
        names += [k for k in row if k not in names]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in names} for row in rows)
    return out.getvalue()


class CsvLogger:
    def __init__(self, out: Path) -> None:
        self.out = out

    def epochs(self, records: list[dict]) -> None:
        write_atomic(self.out / "metrics.csv", _csv_text(records))

    def step(self, record: dict) -> None:
        pass

    def flush_steps(self, steps: list[dict]) -> None:
        if steps:
            write_atomic(self.out / "steps.csv", _csv_text(steps))

    def close(self) -> None:
        pass


class TensorBoardLogger:
    def __init__(self, out: Path, already: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtra("--log tensorboard", "train", "tensorboard") from None
        self.writer = SummaryWriter(log_dir=str(out / TENSORBOARD_DIR))
        self.written = already  # epochs a resumed run had logged before

    def epochs(self, records: list[dict]) -> None:
        for record in records[self.written:]:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "epochs"):
                    self.writer.add_scalar(f"epoch/{key}", value, record["epoch"])
        self.written = len(records)
        self.writer.flush()

    def step(self, record: dict) -> None:
        self.writer.add_scalar("step/loss", record["loss"], record["step"])
        self.writer.add_scalar("step/lr", record["lr"], record["step"])

    def flush_steps(self, steps: list[dict]) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class Loggers:
    """The chosen loggers, fed by the loop; only rank 0 makes any."""

    def __init__(self, kinds: tuple[str, ...], out: Path, enabled: bool, already: int = 0,
                 steps: list[dict] | None = None) -> None:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise TrainError(f"--log {', '.join(unknown)}: not a logger", f"choose from {', '.join(KINDS)}")
        self.loggers = []
        if enabled:
            self.loggers = [CsvLogger(out) if k == "csv" else TensorBoardLogger(out, already)
                            for k in dict.fromkeys(kinds)]
        self.out, self.enabled = out, enabled
        self.steps: list[dict] = list(steps or [])

    def epochs(self, records: list[dict]) -> None:
        for logger in self.loggers:
            logger.epochs(records)

    def step(self, record: dict) -> None:
        self.steps.append(record)
        for logger in self.loggers:
            logger.step(record)

    def flush_steps(self) -> None:
        if self.enabled and self.steps:
            write_atomic(self.out / STEPS, "".join(json.dumps(s) + "\n" for s in self.steps))
        for logger in self.loggers:
            logger.flush_steps(self.steps)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
