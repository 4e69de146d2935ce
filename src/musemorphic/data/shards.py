"""Dataset shards: compact numpy archives of prepared songs, written atomically.

A shard holds whole songs. Per phrase (one bar of one track, every slot of the
track x bar grid, empty ones included):
  tokens[offsets[i]:offsets[i+1]]  base REMI+ ids of phrase i (uint16)
  phrase_song, phrase_track, phrase_bar, phrase_program, phrase_n_notes
Per bar of each song (controls, see `controls.py`):
  bar_song, bar_index, bar_tempo, bar_time_signature (n, 2), bar_density, bar_key, bar_n_notes
Per song: `songs`, a JSON list of metadata dicts (id, source, path, sha1, split, style,
programs, n_bars, n_notes, song-level controls), indexed by phrase_song and bar_song.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PHRASE_FIELDS = ("phrase_song", "phrase_track", "phrase_bar", "phrase_program", "phrase_n_notes")
BAR_FIELDS = (
    "bar_song",
    "bar_index",
    "bar_tempo",
    "bar_time_signature",
    "bar_density",
    "bar_key",
    "bar_n_notes",
)


@dataclass
class PreparedSong:
    """One song as the workers produce it."""

    meta: dict  # JSON-serialisable song metadata
    programs: list[int]  # per track, -1 = drums
    phrases: list[list[list[int]]]  # [track][bar] -> base ids
    phrase_n_notes: np.ndarray  # (n_tracks, n_bars) note onsets per slot
    bars: dict[str, np.ndarray] = field(default_factory=dict)  # BAR_FIELDS minus song/index


@dataclass
class Shard:
    """Columns of one shard (or of several concatenated)."""

    tokens: np.ndarray
    offsets: np.ndarray
    columns: dict[str, np.ndarray]
    songs: list[dict]

    def phrase(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    @property
    def n_phrases(self) -> int:
        return len(self.offsets) - 1


def build_shard(songs: list[PreparedSong]) -> Shard:
    """Pack prepared songs into shard columns."""
    flat: list[int] = []
    lengths: list[int] = []
    cols: dict[str, list] = {name: [] for name in PHRASE_FIELDS}
    bar_cols: dict[str, list] = {name: [] for name in BAR_FIELDS}
    for s, song in enumerate(songs):
        n_bars = song.meta["n_bars"]
        for t, (program, track) in enumerate(zip(song.programs, song.phrases, strict=True)):
            for b, phrase in enumerate(track):
                flat.extend(phrase)
                lengths.append(len(phrase))
                cols["phrase_song"].append(s)
                cols["phrase_track"].append(t)
                cols["phrase_bar"].append(b)
                cols["phrase_program"].append(program)
                cols["phrase_n_notes"].append(int(song.phrase_n_notes[t, b]))
        bar_cols["bar_song"].append(np.full(n_bars, s))
        bar_cols["bar_index"].append(np.arange(n_bars))
        for name, values in song.bars.items():
            bar_cols[name].append(values)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    columns = {
        "phrase_song": np.asarray(cols["phrase_song"], dtype=np.int32),
        "phrase_track": np.asarray(cols["phrase_track"], dtype=np.int16),
        "phrase_bar": np.asarray(cols["phrase_bar"], dtype=np.int32),
        "phrase_program": np.asarray(cols["phrase_program"], dtype=np.int16),
        "phrase_n_notes": np.asarray(cols["phrase_n_notes"], dtype=np.int32),
    }
    dtypes = {
        "bar_song": np.int32,
        "bar_index": np.int32,
        "bar_tempo": np.float32,
        "bar_time_signature": np.int16,
        "bar_density": np.float32,
        "bar_key": np.int8,
        "bar_n_notes": np.int32,
    }
    for name, parts in bar_cols.items():
        empty = np.zeros((0, 2) if name == "bar_time_signature" else 0, dtype=dtypes[name])
        columns[name] = np.concatenate(parts).astype(dtypes[name]) if parts else empty
    return Shard(
        tokens=np.asarray(flat, dtype=np.uint16),
        offsets=offsets,
        columns=columns,
        songs=[song.meta for song in songs],
    )


def write_shard(path: Path, shard: Shard) -> None:
    """Write atomically: a crash leaves either the old state or the whole new shard."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            tokens=shard.tokens,
            offsets=shard.offsets,
            songs=np.asarray(json.dumps(shard.songs)),
            **shard.columns,
        )
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def read_shard(path: Path) -> Shard:
    with np.load(path, allow_pickle=False) as z:
        return Shard(
            tokens=z["tokens"],
            offsets=z["offsets"],
            columns={name: z[name] for name in PHRASE_FIELDS + BAR_FIELDS},
            songs=json.loads(str(z["songs"])),
        )


def read_shard_songs(path: Path) -> list[dict]:
    """Only the song metadata of a shard (npz members load lazily, so no tokens are read)."""
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["songs"]))


def concat_shards(shards: list[Shard]) -> Shard:
    """One Shard over many, with song indices renumbered."""
    if not shards:
        return build_shard([])
    song_base = np.cumsum([0] + [len(s.songs) for s in shards[:-1]])
    token_base = np.cumsum([0] + [len(s.tokens) for s in shards[:-1]])
    columns = {}
    for name in PHRASE_FIELDS + BAR_FIELDS:
        parts = [s.columns[name] for s in shards]
        if name in ("phrase_song", "bar_song"):
            parts = [p + base for p, base in zip(parts, song_base, strict=True)]
        columns[name] = np.concatenate(parts)
    offsets = np.concatenate(
        [shards[0].offsets[:1]] + [s.offsets[1:] + base for s, base in zip(shards, token_base, strict=True)]
    )
    return Shard(
        tokens=np.concatenate([s.tokens for s in shards]),
        offsets=offsets,
        columns=columns,
        songs=[song for s in shards for song in s.songs],
    )
