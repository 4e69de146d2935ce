"""Atomic, pickle-free checkpoints (one folder each) and RNG state capture.

Layout of a checkpoint folder:
  model.safetensors      model.state_dict() (tied tensors stored once per key)
  config.json            the run/model config plus "step"
  optimizer.safetensors  tensors of the optimizer state and extra_state    } only when an optimizer
  state.json             {"optimizer": ..., "extra_state": ...}, the rest  } or extra_state is given
In state.json a tensor is {"__tensor__": key} with key "state.{param_id}.{name}" or
"param_groups.{i}.{name}" (optimizer) or "extra.{dotted.path}" (e.g. "extra.rng.torch"),
and a tuple is {"__tuple__": [...]}, so both come back exactly.

Atomicity: everything is written and fsynced in a sibling `<name>.tmp-XXXX`, then
`<name>` -> `<name>.old`, tmp -> `<name>`, `.old` removed. A crash at any point leaves a
complete checkpoint at `<name>` or `<name>.old`; `load_checkpoint` falls back to `.old`
and the next save puts it back in place.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
STATE_TENSORS = "optimizer.safetensors"
STATE = "state.json"
_TENSOR = "__tensor__"
_TUPLE = "__tuple__"


@dataclass
class Checkpoint:
    config: dict  # as saved, without "step"
    weights: dict[str, Tensor]  # CPU tensors
    optimizer_state: dict | None  # for optimizer.load_state_dict
    extra_state: dict | None
    step: int


def save_checkpoint(
    directory: Path,
    model: nn.Module | dict[str, Tensor],
    config: dict,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    extra_state: dict | None = None,
    step: int = 0,
) -> Path:
    """Write a checkpoint folder atomically, replacing any previous one; returns its path.

    `model` is a module or its state dict.
    """
    directory = Path(directory)
    if "step" in config:
        raise ValueError("config must not contain 'step': pass step= instead")
    config_text = _dumps({**config, "step": step}, "config")
    tensors: dict[str, Tensor] = {}
    state_text = None
    if optimizer is not None or extra_state is not None:
        state = {
            "optimizer": None if optimizer is None else _split(optimizer.state_dict(), "", tensors),
            "extra_state": None if extra_state is None else _split(extra_state, "extra", tensors),
        }
        state_text = _dumps(state, "optimizer state / extra_state")

    directory.parent.mkdir(parents=True, exist_ok=True)
    _recover(directory)
    tmp = directory.with_name(f"{directory.name}.tmp-{secrets.token_hex(4)}")
    tmp.mkdir()
    try:
        weights = model if isinstance(model, dict) else model.state_dict()
        save_file(_storable(weights), tmp / WEIGHTS)
        (tmp / CONFIG).write_text(config_text)
        if state_text is not None:
            save_file(_storable(tensors), tmp / STATE_TENSORS)
            (tmp / STATE).write_text(state_text)
        for path in tmp.iterdir():
            _fsync(path)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    old = _old(directory)
    if directory.exists():
        os.rename(directory, old)
    os.rename(tmp, directory)
    _fsync(directory.parent)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def export_model(source: Path, destination: Path, dtype: torch.dtype = torch.float16, model_overrides: dict | None = None) -> Path:
    """A weights-and-config copy of a checkpoint for shipping: no optimizer, floats cast to `dtype`,
    `model_overrides` set in its model config (fields that do not change the weights' meaning).

    Loading casts the weights back to the model's dtype (`load_state_dict` copies values).
    """
    checkpoint = load_checkpoint(source)
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in checkpoint.weights.items()}
    config = checkpoint.config
    if model_overrides:
        config = {**config, "model": {**config["model"], **model_overrides}}
    return save_checkpoint(destination, weights, config, step=checkpoint.step)


def checkpoint_exists(directory: Path) -> bool:
    """True when `load_checkpoint(directory)` has a folder to read (`.old` included)."""
    directory = Path(directory)
    return directory.is_dir() or _old(directory).is_dir()


def read_checkpoint_config(directory: Path) -> dict:
    """A checkpoint's config (its `step` included) without reading any weights."""
    path = _locate(Path(directory)) / CONFIG
    config = _read_json(path)
    if not isinstance(config, dict) or "step" not in config:
        raise ValueError(f"{path} is not a checkpoint config (no 'step')")
    return config


def load_model_checkpoint(directory: str | Path, kind: str, name: str) -> Checkpoint:
    """`load_checkpoint` of a folder that must hold a `kind` model; a ValueError names the
    folder (and the model as `name`) otherwise."""
    checkpoint = load_checkpoint(Path(directory))
    if checkpoint.config.get("kind") != kind:
        raise ValueError(f"{directory}: not a {name} checkpoint (kind {checkpoint.config.get('kind')!r})")
    return checkpoint


def load_checkpoint(directory: Path) -> Checkpoint:
    """Read a checkpoint folder (or its `.old` sibling left by an interrupted save)."""
    directory = _locate(Path(directory))
    config = read_checkpoint_config(directory)
    step = int(config.pop("step"))
    weights = load_file(_existing(directory / WEIGHTS))
    optimizer_state = extra_state = None
    if (directory / STATE).exists():
        state = _read_json(directory / STATE)
        tensors = load_file(_existing(directory / STATE_TENSORS))
        if state["optimizer"] is not None:
            optimizer_state = _restore(state["optimizer"], tensors)
            # JSON object keys are strings; optimizer state is keyed by integer param ids.
            optimizer_state["state"] = {int(k): v for k, v in optimizer_state["state"].items()}
        if state["extra_state"] is not None:
            extra_state = _restore(state["extra_state"], tensors)
    return Checkpoint(config, weights, optimizer_state, extra_state, step)


def load_model_weights(model: nn.Module, checkpoint: Checkpoint) -> None:
    """Strict: missing or unexpected keys raise RuntimeError."""
    model.load_state_dict(checkpoint.weights, strict=True)


def capture_rng_state() -> dict:
    """Python, numpy (global) and torch RNG states: JSON values plus ByteTensors."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    np_state["state"] = {**np_state["state"], "key": np_state["state"]["key"].tolist()}
    state = {"python": [version, list(internal), gauss], "numpy": np_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of `capture_rng_state`; CUDA states are restored only where CUDA is available."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed python, numpy and torch (all devices) with seed + rank; returns that seed."""
    seed = seed + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def _split(obj, key: str, tensors: dict[str, Tensor]):
    """JSON-ready copy of `obj`; tensors move into `tensors` under dotted keys."""
    if isinstance(obj, Tensor):
        if key in tensors:
            raise ValueError(f"two tensors map to the checkpoint key {key!r}")
        tensors[key] = obj
        return {_TENSOR: key}
    if isinstance(obj, dict):
        return {str(k): _split(v, f"{key}.{k}" if key else str(k), tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_split(v, f"{key}.{i}" if key else str(i), tensors) for i, v in enumerate(obj)]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    return obj


def _restore(obj, tensors: dict[str, Tensor]):
    """Inverse of `_split`."""
    if isinstance(obj, dict):
        if obj.keys() == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if obj.keys() == {_TUPLE}:
            return tuple(_restore(v, tensors) for v in obj[_TUPLE])
        return {k: _restore(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_restore(v, tensors) for v in obj]
    return obj


def _storable(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """CPU, contiguous, no two sharing storage (safetensors refuses tied tensors)."""
    out, seen = {}, set()
    for key, t in tensors.items():
        t = t.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[key] = t
    return out


def _old(directory: Path) -> Path:
    return directory.with_name(directory.name + ".old")


def _recover(directory: Path) -> None:
    """Finish or undo an interrupted save: put `.old` back if needed, drop stale tmp folders."""
    old = _old(directory)
    if old.exists():
        if directory.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, directory)
    for tmp in directory.parent.glob(directory.name + ".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _locate(directory: Path) -> Path:
    if directory.is_dir():
        return directory
    if _old(directory).is_dir():
        return _old(directory)
    raise FileNotFoundError(f"no checkpoint at {directory} (nor {_old(directory)})")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    return path


def _read_json(path: Path):
    try:
        return json.loads(_existing(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def _dumps(obj, what: str) -> str:
    try:
        return json.dumps(obj, indent=2)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} is not JSON-serialisable: {e}") from e


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
