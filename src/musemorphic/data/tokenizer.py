"""REMI+ tokenizer with bar-bounded BPE, cut into phrases (one bar of one track).

Vocabulary (seed 000, section 3.1), built on miditok's REMI:
  Bar, Position (16 per 4/4 bar, time-signature aware), Pitch 0-127, Velocity (32 bins),
  Duration (16 bins, a 16th to a whole note), Tempo 30-210 BPM in 4 BPM steps,
  TimeSig, Program (-1 = drums, 0-127), and the special tokens PAD, BOS, EOS, MASK,
  TrackStart, TrackEnd (track delimiters).

Each track is tokenized on its own stream ("REMI+ multi-stream"): `TrackStart Program_p`
then its bars, then `TrackEnd`. A phrase is the base tokens of one bar of one track,
always starting with `Bar`. Every track is padded with empty bars (`Bar TimeSig_n/d`) to
the song's bar count, so a song is a dense (track x bar) grid of phrases.

BPE (Hugging Face tokenizers through miditok's `train`) is trained with
`encode_ids_split="bar"`, so no merge ever crosses a bar: a phrase BPE-encodes and decodes
on its own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import miditok
import numpy as np
import symusic

TRACK_START = "TrackStart_None"
TRACK_END = "TrackEnd_None"
SPECIAL_TOKENS = ["PAD", "BOS", "EOS", "MASK", "TrackStart", "TrackEnd"]
MAX_BPE_VOCAB = 8192


def remi_plus_config() -> miditok.TokenizerConfig:
    """The seed's REMI+ vocabulary as a miditok configuration."""
    return miditok.TokenizerConfig(
        pitch_range=(0, 127),
        beat_res={(0, 4): 4},  # 4 positions per beat; durations 1/16 .. 4 beats (16 bins)
        num_velocities=32,
        special_tokens=SPECIAL_TOKENS,
        encode_ids_split="bar",
        use_tempos=True,
        tempo_range=(30, 210),
        num_tempos=46,  # (210 - 30) / 4 + 1: 4 BPM steps
        log_tempos=False,
        use_time_signatures=True,
        time_signature_range={8: [3, 5, 6, 7, 9, 12], 4: [2, 3, 4, 5, 6, 7], 2: [2, 3, 4]},
        use_programs=True,
        one_token_stream_for_programs=False,
        program_changes=True,  # one Program token opens each track stream
    )


@dataclass
class TrackTokens:
    """One track of a song: its program and one list of base token ids per bar."""

    program: int  # -1 for drums
    bars: list[list[int]] = field(default_factory=list)

    @property
    def is_drum(self) -> bool:
        return self.program == -1


@dataclass
class SongTokens:
    """A song as a dense grid of phrases: every track has exactly `n_bars` bars."""

    tracks: list[TrackTokens]
    bar_ticks: list[int]  # start tick of each bar, at the tokenizer's resolution

    @property
    def n_bars(self) -> int:
        return len(self.bar_ticks)


def default_bpe_vocab_size(n_files: int, base_vocab_size: int) -> int:
    """Default BPE vocabulary for a corpus of `n_files` songs.

    One learned merge per training song, rounded up to a multiple of 64, between 64 and
    `MAX_BPE_VOCAB` merges in all: small corpora get few merges (large vocabularies
    overfit rare bar fragments), big corpora approach the seed's 8192.
    """
    merges = min(max(n_files, 64), MAX_BPE_VOCAB - base_vocab_size)
    return min(MAX_BPE_VOCAB, base_vocab_size + 64 * math.ceil(merges / 64))


