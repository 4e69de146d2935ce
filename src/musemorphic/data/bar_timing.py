"""One bar of base tokens -> timed notes (no whole-song decode needed).

Time follows miditok's REMI: a bar of n/d has n * 4 positions, each a quarter of a 1/d
note; a Duration "b.p.r" lasts b + p/r beats of 1/d. tests/test_generation.py checks these
notes against miditok's own decoding of the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from musemorphic.data.remi_grammar import parse_bar
from musemorphic.data.tokenizer import parse_duration

POSITIONS_PER_BEAT = 4


@dataclass(frozen=True)
class TimedNote:
    start: int  # ticks from the bar start
    duration: int  # ticks
    pitch: int
    velocity: int


def beat_ticks(tpq: int, denominator: int) -> int:
    """Ticks in one beat of a 1/denominator note."""
    return tpq * 4 // denominator


def bar_ticks(tpq: int, time_signature: tuple[int, int]) -> int:
    num, den = time_signature
    return num * beat_ticks(tpq, den)


def bar_notes(names: list[str], tpq: int) -> tuple[tuple[int, int], list[TimedNote]]:
    """Time signature and timed notes of one bar's base token names (GrammarError if malformed)."""
    time_signature, notes = parse_bar(names, POSITIONS_PER_BEAT)
    beat = beat_ticks(tpq, time_signature[1])
    timed = []
    for note in notes:
        beats, part, res = parse_duration(note.duration)
        timed.append(
            TimedNote(
                start=note.position * beat // POSITIONS_PER_BEAT,
                duration=beats * beat + part * beat // res,
                pitch=note.pitch,
                velocity=note.velocity,
            )
        )
    return time_signature, timed


def first_tempo(names: list[str]) -> float | None:
    """The first Tempo token's BPM in a bar, if any."""
    for name in names:
        if name.startswith("Tempo_"):
            return float(name.split("_")[1])
    return None

