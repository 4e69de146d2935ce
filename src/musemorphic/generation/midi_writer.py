"""A MIDI file written as music is generated: valid after every flush, constant memory.

Standard MIDI format 0 (one track chunk; each instrument on its own channel, drums on
channel 10) is the one layout that can grow at its end. Each `flush(until)` writes every
event before tick `until`, then an End-of-Track event, then patches the chunk length in
the header, so an interrupted run leaves a complete file holding everything generated so
far. Note-offs that fall after `until` wait in a small heap (bounded by polyphony).
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path

DRUM_CHANNEL = 9
END_OF_TRACK = b"\x00\xff\x2f\x00"  # delta 0 + meta event


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def channels_for(programs: list[int]) -> list[int]:
    """MIDI channel per track: drums (-1) on channel 10, others on 1-9, 11-16 in order."""
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    channels = []
    for program in programs:
        if program == -1:
            channels.append(DRUM_CHANNEL)
        elif free:
            channels.append(free.pop(0))
        else:
            raise ValueError(f"more than {15} pitched tracks do not fit in one MIDI file's channels")
    return channels


class StreamingMidiWriter:
    def __init__(self, path: str | Path, tpq: int, programs: list[int]):
        self.path = Path(path)
        self.tpq = tpq
        self.channels = channels_for(programs)
        self._pending: list[tuple[int, int, bytes]] = []  # (tick, order, event bytes) heap
        self._order = 0
        self._last_tick = 0
        self._file = open(self.path, "wb")
        self._file.write(b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + tpq.to_bytes(2, "big"))
        self._file.write(b"MTrk" + (0).to_bytes(4, "big"))
        self._track_bytes = 0
        for channel, program in zip(self.channels, programs, strict=True):
            if program >= 0:
                self._push(0, bytes([0xC0 | channel, program]))

    def _push(self, tick: int, event: bytes) -> None:
        heapq.heappush(self._pending, (tick, self._order, event))
        self._order += 1

    def tempo(self, tick: int, bpm: float) -> None:
        mpq = round(60_000_000 / bpm)
        self._push(tick, b"\xff\x51\x03" + mpq.to_bytes(3, "big"))

    def time_signature(self, tick: int, numerator: int, denominator: int) -> None:
        self._push(tick, b"\xff\x58\x04" + bytes([numerator, denominator.bit_length() - 1, 24, 8]))

    def note(self, track: int, start: int, duration: int, pitch: int, velocity: int) -> None:
        channel = self.channels[track]
        self._push(start + max(duration, 1), bytes([0x80 | channel, pitch, 0]))  # offs sort before ons at a tick
        self._push(start, bytes([0x90 | channel, pitch, max(1, velocity)]))

    def flush(self, until: int | None = None) -> None:
        """Write all events before `until` (all of them when None) and make the file valid."""
        body = bytearray()
        while self._pending and (until is None or self._pending[0][0] < until):
            tick, _, event = heapq.heappop(self._pending)
            body += _vlq(tick - self._last_tick) + event
            self._last_tick = tick
        self._file.seek(22 + self._track_bytes)  # over the previous End-of-Track
        self._file.write(body + END_OF_TRACK)
        self._track_bytes += len(body)
        self._file.seek(18)
        self._file.write((self._track_bytes + len(END_OF_TRACK)).to_bytes(4, "big"))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self.flush()
        self._file.close()

    def __enter__(self) -> StreamingMidiWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
