"""Piano rolls: binary (pitch x time) pictures of notes, their zero-fill shifts, and toy blobs.

A roll is a float tensor (..., P, T): P pitches (row 0 = MIDI pitch 0 for real music) by
T steps of a sixteenth note; a cell is 1 while a note sounds. Shifting a roll along the
pitch axis is transposition and along the time axis an onset shift; `shift_no_wrap`
zero-fills what moves in (notes pushed past an edge are lost, nothing wraps around).
Seed 001 uses random binary blobs as a stand-in for rolls (`random_blobs`).
"""

from __future__ import annotations

import numpy as np
import torch

from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.remi_grammar import GrammarError
from musemorphic.data.bar_timing import bar_notes, bar_ticks

PITCH_AXIS, TIME_AXIS = -2, -1
STEPS_PER_QUARTER = 4  # sixteenth-note grid


def shift_no_wrap(x: torch.Tensor, shift: int, dim: int) -> torch.Tensor:
    """`torch.roll` with zero fill instead of wrap-around (a new tensor)."""
    out = torch.roll(x, shifts=shift, dims=dim)
    n = min(abs(shift), x.size(dim))
    if shift > 0:
        out.narrow(dim, 0, n).zero_()
    elif shift < 0:
        out.narrow(dim, x.size(dim) - n, n).zero_()
    return out


def shift_each(x: torch.Tensor, shifts: torch.Tensor, dim: int) -> torch.Tensor:
    """Row b of x (B, ...) shifted by shifts[b] along `dim`, zero-filled."""
    out = torch.empty_like(x)
    for value in shifts.unique().tolist():
        rows = shifts == value
        out[rows] = shift_no_wrap(x[rows], int(value), dim)
    return out


def random_blobs(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """n binary blob images (n, size, size): sums of 2-5 random Gaussian bumps of random
    heights, thresholded at a third of their peak; bump centres keep a quarter of the image
    from each border, so small shifts move most blobs without cutting them."""
    grid = torch.arange(size, dtype=torch.float32)
    images = torch.zeros(n, size, size)
    margin = size / 4
    count = 2 + (torch.rand(n, generator=generator) * 4).long()  # (n,) bumps per image
    for bump in range(5):
        centre = margin + torch.rand(n, 2, generator=generator) * (size - 2 * margin)  # (n, 2)
        width = 0.7 + torch.rand(n, 2, generator=generator) * size / 10  # (n, 2)
        height = (0.5 + 0.5 * torch.rand(n, generator=generator)) * (bump < count)  # (n,)
        rows = torch.exp(-0.5 * ((grid[None, :] - centre[:, :1]) / width[:, :1]) ** 2)  # (n, size)
        cols = torch.exp(-0.5 * ((grid[None, :] - centre[:, 1:]) / width[:, 1:]) ** 2)  # (n, size)
        images += height[:, None, None] * rows[:, :, None] * cols[:, None, :]
    peak = images.flatten(1).amax(1)[:, None, None]
    return (images > peak / 3).float()


def track_roll(bars: list[np.ndarray], tokenizer) -> np.ndarray:
    """(128, steps) binary roll of one track's base-id bars; malformed bars stay silent."""
    starts, lengths, notes = [], [], []
    position = 0
    for bar in bars:
        names = tokenizer.token_names(bar.tolist())
        try:
            time_signature, timed = bar_notes(names, STEPS_PER_QUARTER)
        except GrammarError:
            time_signature, timed = (4, 4), []
        starts.append(position)
        notes.append(timed)
        length = bar_ticks(STEPS_PER_QUARTER, time_signature)
        lengths.append(length)
        position += length
    roll = np.zeros((128, position), dtype=np.uint8)
    for start, timed in zip(starts, notes):
        for note in timed:
            onset = start + note.start
            roll[note.pitch, onset : onset + max(1, note.duration)] = 1
    return roll


def roll_windows(
    dataset: PhraseDataset, width: int, max_windows: int, seed: int, min_notes: int = 3
) -> torch.Tensor:
    """Up to `max_windows` random (128, width) windows of pitched tracks of the dataset's
    songs, each holding at least `min_notes` onsets; float tensor (N, 128, width)."""
    rng = np.random.default_rng(seed)
    candidates = []
    for song in dataset.song_indices:
        meta = dataset.shard.songs[song]
        candidates += [(song, track) for track, program in enumerate(meta["programs"]) if program != -1]
    rng.shuffle(candidates)
    per_track = -(-2 * max_windows // max(1, len(candidates)))  # ceil: spread windows over tracks
    windows = []
    for song, track in candidates:
        roll = track_roll(dataset.song_grid(song)[track], dataset.tokenizer)
        onsets = np.diff(roll, axis=1, prepend=0) > 0  # (128, steps)
        starts = np.arange(0, roll.shape[1] - width + 1, width // 2)
        counts = np.array([onsets[:, s : s + width].sum() for s in starts], dtype=np.int64)
        good = starts[counts >= min_notes]
        for start in rng.permutation(good)[:per_track]:
            windows.append(roll[:, start : start + width])
        if len(windows) >= max_windows:
            break
    if not windows:
        raise ValueError(f"{dataset.directory}: no {width}-step window of a pitched track holds {min_notes} notes")
    return torch.from_numpy(np.stack(windows[:max_windows])).float()
