"""How well a PhraseVAE codes bars (definitions in EVALUATION.md, "Codec reconstruction").

On held-out bars (non-empty ones for the headline figures; empty bars apart):
- token accuracy: teacher-forced argmax with z = mu, over real (non-pad) targets;
- exact bars: greedy decoding from z = mu equals the input after BPE decoding;
- note precision / recall / F1 on (onset, pitch), plus duration and velocity agreement of
  the matched notes;
- mean KL to N(0, I) per bar, and active dimensions (variance of mu over bars > 0.01);
- how the codes spread: the median posterior standard deviation (over bars and dimensions)
  and the median over dimensions of mu's standard deviation across bars. Their ratio says how
  tightly a bar is pinned down against how far apart bars lie;
- prior validity: the share of bars greedily decoded from z ~ N(0, I) that are grammatical
  REMI+ (`data/remi_grammar.py`) and decode to MIDI, and why the others fail.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher, codec_ids_to_base, grammatical_bar
from musemorphic.data.remi_grammar import BarNote, GrammarError, note_f1, parse_bar, precision_recall_f1
from musemorphic.data.tokenizer import PhraseTokenizer, SongTokens, TrackTokens
from musemorphic.models.phrase_vae import PhraseVAE, kl_per_dim


@dataclass
class PhraseVAEReport:
    bars: int
    empty_bars: int
    too_long_bars: int  # longer than the model's max_len, left out
    mean_phrase_tokens: float  # codec tokens per phrase (Program and EOS included), empty bars too
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
    posterior_std_median: float  # median of exp(logvar / 2) over non-empty bars and dimensions
    mean_spread_median: float  # median over dimensions of the std of mu across bars
    prior_grammatical: float | None  # None without prior samples
    prior_samples: int
    prior_faults: dict[str, int]  # why the ungrammatical prior samples fail, by message

    def to_dict(self) -> dict:
        return asdict(self)


def phrase_notes(tokenizer: PhraseTokenizer, base_ids: list[int]) -> list[BarNote]:
    """Notes of a decoded phrase; an ungrammatical phrase holds none."""
    try:
        return parse_bar(tokenizer.token_names(base_ids[1:]))[1]
    except GrammarError:
        return []


def phrase_fault(tokenizer: PhraseTokenizer, ids: list[int]) -> str | None:
    """Why a decoded phrase is not grammatical REMI+ with a leading Program that miditok
    decodes to MIDI, as a message with its numbers replaced by N; None if it is."""
    try:
        bar = grammatical_bar(tokenizer, ids)
    except GrammarError as error:
        return re.sub(r"\d+", "N", str(error))
    except (KeyError, IndexError) as error:  # ids outside the vocabulary
        return f"unknown tokens ({type(error).__name__})"
    try:
        tokenizer.decode_song(SongTokens([TrackTokens(tokenizer.program_by_id[ids[0]], [bar])], []))
    except (KeyError, ValueError, IndexError) as error:
        return f"not decodable to MIDI ({type(error).__name__})"
    return None


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
    mus, kls, stds = [], [], []
    for start in range(0, len(positions), batch_size):
        chunk = slice(start, start + batch_size)
        ids = batcher.encode(positions[chunk]).to(device)  # (B, T)
        logits, mu, logvar = model(ids)
        real = ids != model.config.pad_id
        correct += int((logits.argmax(-1) == ids)[real].sum())
        total += int(real.sum())
        empty = n_notes[chunk] == 0
        sounding = ~torch.from_numpy(empty)
        mean, log_var = mu[sounding].float().cpu(), logvar[sounding].float().cpu()  # (B', Z)
        mus.append(mean)
        kls.append(0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1))
        stds.append((0.5 * log_var).exp())
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
    faults = prior_faults(model, tok, prior_samples, seed)
    n_full = int((n_notes > 0).sum())
    n_empty = len(positions) - n_full
    precision, recall, f1 = precision_recall_f1(matched, n_ref, n_pred)
    return PhraseVAEReport(
        bars=n_full,
        empty_bars=n_empty,
        too_long_bars=batcher.n_too_long,
        mean_phrase_tokens=total / max(len(positions), 1),
        token_accuracy=correct / max(total, 1),
        exact_bar_rate=exact / max(n_full, 1),
        note_precision=precision,
        note_recall=recall,
        note_f1=f1,
        duration_match=same_duration / max(matched, 1),
        velocity_match=same_velocity / max(matched, 1),
        empty_bar_exact_rate=empty_exact / max(n_empty, 1),
        mean_kl=float(torch.cat(kls).mean()) if n_full else 0.0,
        active_dims=int((mu_all.var(dim=0) > 0.01).sum()) if len(mu_all) > 1 else 0,
        posterior_std_median=float(torch.cat(stds).median()) if n_full else 0.0,
        mean_spread_median=float(mu_all.std(dim=0).median()) if len(mu_all) > 1 else 0.0,
        prior_grammatical=(1 - faults.total() / prior_samples) if prior_samples else None,
        prior_samples=prior_samples,
        prior_faults=dict(faults.most_common()),
    )


@torch.no_grad()
def prior_faults(model: PhraseVAE, tokenizer: PhraseTokenizer, n: int, seed: int) -> Counter[str]:
    """How many of `n` bars greedily decoded from z ~ N(0, I) fail, by `phrase_fault`."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.d_latent, generator=generator).to(device)
    faults: Counter[str] = Counter()
    for start in range(0, n, 128):
        faults.update(phrase_fault(tokenizer, ids) for ids in model.generate(z[start : start + 128]))
    faults.pop(None, None)
    return faults


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
