"""What the generator writes from one decoded bar of one track."""

from __future__ import annotations

import numpy as np

from musemorphic.data.augment import DRUM_PROGRAM
from musemorphic.data.bar_timing import TimedNote, bar_notes, bar_ticks
from musemorphic.data.tokenizer import PhraseTokenizer

TPQ = 480  # ticks per quarter note of generated files


def fits_track(tokenizer: PhraseTokenizer, bar: list[int], program: int) -> bool:
    """Whether a bar's notes are of its track's kind: drum notes on drums, pitches elsewhere."""
    wrong_kind = "Pitch_" if program == DRUM_PROGRAM else "PitchDrum_"
    return not any(tokenizer.base_names[i].startswith(wrong_kind) for i in bar)


def written_notes(tokenizer: PhraseTokenizer, bar: list[int], bar_length: int | None = None) -> list[TimedNote]:
    """The notes of a grammatical bar that the generator writes: those starting inside the bar
    (`bar_length` ticks; default: the length of the bar's own time signature)."""
    time_signature, notes = bar_notes(tokenizer.token_names(bar), TPQ)
    length = bar_length if bar_length is not None else bar_ticks(TPQ, time_signature)
    return [note for note in notes if note.start < length]


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
