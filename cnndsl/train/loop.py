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
import functools
import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_atomic
from ..data import Dataset, ImageFiles, open_dataset
from ..data.batches import Batches, Preprocess, batch_count, epoch_order, normalization
from ..data.errors import DataError
from ..data.fit import FitRequest, fit_dataset
from . import checkpoint
from .distributed import World, any_rank, gather_digests, join, leave, sum_all, sync_buffers
from .errors import CheckpointError, Diverged, Interrupted, TrainError
from .loggers import LOGGED, STEPS, TENSORBOARD_DIR, Loggers
from .model import build_compiled, compile_stored
from .optimization import Plateau, apply_freeze, lr_factor, make_loss, make_optimizer, make_schedule
from .progress import Progress
from .recipe import Recipe, build_recipe, from_dict, read_recipe_file, read_recipe_settings, recipe_file_for
from .tasks import DenseTask, dense_task, probe
from .weights import load_state, read_weights

METRICS = "metrics.jsonl"
RESULT = "result.json"
RUN = "run.json"
SMALL_STEP_MACS = 100_000_000  # below this many multiply-adds a batch, one CPU thread is fastest
RUN_FILES = (METRICS, RESULT, RUN, "model.py", *LOGGED)  # besides the checkpoints
CHECK_EVERY = 16  # steps between reading the running loss back from the device


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
    init: "str | Path | dict | None" = None  # starting weights: a file, or a state_dict
    log: tuple[str, ...] = ()  # loggers beside metrics.jsonl: csv, tensorboard
    callbacks: list = field(default_factory=list)  # objects with on_epoch_end / on_checkpoint
    dataset: Dataset | None = None  # in-memory data (the Python API), instead of `data`
    quiet: bool = False  # no progress output at all

    def check(self) -> None:
        minutes = self.checkpoint_minutes
        if not isinstance(minutes, (int, float)) or not math.isfinite(minutes) or minutes < 0:
            raise TrainError(f"--checkpoint-minutes must be 0 (only at epoch ends) or a positive number of "
                             f"minutes, not {minutes}")


@functools.cache
def cnndsl_version() -> str:
    """The installed package's version (read from its metadata: the package root, which
    would give it too, imports this module's API lazily and must not be imported back).
    Read once: every checkpoint's metadata holds it, and the metadata read costs 2 ms."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cnndsl")
    except PackageNotFoundError:
        return "unknown"


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda, but torch sees no CUDA device",
                         "use --device cpu, or install a CUDA build of torch")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def spec_outputs(compiled) -> int:
    return int(np.prod(compiled.network.body.stats.out_shape))


DENSE_NEEDS = {"pixels": "a segmenter trains on masks: --data shapes, a folder of images/ and masks/, or an .npz "
                         "with masks",
               "boxes": "a localiser trains on boxes: --data placed-digits, images with boxes.csv or boxes.json, or "
                        "an .npz with boxes"}


def check_dense_loss(task: DenseTask) -> None:
    from .losses import SEGMENTATION_LOSSES

    allowed = SEGMENTATION_LOSSES if task.task == "segmentation" else ("cross_entropy",)
    if task.loss_name not in allowed:
        raise TrainError(f"--loss {task.loss_name} does not apply to {task.task}",
                         "use --loss " + " or ".join(allowed) + (" (the box always adds smooth L1)"
                                                                 if task.task == "localisation" else ""))


def class_count_error(dataset: Dataset, outputs: int, compiled) -> DataError:
    names = [n for n, _ in compiled.network.params if "class" in n.lower()]
    have = len(dataset.classes)
    fix = f"pass --set {names[0]}={have}" if names else f"make the spec's last layer fc({have})"
    return DataError(f"{dataset.name} has {have} classes but {compiled.network.name} outputs {outputs} scores", fix)


def combined_loss(out, y, loss_fn, aux_weight: float):
    """(main scores, loss) of a forward's output. A tuple is (logits, aux1, aux2, ...) from
    auxiliary classifiers in training mode (GoogLeNet): main loss + aux_weight * each aux loss.
    Named outputs (a dict) are the same: `out` (else the first) is the main one."""
    if isinstance(out, dict):
        main_key = "out" if "out" in out else next(iter(out))
        out = [out[main_key]] + [v for k, v in out.items() if k != main_key and v is not None]
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


@dataclass
class Sources:
    """Where a run's spec and data come from: the command line, or a checkpoint."""

    spec: str | None
    network: str | None
    params: dict
    data: str
    resize: bool
    convert: bool


