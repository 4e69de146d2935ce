"""Seed 001's experiment: train an encoder with the factorization loss, then measure it.

Two sources of inputs: random binary blobs (the toy, `--toy`) and windows of real music
(a prepared dataset: pitch shift = transposition, time shift = onset shift, both zero-filled).
Training goes through the shared loop (checkpoints, resume, CSV log); figures are measured
on held-out inputs (fresh blobs, or windows of the dataset's test split).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from musemorphic.data.pianoroll import PITCH_AXIS, TIME_AXIS, random_blobs, roll_windows, shift_each
from musemorphic.evaluation.factorization import Embed, FactorizationFigures, measure_factorization
from musemorphic.models.pianoroll_encoder import PianoRollEncoder, pianoroll_encoder_config
from musemorphic.training.checkpoint import load_model_checkpoint
from musemorphic.training.factorization import FactorizationConfig, RollFactorizationTask
from musemorphic.training.loop import TrainConfig, train

TOY_SIZE = 16
HELD_OUT_SEED = 10_000  # blobs for measuring are drawn from a generator training never uses


@dataclass
class ExperimentResult:
    figures: FactorizationFigures
    steps: int
    seconds: float
    checkpoint: Path


def roll_embed(model: PianoRollEncoder, rolls: torch.Tensor, batch_size: int = 512) -> Embed:
    """An `Embed` over fixed rolls (N, P, T): shift each with zero fill, then encode."""

    device = next(model.parameters()).device

    @torch.no_grad()
    def embed(items: torch.Tensor, pitch: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        shifted = shift_each(shift_each(rolls[items], pitch, PITCH_AXIS), time, TIME_AXIS)
        return torch.cat([model(chunk.to(device)).float().cpu() for chunk in shifted.split(batch_size)])

    return embed


def toy_inputs(generator: torch.Generator, n: int) -> torch.Tensor:
    return random_blobs(n, TOY_SIZE, generator)


def window_inputs(windows: torch.Tensor) -> Callable[[torch.Generator, int], torch.Tensor]:
    def inputs(generator: torch.Generator, n: int) -> torch.Tensor:
        return windows[torch.randint(len(windows), (n,), generator=generator)]

    return inputs


def run_factorization(
    train_inputs: Callable[[torch.Generator, int], torch.Tensor],
    held_out: torch.Tensor,
    preset: str,
    factorization: FactorizationConfig,
    train_config: TrainConfig,
    data_description: dict,
    progress=None,
) -> ExperimentResult:
    """Train (or resume) a piano-roll encoder in train_config.out_dir and measure it on
    `held_out` rolls; `seconds` is this call's training time."""
    height, width = held_out.shape[1:]
    torch.manual_seed(train_config.seed)
    model = PianoRollEncoder(pianoroll_encoder_config(preset, height=height, width=width))
    task = RollFactorizationTask(model, train_inputs, train_config.batch_size, train_config.seed, factorization, data_description)
    start = time.perf_counter()
    result = train(task, train_config, progress=progress)
    seconds = time.perf_counter() - start
    model.eval()
    figures = measure_factorization(
        roll_embed(model, held_out), len(held_out), factorization.max_pitch_shift, factorization.max_time_shift
    )
    return ExperimentResult(figures, result.steps_done, round(seconds, 1), Path(train_config.out_dir) / "checkpoint")


def toy_held_out(n: int) -> torch.Tensor:
    return random_blobs(n, TOY_SIZE, torch.Generator().manual_seed(HELD_OUT_SEED))


def music_windows(data: Path, split: str, width: int, max_windows: int, seed: int) -> torch.Tensor:
    from musemorphic.data.dataset import PhraseDataset

    return roll_windows(PhraseDataset(data, split=split), width, max_windows, seed)


def load_roll_encoder(directory: Path) -> tuple[PianoRollEncoder, dict]:
    """A trained piano-roll encoder (strict weights) and its checkpoint config."""
    from musemorphic.models.pianoroll_encoder import PianoRollEncoderConfig

    ckpt = load_model_checkpoint(directory, "pianoroll_encoder", "piano-roll encoder")
    model = PianoRollEncoder(PianoRollEncoderConfig.from_dict(ckpt.config["model"]))
    model.load_state_dict(ckpt.weights, strict=True)
    return model.eval(), ckpt.config
