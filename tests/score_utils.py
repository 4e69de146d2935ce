"""Comparing scores note for note."""

from __future__ import annotations

import symusic


def notes_of(score: symusic.Score) -> list[tuple]:
    """Canonical note content: sorted (program, is_drum, notes) per non-empty track.

    Drum tracks get program -1: a drum kit has no program to keep.
    """
    tracks = []
    for track in score.tracks:
        if track.note_num() == 0:
            continue
        program = -1 if track.is_drum else track.program
        notes = tuple(sorted((n.time, n.duration, n.pitch, n.velocity) for n in track.notes))
        tracks.append((program, track.is_drum, notes))
    return sorted(tracks)


def same_resolution(reference: symusic.Score, other: symusic.Score) -> symusic.Score:
    """`reference` resampled to `other`'s ticks per quarter (exact for integer ratios)."""
    assert other.ticks_per_quarter % reference.ticks_per_quarter == 0
    return reference.resample(other.ticks_per_quarter)