class Accumulator:
    """One epoch's running loss and accuracy, kept on the device: the loop appends each
    step's loss, scores and targets (references, no arithmetic) and sums them only every
    `CHECK_EVERY` steps, in a few batched operations, with one read back to the host."""

    def __init__(self, device: torch.device, classification: bool) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n
        self.classification = classification
        self.losses, self.sizes, self.scores, self.targets = [], [], [], []
        self.host = [0.0, 0.0, 0.0]

    def add(self, main: torch.Tensor, loss: torch.Tensor, y: torch.Tensor) -> None:
        self.losses.append(loss)
        self.sizes.append(len(y))
        if self.classification:
            self.scores.append(main)
            self.targets.append(y)

    def fold(self) -> list[float]:
        """Sum the pending steps in, read the totals back: [loss * n, correct, n]."""
        if self.losses:
            sizes = torch.tensor(self.sizes, dtype=torch.float64, device=self.sums.device)
            self.sums[0] += (torch.stack(self.losses).double() * sizes).sum()
            if self.scores:
                self.sums[1] += (torch.cat(self.scores).argmax(1) == torch.cat(self.targets)).sum()
            self.sums[2] += sizes.sum()
            self.losses, self.sizes, self.scores, self.targets = [], [], [], []
            self.host = self.sums.tolist()
        return self.host


def metric_value(record: dict, name: str) -> float | None:
    """The monitored metric as a score where higher is better (losses negated)."""
    value = record.get(name)
    if value is None:
        return None
    return -value if name.endswith("loss") else value


