"""Hand-written Standard MIDI Files for tests.

Everything here builds raw SMF bytes without any MIDI library, so tests can
create exotic and deliberately broken files and know exactly what is inside.

Low level:
    midi_bytes(tracks, fmt=1, tpq=480) -> bytes
        ``tracks`` is a list of tracks; each track is a list of
        ``(absolute_tick, raw_event_bytes)`` pairs.  Delta times and the
        end-of-track meta event are written for you.

Event helpers (return raw event bytes, no delta time):
    note_on, note_off, program_change, tempo, time_signature, track_name

    notes_track(notes, extra_events=()) turns
    ``(start_tick, duration_ticks, pitch, velocity, channel)`` tuples into a
    sorted event list for one track.

Case builders (return bytes): see ``CASES`` and ``simple_song``.
All valid builders use tpq=480 (quarter = 480 ticks, 16th = 120 ticks).
"""

from __future__ import annotations

import random
from typing import Callable, Iterable

TPQ = 480
SIXTEENTH = TPQ // 4

Event = tuple[int, bytes]  # (absolute tick, raw event bytes)
Note = tuple[int, int, int, int, int]  # (start, duration, pitch, velocity, channel)


# --------------------------------------------------------------------------
# Low-level encoding
# --------------------------------------------------------------------------

def vlq(value: int) -> bytes:
    """Encode a non-negative int as a MIDI variable-length quantity."""
    if value < 0:
        raise ValueError(f"variable-length quantity must be >= 0, got {value}")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def chunk(tag: bytes, payload: bytes) -> bytes:
    """A RIFF-like SMF chunk: 4-byte tag, 4-byte big-endian length, payload."""
    return tag + len(payload).to_bytes(4, "big") + payload


def header_chunk(fmt: int, n_tracks: int, tpq: int) -> bytes:
    """The MThd chunk."""
    return chunk(b"MThd", fmt.to_bytes(2, "big") + n_tracks.to_bytes(2, "big") + tpq.to_bytes(2, "big"))


END_OF_TRACK = b"\xff\x2f\x00"


def track_chunk(events: Iterable[Event], *, end_of_track: bool = True) -> bytes:
    """One MTrk chunk. Events are stably sorted by tick (equal ticks keep their order)."""
    parts = []
    last = 0
    for tick, data in sorted(events, key=lambda e: e[0]):
        parts.append(vlq(tick - last))
        parts.append(data)
        last = tick
    if end_of_track:
        parts.append(b"\x00" + END_OF_TRACK)
    return chunk(b"MTrk", b"".join(parts))


def midi_bytes(tracks: list[list[Event]], *, fmt: int = 1, tpq: int = TPQ,
               end_of_track: bool = True) -> bytes:
    """A complete Standard MIDI File: MThd + one MTrk per entry of ``tracks``."""
    if fmt == 0 and len(tracks) != 1:
        raise ValueError("format 0 files have exactly one track")
    body = b"".join(track_chunk(t, end_of_track=end_of_track) for t in tracks)
    return header_chunk(fmt, len(tracks), tpq) + body


# --------------------------------------------------------------------------
# Event helpers
# --------------------------------------------------------------------------

def note_on(ch: int, pitch: int, vel: int) -> bytes:
    return bytes([0x90 | ch, pitch, vel])


def note_off(ch: int, pitch: int) -> bytes:
    return bytes([0x80 | ch, pitch, 0x40])


def program_change(ch: int, program: int) -> bytes:
    return bytes([0xC0 | ch, program])


def tempo(bpm: float) -> bytes:
    """Set-tempo meta event (microseconds per quarter note)."""
    return b"\xff\x51\x03" + round(60_000_000 / bpm).to_bytes(3, "big")


def time_signature(num: int, den: int) -> bytes:
    """Time-signature meta event; ``den`` must be a power of two."""
    if den < 1 or den & (den - 1):
        raise ValueError(f"denominator must be a power of two, got {den}")
    return b"\xff\x58\x04" + bytes([num, den.bit_length() - 1, 24, 8])


def track_name(name: str) -> bytes:
    data = name.encode("ascii")
    return b"\xff\x03" + vlq(len(data)) + data


