"""Statistics of a stretch of music, to compare generated and real music (EVALUATION.md).

Music is measured in windows of whole bars (8 by default). Each metric gives one number
per window, or NaN where it is undefined (a window without pitched notes has no pitch
range). Pitch metrics use pitched notes only; rhythm metrics (groove, empty beats, notes
per bar) use drums too.

- pitch-class entropy: bits, of the duration-weighted 12-bin pitch-class histogram;
- scale consistency: the largest share of notes (by count) inside one of the 24 major or
  natural-minor scales;
- groove consistency: 1 - mean Hamming distance between the onset grids (a quarter of a
  beat per cell) of consecutive bars of the same length, divided by the grid size; pairs of
  silent bars are left out (silence has no groove);
- empty-beat rate: share of beats in which no note sounds, notes held over a bar line included;
- polyphony: mean number of pitched notes sounding at each distinct pitched onset;
- pitch range: highest minus lowest pitch, semitones;
- notes per bar: all notes divided by the number of bars.

Glossary: N notes in a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musemorphic.data.bar_timing import POSITIONS_PER_BEAT, bar_notes, bar_ticks, beat_ticks
from musemorphic.data.controls import MAJOR_STEPS, NATURAL_MINOR_STEPS
from musemorphic.data.remi_grammar import GrammarError
from musemorphic.data.tokenizer import PhraseTokenizer

METRICS = (
    "pitch_class_entropy",
    "scale_consistency",
    "groove_consistency",
    "empty_beat_rate",
    "polyphony",
    "pitch_range",
    "notes_per_bar",
)
TPQ = 480


@dataclass(frozen=True)
class Bar:
    """The notes of one bar, all tracks together."""

    notes: np.ndarray  # (N, 4) int: start (ticks from the bar start), duration, pitch, is_drum
    ticks: int  # bar length
    beat: int  # ticks per beat


def make_bar(notes: Sequence[tuple[int, int, int, int]], time_signature: tuple[int, int] = (4, 4), tpq: int = TPQ) -> Bar:
    """A Bar from (start, duration, pitch, is_drum) tuples."""
    array = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
    return Bar(array, bar_ticks(tpq, time_signature), beat_ticks(tpq, time_signature[1]))


def song_bars(tokenizer: PhraseTokenizer, tracks: Sequence[tuple[int, Sequence[Sequence[int]]]], tpq: int = TPQ) -> list[Bar]:
    """Bars of a song given as (program, [base ids per bar]) per track; program -1 is drums.

    A bar's time signature is the first one found among its tracks' phrases; an
    ungrammatical phrase contributes no notes.
    """
    n_bars = max((len(bars) for _, bars in tracks), default=0)
    out = []
    for b in range(n_bars):
        time_signature, rows = (4, 4), []
        found = False
        for program, bars in tracks:
            if b >= len(bars):
                continue
            try:
                ts, notes = bar_notes(tokenizer.token_names(bars[b]), tpq)
            except GrammarError:
                continue
            if not found:
                time_signature, found = ts, True
            rows.extend((n.start, n.duration, n.pitch, int(program == -1)) for n in notes)
        out.append(make_bar(rows, time_signature, tpq))
    return out


def windows(bars: Sequence[Bar], size: int = 8) -> list[list[Bar]]:
    """Consecutive non-overlapping windows of `size` bars (a shorter tail is dropped,
    unless the song is shorter than one window)."""
    if len(bars) < size:
        return [list(bars)] if bars else []
    return [list(bars[i : i + size]) for i in range(0, len(bars) - size + 1, size)]


def window_metrics(bars: Sequence[Bar]) -> dict[str, float]:
    """Every metric of METRICS for one window of bars."""
    notes = window_notes(bars)
    pitched = notes[notes[:, 3] == 0]
    return {
        "pitch_class_entropy": pitch_class_entropy(pitched),
        "scale_consistency": scale_consistency(pitched),
        "groove_consistency": groove_consistency(bars),
        "empty_beat_rate": empty_beat_rate(notes, bars),
        "polyphony": polyphony(pitched),
        "pitch_range": float(pitched[:, 2].max() - pitched[:, 2].min()) if len(pitched) else float("nan"),
        "notes_per_bar": len(notes) / len(bars) if bars else float("nan"),
    }


def window_notes(bars: Sequence[Bar]) -> np.ndarray:
    """(N, 4) the notes of a window of bars, starts in ticks from the window's start."""
    offsets = bar_offsets(bars)
    return np.concatenate([b.notes + [offsets[i], 0, 0, 0] for i, b in enumerate(bars)]) if bars else np.zeros((0, 4), np.int64)