class Run:
    """One training run; `execute()` returns the result that also goes to result.json."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.out = Path(options.out)
        self.stop_training = False  # a callback may set it: the run ends after this epoch

    # ---------------------------------------------------------------- set-up
    def _resume_meta(self):
        path = self.out / checkpoint.LAST
        if not path.is_file():
            raise TrainError(f"--resume: no checkpoint at {path}",
                             "nothing to resume there; drop --resume to start a new run")
        meta, tensors = checkpoint.load(path)
        for key in ("recipe", "progress", "optimizer", "scheduler"):
            if not isinstance(meta.get(key), dict):
                raise CheckpointError(f"{path}: not usable for --resume: {key!r} must be a table",
                                      "it was not written by `cnndsl train`, or was edited since")
        return checkpoint.check_meta(meta), tensors

    def _prepare_out(self) -> None:
        last, result = self.out / checkpoint.LAST, self.out / RESULT
        if last.is_file() and not result.is_file() and not self.options.overwrite:
            raise TrainError(f"{self.out} holds an unfinished run",
                             f"continue it with --resume, or pass --overwrite to start again there")
        if self.world.main:
            for name in (checkpoint.LAST, checkpoint.BEST, METRICS, RESULT, RUN, *LOGGED):
                (self.out / name).unlink(missing_ok=True)
            for old in self.out.glob("best-epoch*.safetensors"):
                old.unlink()
            shutil.rmtree(self.out / TENSORBOARD_DIR, ignore_errors=True)

    def _join(self) -> None:
        self.device = pick_device(self.options.device)
        self.world: World = join(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
            torch.cuda.set_device(self.device)

    def _resumed_sources(self) -> Sources:
        o = self.options
        self.resumed_meta, self.resumed_tensors = self._resume_meta()
        meta = self.resumed_meta
        if o.spec is not None and o.params and o.params != meta["params"]:
            raise TrainError("--resume continues the run with its own --set values "
                             f"{meta['params']}; they cannot change", "drop --set, or start a new run")
        recipe = from_dict(meta["recipe"], str(meta["path"]))
        self.recipe = build_recipe({}, o.overrides, base=recipe)
        if self.recipe.optimizer != recipe.optimizer or self.recipe.freeze != recipe.freeze:
            raise TrainError("--resume cannot switch the optimizer or the frozen parameters: the optimizer's "
                             "state would not fit", "drop --optimizer and --freeze, or start a new run")
        data = meta["data"]
        return Sources(None, meta["network"], dict(meta["params"]), o.data or data["source"],
                       o.resize or bool(data.get("resize")), o.convert_channels or bool(data.get("convert_channels")))

    def _new_sources(self) -> Sources:
        o = self.options
        if o.spec is None:
            raise TrainError("which spec? give a .cnn file or a built-in's name",
                             "for example: cnndsl train lenet5 --data digits")
        self._prepare_out()
        recipe_file = o.recipe_file or recipe_file_for(o.spec)
        file_values = read_recipe_file(recipe_file) if recipe_file else {}
        self.recipe = build_recipe(file_values, o.overrides)
        self.recipe_file = recipe_file
        self.file_settings = read_recipe_settings(recipe_file) if recipe_file else {}
        data = o.data if isinstance(o.data, str) else "digits"
        return Sources(o.spec, o.network, {**self.file_settings, **o.params}, data, o.resize, o.convert_channels)

    def _compile(self, sources: Sources) -> None:
        from ..api import compile_spec

        if self.resumed_meta is not None:
            self.compiled = compile_stored(self.resumed_meta)
            self.spec_path = self.resumed_meta.get("spec_path")
        else:
            self.compiled = compile_spec(sources.spec, network=sources.network, **sources.params)
            self.spec_path = self.compiled.source.path
        self.spec_text = self.compiled.source.text
        self.network_name = self.compiled.network.name
        self.params = sources.params
        self.input_shape = tuple(int(d) for d in self.compiled.network.input)
        self.outputs = spec_outputs(self.compiled)

    def _setup(self) -> None:
        self.options.check()
        self._join()
        self.resumed_meta, self.resumed_tensors, self.recipe_file = None, None, None
        self.file_settings = {}
        sources = self._resumed_sources() if self.options.resume else self._new_sources()
        checkpoint.remove_stale_temps(self.out, RUN_FILES)
        self._compile(sources)
        self._choose_threads()
        torch.manual_seed(self.recipe.seed)
        self.built = build_compiled(self.compiled, self.params)  # before the data: its head decides the task
        self.head = probe(self.built, self.input_shape)
        self._open_data(sources)
        self._setup_model()
        self._setup_batches()

    def _open_data(self, sources: Sources) -> None:
        network = self.compiled.network
        channel_value = network.input_channels
        channel_param = channel_value.text if channel_value is not None and channel_value.text.isidentifier() \
            and channel_value.text in dict(network.params) else None
        dense_classes = self.head.classes if self.head.kind in ("pixels", "boxes") else None
        request = FitRequest(self.input_shape, resize=sources.resize, convert_channels=sources.convert,
                             channel_param=channel_param, classes=dense_classes)
        if self.options.dataset is not None:
            self.dataset = fit_dataset(self.options.dataset, request)
            self.data_source = f"<in-memory {self.dataset.name}>"
        else:
            self.dataset = open_dataset(sources.data, request, self.outputs, self.recipe.val_fraction)
            self.data_source = sources.data
        self.resize, self.convert = sources.resize, sources.convert
        self._check_fit()
        if self.resumed_meta is not None:
            norm = self.resumed_meta["data"]["normalize"]
            self.mean, self.std = norm["mean"], norm["std"]
        else:
            self.mean, self.std = normalization(self.dataset.train, self.dataset.scale)

    def _check_fit(self) -> None:
        ds = self.dataset
        self.dense: DenseTask | None = None
        if ds.kind is not None:
            self._check_dense()
        elif self.head.kind in DENSE_NEEDS:
            raise DataError(f"{ds.name} is {ds.task} data (a {'label' if ds.classes else 'value'} per image) but "
                            f"{self.network_name} outputs {self.head.describe()}", DENSE_NEEDS[self.head.kind])
        if ds.task == "classification" and len(ds.classes) != self.outputs:
            raise class_count_error(ds, self.outputs, self.compiled)
        if ds.task == "regression":
            width = int(np.prod(ds.train.y.shape[1:])) if ds.train.y.ndim > 1 else 1
            if width != self.outputs:
                raise DataError(f"{ds.name} has {width} target value(s) per sample but "
                                f"{self.network_name} outputs {self.outputs}", "make the spec's last layer match")
        if len(ds.train) == 0:
            raise DataError(f"{ds.name}: the training split is empty")

    def _check_dense(self) -> None:
        """Masks or boxes: the model must predict them, for as many classes as the data has."""
        ds, r = self.dataset, self.recipe
        task = dense_task(ds.task, self.head, self.network_name, ds.name, self.input_shape)
        task.loss_name, task.aux_weight, task.box_weight = r.loss, r.aux_weight, r.box_weight
        task.label_smoothing = r.label_smoothing
        check_dense_loss(task)
        if len(ds.classes) < task.classes and ds.classes == [str(i) for i in range(len(ds.classes))]:
            ds.classes = [str(i) for i in range(task.classes)]  # ids only (arrays): the head may score more
        if len(ds.classes) != task.classes:
            raise class_count_error(ds, task.classes, self.compiled)
        self.dense, self.outputs = task, task.classes

    def _choose_threads(self) -> None:
        """CPU threads: `--threads`, else one for a small network and torch's default for
        the rest. Never from the machine's load: the number of threads changes the order of
        float reductions, and a run resumed on a busier machine must end with the same
        weights as one never stopped. (The wait policy, which `cli.choose_wait_policy`
        picks from the load, changes only speed.)"""
        if self.device.type != "cpu":
            return
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
            return
        macs = self.compiled.network.body.stats.macs * max(1, self.recipe.batch_size // self.world.size)
        if macs < SMALL_STEP_MACS:
            torch.set_num_threads(1)

    def _initial_weights(self, model: torch.nn.Module) -> None:
        self.reinitialised: list[str] = []
        if self.resumed_tensors is not None:
            model.load_state_dict(checkpoint.weights_of(self.resumed_tensors))
            return
        init = self.options.init
        if init is None:
            return
        if isinstance(init, dict):
            self.reinitialised = load_state(model, init, "the given state_dict")
        else:
            self.reinitialised = load_state(model, read_weights(init), str(init))

    def _setup_model(self) -> None:
        r = self.recipe
        model = self.built  # built right after seeding, as before the probe existed: the same weights
        self._initial_weights(model)
        self.frozen = apply_freeze(model, r)
        cuda = self.device.type == "cuda"
        self.channels_last = len(self.input_shape) == 3 and (r.channels_last == "on" or
                                                             (r.channels_last == "auto" and cuda))
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self._setup_precision(cuda)
        trained = model
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            trained = DistributedDataParallel(model, device_ids=[self.device.index] if cuda else None)
        if r.compile:
            trained = torch.compile(trained)
        self.trained = trained
        self.optimizer = make_optimizer(model, r)
        self.loss_fn = make_loss(r, self.dataset.task, self.outputs) if self.dense is None else None

    def _setup_precision(self, cuda: bool) -> None:
        r = self.recipe
        if r.precision == "fp16" and not cuda:
            raise TrainError("--precision fp16 needs a CUDA device", "use --precision bf16 or fp32 on a CPU")
        precision = r.precision
        if precision == "auto":
            precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        self.precision = precision
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def _setup_batches(self) -> None:
        o, r, ds, w = self.options, self.recipe, self.dataset, self.world
        lazy = isinstance(ds.train.x, ImageFiles)
        total = sum(s.nbytes for s in ds.splits().values())
        resident = o.loader == "device" or (o.loader == "auto" and not lazy and total <= self._device_budget())
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
        self.plateau = Plateau(r)
        self.schedule = make_schedule(self.optimizer, r, self.steps_per_epoch, self.plateau)

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
            "cnndsl_version": cnndsl_version(), "torch_version": torch.__version__,
        }

    def _write_run_json(self) -> None:
        init = self.options.init
        info = {**self._meta(), "recipe_file": str(self.recipe_file) if self.recipe_file else None,
                "device": str(self.device), "world_size": self.world.size, "precision": self.precision,
                "channels_last": self.channels_last, "loader": "device" if self.resident else "stream",
                "augmentation": self.augmentation, "command": self.options.argv,
                "init": str(init) if isinstance(init, (str, Path)) else ("state_dict" if init else None),
                "reinitialised": self.reinitialised, "frozen": self.frozen, "threads": torch.get_num_threads(),
                "wait_policy": os.environ.get("OMP_WAIT_POLICY")}
        write_atomic(self.out / RUN, json.dumps(info, indent=2) + "\n")
        from ..compiler import generate

        write_atomic(self.out / "model.py", generate(self.compiled))

    def _progress(self, epoch: int, batch: int) -> dict:
        return {"epoch": epoch, "batch": batch, "best_score": self.best_score, "best_epoch": self.best_epoch,
                "best_k": self.best_k, "plateau": self.plateau.state_dict(), "since_best": self.since_best}

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
        self._callback("on_checkpoint", self.out / checkpoint.LAST)

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

    def _keep_best(self, epoch: int, score: float, scores: dict) -> None:
        """best.safetensors for the best epoch; with keep_best k > 1, one file per each of the k best."""
        # the best weights: ties go to the later, more annealed epoch; patience counts epochs
        # since the metric last improved by more than min_delta
        progressed = self.best_score is None or score > self.best_score + self.recipe.min_delta
        improved = self.best_score is None or score >= self.best_score
        self.since_best = 0 if progressed else self.since_best + 1
        if improved:
            self.best_score, self.best_epoch = score, epoch
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        k = self.recipe.keep_best
        ranked = sorted(self.best_k + [[score, epoch]], key=lambda se: (-se[0], -se[1]))
        kept, self.best_k = ranked[:k], ranked[:k]
        if not self.world.main:
            return
        meta = {**self._meta(), **scores}
        if improved:
            checkpoint.save(self.out / checkpoint.BEST, self.best_weights, {**meta, "epoch": epoch})
            self._callback("on_checkpoint", self.out / checkpoint.BEST)
        if k > 1:
            self._rank_files(kept, epoch, meta)

    def _rank_files(self, kept: list, epoch: int, meta: dict) -> None:
        """best-epochN.safetensors for each of the k best epochs; the others' files go."""
        names = {f"best-epoch{e}.safetensors" for _, e in kept}
        if any(e == epoch for _, e in kept):
            checkpoint.save(self.out / f"best-epoch{epoch}.safetensors", self.model.state_dict(),
                            {**meta, "epoch": epoch})
        for path in self.out.glob("best-epoch*.safetensors"):
            if path.name not in names:
                path.unlink()

    def _write_metrics(self) -> None:
        if self.world.main:
            write_atomic(self.out / METRICS, "".join(json.dumps(m) + "\n" for m in self.metrics))
            self.loggers.epochs(self.metrics)
            self.loggers.flush_steps()

    def _callback(self, event: str, *args) -> None:
        if not self.world.main:
            return
        for callback in self.options.callbacks:
            method = getattr(callback, event, None)
            if method is not None and method(self, *args) is False:
                self.stop_training = True

    # ---------------------------------------------------------------- steps
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _loss(self, out, y):
        if self.dense is not None:
            return self.dense.loss(out, y)
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

    def _prepare_pair(self, x, y):
        return self.preprocess.pair(x, y, self.dense.task, augment=True, generator=self.generator)

    def _evaluate_dense(self, split: str) -> dict:
        """The dense task's loss and metrics over this split, summed over the ranks."""
        batches, model = self.batches[split], self.model
        was_training = model.training
        model.eval()
        meter = self.dense.meter(self.device)
        order = epoch_order(len(batches), 0, 0, self.world.rank, self.world.size, shuffle=False)
        with torch.no_grad():
            for x, y in batches.iterate(order, max(self.rank_batch, 64)):
                with self._autocast():
                    self.dense.update(meter, model(self.preprocess(x)), y)
        model.train(was_training)
        result = meter.result(sum_all(self.world, meter.sums.tolist(), self.device))
        result.setdefault("accuracy", None)
        return {**result, "top5": None}

    def evaluate(self, split: str) -> dict:
        """Loss, accuracy and (past 5 classes) top-5 accuracy over this split, summed over the ranks."""
        if self.dense is not None:
            return self._evaluate_dense(split)
        batches = self.batches[split]
        model = self.model
        was_training = model.training
        model.eval()
        sums = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss, correct, count, top-5
        order = epoch_order(len(batches), 0, 0, self.world.rank, self.world.size, shuffle=False)
        top5 = self.dataset.task == "classification" and self.outputs > 5
        with torch.no_grad():
            for x, y in batches.iterate(order, max(self.rank_batch, 256)):
                x = self.preprocess(x)
                with self._autocast():
                    main, loss = self._loss(model(x), y)
                sums[0] += loss.double() * len(y)
                if self.dataset.task == "classification":
                    sums[1] += (main.argmax(1) == y).sum()
                if top5:
                    sums[3] += (main.topk(5, dim=1).indices == y[:, None]).any(1).sum()
                sums[2] += len(y)
        model.train(was_training)
        loss_sum, correct, count, in_top5 = sum_all(self.world, sums.tolist(), self.device)
        if count == 0:
            return {"loss": None, "accuracy": None, "top5": None, "count": 0}
        accuracy = correct / count if self.dataset.task == "classification" else None
        return {"loss": loss_sum / count, "accuracy": accuracy, "top5": in_top5 / count if top5 else None,
                "count": int(count)}

    # ---------------------------------------------------------------- the loop
    def execute(self) -> dict:
        try:
            self._setup()
            result = self._execute()
        except BaseException:
            if hasattr(self, "world"):
                leave(self.world, orderly=False)
            raise
        finally:
            if hasattr(self, "loggers"):
                self.loggers.close()
        leave(self.world)
        return result

    def _restore(self) -> dict:
        meta, tensors = self.resumed_meta, self.resumed_tensors
        try:
            return self._restore_state(meta, tensors)
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError, AttributeError) as exc:
            raise CheckpointError(f"{meta['path']}: its training state cannot be restored ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})", "start a new run with --overwrite") from None

    def _restore_state(self, meta: dict, tensors: dict) -> dict:
        self.optimizer.load_state_dict(checkpoint.unflatten_optimizer(meta["optimizer"], tensors))
        self.schedule.load_state_dict(meta["scheduler"])
        if self.scaler is not None and meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        progress = meta["progress"]
        if progress.get("plateau"):
            self.plateau.load_state_dict(progress["plateau"])
        # the recipe may change on resume (more epochs, another rate): rates follow the new one
        factor = lr_factor(self.recipe, self.steps_per_epoch)(self.schedule.last_epoch) * self.plateau.scale
        self.schedule.base_lrs = [self.recipe.lr * g.get("lr_scale", 1.0) for g in self.optimizer.param_groups]
        for group, base in zip(self.optimizer.param_groups, self.schedule.base_lrs):
            group["initial_lr"] = base
            group["lr"] = base * factor
        torch.set_rng_state(tensors["rng/torch"])
        if self.device.type == "cuda" and "rng/cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng/cuda"], self.device)
        self.best_score, self.best_epoch = progress.get("best_score"), progress.get("best_epoch")
        self.best_k = [list(se) for se in progress.get("best_k", [])]
        self.since_best = int(progress.get("since_best", 0))
        best_path = self.out / checkpoint.BEST
        if self.best_epoch is not None and best_path.is_file():
            self.best_weights = checkpoint.weights_of(checkpoint.load(best_path)[1])
        epoch, batch = int(progress["epoch"]), int(progress["batch"])
        self.metrics = [m for m in self._read_lines(METRICS) if m["epoch"] <= epoch]
        self.last_good = (self.out / checkpoint.LAST, epoch, batch)
        return progress

    def _read_lines(self, name: str) -> list[dict]:
        try:
            lines = (self.out / name).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def _begin(self, show: Progress) -> tuple[int, int, dict]:
        """Restore a resumed run, write run.json: (first epoch, first batch, carried sums)."""
        self.metrics, self.best_score, self.best_epoch, self.best_weights = [], None, None, None
        self.best_k, self.since_best = [], 0
        start_epoch, start_batch, carried = 0, 0, {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        steps = []
        if self.resumed_meta is not None:
            progress = self._restore()
            start_epoch, start_batch = int(progress["epoch"]), int(progress["batch"])
            carried = progress.get("partial", carried)
            done = start_epoch * self.steps_per_epoch + start_batch
            steps = [s for s in self._read_lines(STEPS) if s.get("step", 0) <= done]
            show.note(f"resuming {self.out} at epoch {start_epoch + 1}" +
                      (f", batch {start_batch + 1}" if start_batch else ""))
        if self.world.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_run_json()
        self.loggers = Loggers(tuple(self.options.log), self.out, self.world.main, len(self.metrics), steps)
        show.note(self._describe())
        if self.reinitialised:
            show.note(f"--init: the head's {', '.join(self.reinitialised)} differ in shape; freshly initialised")
        return start_epoch, start_batch, carried

    def _execute(self) -> dict:
        r = self.recipe
        show = Progress(self.world.main and not self.options.quiet, self.options.progress_bar)
        start_epoch, start_batch, carried = self._begin(show)
        self.last_saved = time.monotonic()
        self.generator = torch.Generator(device=self.device)
        stopped_early = None
        show.start_run(r.epochs, self.steps_per_epoch, start_epoch * self.steps_per_epoch + start_batch)
        with StopRequest() as stop:
            for epoch in range(start_epoch, r.epochs):
                first = start_batch if epoch == start_epoch else 0
                partial = carried if epoch == start_epoch else None
                record = self._epoch(epoch, first, partial, stop, show)
                self._end_epoch(epoch, record, show)
                if any_rank(self.world, stop.requested, self.device):
                    raise Interrupted(f"stopped after epoch {epoch + 1}; saved {self.out / checkpoint.LAST}",
                                      f"continue with: cnndsl train --resume --out {self.out}")
                if self._should_stop():
                    stopped_early = epoch + 1
                    show.note(f"stopping early after epoch {epoch + 1}: " + (
                        f"{self.monitor} did not improve for {r.patience} epochs (best: epoch {self.best_epoch})"
                        if not self.stop_training else "a callback asked to stop"))
                    break
        show.close()
        return self._finish(stopped_early)

    def _should_stop(self) -> bool:
        patience = self.recipe.patience
        stop = self.stop_training or (patience > 0 and self.since_best >= patience)
        return any_rank(self.world, stop, self.device)

    def _epoch(self, epoch: int, first: int, partial: dict | None, stop: StopRequest, show: Progress) -> dict:
        """Train one epoch (from batch `first` of it); its record, after validation."""
        r, w, ds = self.recipe, self.world, self.dataset
        started = time.perf_counter()
        partial = partial or {"loss": 0.0, "correct": 0.0, "seen": 0.0, "seconds": 0.0}
        acc = Accumulator(self.device, ds.task == "classification")
        prepare = self._prepare_pair if self.dense is not None else \
            (lambda x, y: (self.preprocess(x, augment=True, generator=self.generator), y))
        order = epoch_order(len(ds.train), epoch, r.seed, w.rank, w.size)
        self.model.train()
        show.start_epoch(epoch + 1, r.epochs, self.steps_per_epoch, first)
        check_every = r.log_every or CHECK_EVERY
        last = self.steps_per_epoch - 1
        for i, (x, y) in enumerate(self.batches["train"].iterate(order, self.rank_batch, first), start=first):
            self.generator.manual_seed(((r.seed * 1_000_003 + epoch) * 1_000_003 + i) * 64 + w.rank)
            x, y = prepare(x, y)
            main, loss = self._train_step(x, y)
            acc.add(main, loss, y)
            if (i + 1) % check_every == 0 or i == last:
                self._check_point(epoch, i, acc, partial, started, stop, show)
            else:
                show.advance()
        return self._epoch_record(epoch, acc, partial, started)

    def _check_point(self, epoch: int, i: int, acc: Accumulator, partial: dict, started: float,
                     stop: StopRequest, show: Progress) -> None:
        """Every few steps: read the running loss back, stop on NaN, log, save when due or asked."""
        w = self.world
        before, before_seen = acc.host[0], acc.host[2]
        steps = len(acc.losses)
        loss_sum, correct, seen = acc.fold()
        diverged, stopping = not math.isfinite(loss_sum), stop.requested
        if w.distributed:
            diverged, stopping = any_rank(w, diverged, self.device), any_rank(w, stopping, self.device)
        if diverged:
            show.close()
            raise Diverged(f"the loss became {loss_sum:g} by epoch {epoch + 1}, batch {i + 1}; "
                           "stopping without saving the diverged state", self._last_good_hint())
        interval_loss = (loss_sum - before) / max(seen - before_seen, 1)  # the steps since the last read
        if self.recipe.log_every and w.main:
            self.loggers.step({"step": epoch * self.steps_per_epoch + i + 1, "epoch": epoch + 1,
                               "loss": interval_loss, "lr": self.optimizer.param_groups[-1]["lr"]})
        show.step(interval_loss, correct / seen if acc.classification and seen else None,
                  seen * w.size / max(time.perf_counter() - started, 1e-9), steps)
        minutes = (time.monotonic() - self.last_saved) / 60
        periodic = self.options.checkpoint_minutes > 0 and minutes >= self.options.checkpoint_minutes
        if stopping or (periodic and i + 1 < self.steps_per_epoch):
            now = {"loss": partial["loss"] + loss_sum, "correct": partial["correct"] + correct,
                   "seen": partial["seen"] + seen, "seconds": partial["seconds"] + time.perf_counter() - started}
            self._save_last({**self._progress(epoch, i + 1), "partial": now})
            if stopping:
                show.close()
                raise Interrupted(f"stopped at epoch {epoch + 1}, batch {i + 1}; saved {self.out / checkpoint.LAST}",
                                  f"continue with: cnndsl train --resume --out {self.out}")

    def _epoch_record(self, epoch: int, acc: Accumulator, partial: dict, started: float) -> dict:
        w, classification = self.world, self.dataset.task == "classification"
        train_seconds = time.perf_counter() - started
        loss_sum, correct, seen = sum_all(w, acc.fold(), self.device)
        loss_sum += partial["loss"]
        correct += partial["correct"]
        seen += partial["seen"]
        sync_buffers(w, self.model)
        val = self.evaluate("val")
        record = {"epoch": epoch + 1, "epochs": self.recipe.epochs, "train_loss": loss_sum / max(seen, 1),
                  "train_accuracy": correct / max(seen, 1) if classification else None,
                  "val_loss": val["loss"], "val_accuracy": val["accuracy"]}
        if val["top5"] is not None:
            record["val_top5"] = val["top5"]
        for name in self.dense.metrics if self.dense is not None else ():
            record[f"val_{name}"] = val.get(name)
        record.update({"images_per_second": (seen - partial["seen"]) / max(train_seconds, 1e-9),
                       "seconds": time.perf_counter() - started + partial["seconds"],
                       "lr": self.optimizer.param_groups[-1]["lr"]})
        return record

    @property
    def monitor(self) -> str:
        name = self.recipe.monitor
        if name == "auto" and self.dense is not None:
            name = self.dense.monitor
        if name == "auto":
            name = "val_accuracy" if self.dataset.task == "classification" else "val_loss"
        if name.startswith("val") and len(self.dataset.val) == 0:
            name = name.replace("val_", "train_") if name != "val_top5" else "train_accuracy"
        return name

    def _end_epoch(self, epoch: int, record: dict, show: Progress) -> None:
        """The epoch's line, the best weights, the plateau, the last checkpoint, the callbacks."""
        self.metrics.append(record)
        # The epoch's line goes out before its checkpoint: a kill between the two
        # leaves a line that --resume drops and writes again, never a missing one.
        self._write_metrics()
        score = metric_value(record, self.monitor)
        if score is None:
            score = -record["train_loss"]
        self._keep_best(epoch + 1, score, {"val_loss": record["val_loss"], "val_accuracy": record["val_accuracy"]})
        self.plateau.update(score)
        self._save_last(self._progress(epoch + 1, 0))
        show.end_epoch(record)
        self._callback("on_epoch_end", record)

    def _describe(self) -> str:
        ds, r = self.dataset, self.recipe
        sizes = "/".join(str(len(s)) for s in ds.splits().values())
        where = f"{self.device}" + (f" x {self.world.size} processes" if self.world.distributed else "")
        where += f", {torch.get_num_threads()} threads" if self.device.type == "cpu" else ""
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.model.parameters() if not p.requires_grad)
        counts = f"{trainable:,} trainable parameters" + (f", {frozen:,} frozen" if frozen else "")
        if self.file_settings:
            shown = " ".join(f"{k}={v}" for k, v in self.file_settings.items() if k not in self.options.params)
            counts += f"; --set {shown} from {self.recipe_file.name}" if shown else ""
        return (f"training {self.network_name} ({counts}) on {ds.name} (train/val/test {sizes}"
                f"{'; ' + ', '.join(ds.notes) if ds.notes else ''}) on {where}: {r.optimizer} lr {r.lr:g}, "
                f"{r.schedule} schedule, batch {r.batch_size}, {r.epochs} epochs, {self.precision}")

    def _finish(self, stopped_early: int | None = None) -> dict:
        w = self.world
        final_digest = checkpoint.tensor_digest(checkpoint.cpu_tensors(self.model.state_dict()))
        digests = gather_digests(w, final_digest, self.device)
        last = self.evaluate("test")
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        test = self.evaluate("test")
        result = {"network": self.network_name, "data": self.dataset.name, "task": self.dataset.task,
                  "test_loss": test["loss"], "test_samples": test["count"],
                  "best_epoch": self.best_epoch, "epochs": self.recipe.epochs, "monitor": self.monitor,
                  "epochs_run": len(self.metrics), "stopped_early": stopped_early,
                  "seconds": sum(m["seconds"] for m in self.metrics),
                  "images_per_second": (sum(m["images_per_second"] for m in self.metrics) / len(self.metrics))
                  if self.metrics else None,
                  "world_size": w.size, "rank_weight_digests": digests}
        result["last_test_loss"] = last["loss"]  # the final weights', for comparison
        if self.dense is not None:
            result = {**{f"test_{m}": test[m] for m in self.dense.metrics}, **result,
                      **{f"last_test_{m}": last[m] for m in self.dense.metrics}}
            if "iou" in test:
                result["test_iou"] = dict(zip(self.dataset.classes, test["iou"]))
        if self.dataset.task == "classification":
            result = {"test_accuracy": test["accuracy"], **result, "last_test_accuracy": last["accuracy"]}
            if test["top5"] is not None:
                result["test_top5"] = test["top5"]
        best = [m for m in self.metrics if m["epoch"] == self.best_epoch]
        if best:
            result["best_val_accuracy"] = best[0]["val_accuracy"]
            result["best_val_loss"] = best[0]["val_loss"]
        if w.main:
            write_atomic(self.out / RESULT, json.dumps(result, indent=2) + "\n")
            checkpoint.remove_stale_temps(self.out, RUN_FILES)
        return result


def train(options: RunOptions) -> dict:
    return Run(options).execute()
