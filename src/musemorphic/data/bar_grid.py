"""One bar of base tokens <-> its note grid: for every position and pitch, whether a note
starts there, and that note's duration and velocity level.

The grid is sized to the longest bar the tokenizer accepts (12/8: 48 positions of a quarter
of a 1/8 beat) and the full MIDI pitch range; drum notes (`PitchDrum_p`) sit at their pitch.
Besides the notes, a bar holds its time signature, its track's program and its first tempo
(if any). Writing a grid back gives tokens in the order REMI+ writes them: `Bar TimeSig
[Position_0 Tempo] {Position {Pitch Velocity Duration}}`, positions ascending, pitches
ascending, so every written bar is grammatical (`remi_grammar.parse_bar`).

Velocity is kept as one of `levels` equal groups of the tokenizer's velocity bins, written
back as the level's bin in `level_velocities` (by default its most common bin in the training
data, `common_level_velocities`: so a corpus played at one velocity gets it back), or the
group's middle bin. Two notes at one position and pitch keep the longer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from musemorphic.data.remi_grammar import parse_bar
from musemorphic.data.tokenizer import PhraseTokenizer

N_POSITIONS = 48  # 12 beats of 1/8 (the longest bar the tokenizer accepts) x 4 positions
N_PITCHES = 128
NO_NOTE = -1


@dataclass
class GridBatch:
    """Bars as grids. B bars, P positions (the batch's longest bar), 128 pitches."""

    onsets: torch.Tensor  # (B, P, 128) float: 1 where a note starts
    durations: torch.Tensor  # (B, P, 128) long: duration class of that note, NO_NOTE elsewhere
    velocities: torch.Tensor  # (B, P, 128) long: velocity level of that note, NO_NOTE elsewhere
    lengths: torch.Tensor  # (B,) long: positions in each bar (its time signature's)
    time_signatures: torch.Tensor  # (B,) long: index into GridVocabulary.time_signatures
    programs: torch.Tensor  # (B,) long: index into GridVocabulary.programs
    tempos: torch.Tensor  # (B,) long: index into GridVocabulary.tempos; len(tempos) = no tempo

    def to(self, device) -> GridBatch:
        return GridBatch(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))