def bar_offsets(bars: Sequence[Bar]) -> np.ndarray:
    """(len(bars) + 1,) ticks from a window's start to each bar's start, then to its end."""
    return np.cumsum([0] + [b.ticks for b in bars])


def pitch_class_entropy(pitched: np.ndarray) -> float:
    """Entropy in bits of the duration-weighted pitch-class histogram of (N, 4) notes."""
    weights = np.bincount(pitched[:, 2] % 12, weights=np.maximum(pitched[:, 1], 1), minlength=12)
    if weights.sum() == 0:
        return float("nan")
    p = weights[weights > 0] / weights.sum()
    return float(-(p * np.log2(p)).sum())


def scale_consistency(pitched: np.ndarray) -> float:
    """Largest share of notes inside one major or natural-minor scale."""
    if len(pitched) == 0:
        return float("nan")
    counts = np.bincount(pitched[:, 2] % 12, minlength=12)
    return float(counts[best_scale(counts)].sum() / len(pitched))


def best_scale(counts: np.ndarray) -> list[int]:
    """The pitch classes of the major or natural-minor scale holding most of (12,) pitch-class
    note counts (the first such scale: C major before C minor before C# major ...)."""
    scales = [[(tonic + step) % 12 for step in steps] for tonic in range(12) for steps in (MAJOR_STEPS, NATURAL_MINOR_STEPS)]
    return max(scales, key=lambda scale: counts[scale].sum())


def onset_grid(bar: Bar) -> np.ndarray:
    """Boolean onset grid of a bar, one cell per quarter of a beat."""
    cell = max(1, bar.beat // POSITIONS_PER_BEAT)
    grid = np.zeros(max(1, bar.ticks // cell), dtype=bool)
    inside = bar.notes[(bar.notes[:, 0] >= 0) & (bar.notes[:, 0] < bar.ticks), 0]
    grid[np.minimum(inside // cell, len(grid) - 1)] = True
    return grid


def groove_consistency(bars: Sequence[Bar]) -> float:
    """1 - mean Hamming distance / grid size over consecutive bars of the same length that
    are not both silent (NaN when no such pair exists)."""
    grids = [onset_grid(b) for b in bars]
    distances = [np.mean(a != b) for a, b in zip(grids, grids[1:]) if len(a) == len(b) and (a.any() or b.any())]
    return float(1 - np.mean(distances)) if distances else float("nan")


def empty_beat_rate(notes: np.ndarray, bars: Sequence[Bar]) -> float:
    """Share of beats in which no note (drums included) sounds; notes (N, 4) in window ticks
    (`window_notes` of the bars)."""
    if not bars:
        return float("nan")
    offsets = bar_offsets(bars)
    starts = np.concatenate([offsets[i] + np.arange(max(1, b.ticks // b.beat)) * b.beat for i, b in enumerate(bars)])  # (beats,)
    ends = np.concatenate([starts[1:], offsets[-1:]])  # each beat runs to the next one (the last to the window's end)
    note_ends = notes[:, 0] + np.maximum(notes[:, 1], 1)  # (N,)
    sounding = (notes[None, :, 0] < ends[:, None]) & (note_ends[None, :] > starts[:, None])  # (beats, N)
    return float((~sounding.any(axis=1)).mean())


def polyphony(pitched: np.ndarray) -> float:
    """Mean number of notes sounding at each distinct onset of (N, 4) pitched notes."""
    if len(pitched) == 0:
        return float("nan")
    onsets = np.unique(pitched[:, 0])  # (K,)
    ends = pitched[:, 0] + np.maximum(pitched[:, 1], 1)
    sounding = (pitched[None, :, 0] <= onsets[:, None]) & (ends[None, :] > onsets[:, None])  # (K, N)
    return float(sounding.sum(axis=1).mean())
