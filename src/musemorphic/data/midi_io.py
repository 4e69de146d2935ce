"""MIDI file discovery, validation and loading (symusic).

symusic reads past the end of a truncated file (it may even crash the process), so every
file's chunk structure is checked in Python before symusic sees it. Every problem is
raised as `MidiError`, whose message names the file and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import symusic

MIDI_SUFFIXES = {".mid", ".midi"}


class MidiError(ValueError):
    """A MIDI file that cannot be used, with the reason."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Bounds beyond which a file is reported as absurd rather than processed."""

    max_bytes: int = 32 * 2**20
    max_tracks: int = 128
    max_notes: int = 500_000
    max_bars: int = 4096


@dataclass(frozen=True)
class MidiSource:
    """A MIDI file found under a corpus root."""

    root: Path  # the corpus folder it was found under
    path: Path

    @property
    def relative(self) -> str:
        """Path from the corpus root, prefixed with the root's name (stable across machines)."""
        if self.path == self.root:
            return self.path.name
        return f"{self.root.name}/{self.path.relative_to(self.root).as_posix()}"


def find_midi_files(roots: Iterable[str | Path]) -> list[MidiSource]:
    """All .mid/.midi files (any case, nested) under the given folders or files, sorted."""
    found: dict[Path, MidiSource] = {}
    for root in roots:
        root = Path(root).resolve()
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or folder")
        for path in _walk(root):
            found.setdefault(path, MidiSource(root=root if root.is_dir() else root.parent, path=path))
    return sorted(found.values(), key=lambda s: s.path.as_posix())


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for path in root.rglob("*"):
        if path.suffix.lower() in MIDI_SUFFIXES and path.is_file():
            yield path


def check_structure(data: bytes, path: str | Path) -> None:
    """Raise MidiError unless `data` is a complete Standard MIDI File (header + all chunks)."""
    if len(data) == 0:
        raise MidiError(path, "empty file (0 bytes)")
    if data[:4] != b"MThd":
        raise MidiError(path, "not a MIDI file (no MThd header)")
    if len(data) < 14:
        raise MidiError(path, "truncated MIDI header")
    header_len = int.from_bytes(data[4:8], "big")
    if header_len < 6 or 8 + header_len > len(data):
        raise MidiError(path, "truncated MIDI header")
    declared = int.from_bytes(data[10:12], "big")
    pos, found = 8 + header_len, 0
    while pos + 8 <= len(data):
        chunk_len = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if pos + 8 + chunk_len > len(data):
            raise MidiError(path, f"truncated file: the chunk at byte {pos} runs past the end")
        found += data[pos : pos + 4] == b"MTrk"
        pos += 8 + chunk_len
    if found == 0:
        raise MidiError(path, "no track chunk (header only)")
    if found < declared:
        raise MidiError(path, f"truncated file: header declares {declared} tracks, file holds {found}")


def load_score(path: str | Path, limits: Limits = Limits(), allow_silent: bool = False) -> symusic.Score:
    """Read and validate a MIDI file; raise MidiError with the reason when it is unusable
    (a file without notes too, unless `allow_silent`)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise MidiError(path, f"cannot read: {err.strerror or err}") from err
    if size > limits.max_bytes:
        raise MidiError(path, f"absurd size: {size} bytes (limit {limits.max_bytes})")
    data = path.read_bytes()
    check_structure(data, path)
    try:
        score = symusic.Score.from_midi(data)
    except Exception as err:  # symusic raises RuntimeError for malformed events
        raise MidiError(path, f"unreadable MIDI: {err}") from err
    if len(score.tracks) > limits.max_tracks:
        raise MidiError(path, f"absurd: {len(score.tracks)} tracks (limit {limits.max_tracks})")
    if score.note_num() == 0 and not allow_silent:
        raise MidiError(path, "no notes")
    if score.note_num() > limits.max_notes:
        raise MidiError(path, f"absurd: {score.note_num()} notes (limit {limits.max_notes})")
    return score
