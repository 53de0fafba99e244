"""Checkpoints: one safetensors file each, never pickle.

A checkpoint holds the model's weights under their `state_dict` names (so any
safetensors reader can load them into the generated module), and, for the training
state, tensors under names with a slash: `optimizer/<param>/<key>`, `rng/torch`,
`rng/cuda`. Everything else (the spec's text and parameters, the recipe, the data's
normalization and class names, progress, the optimizer's param groups, the schedule's
and the gradient scaler's state) is JSON in the safetensors header's metadata, under
the key `cnndsl`. One file is one atomic write, so a checkpoint is never half of one
state and half of another; a SHA-256 of the tensors in the metadata catches corruption
that leaves the file's structure intact.

    out/checkpoint.safetensors   the last state: weights, optimizer, schedule, progress
    out/best.safetensors         the weights with the best validation score

A checkpoint is written through an unnamed temporary file (`O_TMPFILE`) that gets a name
only for the instant before it replaces the old checkpoint, so a run killed while
writing leaves no temporary file behind; where the file system cannot do that, the
named temporary files a killed run left are removed by the next run in that directory
(`remove_stale_temps`, called by a new run and by --resume). The metadata of a loaded
checkpoint is checked field by field (`check_meta`) before anything uses it: its
checksums prove it is intact, not that whoever wrote it was cnndsl.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from pathlib import Path

import torch

from ..atomic import write_atomic
from .errors import CheckpointError

FORMAT = "cnndsl-checkpoint"
VERSION = 1
LAST = "checkpoint.safetensors"
TASKS = ("classification", "regression", "segmentation", "localisation")
CLASS_TASKS = ("classification", "segmentation", "localisation")  # those with a name per class
BEST = "best.safetensors"


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU copies; tensors that share storage (tied weights) are cloned apart,
    since safetensors refuses shared storage."""
    out, seen = {}, set()
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if key in seen:
            t = t.clone()
        seen.add(key)
        out[name] = t
    return out


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state_dict as tensors plus a JSON structure that names them."""
    tensors, structure = {}, {"param_groups": state["param_groups"], "state": {}}
    for param_id, entries in state["state"].items():
        described = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                name = f"optimizer/{param_id}/{key}"
                tensors[name] = value
                described[key] = {"tensor": name}
            else:
                described[key] = {"value": value}
        structure["state"][str(param_id)] = described
    return tensors, structure


def unflatten_optimizer(structure: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state = {}
    for param_id, entries in structure["state"].items():
        state[int(param_id)] = {key: tensors[e["tensor"]] if "tensor" in e else e["value"]
                                for key, e in entries.items()}
    return {"state": state, "param_groups": structure["param_groups"]}


def save(path: Path, weights: dict[str, torch.Tensor], meta: dict,
         extra: dict[str, torch.Tensor] | None = None) -> None:
    from safetensors.torch import save as to_bytes

    tensors = cpu_tensors({**weights, **(extra or {})})
    meta = {**meta, "format": FORMAT, "version": VERSION, "payload_sha256": tensor_digest(tensors)}
    text = json.dumps(meta)
    # The tensors' checksum sits in the metadata; the metadata has a checksum of its own.
    _write(path, to_bytes(tensors, metadata={"format": FORMAT, "cnndsl": text,
                                             "cnndsl_sha256": hashlib.sha256(text.encode()).hexdigest()}))


def _write(path: Path, data: bytes) -> None:
    """Atomically, through a file with no name until it is complete (Linux's O_TMPFILE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o666)
    except (AttributeError, OSError):  # not Linux, or a file system without it
        write_atomic(path, data)
        return
    named = f".{path.name}.{os.getpid()}.tmp"
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(named, dir_fd=dir_fd)
        # a dir_fd makes CPython call linkat(..., AT_SYMLINK_FOLLOW): link() would not follow /proc's link
        try:
            os.link(f"/proc/self/fd/{fd}", named, dst_dir_fd=dir_fd, follow_symlinks=True)
        except OSError:  # no /proc: a named temporary file after all
            write_atomic(path, data)
            return
        os.replace(named, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(named, dir_fd=dir_fd)
        raise
    finally:
        os.close(fd)
        os.close(dir_fd)


def remove_stale_temps(directory: Path, names: tuple[str, ...] = ()) -> list[Path]:
    """Delete the temporary files a killed writer left in a run directory (of the
    checkpoints, and of the other files `names`); the ones removed."""
    removed = []
    prefixes = tuple(f".{name}." for name in (LAST, BEST, *names)) + (".best-epoch",)
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            if tmp.is_file() and tmp.name.startswith(prefixes):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def read_header(raw: bytes, path: Path) -> dict:
    if len(raw) < 8:
        raise CheckpointError(f"{path}: truncated checkpoint ({len(raw)} bytes)", _AGAIN)
    size = int.from_bytes(raw[:8], "little")
    if size > len(raw) - 8:
        raise CheckpointError(f"{path}: truncated or not a safetensors file (header of {size:,} bytes, "
                              f"file of {len(raw):,})", _AGAIN)
    try:
        header = json.loads(raw[8:8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a safetensors file (unreadable header)", _AGAIN) from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not a cnndsl checkpoint (no cnndsl metadata)",
                              "give a checkpoint written by `cnndsl train`")
    text = metadata.get("cnndsl")
    digest = metadata.get("cnndsl_sha256")
    if isinstance(text, str) and digest is not None and hashlib.sha256(text.encode()).hexdigest() != digest:
        raise CheckpointError(f"{path}: the metadata does not match its checksum: the file is corrupted", _AGAIN)
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: the checkpoint's metadata is damaged", _AGAIN) from None


_AGAIN = "the file is damaged: use another checkpoint (best.safetensors or checkpoint.safetensors), or train again"


def load(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a checkpoint file, or of the best one in a run directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load as from_bytes

    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise CheckpointError(f"{path}: no {BEST} or {LAST} in this directory",
                                  "give a run's --out directory or a .safetensors checkpoint")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    meta = read_header(raw, path)
    try:
        tensors = from_bytes(raw)
    except SafetensorError as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc})", _AGAIN) from None
    if meta.get("payload_sha256") != tensor_digest(tensors):
        raise CheckpointError(f"{path}: the tensors do not match their checksum: the file is corrupted", _AGAIN)
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: written by a newer cnndsl (format {meta['version']})",
                              "upgrade cnndsl to read it")
    meta["path"] = str(path)
    return meta, tensors


def weights_of(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's own tensors: those without a slash in their name."""
    return {k: v for k, v in tensors.items() if "/" not in k}


_SCALARS = (str, int, float, bool)


def _problem(meta: dict) -> str | None:
    """What is wrong with a checkpoint's metadata for rebuilding its model, or None."""
    if not isinstance(meta.get("spec"), str) or not isinstance(meta.get("network"), str):
        return "'spec' and 'network' must be text"
    params = meta.get("params")
    if not isinstance(params, dict) or not all(isinstance(k, str) and k.isidentifier() and isinstance(v, _SCALARS)
                                               for k, v in params.items()):
        return "'params' must map names to numbers, text or booleans"
    if {"network", "strict", "spec"} & set(params):
        return "'params' holds a name that is not a network parameter"
    shape = meta.get("input")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d > 0 for d in shape):
        return "'input' must be a list of positive integers"
    if "outputs" in meta and (type(meta["outputs"]) is not int or meta["outputs"] < 1):
        return "'outputs' must be a positive integer"
    return _data_problem(meta.get("data"), meta.get("outputs"), shape[0])


def _numbers(values, n: int | None = None) -> bool:
    return isinstance(values, list) and (n is None or len(values) == n) and bool(values) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def _data_problem(data, outputs: int | None, channels: int) -> str | None:
    if not isinstance(data, dict):
        return "'data' must be a table"
    if data.get("task", "regression") not in TASKS or \
            not isinstance(data.get("source", ""), str):
        return "'data.task' must be one of " + ", ".join(TASKS) + ", and 'data.source' text"
    classes = data.get("classes")
    if data.get("task") in CLASS_TASKS and (not isinstance(classes, list) or len(classes) != outputs
                                             or not all(isinstance(c, str) for c in classes)):
        return "'data.classes' must name one class per output"
    norm = data.get("normalize")
    if not isinstance(norm, dict) or not (_numbers(norm.get("mean"), channels) and
                                          _numbers(norm.get("std"), channels)):
        return f"'data.normalize' needs lists 'mean' and 'std' of {channels} numbers (one per input channel)"
    if any(s <= 0 for s in norm["std"]) or not _numbers([norm.get("scale")]) or norm["scale"] <= 0:
        return "'data.normalize' needs positive 'std' values and 'scale'"
    return None


def check_meta(meta: dict) -> dict:
    """The metadata, or a CheckpointError naming the first field that cannot be used."""
    problem = _problem(meta)
    if problem:
        raise CheckpointError(f"{meta.get('path', 'checkpoint')}: not usable: {problem}",
                              "it was not written by `cnndsl train`, or was edited since")
    return meta
