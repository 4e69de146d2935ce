"""How well a PhraseVAE codes bars (definitions in EVALUATION.md, "Codec reconstruction").

On held-out bars (non-empty ones for the headline figures; empty bars apart):
- token accuracy: teacher-forced argmax with z = mu, over real (non-pad) targets;
- exact bars: greedy decoding from z = mu equals the input after BPE decoding;
- note precision / recall / F1 on (onset, pitch), plus duration and velocity agreement of
  the matched notes;
- mean KL to N(0, I) per bar, and active dimensions (variance of mu over bars > 0.01);
- prior validity: the share of bars greedily decoded from z ~ N(0, I) that are grammatical
  REMI+ (`data/remi_grammar.py`) and decode to MIDI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher, codec_ids_to_base, grammatical_bar
from musemorphic.data.remi_grammar import BarNote, GrammarError, note_f1, parse_bar
from musemorphic.data.tokenizer import PhraseTokenizer, SongTokens, TrackTokens
from musemorphic.models.phrase_vae import PhraseVAE, kl_per_dim


@dataclass
class PhraseVAEReport:
    bars: int
    empty_bars: int
    too_long_bars: int  # longer than the model's max_len, left out
    token_accuracy: float
    exact_bar_rate: float
    note_precision: float
    note_recall: float
    note_f1: float
    duration_match: float
    velocity_match: float
    empty_bar_exact_rate: float
    mean_kl: float
    active_dims: int
    prior_grammatical: float
    prior_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def phrase_notes(tokenizer: PhraseTokenizer, base_ids: list[int]) -> list[BarNote]:
    """Notes of a decoded phrase; an ungrammatical phrase holds none."""
    try:
        return parse_bar(tokenizer.token_names(base_ids[1:]))[1]
    except GrammarError:
        return []


def is_valid_phrase(tokenizer: PhraseTokenizer, ids: list[int]) -> bool:
    """Grammatical REMI+ with a leading Program, and miditok decodes it to MIDI."""
    try:
        bar = grammatical_bar(tokenizer, ids)
        tokenizer.decode_song(SongTokens([TrackTokens(tokenizer.program_by_id[ids[0]], [bar])], []))
    except (GrammarError, KeyError, ValueError, IndexError):
        return False
    return True


@torch.no_grad()
def evaluate_phrase_vae(
    model: PhraseVAE,
    dataset: PhraseDataset,
    max_bars: int | None = None,
    batch_size: int = 128,
    prior_samples: int = 512,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PhraseVAEReport:
    model.eval()
    tok = dataset.tokenizer
    device = next(model.parameters()).device
    batcher = PhraseBatcher(dataset, model.config.max_len)
    positions = batcher.indices
    if max_bars is not None and len(positions) > max_bars:
        positions = np.sort(np.random.default_rng(seed).choice(positions, max_bars, replace=False))
    n_notes = dataset.shard.columns["phrase_n_notes"][dataset.phrase_indices[positions]]
    correct = total = exact = empty_exact = 0
    matched = n_ref = n_pred = same_duration = same_velocity = 0
    mus, kls = [], []
    for start in range(0, len(positions), batch_size):
        chunk = slice(start, start + batch_size)
        ids = batcher.encode(positions[chunk]).to(device)  # (B, T)
        logits, mu, logvar = model(ids)
        real = ids != model.config.pad_id
        correct += int((logits.argmax(-1) == ids)[real].sum())
        total += int(real.sum())
        empty = n_notes[chunk] == 0
        mus.append(mu[~torch.from_numpy(empty)].float().cpu())
        kls.append((0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(-1)[~torch.from_numpy(empty)].cpu())
        decoded = model.generate(mu)
        for row, out, is_empty in zip(ids.tolist(), decoded, empty, strict=True):
            target = codec_ids_to_base(tok, row[: row.index(model.config.eos_id)])
            predicted = codec_ids_to_base(tok, out)
            if is_empty:
                empty_exact += predicted == target
                continue
            exact += predicted == target
            ref_notes, pred_notes = phrase_notes(tok, target), phrase_notes(tok, predicted)
            m, r, p = note_f1(ref_notes, pred_notes)
            matched, n_ref, n_pred = matched + m, n_ref + r, n_pred + p
            pairs = _matched_pairs(ref_notes, pred_notes)
            same_duration += sum(a.duration == b.duration for a, b in pairs)
            same_velocity += sum(a.velocity == b.velocity for a, b in pairs)
        if progress is not None:
            progress(min(start + batch_size, len(positions)), len(positions))
    mu_all = torch.cat(mus) if mus else torch.zeros(0, model.config.d_latent)
    n_full = int((n_notes > 0).sum())
    n_empty = len(positions) - n_full
    precision = matched / max(n_pred, 1)
    recall = matched / max(n_ref, 1)
    return PhraseVAEReport(
        bars=n_full,
        empty_bars=n_empty,
        too_long_bars=batcher.n_too_long,
        token_accuracy=correct / max(total, 1),
        exact_bar_rate=exact / max(n_full, 1),
        note_precision=precision,
        note_recall=recall,
        note_f1=2 * precision * recall / max(precision + recall, 1e-12),
        duration_match=same_duration / max(matched, 1),
        velocity_match=same_velocity / max(matched, 1),
        empty_bar_exact_rate=empty_exact / max(n_empty, 1),
        mean_kl=float(torch.cat(kls).mean()) if kls else 0.0,
        active_dims=int((mu_all.var(dim=0) > 0.01).sum()) if len(mu_all) > 1 else 0,
        prior_grammatical=prior_validity(model, tok, prior_samples, seed),
        prior_samples=prior_samples,
    )


@torch.no_grad()
def prior_validity(model: PhraseVAE, tokenizer: PhraseTokenizer, n: int, seed: int) -> float:
    if n == 0:
        return 0.0
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.d_latent, generator=generator).to(device)
    valid = 0
    for start in range(0, n, 128):
        valid += sum(is_valid_phrase(tokenizer, ids) for ids in model.generate(z[start : start + 128]))
    return valid / n


def _matched_pairs(reference: list[BarNote], predicted: list[BarNote]) -> list[tuple[BarNote, BarNote]]:
    """Pairs of notes with the same (onset, pitch), each note used once."""
    pool: dict[tuple[int, int], list[BarNote]] = {}
    for note in predicted:
        pool.setdefault((note.position, note.pitch), []).append(note)
    pairs = []
    for note in reference:
        candidates = pool.get((note.position, note.pitch))
        if candidates:
            pairs.append((note, candidates.pop()))
    return pairs
