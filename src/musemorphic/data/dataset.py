"""Reading a prepared dataset: phrases, song grids and controls, with load-time augmentation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musemorphic.data import controls
from musemorphic.data.augment import Augmentation, Augmenter
from musemorphic.data.shards import Shard, concat_shards, read_shard
from musemorphic.data.tokenizer import PhraseTokenizer


def load_shards(directory: str | Path) -> Shard:
    """All shards of a dataset folder as one Shard."""
    paths = sorted((Path(directory) / "shards").glob("shard-*.npz"))
    return concat_shards([read_shard(p) for p in paths])


@dataclass
class SongControlLabels:
    """Control classes of one song (-1 = unknown), as models consume them."""

    tempo_class: int
    key: int
    time_signature: str  # "n/d"
    density_level: int
    style: str


class PhraseDataset:
    """A prepared dataset folder, restricted to one split (or all songs with split=None)."""

    def __init__(self, directory: str | Path, split: str | None = "train"):
        directory = Path(directory)
        summary_path = directory / "dataset.json"
        if not summary_path.exists():
            raise FileNotFoundError(f"{directory}: not a prepared dataset (no dataset.json); run `musemorphic prepare`")
        self.directory = directory
        self.summary = json.loads(summary_path.read_text())
        self.tokenizer = PhraseTokenizer.load(directory / "tokenizer.json")
        self.shard = load_shards(directory)
        cols = self.shard.columns
        song_split = np.array([s["split"] for s in self.shard.songs])
        keep_song = np.ones(len(song_split), bool) if split is None else song_split == split
        self.song_indices = np.flatnonzero(keep_song)
        self.phrase_indices = np.flatnonzero(keep_song[cols["phrase_song"]]) if len(song_split) else np.zeros(0, int)
        self.density_thresholds = tuple(self.summary["density_thresholds"])
        # first phrase and first bar row of every song (phrases are stored track-major)
        self._song_first_phrase = np.searchsorted(cols["phrase_song"], np.arange(len(song_split)))
        self._song_first_bar = np.searchsorted(cols["bar_song"], np.arange(len(song_split)))

    def of_style(self, style: str) -> PhraseDataset:
        """This split restricted to the songs of one style (a corpus folder's name by default)."""
        import copy

        view = copy.copy(self)
        styles = np.array([s["style"] for s in self.shard.songs])
        keep_song = np.zeros(len(styles), bool)
        keep_song[self.song_indices] = True
        keep_song &= styles == style
        view.song_indices = np.flatnonzero(keep_song)
        view.phrase_indices = np.flatnonzero(keep_song[self.shard.columns["phrase_song"]])
        return view

    def __len__(self) -> int:
        """Number of phrases in the split."""
        return len(self.phrase_indices)

    @property
    def songs(self) -> list[dict]:
        return [self.shard.songs[i] for i in self.song_indices]

    def phrase(self, i: int) -> np.ndarray:
        """Base ids of the i-th phrase of the split."""
        return self.shard.phrase(int(self.phrase_indices[i])).astype(np.int64)

    def phrase_program(self, i: int) -> int:
        return int(self.shard.columns["phrase_program"][self.phrase_indices[i]])

    def song_grid(self, song: int) -> list[list[np.ndarray]]:
        """[track][bar] base ids of a song (global song index)."""
        meta = self.shard.songs[song]
        n_tracks, n_bars = len(meta["programs"]), meta["n_bars"]
        first = self._song_first_phrase[song]
        return [
            [self.shard.phrase(first + t * n_bars + b).astype(np.int64) for b in range(n_bars)]
            for t in range(n_tracks)
        ]

    def song_tracks(self, song: int) -> list[tuple[int, list[np.ndarray]]]:
        """(program, [bar] base ids) per track of a song (global song index)."""
        return list(zip(self.shard.songs[song]["programs"], self.song_grid(song), strict=True))

    def bar_controls(self, song: int) -> dict[str, np.ndarray]:
        """Per-bar control arrays of a song, with density levels from the corpus thresholds."""
        start = self._song_first_bar[song]
        rows = slice(start, start + self.shard.songs[song]["n_bars"])
        out = {name: self.shard.columns[name][rows] for name in ("bar_tempo", "bar_time_signature", "bar_key", "bar_density")}
        out["bar_density_level"] = np.array(
            [controls.density_level(v, self.density_thresholds) for v in out["bar_density"]], dtype=np.int8
        )
        return out

    def song_controls(self, song: int) -> SongControlLabels:
        meta = self.shard.songs[song]
        summary = meta["controls"]
        key = summary["key"]
        return SongControlLabels(
            tempo_class=controls.tempo_class(summary["tempo"]),
            key=controls.parse_key(key) if key else -1,
            time_signature=summary["time_signature"],
            density_level=controls.density_level(summary["density"], self.density_thresholds),
            style=meta["style"],
        )

    def augmented_song(
        self, song: int, augmenter: Augmenter, rng: np.random.Generator
    ) -> tuple[list[list[np.ndarray]], Augmentation]:
        """A song grid with one seeded augmentation applied to all its phrases."""
        grid = self.song_grid(song)
        programs = self.shard.songs[song]["programs"]
        flat = [p for track in grid for p in track]
        flat_programs = [prog for prog, track in zip(programs, grid, strict=True) for _ in track]
        augmented, aug = augmenter.augment_song(flat, flat_programs, rng)
        n_bars = self.shard.songs[song]["n_bars"]
        return [augmented[t * n_bars : (t + 1) * n_bars] for t in range(len(grid))], aug
