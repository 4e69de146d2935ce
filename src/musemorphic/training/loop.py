"""The one training loop every MuseMorphic model uses.

Plain PyTorch: AdamW (weight decay on 2-D weights only), warm-up + cosine learning rate,
ZClip, an optional bf16 autocast (on by default on CUDA), seeds set once (seed + rank),
atomic checkpoints with everything needed to resume, CSV logs, a progress bar, and
DistributedDataParallel when launched by `torchrun`.

A model plugs in through a `Task`: it owns the model, builds the batch of a given step
(from a generator seeded by seed, rank and step, so batches never depend on history) and
computes the loss. Resuming restores weights, optimizer, ZClip and RNG states, so a
resumed run reproduces the uninterrupted loss curve (tests/test_training_loop.py).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from musemorphic.training.checkpoint import (
    capture_rng_state,
    checkpoint_exists,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from musemorphic.training.zclip import ZClip


@dataclass
class TrainConfig:
    out_dir: str
    steps: int = 10_000
    batch_size: int = 64
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    seed: int = 0
    log_every: int = 25
    checkpoint_every: int = 500
    bf16: bool | None = None  # None: on for CUDA, off on CPU (slower there)
    zclip: bool = True
    device: str = "auto"
    max_minutes: float | None = None  # stop (with a checkpoint) after this much wall time
    keep_every: int | None = None  # also keep the weights every this many steps in out_dir/snapshots/step-NNNNNN

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{**d, "betas": tuple(d["betas"])})


class Task(Protocol):
    model: nn.Module

    def batch(self, step: int, rank: int) -> Any: ...

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, float]]: ...

    def checkpoint_config(self) -> dict: ...


@dataclass
class TrainResult:
    steps_done: int
    losses: dict[int, float] = field(default_factory=dict)  # step -> loss, this run only
    stopped_early: bool = False


def learning_rate(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on matrices, and not on those marked `_no_weight_decay`."""
    params = [p for p in model.parameters() if p.requires_grad]
    decays = [p.ndim >= 2 and not getattr(p, "_no_weight_decay", False) for p in params]
    decay = [p for p, d in zip(params, decays) if d]
    no_decay = [p for p, d in zip(params, decays) if not d]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _distributed() -> tuple[int, int]:
    """(rank, world size), starting the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def leave_process_group() -> None:
    """End a torchrun job cleanly: wait for every rank, then close the process group while the
    interpreter is fully alive (a no-op outside torchrun)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def train(
    task: Task,
    config: TrainConfig,
    progress: Callable[[int, int, dict], None] | None = None,
) -> TrainResult:
    """Train (or resume) `task.model` to `config.steps`; checkpoints go to out_dir/checkpoint."""
    rank, world = _distributed()
    out_dir = Path(config.out_dir)
    ckpt_dir = out_dir / "checkpoint"
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    use_bf16 = config.bf16 if config.bf16 is not None else device.type == "cuda"
    seed_everything(config.seed, rank)

    model = task.model.to(device)
    optimizer = make_optimizer(model, config)
    zclip = ZClip() if config.zclip else None
    start_step, elapsed_before = 0, 0.0  # steps and training seconds of the runs this one resumes
    if checkpoint_exists(ckpt_dir):
        ckpt = load_checkpoint(ckpt_dir)
        _check_same_settings(ckpt_dir, ckpt.config, task.checkpoint_config())
        try:
            model.load_state_dict(ckpt.weights, strict=True)
        except RuntimeError as err:  # a setting newer than the checkpoint, absent from it, that changes the weights
            raise ValueError(
                f"{ckpt_dir}: its weights do not fit the model these options build; resume it with the options "
                f"it began with, or train into a new folder ({str(err).splitlines()[0]})"
            ) from err
        optimizer.load_state_dict(ckpt.optimizer_state)
        start_step = ckpt.step
        extra = ckpt.extra_state or {}
        if zclip is not None and "zclip" in extra:
            zclip.load_state_dict(extra["zclip"])
        restore_rng_state(extra["rng"][rank])
        elapsed_before = extra.get("elapsed_s", 0.0)
    wrapped = nn.parallel.DistributedDataParallel(model) if world > 1 else model

    log_path = out_dir / "log.csv"
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _truncate_log(log_path, start_step)
    result = TrainResult(steps_done=start_step)
    started = time.perf_counter()
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
    )
    model.train()
    for step in range(start_step, config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        batch = _to_device(task.batch(step, rank), device)
        with autocast:
            loss, metrics = task.loss(wrapped, batch, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = zclip.step(model.parameters()) if zclip is not None else _grad_norm(model)
        optimizer.step()
        loss_value = float(loss.detach())
        result.losses[step] = loss_value
        result.steps_done = step + 1
        run_s = time.perf_counter() - started  # this run's seconds so far (the time limit is per run)
        row = {
            "step": step,
            "loss": loss_value,
            "lr": learning_rate(config, step),
            "grad_norm": grad_norm,
            "elapsed_s": round(elapsed_before + run_s, 1),
            **metrics,
        }
        if rank == 0 and (step % config.log_every == 0 or step + 1 == config.steps):
            _append_log(log_path, row)
        out_of_time = _any_rank(config.max_minutes is not None and run_s > 60 * config.max_minutes, world, device)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps or out_of_time:
            _checkpoint(task, model, optimizer, zclip, config, step + 1, elapsed_before + run_s, ckpt_dir, rank, world)
        if rank == 0 and config.keep_every and (step + 1) % config.keep_every == 0:
            _snapshot(task, model, step + 1, elapsed_before + run_s, out_dir)
        if progress is not None and rank == 0:
            progress(step + 1, config.steps, row)
        if out_of_time:
            result.stopped_early = True
            break
    return result


def _checkpoint(task, model, optimizer, zclip, config, step, elapsed_s, ckpt_dir, rank, world) -> None:
    rng = [capture_rng_state()]
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, rng[0])
        rng = gathered
    if rank == 0:
        extra = {"rng": rng, "train_config": config.to_dict(), "elapsed_s": elapsed_s}
        if zclip is not None:
            extra["zclip"] = zclip.state_dict()
        save_checkpoint(ckpt_dir, model, task.checkpoint_config(), optimizer=optimizer, extra_state=extra, step=step)
    if world > 1:
        dist.barrier()


def _any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when it is true on any (ranks' clocks differ; they must stop together)."""
    if world == 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def _snapshot(task, model, step, elapsed_s, out_dir: Path) -> None:
    """The weights and config at `step` (no optimizer): a learning curve can be measured later."""
    save_checkpoint(out_dir / "snapshots" / f"step-{step:06d}", model, task.checkpoint_config(),
                    extra_state={"elapsed_s": elapsed_s}, step=step)


def _check_same_settings(ckpt_dir: Path, saved: dict, current: dict) -> None:
    """A resumed run must go on with the model and task settings it began with (settings
    newer than the checkpoint, absent from it, are let through)."""
    changed = _changed_settings(saved, json.loads(json.dumps(current)))  # as the checkpoint stores it
    if changed:
        raise ValueError(
            f"{ckpt_dir}: the run there began with other settings ({', '.join(changed)} differ); "
            "resume it with the options and data it began with, or train into a new folder"
        )


def _changed_settings(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted names of the settings in `saved` that `current` lacks or holds otherwise."""
    changed = []
    for key, value in saved.items():
        if key not in current:
            changed.append(prefix + key)
        elif isinstance(value, dict) and isinstance(current[key], dict):
            changed += _changed_settings(value, current[key], f"{prefix}{key}.")
        elif value != current[key]:
            changed.append(prefix + key)
    return changed


def _grad_norm(model: nn.Module) -> float:
    grads = [p.grad.detach().flatten() for p in model.parameters() if p.grad is not None]
    return float(torch.cat(grads).norm()) if grads else 0.0


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    if hasattr(batch, "to"):  # a batch class of its own (e.g. GridBatch)
        return batch.to(device)
    return batch


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _truncate_log(path: Path, start_step: int) -> None:
    """Drop log rows from steps a resumed run will redo."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(r["step"]) < start_step]
    if not keep:
        path.unlink()
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(keep[0]))
        writer.writeheader()
        writer.writerows(keep)