class PhraseTokenizer:
    """REMI+ tokenizer that turns scores into phrase grids and back."""

    def __init__(self, remi: miditok.REMI | None = None):
        self.remi = remi if remi is not None else miditok.REMI(remi_plus_config())
        self._refresh_tables()

    # ---- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> PhraseTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer file there")
        return cls(miditok.REMI(params=path))

    @classmethod
    def from_json(cls, text: str) -> PhraseTokenizer:
        """Rebuild from `to_json()` output (as stored inside checkpoints)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tokenizer.json"
            path.write_text(text)
            return cls.load(path)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        self.remi.save(tmp)
        tmp.replace(path)

    def to_json(self) -> str:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "tokenizer.json"
            self.remi.save(path)
            return json.dumps(json.loads(path.read_text()), sort_keys=True)

    # ---- vocabulary --------------------------------------------------------------
    def _refresh_tables(self) -> None:
        vocab = self.remi.vocab  # base tokens: str -> id
        self.base_vocab = vocab
        self.base_names = {i: t for t, i in vocab.items()}
        self.pad_id = vocab["PAD_None"]
        self.bos_id = vocab["BOS_None"]
        self.eos_id = vocab["EOS_None"]
        self.mask_id = vocab["MASK_None"]
        self.bar_id = vocab["Bar_None"]
        self.track_start_id = vocab[TRACK_START]
        self.track_end_id = vocab[TRACK_END]
        self.program_ids = {
            int(t.split("_")[1]): i for t, i in vocab.items() if t.startswith("Program_")
        }
        self.program_by_id = {i: program for program, i in self.program_ids.items()}
        # BPE id -> the base ids it stands for (identity when BPE is not trained)
        if self.remi.is_trained:
            model = self.remi._model
            learned = self.remi._vocab_learned_bytes_to_tokens
            self._expansion = [
                tuple(vocab[t] for t in learned[model.id_to_token(i)])
                for i in range(model.get_vocab_size())
            ]
        else:
            self._expansion = [(i,) for i in range(len(vocab))]

    @property
    def vocab_size(self) -> int:
        """Size of the id space models see (BPE vocabulary when trained)."""
        return len(self._expansion)

    @property
    def base_vocab_size(self) -> int:
        return len(self.base_vocab)

    @property
    def is_trained(self) -> bool:
        return self.remi.is_trained

    def music_features(self) -> np.ndarray:
        """(vocab_size, 3) float32: mean pitch, duration (beats) and onset (beats) of the base
        tokens each id stands for; NaN where the id holds no such token (for FME embeddings)."""
        table = np.full((self.vocab_size, 3), np.nan, dtype=np.float32)
        for i, expansion in enumerate(self._expansion):
            values: list[list[float]] = [[], [], []]
            for name in self.token_names(expansion):
                kind, _, value = name.partition("_")
                if kind == "Pitch":
                    values[0].append(float(value))
                elif kind == "Duration":
                    beats, part, res = parse_duration(value)
                    values[1].append(beats + part / res)
                elif kind == "Position":
                    values[2].append(int(value) / self.remi.config.max_num_pos_per_beat)
            for column, found in enumerate(values):
                if found:
                    table[i, column] = sum(found) / len(found)
        return table

    def token_names(self, base_ids: Iterable[int]) -> list[str]:
        return [self.base_names[i] for i in base_ids]

    def id_names(self, token: int) -> list[str]:
        """Names of the base tokens one codec id (a BPE token) stands for."""
        return self.token_names(self._expansion[token])

    # ---- scores <-> phrase grids -------------------------------------------------
    def preprocess(self, score: symusic.Score) -> symusic.Score:
        """miditok's quantization (the reference every round trip is checked against)."""
        return self.remi.preprocess_score(score)

    def encode_song(self, score: symusic.Score, preprocessed: bool = False) -> SongTokens:
        """Tokenize a score into a dense (track x bar) grid of base-id phrases."""
        if not preprocessed:
            score = self.preprocess(score)
        if score.note_num() == 0:
            return SongTokens(tracks=[], bar_ticks=[])
        seqs = self.remi.encode(score, encode_ids=False, no_preprocess_score=True)
        if isinstance(seqs, miditok.TokSequence):
            seqs = [seqs]
        bar_ticks = [int(t) for t in seqs[0]._ticks_bars]  # the bars miditok split on
        tracks = []
        for track, seq in zip(score.tracks, seqs, strict=True):
            program = -1 if track.is_drum else int(track.program)
            bars = _split_at_ticks(seq, bar_ticks)
            if bars and bars[0] and bars[0][0] == self.program_ids[program]:
                bars[0] = bars[0][1:]  # the Program token belongs to the track header
            tracks.append(TrackTokens(program=program, bars=bars))
        song = SongTokens(tracks=tracks, bar_ticks=bar_ticks)
        self._pad_tracks(song, score)
        return song

    def _pad_tracks(self, song: SongTokens, score: symusic.Score) -> None:
        """Append empty bars (`Bar TimeSig_n/d`) so every track spans every bar."""
        time_sigs = sorted((int(ts.time), ts.numerator, ts.denominator) for ts in score.time_signatures)
        for track in song.tracks:
            for b in range(len(track.bars), song.n_bars):
                track.bars.append(self.empty_bar(_time_signature_at(time_sigs, song.bar_ticks[b])))

    def empty_bar(self, time_signature: tuple[int, int]) -> list[int]:
        num, den = time_signature
        return [self.bar_id, self.base_vocab[f"TimeSig_{num}/{den}"]]

    def track_stream(self, track: TrackTokens) -> list[int]:
        """Base ids of a whole track: `TrackStart Program_p bar... TrackEnd`."""
        ids = [self.track_start_id, self.program_ids[track.program]]
        for bar in track.bars:
            ids.extend(bar)
        ids.append(self.track_end_id)
        return ids

    def decode_song(self, song: SongTokens) -> symusic.Score:
        """Turn a phrase grid of base ids back into a score (at the tokenizer's resolution)."""
        seqs = [miditok.TokSequence(ids=self.track_stream(t)) for t in song.tracks]
        for seq in seqs:
            self.remi.complete_sequence(seq)
        if not seqs:
            return symusic.Score(self.remi.time_division)
        return self.remi.decode(seqs)

    # ---- BPE ---------------------------------------------------------------------
    def bpe_encode(self, phrases: Sequence[Sequence[int]]) -> list[list[int]]:
        """Base-id phrases -> BPE ids, each phrase encoded on its own."""
        if not self.is_trained:
            return [list(p) for p in phrases]
        chunks = [[self.remi._ids_to_bytes(list(p), as_one_str=True)] for p in phrases]
        return [enc.ids for enc in self.remi._model.encode_batch(chunks, is_pretokenized=True)]

    def bpe_decode(self, phrase: Sequence[int]) -> list[int]:
        """BPE ids of one phrase -> base ids."""
        return [base for i in phrase for base in self._expansion[i]]

    def train_bpe(self, base_phrases: Iterable[Sequence[int]], vocab_size: int) -> None:
        """Learn BPE merges from base-id phrases (merges stay inside a phrase, i.e. a bar)."""
        if vocab_size <= self.base_vocab_size:
            raise ValueError(
                f"BPE vocabulary size {vocab_size} must exceed the base vocabulary "
                f"({self.base_vocab_size} tokens)"
            )
        texts = [self.remi._ids_to_bytes(list(p), as_one_str=True) for p in base_phrases if len(p)]
        self.remi.train(vocab_size=vocab_size, model="BPE", iterator=texts)
        self._refresh_tables()


def parse_duration(value: str) -> tuple[int, int, int]:
    """A Duration token value "b.p.r" -> (b, p, r): b + p/r beats of the time signature's 1/d."""
    beats, part, res = (int(x) for x in value.split("."))
    return beats, part, res


def _split_at_ticks(seq: miditok.TokSequence, bar_ticks: list[int]) -> list[list[int]]:
    """Token ids per bar, cut where events reach each bar's start tick.

    Same cuts as miditok's `TokSequence.split_per_bars` (bars after the last event are
    left out), without copying the sequence once per bar.
    """
    times = np.fromiter((e.time for e in seq.events), dtype=np.int64, count=len(seq.events))
    cuts = np.searchsorted(times, bar_ticks[1:], side="left")
    cuts = cuts[cuts < len(times)].tolist()
    ids = seq.ids
    return [ids[a:b] for a, b in zip([0, *cuts], [*cuts, len(ids)])]


def _time_signature_at(time_sigs: list[tuple[int, int, int]], tick: int) -> tuple[int, int]:
    """The (numerator, denominator) in force at `tick` (4/4 before the first event)."""
    current = (4, 4)
    for time, num, den in time_sigs:
        if time > tick:
            break
        current = (num, den)
    return current
