"""Load-time, seeded augmentation of base-token phrases (token substitution only).

One `Augmentation` is drawn per song and applied to every phrase of it, through id -> id
lookup tables over the base vocabulary, so a phrase keeps its length and structure:

* Transposition by k semitones: `Pitch_p -> Pitch_{p+k}` in every non-drum track
  (program -1 is never transposed; `PitchDrum` tokens are never touched). k is drawn
  uniformly among the integers in [-max_transpose, max_transpose] that keep every pitched
  note of the song inside the vocabulary's pitch range (0..127); a song without pitched
  notes gets k = 0. The song's key index moves with it (`transpose_key`).
* Velocity scaling by a factor f ~ U(velocity_scale): `Velocity_v` -> the velocity bin
  nearest to v * f (so results stay within the bins, 3..127).
* Tempo stretch by a factor g ~ U(tempo_stretch): `Tempo_t` -> the tempo bin nearest to
  t * g (so results stay within the bins, 30..210 BPM). Only Tempo tokens change: positions
  and durations are kept, i.e. the music plays faster or slower.

Ties between two equally near bins go to the lower bin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only for annotations: importing miditok would pull in torch
    from musemorphic.data.tokenizer import PhraseTokenizer

DRUM_PROGRAM = -1


@dataclass
class AugmentConfig:
    """Ranges the per-song augmentation is drawn from."""

    max_transpose: int = 6
    velocity_scale: tuple[float, float] = (0.8, 1.2)
    tempo_stretch: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self) -> None:
        self.velocity_scale = tuple(float(x) for x in self.velocity_scale)
        self.tempo_stretch = tuple(float(x) for x in self.tempo_stretch)
        if self.max_transpose < 0:
            raise ValueError(f"max_transpose must be >= 0, got {self.max_transpose}")
        for name in ("velocity_scale", "tempo_stretch"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(lo, hi)}")

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        return cls(**data)


@dataclass(frozen=True)
class Augmentation:
    """One draw: semitones to transpose by, and velocity / tempo scale factors."""

    transpose: int
    velocity_factor: float
    tempo_factor: float


def transpose_key(key: int, k: int) -> int:
    """Key index (0-11 major, 12-23 minor, tonic = index % 12; -1 unknown) moved by k semitones."""
    if key == -1:
        return -1
    if not 0 <= key < 24:
        raise ValueError(f"key index must be in -1..23, got {key}")
    return (key % 12 + k) % 12 + 12 * (key // 12)


def _bins(vocab: dict[str, int], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, values) of the tokens `prefix_<value>`, sorted by value."""
    pairs = sorted((float(t[len(prefix):]), i) for t, i in vocab.items() if t.startswith(prefix))
    values, ids = zip(*pairs)
    return np.array(ids, dtype=np.int64), np.array(values)