def notes_track(notes: Iterable[Note], extra_events: Iterable[Event] = ()) -> list[Event]:
    """Convert notes to a tick-sorted event list, merged with ``extra_events``.

    Order at equal ticks: extra events (meta, program changes), then note-offs
    of notes ending there, then note-ons, then the offs of zero-length notes
    (so a zero-length note is written as on immediately followed by off).
    """
    keyed = []  # (tick, rank, sequence, bytes)
    seq = 0
    for tick, data in extra_events:
        keyed.append((tick, 0, seq, data))
        seq += 1
    for start, dur, pitch, vel, ch in notes:
        if dur < 0:
            raise ValueError("note duration must be >= 0")
        keyed.append((start, 2, seq, note_on(ch, pitch, vel)))
        keyed.append((start + dur, 1 if dur > 0 else 3, seq, note_off(ch, pitch)))
        seq += 1
    keyed.sort(key=lambda k: k[:3])
    return [(tick, data) for tick, _, _, data in keyed]


def conductor(num: int = 4, den: int = 4, bpm: float = 120) -> list[Event]:
    """Track-0 events of a format-1 file: tempo and time signature at tick 0."""
    return [(0, tempo(bpm)), (0, time_signature(num, den))]


# --------------------------------------------------------------------------
# Broken files
# --------------------------------------------------------------------------

def zero_bytes() -> bytes:
    """An empty file."""
    return b""


def text_file() -> bytes:
    """Plain ASCII text, not MIDI at all."""
    return b"This is not a MIDI file.\nJust some plain text, saved with a .mid name.\n"


