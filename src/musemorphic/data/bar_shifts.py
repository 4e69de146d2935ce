"""Transposition and onset shifts of one REMI+ bar, as token edits (base ids in, base ids out).

Both are zero-fill shifts, like `shift_no_wrap` on a piano roll: a note transposed past the
vocabulary's pitch range, or moved out of the bar, is dropped, and nothing wraps around.
Drum notes (`PitchDrum_*`) are never transposed. A position left with neither a note nor a
tempo is removed, so the result is always a well-formed bar (tests/test_bar_shifts.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from musemorphic.data.augment import DRUM_PROGRAM
from musemorphic.data.remi_grammar import parse_bar
from musemorphic.data.tokenizer import PhraseTokenizer

POSITIONS_PER_BEAT = 4


def shift_bar(tokenizer: PhraseTokenizer, bar: list[int], semitones: int = 0, positions: int = 0) -> list[int]:
    """The bar (base ids) transposed by `semitones` and with every onset moved by `positions`."""
    names = tokenizer.token_names(bar)
    (numerator, _), _ = parse_bar(names, POSITIONS_PER_BEAT)  # GrammarError if malformed
    n_positions = numerator * POSITIONS_PER_BEAT
    vocab = tokenizer.base_vocab
    out = names[:1] + ([names[1]] if len(names) > 1 and names[1].startswith("TimeSig_") else [])
    i = len(out)
    while i < len(names):
        position = int(names[i].split("_")[1]) + positions
        i += 1
        group = []
        if i < len(names) and names[i].startswith("Tempo_"):
            group.append(names[i])
            i += 1
        while i < len(names) and names[i].startswith(("Pitch_", "PitchDrum_")):
            pitch, velocity, duration = names[i : i + 3]
            i += 3
            if pitch.startswith("Pitch_"):
                pitch = f"Pitch_{int(pitch.split('_')[1]) + semitones}"
                if pitch not in vocab:
                    continue
            group += [pitch, velocity, duration]
        if group and 0 <= position < n_positions:
            out += [f"Position_{position}", *group]
    return [vocab[name] for name in out]


def pitched(tokenizer: PhraseTokenizer, bar: Sequence[int], program: int) -> bool:
    """Whether a base-id bar of a track with this program holds a note transposition moves."""
    return program != DRUM_PROGRAM and any(tokenizer.base_names[i].startswith("Pitch_") for i in bar)