class Augmenter:
    """Draws and applies per-song augmentations of base-id phrases."""

    def __init__(self, tokenizer: PhraseTokenizer, config: AugmentConfig):
        self.config = config
        vocab = tokenizer.base_vocab
        self._identity = np.arange(len(vocab), dtype=np.int64)

        pitch_ids, pitches = _bins(vocab, "Pitch_")
        self._pitch_lo, self._pitch_hi = int(pitches[0]), int(pitches[-1])
        self._pitch_of = np.full(len(vocab), -1, dtype=np.int64)  # id -> pitch, -1 if not Pitch
        self._pitch_of[pitch_ids] = pitches.astype(np.int64)
        id_of_pitch = np.zeros(self._pitch_hi + 1, dtype=np.int64)
        id_of_pitch[pitches.astype(np.int64)] = pitch_ids

        # Row k + max_transpose: Pitch_p -> Pitch_{p+k}, clipped to the pitch range
        # (`sample` never draws a k that needs the clip).
        m = config.max_transpose
        self._transpose_tables = np.tile(self._identity, (2 * m + 1, 1))
        for row, k in enumerate(range(-m, m + 1)):
            shifted = np.clip(pitches.astype(np.int64) + k, self._pitch_lo, self._pitch_hi)
            self._transpose_tables[row, pitch_ids] = id_of_pitch[shifted]

        self._velocity_ids, self._velocity_values = _bins(vocab, "Velocity_")
        self._tempo_ids, self._tempo_values = _bins(vocab, "Tempo_")

    def sample(self, rng: np.random.Generator, pitch_range: tuple[int, int] | None) -> Augmentation:
        """Draw an augmentation; `pitch_range` = (lowest, highest) pitched note, None if none."""
        m = self.config.max_transpose
        if pitch_range is None:
            allowed = np.zeros(1, dtype=np.int64)
        else:
            lo, hi = pitch_range
            allowed = np.arange(max(-m, self._pitch_lo - lo), min(m, self._pitch_hi - hi) + 1)
        return Augmentation(
            transpose=int(rng.choice(allowed)),
            velocity_factor=float(rng.uniform(*self.config.velocity_scale)),
            tempo_factor=float(rng.uniform(*self.config.tempo_stretch)),
        )

    def pitch_range(
        self, phrases: Sequence[np.ndarray], programs: Sequence[int]
    ) -> tuple[int, int] | None:
        """(lowest, highest) Pitch over the non-drum phrases, None if there is none."""
        pitches = [
            self._pitch_of[np.asarray(p, dtype=np.int64)]
            for p, program in zip(phrases, programs, strict=True)
            if program != DRUM_PROGRAM
        ]
        pitches = np.concatenate(pitches or [np.empty(0, dtype=np.int64)])
        pitches = pitches[pitches >= 0]
        if pitches.size == 0:
            return None
        return int(pitches.min()), int(pitches.max())

    def apply(self, phrase: np.ndarray, program: int, aug: Augmentation) -> np.ndarray:
        """A new array of the phrase's base ids with `aug` applied (drums not transposed)."""
        return self._lookup(aug, transpose=program != DRUM_PROGRAM)[np.asarray(phrase)]

    def transpose(self, phrase: np.ndarray, program: int, semitones: int) -> np.ndarray:
        """A new array of the phrase's base ids moved by `semitones` (pitches clipped to the
        range; drums not moved); the same as `apply` with unit velocity and tempo factors."""
        return self._transpose_table(semitones, transpose=program != DRUM_PROGRAM)[np.asarray(phrase)]

    def augment_song(
        self, phrases: list[np.ndarray], programs: list[int], rng: np.random.Generator
    ) -> tuple[list[np.ndarray], Augmentation]:
        """Draw one augmentation for the song (phrases[i] has programs[i]) and apply it to all."""
        aug = self.sample(rng, self.pitch_range(phrases, programs))
        pitched = self._lookup(aug, transpose=True)
        drums = self._lookup(aug, transpose=False)
        out = [
            (drums if program == DRUM_PROGRAM else pitched)[np.asarray(p)]
            for p, program in zip(phrases, programs, strict=True)
        ]
        return out, aug

    def _lookup(self, aug: Augmentation, transpose: bool) -> np.ndarray:
        """The id -> id table for `aug` (transposition only when `transpose`)."""
        table = self._transpose_table(aug.transpose, transpose).copy()
        for ids, values, factor in (
            (self._velocity_ids, self._velocity_values, aug.velocity_factor),
            (self._tempo_ids, self._tempo_values, aug.tempo_factor),
        ):
            nearest = np.abs(values[:, None] * factor - values[None, :]).argmin(axis=1)
            table[ids] = ids[nearest]
        return table

    def _transpose_table(self, semitones: int, transpose: bool) -> np.ndarray:
        """The id -> id transposition table (identity when not `transpose`); do not modify it."""
        m = self.config.max_transpose
        if abs(semitones) > m:
            raise ValueError(f"transpose {semitones} outside [-{m}, {m}]")
        return self._transpose_tables[semitones + m] if transpose else self._identity
