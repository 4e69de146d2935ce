"""Measuring a PhraseVAE's latent space against real transpositions and onset shifts.

* `phrase_embed`: seed 001's `Embed` over REMI bars (shifts via data/bar_shifts.py), so
  evaluation/factorization.py measures a PhraseVAE exactly as it measures a piano-roll encoder.
* `transposition_report`: for each k, greedy decoding of mu(x) + k * d_pitch against the bar
  transposed by k semitones: exact-match rate (every note's onset, pitch and duration) and
  note F1 (onset and pitch). As a ceiling,
  the same figures for decoding mu(T_k x), the latent of the truly transposed bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

import numpy as np

from musemorphic.data.bar_shifts import pitched, shift_bar
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.remi_grammar import note_f1, note_set, parse_bar
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.evaluation.factorization import Embed
from musemorphic.generation.phrase_codec import decode_bars, encode_bars
from musemorphic.models.phrase_vae import PhraseVAE


def pitched_bars(dataset: PhraseDataset, n: int, seed: int, max_len: int) -> tuple[list[list[int]], list[int]]:
    """A seeded sample of up to n pitched bars of the dataset that fit a codec of max_len,
    with their programs."""
    bars, programs = [], []
    for i in np.random.default_rng(seed).permutation(len(dataset)):
        bar, program = dataset.phrase(int(i)).tolist(), dataset.phrase_program(int(i))
        if pitched(dataset.tokenizer, bar, program) and len(bar) + 2 <= max_len:
            bars.append(bar)
            programs.append(program)
            if len(bars) == n:
                break
    return bars, programs


def phrase_embed(model: PhraseVAE, tokenizer: PhraseTokenizer, bars: Sequence[list[int]], programs: Sequence[int]) -> Embed:
    """Posterior means of bars[i] transposed by pitch[i] semitones and moved by time[i] positions."""

    def embed(items: torch.Tensor, pitch: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        chosen = items.tolist()
        shifted = [
            shift_bar(tokenizer, bars[i], semitones=p, positions=t)
            for i, p, t in zip(chosen, pitch.tolist(), time.tolist())
        ]
        return encode_bars(model, tokenizer, shifted, [programs[i] for i in chosen])

    return embed


@dataclass
class TranspositionRow:
    semitones: int
    exact: float  # decode(mu(x) + k d) == T_k x
    note_f1: float
    exact_reencoded: float  # decode(mu(T_k x)) == T_k x: what the codec does with the real thing
    note_f1_reencoded: float

    def to_dict(self) -> dict:
        return asdict(self)


def transposition_report(
    model: PhraseVAE,
    tokenizer: PhraseTokenizer,
    bars: Sequence[list[int]],
    programs: Sequence[int],
    direction: torch.Tensor,
    semitones: Sequence[int] = range(-6, 7),
) -> list[TranspositionRow]:
    """One row per k over pitched bars (callers pick them: see data.bar_shifts.pitched)."""
    base = encode_bars(model, tokenizer, bars, programs)
    rows = []
    for k in semitones:
        targets = [shift_bar(tokenizer, bar, semitones=k) for bar in bars]
        moved = decode_bars(model, tokenizer, base + k * direction, programs=programs)
        reencoded = decode_bars(model, tokenizer, encode_bars(model, tokenizer, targets, programs), programs=programs)
        exact, f1 = _agreement(tokenizer, targets, moved)
        exact_re, f1_re = _agreement(tokenizer, targets, reencoded)
        rows.append(TranspositionRow(k, exact, f1, exact_re, f1_re))
    return rows


def _agreement(tokenizer: PhraseTokenizer, targets: Sequence[list[int]], decoded: Sequence[list[int] | None]) -> tuple[float, float]:
    """(exact-match rate: every note's onset, pitch and duration; note F1) of decoded bars
    (None = ungrammatical) against targets."""
    exact = matched = n_ref = n_pred = 0
    for target, bar in zip(targets, decoded, strict=True):
        _, ref_notes = parse_bar(tokenizer.token_names(target))
        n_ref += len(ref_notes)
        if bar is None:
            continue
        _, pred_notes = parse_bar(tokenizer.token_names(bar))
        exact += note_set(pred_notes) == note_set(ref_notes)
        m, _, n = note_f1(ref_notes, pred_notes)
        matched += m
        n_pred += n
    f1 = 2 * matched / (n_ref + n_pred) if n_ref + n_pred else 1.0
    return exact / max(1, len(targets)), f1
