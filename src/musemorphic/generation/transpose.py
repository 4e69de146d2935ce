"""Transposition in a codec's latent space: decode z + k * d_pitch (seed 001 made useful).

d_pitch is the least-squares semitone step of the codec's posterior means over some bars,

    d = sum_k sum_i k * (mu(T_k x_i) - mu(x_i)) / (N * sum_k k^2),   k = +-1 .. +-max,

so that mu(T_k x) ~ mu(x) + k * d where transposition is linear in the latent space (which
the factorization regulariser asks for: `musemorphic train phrase-vae --factorize`).
Drum tracks, empty bars and bars too long for the codec are copied unchanged; a bar decoded
ungrammatical is left silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import symusic
import torch

from musemorphic.data.bar_shifts import pitched, shift_bar
from musemorphic.data.remi_grammar import GrammarError, parse_bar
from musemorphic.data.tokenizer import PhraseTokenizer, SongTokens, TrackTokens
from musemorphic.generation.phrase_codec import decode_bars, encode_bars
from musemorphic.models.phrase_vae import PhraseVAE


def pitch_direction(
    model: PhraseVAE, tokenizer: PhraseTokenizer, bars: Sequence[list[int]], programs: Sequence[int], max_shift: int = 6
) -> torch.Tensor:
    """The least-squares semitone step d_pitch (Z,) of the codec over pitched bars."""
    keep = [i for i, (bar, p) in enumerate(zip(bars, programs)) if pitched(tokenizer, bar, p)]
    if not keep:
        raise ValueError("no pitched bar to estimate the transposition direction from")
    bars, programs = [bars[i] for i in keep], [programs[i] for i in keep]
    base = encode_bars(model, tokenizer, bars, programs)
    total = torch.zeros(base.shape[1])
    weight = 0
    for k in [*range(-max_shift, 0), *range(1, max_shift + 1)]:
        moved = encode_bars(model, tokenizer, [shift_bar(tokenizer, b, semitones=k) for b in bars], programs)
        total += k * (moved - base).sum(0)
        weight += k * k * len(bars)
    return total / weight


@dataclass
class TranspositionSummary:
    semitones: int
    bars_moved: int  # pitched bars re-decoded from z + k * d
    bars_silenced: int  # of those, decoded ungrammatical and left silent
    bars_too_long: int  # pitched bars longer than the codec reads, left as they were


def transpose_song_latent(
    model: PhraseVAE,
    tokenizer: PhraseTokenizer,
    score: symusic.Score,
    semitones: int,
    direction: torch.Tensor | None = None,
) -> tuple[symusic.Score, TranspositionSummary]:
    """A score transposed through the latent space. Without `direction`, d_pitch is
    estimated from the song's own bars (no dataset needed)."""
    song = tokenizer.encode_song(score)
    if not song.tracks:
        raise ValueError("the score holds no notes")
    candidates = [
        (t, b) for t, track in enumerate(song.tracks) for b, bar in enumerate(track.bars)
        if pitched(tokenizer, bar, track.program)
    ]
    max_len = model.config.max_len if isinstance(model, PhraseVAE) else None  # a GridCodec reads every bar
    fits = [max_len is None or len(song.tracks[t].bars[b]) + 2 <= max_len for t, b in candidates]  # BPE only shortens
    slots = [slot for slot, ok in zip(candidates, fits) if ok]
    bars = [song.tracks[t].bars[b] for t, b in slots]
    programs = [song.tracks[t].program for t, _ in slots]
    if not bars:
        raise ValueError("the score holds no pitched bar the codec can read")
    if direction is None:
        direction = pitch_direction(model, tokenizer, bars, programs)
    z = encode_bars(model, tokenizer, bars, programs) + semitones * direction
    decoded = decode_bars(model, tokenizer, z, programs=programs)
    grid = [list(track.bars) for track in song.tracks]
    silenced = 0
    for (t, b), bar in zip(slots, decoded):
        grid[t][b], ok = _fit_bar(tokenizer, grid[t][b], bar)
        silenced += not ok
    tracks = [TrackTokens(program=track.program, bars=bars) for track, bars in zip(song.tracks, grid)]
    out = tokenizer.decode_song(SongTokens(tracks=tracks, bar_ticks=song.bar_ticks))
    out.tempos = tokenizer.preprocess(score).tempos  # decoded bars may drop Tempo tokens
    return out, TranspositionSummary(semitones, len(bars), silenced, len(candidates) - len(bars))


def _fit_bar(tokenizer: PhraseTokenizer, original: list[int], decoded: list[int] | None) -> tuple[list[int], bool]:
    """The decoded bar under the original's header (Bar, time signature), or a silent bar
    with that header when it was ungrammatical or does not fit that time signature."""
    names = tokenizer.token_names(original)
    header = original[: 2 if len(names) > 1 and names[1].startswith("TimeSig_") else 1]
    if decoded is not None:
        body_start = 2 if len(decoded) > 1 and tokenizer.base_names[decoded[1]].startswith("TimeSig_") else 1
        candidate = header + decoded[body_start:]
        try:
            parse_bar(tokenizer.token_names(candidate))
            return candidate, True
        except GrammarError:
            pass
    return header, False