class GridVocabulary:
    """The tokenizer's time signatures, programs, tempos, durations and velocities as class indices."""

    def __init__(self, tokenizer: PhraseTokenizer, velocity_levels: int, level_velocities: Sequence[int] = ()):
        self.tokenizer = tokenizer
        vocab = tokenizer.base_vocab
        self.time_signatures = _values(vocab, "TimeSig_")
        self.programs = [int(v) for v in _values(vocab, "Program_")]
        self.tempos = _values(vocab, "Tempo_")
        self.durations = _values(vocab, "Duration_")
        self.velocity_bins = sorted(int(v) for v in _values(vocab, "Velocity_"))
        if not 1 <= velocity_levels <= len(self.velocity_bins):
            raise ValueError(f"velocity_levels must be in [1, {len(self.velocity_bins)}], got {velocity_levels}")
        self.velocity_levels = velocity_levels
        self._velocity_index = {v: i for i, v in enumerate(self.velocity_bins)}
        if level_velocities and (not set(level_velocities) <= set(self.velocity_bins)
                                 or [self.velocity_level(v) for v in level_velocities] != list(range(velocity_levels))):
            raise ValueError(f"level_velocities must give one velocity bin of each level in order, got {list(level_velocities)}")
        self.level_velocities = list(level_velocities)
        self.n_positions = {ts: int(ts.split("/")[0]) * 4 for ts in self.time_signatures}
        if max(self.n_positions.values()) > N_POSITIONS:
            raise ValueError(f"a bar of this tokenizer holds more than {N_POSITIONS} positions")
        self._program_index = {p: i for i, p in enumerate(self.programs)}
        self._duration_index = {d: i for i, d in enumerate(self.durations)}

    def velocity_level(self, velocity: int) -> int:
        return self._velocity_index[velocity] * self.velocity_levels // len(self.velocity_bins)

    def level_velocity(self, level: int) -> int:
        """The velocity bin a level is written with: its `level_velocities` entry, or its middle bin."""
        if self.level_velocities:
            return self.level_velocities[level]
        bins = len(self.velocity_bins)
        first, last = -(-level * bins // self.velocity_levels), -(-(level + 1) * bins // self.velocity_levels) - 1
        return self.velocity_bins[(first + last) // 2]

    def program_index(self, program: int) -> int:
        return self._program_index[program]

    # ---- tokens -> grid ------------------------------------------------------------
    def grids(self, bars: Sequence[Sequence[int]], programs: Sequence[int]) -> GridBatch:
        """Base-id bars (each starting with Bar; GrammarError if malformed) and their programs -> a GridBatch."""
        parsed = [self._parse(bar) for bar in bars]
        width = max((self.n_positions[ts] for ts, _, _ in parsed), default=1)
        shape = (len(bars), width, N_PITCHES)
        onsets = np.zeros(shape, np.float32)
        durations = np.full(shape, NO_NOTE, np.int64)
        velocities = np.full(shape, NO_NOTE, np.int64)
        for row, (_, _, notes) in enumerate(parsed):
            for position, pitch, duration, velocity in notes:
                if duration > durations[row, position, pitch]:
                    onsets[row, position, pitch] = 1
                    durations[row, position, pitch] = duration
                    velocities[row, position, pitch] = velocity
        return GridBatch(
            torch.from_numpy(onsets), torch.from_numpy(durations), torch.from_numpy(velocities),
            torch.tensor([self.n_positions[ts] for ts, _, _ in parsed], dtype=torch.long),
            torch.tensor([self.time_signatures.index(ts) for ts, _, _ in parsed], dtype=torch.long),
            torch.tensor([self._program_index[p] for p in programs], dtype=torch.long),
            torch.tensor([tempo for _, tempo, _ in parsed], dtype=torch.long),
        )

    def _parse(self, bar: Sequence[int]) -> tuple[str, int, list[tuple[int, int, int, int]]]:
        """A bar's time signature, tempo class and notes as (position, pitch, duration class, level)."""
        names = self.tokenizer.token_names(bar)
        (num, den), notes = parse_bar(names)
        tempo = next((self.tempos.index(n[6:]) for n in names if n.startswith("Tempo_")), len(self.tempos))
        return f"{num}/{den}", tempo, [
            (n.position, n.pitch, self._duration_index[n.duration], self.velocity_level(n.velocity)) for n in notes
        ]

    # ---- grid -> tokens ------------------------------------------------------------
    def bar(self, onsets: np.ndarray, durations: np.ndarray, velocities: np.ndarray, time_signature: int,
            program: int, tempo: int) -> list[int]:
        """Base ids of one bar from its (P, 128) grids and class indices; onsets past the bar's
        length and drum pitches outside the drum range are left out."""
        vocab = self.tokenizer.base_vocab
        ts = self.time_signatures[time_signature]
        drums = self.programs[program] == -1
        pitch_kind = "PitchDrum_" if drums else "Pitch_"
        ids = [self.tokenizer.bar_id, vocab[f"TimeSig_{ts}"]]
        if tempo < len(self.tempos):
            ids += [vocab["Position_0"], vocab[f"Tempo_{self.tempos[tempo]}"]]
        written_position = 0 if tempo < len(self.tempos) else -1
        for position, pitch in zip(*np.nonzero(onsets[: self.n_positions[ts]])):
            note = vocab.get(f"{pitch_kind}{pitch}")
            if note is None:
                continue
            if position != written_position:
                ids.append(vocab[f"Position_{position}"])
                written_position = position
            ids += [note, vocab[f"Velocity_{self.level_velocity(int(velocities[position, pitch]))}"],
                    vocab[f"Duration_{self.durations[durations[position, pitch]]}"]]
        return ids


def common_level_velocities(vocabulary: GridVocabulary, velocity_counts: dict[int, int]) -> list[int]:
    """Each level's most common velocity bin in `velocity_counts` (bin -> notes), or its middle
    bin where none was counted."""
    best = [vocabulary.level_velocity(level) for level in range(vocabulary.velocity_levels)]
    most = [0] * vocabulary.velocity_levels
    for velocity, count in sorted(velocity_counts.items()):
        level = vocabulary.velocity_level(velocity)
        if count > most[level]:
            best[level], most[level] = velocity, count
    return best


def _values(vocab: dict[str, int], prefix: str) -> list[str]:
    """Values of the tokens named `prefix + value`, in id order."""
    return [name[len(prefix):] for name, _ in sorted(vocab.items(), key=lambda item: item[1]) if name.startswith(prefix)]
