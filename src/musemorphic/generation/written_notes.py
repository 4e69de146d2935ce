"""What the generator writes from one decoded bar of one track."""

from __future__ import annotations

import numpy as np

from musemorphic.data.augment import DRUM_PROGRAM
from musemorphic.data.bar_timing import POSITIONS_PER_BEAT, TimedNote, bar_notes, bar_ticks, beat_ticks
from musemorphic.data.tokenizer import PhraseTokenizer

TPQ = 480  # ticks per quarter note of generated files


def fits_track(tokenizer: PhraseTokenizer, bar: list[int], program: int) -> bool:
    """Whether a bar's notes are of its track's kind: drum notes on drums, pitches elsewhere."""
    wrong_kind = "Pitch_" if program == DRUM_PROGRAM else "PitchDrum_"
    return not any(tokenizer.base_names[i].startswith(wrong_kind) for i in bar)


def written_notes(tokenizer: PhraseTokenizer, bar: list[int], bar_length: int | None = None) -> list[TimedNote]:
    """The notes of a grammatical bar that the generator writes: those starting inside the bar
    (`bar_length` ticks; default: the length of the bar's own time signature)."""
    return _written_bar(tokenizer, bar, bar_length)[1]


def _written_bar(tokenizer: PhraseTokenizer, bar: list[int], bar_length: int | None) -> tuple[tuple[int, int], list[TimedNote]]:
    """A grammatical bar's time signature and `written_notes`, from one parse."""
    time_signature, notes = bar_notes(tokenizer.token_names(bar), TPQ)
    length = bar_length if bar_length is not None else bar_ticks(TPQ, time_signature)
    return time_signature, [note for note in notes if note.start < length]


def phrase_facts(tokenizer: PhraseTokenizer, bar: list[int] | None, program: int, bar_length: int | None = None) -> np.ndarray:
    """(13,) onsets, then quarter notes sounded per pitch class (pitched tracks only), of a
    decoded bar's `written_notes`: nothing for an ungrammatical (None) or wrong-kind bar.
    What a PhraseCritic learns to predict."""
    facts = np.zeros(13)
    if bar is None or not fits_track(tokenizer, bar, program):
        return facts
    for note in written_notes(tokenizer, bar, bar_length):
        facts[0] += 1
        if program != DRUM_PROGRAM:
            facts[1 + note.pitch % 12] += max(note.duration, 1) / TPQ
    return facts


def sounded_classes(facts: list[np.ndarray]) -> np.ndarray:
    """(12,) bool: the pitch classes that sound in a bar, from its tracks' (13,) `phrase_facts`."""
    return np.sum(facts, axis=0)[1:] > 0


def bar_cells(time_signature: tuple[int, int]) -> int:
    """Cells of a bar's onset grid: a quarter of a beat each, as the groove metric's."""
    return bar_ticks(TPQ, time_signature) // _cell_ticks(time_signature)


def _cell_ticks(time_signature: tuple[int, int]) -> int:
    """Ticks of one onset-grid cell: a quarter of the time signature's beat."""
    return beat_ticks(TPQ, time_signature[1]) // POSITIONS_PER_BEAT


def onset_cells(tokenizer: PhraseTokenizer, bar: list[int] | None, program: int, cells: int, bar_length: int | None = None) -> np.ndarray:
    """(cells,) 1 where a `written_notes` note of a decoded bar starts, 0 elsewhere: cells of a
    quarter of a beat, as the groove metric's grid (`music_metrics.onset_grid`), the first
    `cells` of the bar only. Nothing for an ungrammatical (None) or wrong-kind bar."""
    grid = np.zeros(cells)
    if bar is None or not fits_track(tokenizer, bar, program):
        return grid
    time_signature, notes = _written_bar(tokenizer, bar, bar_length)
    starts = np.array([note.start // _cell_ticks(time_signature) for note in notes], dtype=np.int64)
    grid[starts[starts < cells]] = 1
    return grid
