"""The training loop behind `cnndsl train`: compile the spec, fit the data to it, train
for the recipe's epochs, validate after each, keep the best weights, test them at the end.

Safety, in order of how often it matters:
- every file is written atomically, and the last checkpoint is rewritten at the end of
  every epoch (and every `checkpoint_minutes` within long ones), so a run killed even with
  SIGKILL goes on with `--resume` from where that checkpoint left it;
- Ctrl-C or SIGTERM finishes the current batch, saves, and exits with status 130; a
  second Ctrl-C stops at once;
- a NaN or infinite loss stops the run with `Diverged`; nothing from the diverged steps
  is saved, so the last checkpoint is the last good state.

The order of every epoch and every augmentation is drawn from (seed, epoch, batch), and
the torch RNG state travels in the checkpoint, so a resumed run on the same machine
makes the same steps as one that was never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..atomic import write_atomic
from ..data import Dataset, ImageFiles, open_dataset
from ..data.batches import Batches, Preprocess, batch_count, epoch_order, normalization
from ..data.fit import FitRequest
from . import checkpoint
from .distributed import World, any_rank, gather_digests, join, leave, sum_all, sync_buffers
from .errors import DataError, Diverged, Interrupted, TrainError
from .optimization import lr_factor, make_loss, make_optimizer, make_schedule
from .progress import Progress
from .recipe import Recipe, build_recipe, from_dict, read_recipe_file, recipe_file_for

METRICS = "metrics.jsonl"
RESULT = "result.json"
RUN = "run.json"
SMALL_STEP_MACS = 100_000_000  # below this many multiply-adds a batch, one CPU thread is fastest


@dataclass
class RunOptions:
    """What `cnndsl train` was asked to do, apart from the recipe."""

    spec: str | None
    out: Path
    data: str | None = None
    params: dict = field(default_factory=dict)
    network: str | None = None
    overrides: dict = field(default_factory=dict)  # recipe fields given on the command line
    recipe_file: Path | None = None
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    resize: bool = False
    convert_channels: bool = False
    loader: str = "auto"
    workers: int | None = None
    threads: int | None = None  # CPU threads; None: automatic
    checkpoint_minutes: float = 10.0
    progress_bar: bool | None = None  # None: when stderr is a terminal
    argv: list[str] = field(default_factory=list)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda, but torch sees no CUDA device",
                         "use --device cpu, or install a CUDA build of torch")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def spec_outputs(compiled) -> int:
    return int(np.prod(compiled.network.body.stats.out_shape))


def class_count_error(dataset: Dataset, outputs: int, compiled) -> DataError:
    names = [n for n, _ in compiled.network.params if "class" in n.lower()]
    have = len(dataset.classes)
    fix = f"pass --set {names[0]}={have}" if names else f"make the spec's last layer fc({have})"
    return DataError(f"{dataset.name} has {have} classes but {compiled.network.name} outputs {outputs} scores", fix)


def combined_loss(out, y, loss_fn, aux_weight: float):
    """(main scores, loss) of a forward's output. A tuple is (logits, aux1, aux2, ...) from
    auxiliary classifiers in training mode (GoogLeNet): main loss + aux_weight * each aux loss."""
    if isinstance(out, (tuple, list)):
        main = out[0].flatten(1)
        loss = loss_fn(main, y)
        for aux in out[1:]:
            loss = loss + aux_weight * loss_fn(aux.flatten(1), y)
        return main, loss
    main = out.flatten(1)
    return main, loss_fn(main, y)


class StopRequest:
    """SIGINT/SIGTERM set a flag that the loop reads between batches; a second SIGINT
    interrupts at once. Installed only in the main thread, for the loop's duration."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "StopRequest":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Run:
    """One training run; `execute()` returns the result that also goes to result.json."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.out = Path(options.out)

    # ---------------------------------------------------------------- set-up
    def _resume_meta(self):
        path = self.out / checkpoint.LAST
        if not path.is_file():
            raise TrainError(f"--resume: no checkpoint at {path}",
                             "nothing to resume there; drop --resume to start a new run")
        return checkpoint.load(path)

    def _prepare_out(self) -> None:
        last, result = self.out / checkpoint.LAST, self.out / RESULT
        if last.is_file() and not result.is_file() and not self.options.overwrite:
            raise TrainError(f"{self.out} holds an unfinished run",
                             f"continue it with --resume, or pass --overwrite to start again there")
        if self.world.main:
            for name in (checkpoint.LAST, checkpoint.BEST, METRICS, RESULT, RUN):
                (self.out / name).unlink(missing_ok=True)

    def _setup(self) -> None:
        import cnndsl

        o = self.options
        self.device = pick_device(o.device)
        self.world: World = join(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(self.device)
        self.resumed_meta, self.resumed_tensors = (None, None)
        if o.resume:
            self.resumed_meta, self.resumed_tensors = self._resume_meta()
            meta = self.resumed_meta
            spec, network, params = meta["spec"], meta["network"], meta["params"]
            if o.spec is not None and o.params and o.params != params:
                raise TrainError("--resume continues the run with its own --set values "
                                 f"{params}; they cannot change", "drop --set, or start a new run")
            recipe = from_dict(meta["recipe"], str(meta["path"]))
            self.recipe = build_recipe({}, o.overrides, base=recipe)
            if self.recipe.optimizer != recipe.optimizer:
                raise TrainError(f"--resume cannot switch the optimizer from {recipe.optimizer} to "
                                 f"{self.recipe.optimizer}: its state would not fit",
                                 "drop --optimizer, or start a new run")
            data = o.data or meta["data"]["source"]
            resize = o.resize or meta["data"]["resize"]
            convert = o.convert_channels or meta["data"]["convert_channels"]
        else:
            if o.spec is None:
                raise TrainError("which spec? give a .cnn file or a built-in's name",
                                 "for example: cnndsl train lenet5 --data digits")
            self._prepare_out()
            spec, network, params = o.spec, o.network, dict(o.params)
            recipe_file = o.recipe_file or recipe_file_for(o.spec)
            file_values = read_recipe_file(recipe_file) if recipe_file else {}
            self.recipe = build_recipe(file_values, o.overrides)
            self.recipe_file = recipe_file
            data, resize, convert = o.data or "digits", o.resize, o.convert_channels
        self.compiled = cnndsl.compile_spec(spec, network=network, **params)
        self.spec_text = self.compiled.source.text
        self.spec_path = self.compiled.source.path if not o.resume else self.resumed_meta.get("spec_path")
        self.network_name = self.compiled.network.name
        self.params = params
        self.input_shape = tuple(int(d) for d in self.compiled.network.input)
        self.outputs = spec_outputs(self.compiled)
        channel_value = self.compiled.network.input_channels
        channel_param = channel_value.text if channel_value is not None and channel_value.text.isidentifier() \
            and channel_value.text in dict(self.compiled.network.params) else None
        self._choose_threads()
        request = FitRequest(self.input_shape, resize=resize, convert_channels=convert, channel_param=channel_param)
        torch.manual_seed(self.recipe.seed)
        self.dataset = open_dataset(data, request, self.outputs, self.recipe.val_fraction)
        self.data_source, self.resize, self.convert = data, resize, convert
        ds = self.dataset
        if ds.task == "classification" and len(ds.classes) != self.outputs:
            raise class_count_error(ds, self.outputs, self.compiled)
        if ds.task == "regression":
            width = int(np.prod(ds.train.y.shape[1:])) if ds.train.y.ndim > 1 else 1
            if width != self.outputs:
                raise DataError(f"{ds.name} has {width} target value(s) per sample but "
                                f"{self.network_name} outputs {self.outputs}", "make the spec's last layer match")
        if len(ds.train) == 0:
            raise DataError(f"{ds.name}: the training split is empty")
        if self.resumed_meta is not None:
            norm = self.resumed_meta["data"]["normalize"]
            self.mean, self.std = norm["mean"], norm["std"]
        else:
            self.mean, self.std = normalization(ds.train, ds.scale)
        self._setup_model(spec if not o.resume else self.spec_text, network, params)
        self._setup_batches()

    def _choose_threads(self) -> None:
        """CPU threads: `--threads`, or one for a small network. A small network's steps
        are too short to split across cores, and several threads spinning on cores that
        other processes also want made the digits run five times slower under load."""
        if self.device.type != "cpu":
            return
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
            return
        macs = self.compiled.network.body.stats.macs * max(1, self.recipe.batch_size // self.world.size)
        if macs < SMALL_STEP_MACS:
            torch.set_num_threads(1)

    def _setup_model(self, spec, network, params) -> None:
        import cnndsl

        r = self.recipe
        torch.manual_seed(r.seed)
        model = cnndsl.build(spec, network=network, **params)
        if self.resumed_tensors is not None:
            model.load_state_dict(checkpoint.weights_of(self.resumed_tensors))
        cuda = self.device.type == "cuda"
        self.channels_last = len(self.input_shape) == 3 and (r.channels_last == "on" or
                                                             (r.channels_last == "auto" and cuda))
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        if r.precision == "fp16" and not cuda:
            raise TrainError("--precision fp16 needs a CUDA device", "use --precision bf16 or fp32 on a CPU")
        precision = r.precision
        if precision == "auto":
            precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        self.precision = precision
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        trained = model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            trained = DistributedDataParallel(model, device_ids=[self.device.index] if cuda else None)
        if r.compile:
            trained = torch.compile(trained)
        self.trained = trained
        self.optimizer = make_optimizer(model, r)
        self.loss_fn = make_loss(r, self.dataset.task, self.outputs)

    def _setup_batches(self) -> None:
        o, r, ds, w = self.options, self.recipe, self.dataset, self.world
        lazy = isinstance(ds.train.x, ImageFiles)
        total = sum(s.nbytes for s in ds.splits().values())
        if o.loader == "device" or (o.loader == "auto" and not lazy and total <= self._device_budget()):
            resident = True
        else:
            resident = False
        self.resident = resident
        workers = o.workers
        if workers is None:
            local = int(os.environ.get("LOCAL_WORLD_SIZE", w.size))
            workers = 0 if resident else min(8, max(1, (os.cpu_count() or 2) // local - 1))
        self.batches = {name: Batches(split, self.device, resident, workers) for name, split in ds.splits().items()}
        self.rank_batch = max(1, r.batch_size // w.size)
        images = len(self.input_shape) == 3
        crop = r.crop_padding if r.crop_padding >= 0 else (self.input_shape[1] // 8 if images else 0)
        flip = r.flip == "on" or (r.flip == "auto" and ds.flip_ok)
        self.augmentation = {"crop_padding": crop if images else 0, "flip": flip and images}
        self.preprocess = Preprocess(self.mean, self.std, ds.scale, self.device, crop if images else 0,
                                     flip and images, self.channels_last)
        per_rank = len(epoch_order(len(ds.train), 0, r.seed, w.rank, w.size))
        self.steps_per_epoch = batch_count(per_rank, self.rank_batch)
        self.schedule = make_schedule(self.optimizer, r, self.steps_per_epoch)

    def _device_budget(self) -> int:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(free * 0.25)
        return 1 << 62  # arrays already in host memory: indexing them beats a loader

    # ---------------------------------------------------------------- records
    def _meta(self) -> dict:
        ds = self.dataset
        return {
            "spec": self.spec_text, "spec_path": self.spec_path, "network": self.network_name,
            "params": self.params, "recipe": self.recipe.to_dict(), "input": list(self.input_shape),
            "outputs": self.outputs,
            "data": {"source": self.data_source, "name": ds.name, "task": ds.task, "classes": ds.classes,
                     "resize": self.resize, "convert_channels": self.convert,
                     "normalize": {"mean": self.mean, "std": self.std, "scale": ds.scale},
                     "sizes": {k: len(s) for k, s in ds.splits().items()}, "notes": ds.notes},
            "cnndsl_version": __version__, "torch_version": torch.__version__,
        }

    def _write_run_json(self) -> None:
        info = {**self._meta(), "recipe_file": str(getattr(self, "recipe_file", None) or "") or None,
                "device": str(self.device), "world_size": self.world.size, "precision": self.precision,
                "channels_last": self.channels_last, "loader": "device" if self.resident else "stream",
                "augmentation": self.augmentation, "command": self.options.argv}
        write_atomic(self.out / RUN, json.dumps(info, indent=2) + "\n")
        from ..compiler import generate

        write_atomic(self.out / "model.py", generate(self.compiled))

    def _save_last(self, progress: dict) -> None:
        if not self.world.main:
            return
        self._check_weights_finite()
        opt_tensors, opt_structure = checkpoint.flatten_optimizer(self.optimizer.state_dict())
        extra = {**opt_tensors, "rng/torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            extra["rng/cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {**self._meta(), "progress": progress, "optimizer": opt_structure,
                "scheduler": self.schedule.state_dict(),
                "scaler": {k: (v.item() if isinstance(v, torch.Tensor) else v)
                           for k, v in self.scaler.state_dict().items()} if self.scaler else None}
        checkpoint.save(self.out / checkpoint.LAST, self.model.state_dict(), meta, extra)
        self.last_saved = time.monotonic()
        self.last_good = (self.out / checkpoint.LAST, progress["epoch"], progress["batch"])

    def _check_weights_finite(self) -> None:
        for name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                raise Diverged(f"the weights became NaN or infinite ({name}); not saving them",
                               self._last_good_hint())

    def _last_good_hint(self) -> str:
        good = getattr(self, "last_good", None)
        if good is None:
            where = "no checkpoint had been written yet"
        else:
            when = f"after epoch {good[1]}" if good[2] == 0 else f"epoch {good[1] + 1}, batch {good[2]}"
            where = f"the last good checkpoint, {good[0]} ({when}), is kept"
        return f"{where}; lower --lr, set --clip-grad-norm, or check the data"

    def _save_best(self, epoch: int, scores: dict) -> None:
        self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.world.main:
            checkpoint.save(self.out / checkpoint.BEST, self.best_weights,
                            {**self._meta(), "epoch": epoch, **scores})

    def _write_metrics(self) -> None:
        if self.world.main:
            write_atomic(self.out / METRICS, "".join(json.dumps(m) + "\n" for m in self.metrics))

    # ---------------------------------------------------------------- steps
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _loss(self, out, y):
        return combined_loss(out, y, self.loss_fn, self.recipe.aux_weight)

    def _train_step(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.recipe
        with self._autocast():
            main, loss = self._loss(self.trained(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if r.clip_grad_norm > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), r.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if r.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), r.clip_grad_norm)
            self.optimizer.step()
        self.schedule.step()
        return main.detach(), loss.detach()

    def evaluate(self, split: str) -> dict:
        """Loss and accuracy over this split, summed over the ranks."""
        batches = self.batches[split]
        model = self.model
        was_training = model.training
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss, correct, count
        order = epoch_order(len(batches), 0, 0, self.world.rank, self.world.size, shuffle=False)
        with torch.no_grad():
            for x, y in batches.iterate(order, max(self.rank_batch, 256)):
                x = self.preprocess(x)
                with self._autocast():
                    main, loss = self._loss(model(x), y)
                sums[0] += loss.double() * len(y)
                if self.dataset.task == "classification":
                    sums[1] += (main.argmax(1) == y).sum()
                sums[2] += len(y)
        model.train(was_training)
        loss_sum, correct, count = sum_all(self.world, sums.tolist(), self.device)
        if count == 0:
            return {"loss": None, "accuracy": None, "count": 0}
        accuracy = correct / count if self.dataset.task == "classification" else None
        return {"loss": loss_sum / count, "accuracy": accuracy, "count": int(count)}

    # ---------------------------------------------------------------- the loop
    def execute(self) -> dict:
        try:
            self._setup()
            result = self._execute()
        except BaseException:
            if hasattr(self, "world"):
                leave(self.world, orderly=False)
            raise
        leave(self.world)
        return result

    def _restore(self) -> dict:
        meta, tensors = self.resumed_meta, self.resumed_tensors
        self.optimizer.load_state_dict(checkpoint.unflatten_optimizer(meta["optimizer"], tensors))
        self.schedule.load_state_dict(meta["scheduler"])
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        # the recipe may change on resume (more epochs, another rate): rates follow the new one
        factor = lr_factor(self.recipe, self.steps_per_epoch)(self.schedule.last_epoch)
        self.schedule.base_lrs = [self.recipe.lr for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.recipe.lr
            group["lr"] = self.recipe.lr * factor
        torch.set_rng_state(tensors["rng/torch"])
        if self.device.type == "cuda" and "rng/cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        progress = meta["progress"]
        self.best_score = progress.get("best_score")
        self.best_epoch = progress.get("best_epoch")
        self.best_weights = None
        best_path = self.out / checkpoint.BEST
        if self.best_epoch is not None and best_path.is_file():
            _, best = checkpoint.load(best_path)
            self.best_weights = checkpoint.weights_of(best)
        try:
            lines = (self.out / METRICS).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        self.metrics = [m for m in map(json.loads, filter(None, lines)) if m["epoch"] <= progress["epoch"]]
        self.last_good = (self.out / checkpoint.LAST, progress["epoch"], progress["batch"])
        return progress

    def _execute(self) -> dict:
        r, w, ds = self.recipe, self.world, self.dataset
        show = Progress(w.main, self.options.progress_bar)
        self.metrics, self.best_score, self.best_epoch, self.best_weights = [], None, None, None
        start_epoch, start_batch, carried = 0, 0, {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        if self.resumed_meta is not None:
            progress = self._restore()
            start_epoch, start_batch = progress["epoch"], progress["batch"]
            carried = progress.get("partial", carried)
            show.note(f"resuming {self.out} at epoch {start_epoch + 1}" +
                      (f", batch {start_batch + 1}" if start_batch else ""))
        if w.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_run_json()
        show.note(self._describe())
        self.last_saved = time.monotonic()
        check_every = 1 if self.device.type == "cpu" else 16
        classification = ds.task == "classification"
        generator = torch.Generator(device=self.device)
        train_batches = self.batches["train"]
        with StopRequest() as stop:
            for epoch in range(start_epoch, r.epochs):
                started = time.perf_counter()
                order = epoch_order(len(ds.train), epoch, r.seed, w.rank, w.size)
                first = start_batch if epoch == start_epoch else 0
                partial = carried if epoch == start_epoch else {"loss": 0.0, "correct": 0.0, "seen": 0.0,
                                                                "seconds": 0.0}
                sums = torch.zeros(3, dtype=torch.float64, device=self.device)
                self.model.train()
                show.start_epoch(epoch + 1, r.epochs, self.steps_per_epoch, first)
                seen_here, tick = 0, time.perf_counter()
                for i, (x, y) in enumerate(train_batches.iterate(order, self.rank_batch, first), start=first):
                    generator.manual_seed(((r.seed * 1_000_003 + epoch) * 1_000_003 + i) * 64 + w.rank)
                    x = self.preprocess(x, augment=True, generator=generator)
                    main, loss = self._train_step(x, y)
                    sums[0] += loss.double() * len(y)
                    if classification:
                        sums[1] += (main.argmax(1) == y).sum()
                    sums[2] += len(y)
                    seen_here += len(y)
                    if i % check_every == 0 or i == self.steps_per_epoch - 1:
                        diverged = not math.isfinite(sums[0].item())
                        stopping = stop.requested
                        if w.distributed:
                            diverged = any_rank(w, diverged, self.device)
                            stopping = any_rank(w, stopping, self.device)
                        if diverged:
                            show.close()
                            raise Diverged(f"the loss became {float(loss):g} at epoch {epoch + 1}, batch {i + 1}; "
                                           "stopping without saving the diverged state", self._last_good_hint())
                        elapsed = time.perf_counter() - tick
                        show.step(float(loss), float(sums[1] / sums[2]) if classification else None,
                                  seen_here * w.size / max(elapsed, 1e-9))
                        minutes = (time.monotonic() - self.last_saved) / 60
                        periodic = self.options.checkpoint_minutes > 0 and minutes >= self.options.checkpoint_minutes
                        if stopping or (periodic and i + 1 < self.steps_per_epoch):
                            now = {"loss": partial["loss"] + sums[0].item(), "correct": partial["correct"] + sums[1].item(),
                                   "seen": partial["seen"] + sums[2].item(),
                                   "seconds": partial["seconds"] + time.perf_counter() - started}
                            self._save_last({"epoch": epoch, "batch": i + 1, "partial": now,
                                             "best_score": self.best_score, "best_epoch": self.best_epoch})
                            if stopping:
                                show.close()
                                raise Interrupted(f"stopped at epoch {epoch + 1}, batch {i + 1}; saved "
                                                  f"{self.out / checkpoint.LAST}",
                                                  f"continue with: cnndsl train --resume --out {self.out}")
                    else:
                        show.advance()
                train_seconds = time.perf_counter() - started
                loss_sum, correct, seen = sum_all(w, sums.tolist(), self.device)
                loss_sum += partial["loss"]
                correct += partial["correct"]
                seen += partial["seen"]
                sync_buffers(w, self.model)
                val = self.evaluate("val")
                seconds = time.perf_counter() - started + partial["seconds"]
                record = {"epoch": epoch + 1, "epochs": r.epochs, "train_loss": loss_sum / max(seen, 1),
                          "train_accuracy": correct / max(seen, 1) if classification else None,
                          "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                          "images_per_second": (seen - partial["seen"]) / max(train_seconds, 1e-9),
                          "seconds": seconds, "lr": self.optimizer.param_groups[0]["lr"]}
                self.metrics.append(record)
                # The epoch's line goes out before its checkpoint: a kill between the two
                # leaves a line that --resume drops and writes again, never a missing one.
                self._write_metrics()
                score = self._score(record)
                if self.best_score is None or score >= self.best_score:  # ties: the later, more annealed
                    self.best_score, self.best_epoch = score, epoch + 1
                    self._save_best(epoch + 1, {"val_loss": val["loss"], "val_accuracy": val["accuracy"]})
                self._save_last({"epoch": epoch + 1, "batch": 0, "best_score": self.best_score,
                                 "best_epoch": self.best_epoch})
                show.end_epoch(record)
                if any_rank(w, stop.requested, self.device):
                    raise Interrupted(f"stopped after epoch {epoch + 1}; saved {self.out / checkpoint.LAST}",
                                      f"continue with: cnndsl train --resume --out {self.out}")
        return self._finish()

    def _score(self, record: dict) -> float:
        if record["val_accuracy"] is not None:
            return record["val_accuracy"]
        if record["val_loss"] is not None:
            return -record["val_loss"]
        return -record["train_loss"]

    def _describe(self) -> str:
        ds, r = self.dataset, self.recipe
        sizes = "/".join(str(len(s)) for s in ds.splits().values())
        where = f"{self.device}" + (f" x {self.world.size} processes" if self.world.distributed else "")
        return (f"training {self.network_name} on {ds.name} (train/val/test {sizes}"
                f"{'; ' + ', '.join(ds.notes) if ds.notes else ''}) on {where}: {r.optimizer} lr {r.lr:g}, "
                f"{r.schedule} schedule, batch {r.batch_size}, {r.epochs} epochs, {self.precision}")

    def _finish(self) -> dict:
        w = self.world
        final_digest = checkpoint.tensor_digest(checkpoint.cpu_tensors(self.model.state_dict()))
        digests = gather_digests(w, final_digest, self.device)
        last = self.evaluate("test")
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        test = self.evaluate("test")
        result = {"network": self.network_name, "data": self.dataset.name, "task": self.dataset.task,
                  "test_loss": test["loss"], "test_samples": test["count"],
                  "best_epoch": self.best_epoch, "epochs": self.recipe.epochs,
                  "seconds": sum(m["seconds"] for m in self.metrics),
                  "images_per_second": (sum(m["images_per_second"] for m in self.metrics) / len(self.metrics))
                  if self.metrics else None,
                  "world_size": w.size, "rank_weight_digests": digests}
        result["last_test_loss"] = last["loss"]  # the final weights', for comparison
        if self.dataset.task == "classification":
            result = {"test_accuracy": test["accuracy"], **result, "last_test_accuracy": last["accuracy"]}
        best = [m for m in self.metrics if m["epoch"] == self.best_epoch]
        if best:
            result["best_val_accuracy"] = best[0]["val_accuracy"]
            result["best_val_loss"] = best[0]["val_loss"]
        if w.main:
            write_atomic(self.out / RESULT, json.dumps(result, indent=2) + "\n")
        return result


def train(options: RunOptions) -> dict:
    return Run(options).execute()
