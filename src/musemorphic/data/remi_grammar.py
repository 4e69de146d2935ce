"""The grammar of one REMI+ bar, and the notes it holds.

A bar (base token names) is:
    Bar  [TimeSig_n/d]  { Position_k  [Tempo_t]  { Pitch_p | PitchDrum_p  Velocity_v  Duration_d } }
with positions strictly increasing and inside the bar (n * 4 positions per bar: 4 per
beat of the time signature's denominator). Used to judge generated phrases and to compare
reconstructions note by note.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


class GrammarError(ValueError):
    """A token sequence that is not a well-formed REMI+ bar."""


@dataclass(frozen=True)
class BarNote:
    position: int  # onset, in positions from the bar start
    pitch: int
    velocity: int
    duration: str  # the Duration token value, e.g. "1.2.4"


def parse_bar(names: list[str], positions_per_beat: int = 4) -> tuple[tuple[int, int], list[BarNote]]:
    """Check the grammar of one bar; return its time signature and notes."""
    if not names or names[0] != "Bar_None":
        raise GrammarError("a bar must start with Bar")
    i = 1
    time_signature = (4, 4)
    if i < len(names) and names[i].startswith("TimeSig_"):
        num, den = names[i].split("_")[1].split("/")
        time_signature = (int(num), int(den))
        i += 1
    n_positions = time_signature[0] * positions_per_beat
    notes: list[BarNote] = []
    position = -1
    while i < len(names):
        kind, _, value = names[i].partition("_")
        if kind != "Position":
            raise GrammarError(f"expected Position at token {i}, got {names[i]}")
        new_position = int(value)
        if new_position >= n_positions:
            raise GrammarError(f"position {new_position} outside a {n_positions}-position bar")
        if new_position <= position:
            raise GrammarError(f"position {new_position} out of order (after {position})")
        position = new_position
        i += 1
        if i < len(names) and names[i].startswith("Tempo_"):
            i += 1
        n_before = len(notes)
        while i < len(names) and names[i].startswith(("Pitch_", "PitchDrum_")):
            if i + 2 >= len(names):
                raise GrammarError(f"note at token {i} is cut short")
            velocity, duration = names[i + 1], names[i + 2]
            if not velocity.startswith("Velocity_") or not duration.startswith("Duration_"):
                raise GrammarError(f"note at token {i} lacks Velocity/Duration")
            notes.append(
                BarNote(position, int(names[i].split("_")[1]), int(velocity.split("_")[1]), duration.split("_")[1])
            )
            i += 3
        if len(notes) == n_before and not names[i - 1].startswith("Tempo_"):
            raise GrammarError(f"Position_{position} holds neither a note nor a tempo")
    return time_signature, notes


def grammatical_prefix(names: list[str], positions_per_beat: int = 4) -> int:
    """Length of the longest prefix of a bar's token names that is a well-formed bar, cut
    at its end, before one of its Position or note (Pitch) tokens, or after its head
    (`Bar [TimeSig]`); 0 when not even the head parses. So the complete notes before the
    first fault are kept, those of its own position included."""
    head = 2 if len(names) > 1 and names[1].startswith("TimeSig_") else 1
    starts = ("Position_", "Pitch_", "PitchDrum_")
    cuts = [len(names), *(i for i in range(len(names) - 1, head, -1) if names[i].startswith(starts)), head]
    for cut in cuts:
        try:
            parse_bar(names[:cut], positions_per_beat)
            return cut
        except GrammarError:
            continue
    return 0


def note_f1(reference: list[BarNote], predicted: list[BarNote]) -> tuple[int, int, int]:
    """(matched, n_reference, n_predicted) with notes matched on (onset position, pitch)."""
    ref = Counter((n.position, n.pitch) for n in reference)
    pred = Counter((n.position, n.pitch) for n in predicted)
    return sum((ref & pred).values()), len(reference), len(predicted)


def note_set(notes: list[BarNote]) -> list[tuple[int, int, str]]:
    """A bar's notes by (onset position, pitch, duration): what an exact reconstruction gives back."""
    return sorted((n.position, n.pitch, n.duration) for n in notes)


def precision_recall_f1(matched: int, n_reference: int, n_predicted: int) -> tuple[float, float, float]:
    """Note precision, recall and F1 from `note_f1`'s counts (summed over bars)."""
    precision, recall = matched / max(n_predicted, 1), matched / max(n_reference, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)