def truncated() -> bytes:
    """``simple_song(8)`` cut in half: the last MTrk is incomplete."""
    data = simple_song(n_bars=8, seed=0)
    return data[: len(data) // 2]


def header_only() -> bytes:
    """An MThd chunk declaring format 1, 1 track, tpq 480, and no MTrk at all."""
    return header_chunk(fmt=1, n_tracks=1, tpq=TPQ)


# --------------------------------------------------------------------------
# Valid edge cases (all tpq=480)
# --------------------------------------------------------------------------

def no_notes() -> bytes:
    """Valid file with one track holding only tempo (120) and time signature (4/4)."""
    return midi_bytes([conductor(4, 4, 120)])


def drums_only() -> bytes:
    """4 bars of a 4/4 rock beat on channel 9: 48 notes.

    Per bar: closed hi-hat (42) on every 8th (8), kick (36) on beats 1 and 3,
    snare (38) on beats 2 and 4.
    """
    bar = 4 * TPQ
    notes = []
    for b in range(4):
        t0 = b * bar
        notes += [(t0 + i * TPQ // 2, 60, 42, 70, 9) for i in range(8)]
        notes += [(t0 + beat * TPQ, 120, 36, 100, 9) for beat in (0, 2)]
        notes += [(t0 + beat * TPQ, 120, 38, 100, 9) for beat in (1, 3)]
    return midi_bytes([conductor(4, 4, 110), notes_track(notes)])


def seven_eight() -> bytes:
    """7/8 at 140 BPM, 8 bars, one 8th note on every 8th: 56 notes on channel 0."""
    eighth = TPQ // 2
    scale = [60, 62, 64, 65, 67, 69, 71]
    notes = [(i * eighth, eighth, scale[i % 7], 90 if i % 7 in (0, 2, 4) else 70, 0)
             for i in range(8 * 7)]
    return midi_bytes([conductor(7, 8, 140), notes_track(notes, [(0, program_change(0, 0))])])


def five_four_tempo_changes() -> bytes:
    """5/4, 8 bars, a quarter note on every beat (40 notes).

    Tempo 100 BPM from the start, 130 BPM at bar 3 (tick 4800) and 80 BPM at
    bar 6 (tick 12000); bars counted from 1, one bar = 2400 ticks.
    """
    bar = 5 * TPQ
    meta = [(0, tempo(100)), (0, time_signature(5, 4)), (2 * bar, tempo(130)), (5 * bar, tempo(80))]
    notes = [(i * TPQ, TPQ, 60 + (i % 5) * 2, 80, 0) for i in range(8 * 5)]
    return midi_bytes([meta, notes_track(notes)])


def zero_length_notes() -> bytes:
    """4/4, 2 bars: 8 quarter notes (pitch 60..67) plus 3 notes of duration 0.

    The zero-length notes are pitch 72 at tick 0, pitch 74 at tick 960 and
    pitch 76 at tick 1920 (note-on directly followed by note-off).
    """
    normal = [(i * TPQ, TPQ, 60 + i, 80, 0) for i in range(8)]
    zero = [(0, 0, 72, 80, 0), (2 * TPQ, 0, 74, 80, 0), (4 * TPQ, 0, 76, 80, 0)]
    return midi_bytes([conductor(4, 4, 120), notes_track(normal + zero)])


def format0_multichannel() -> bytes:
    """Format 0, ONE track, 2 bars of 4/4 at 120 BPM.

    channel 0: program 0 (piano), 8 quarter notes
    channel 1: program 33 (fingered bass), 4 half notes
    channel 9: drums, 8 notes (kick/snare alternating on every beat)
    """
    piano = [(i * TPQ, TPQ, 72 + (i % 4), 80, 0) for i in range(8)]
    bass = [(i * 2 * TPQ, 2 * TPQ, 36 + (i % 2) * 7, 90, 1) for i in range(4)]
    drums = [(i * TPQ, 120, 36 if i % 2 == 0 else 38, 100, 9) for i in range(8)]
    extra = conductor(4, 4, 120) + [(0, program_change(0, 0)), (0, program_change(1, 33))]
    return midi_bytes([notes_track(piano + bass + drums, extra)], fmt=0)


def ten_thousand_bars() -> bytes:
    """4/4 at 120 BPM, 10,000 bars, one quarter note (pitch 60..71) at the start of each bar."""
    bar = 4 * TPQ
    notes = [(b * bar, TPQ, 60 + b % 12, 80, 0) for b in range(10_000)]
    return midi_bytes([conductor(4, 4, 120), notes_track(notes)])


# --------------------------------------------------------------------------
# A plain musical example
# --------------------------------------------------------------------------

_CHORDS = {  # C major triads
    "C": (60, 64, 67), "Dm": (62, 65, 69), "Em": (64, 67, 71),
    "F": (65, 69, 72), "G": (67, 71, 74), "Am": (69, 72, 76),
}
_MELODY_PITCHES = [72, 74, 76, 77, 79, 81, 83, 84]  # C major, one octave above the chords


def simple_song(n_bars: int = 8, seed: int = 0) -> bytes:
    """Deterministic 4/4 song at 120 BPM: conductor + melody + chords tracks.

    Track 1 "Melody": channel 0, program 0, monophonic notes on a 16th grid
    (durations of 1, 2, 3 or 4 sixteenths, occasional rests), pitches 72..84.
    Track 2 "Chords": channel 1, program 48, one root-position triad per bar
    lasting the whole bar (3 notes per bar), pitches 60..76.
    Same (n_bars, seed) -> same bytes.
    """
    rng = random.Random(seed)
    bar = 4 * TPQ

    melody = []
    t = 0
    while t < n_bars * bar:
        dur = rng.choice((1, 2, 2, 3, 4)) * SIXTEENTH
        dur = min(dur, n_bars * bar - t)
        if rng.random() > 0.15:  # otherwise a rest
            melody.append((t, dur, rng.choice(_MELODY_PITCHES), rng.randint(64, 100), 0))
        t += dur

    chords = []
    for b in range(n_bars):
        name = "C" if b == 0 else rng.choice(sorted(_CHORDS))
        chords += [(b * bar, bar, p, 70, 1) for p in _CHORDS[name]]

    return midi_bytes([
        conductor(4, 4, 120),
        notes_track(melody, [(0, track_name("Melody")), (0, program_change(0, 0))]),
        notes_track(chords, [(0, track_name("Chords")), (0, program_change(1, 48))]),
    ])


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

CASES: dict[str, Callable[[], bytes]] = {
    "zero_bytes": zero_bytes,
    "text_file": text_file,
    "truncated": truncated,
    "header_only": header_only,
    "no_notes": no_notes,
    "drums_only": drums_only,
    "seven_eight": seven_eight,
    "five_four_tempo_changes": five_four_tempo_changes,
    "zero_length_notes": zero_length_notes,
    "format0_multichannel": format0_multichannel,
    "ten_thousand_bars": ten_thousand_bars,
}

BROKEN_CASES = ("zero_bytes", "text_file", "truncated", "header_only")
