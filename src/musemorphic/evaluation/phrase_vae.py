"""How well a bar codec (GridCodec or PhraseVAE) codes bars.

On held-out bars (non-empty ones for the headline figures; empty bars apart):
- token accuracy (PhraseVAE only): teacher-forced argmax with z = mu, over real (non-pad) targets;
- exact bars: greedy decoding from z = mu gives back every note's onset, pitch and duration;
- note precision / recall / F1 on (onset, pitch), plus duration and velocity agreement of
  the matched notes;
- mean KL to N(0, I) per bar, and active dimensions (variance of mu over bars > 0.01);
- how the codes spread: the median posterior standard deviation (over bars and dimensions)
  and the median over dimensions of mu's standard deviation across bars. Their ratio says how
  tightly a bar is pinned down against how far apart bars lie;
- empty bars given back empty;
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
from musemorphic.data.remi_grammar import BarNote, GrammarError, note_f1, note_set, parse_bar, precision_recall_f1
from musemorphic.data.tokenizer import PhraseTokenizer, SongTokens, TrackTokens
from musemorphic.models.phrase_vae import PhraseVAE, kl_per_dim


@dataclass
class PhraseVAEReport:
    bars: int
    empty_bars: int
    too_long_bars: int  # longer than the model's max_len, left out
    mean_phrase_tokens: float  # per phrase, empty bars too: codec tokens with Program and EOS (PhraseVAE); base tokens of the bar (GridCodec)
    token_accuracy: float | None  # None for a codec that predicts no tokens (GridCodec)
    exact_bar_rate: float
    note_precision: float
    note_recall: float
    note_f1: float
    duration_match: float
    velocity_match: float
    velocity_error: float  # mean |velocity difference| (MIDI units) of matched notes
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
    return bar_fault(tokenizer, tokenizer.program_by_id[ids[0]], bar)


def bar_fault(tokenizer: PhraseTokenizer, program: int, bar: list[int]) -> str | None:
    """Why a bar of base ids is not grammatical REMI+ that miditok decodes to MIDI (its
    numbers replaced by N); None if it is."""
    try:
        parse_bar(tokenizer.token_names(bar))
        tokenizer.decode_song(SongTokens([TrackTokens(program, [bar])], []))
    except GrammarError as error:
        return re.sub(r"\d+", "N", str(error))
    except (KeyError, ValueError, IndexError) as error:
        return f"not decodable to MIDI ({type(error).__name__})"
    return None


class NoteTally:
    """Running note-level agreement of decoded bars with their references (non-empty bars)."""

    def __init__(self):
        self.bars = self.exact = self.matched = self.n_ref = self.n_pred = self.same_duration = self.same_velocity = 0
        self.velocity_error = 0

    def add(self, reference: list[BarNote], predicted: list[BarNote]) -> None:
        self.bars += 1
        self.exact += note_set(reference) == note_set(predicted)
        m, r, p = note_f1(reference, predicted)
        self.matched, self.n_ref, self.n_pred = self.matched + m, self.n_ref + r, self.n_pred + p
        pairs = _matched_pairs(reference, predicted)
        self.same_duration += sum(a.duration == b.duration for a, b in pairs)
        self.same_velocity += sum(a.velocity == b.velocity for a, b in pairs)
        self.velocity_error += sum(abs(a.velocity - b.velocity) for a, b in pairs)

    def figures(self) -> dict[str, float]:
        precision, recall, f1 = precision_recall_f1(self.matched, self.n_ref, self.n_pred)
        return {"exact_bar_rate": self.exact / max(self.bars, 1), "note_precision": precision, "note_recall": recall, "note_f1": f1,
                "duration_match": self.same_duration / max(self.matched, 1), "velocity_match": self.same_velocity / max(self.matched, 1),
                "velocity_error": self.velocity_error / max(self.matched, 1)}


def evaluate_codec(model, dataset: PhraseDataset, **kwargs) -> PhraseVAEReport:
    """`evaluate_grid_codec` or `evaluate_phrase_vae`, by the codec's kind."""
    from musemorphic.models.grid_codec import GridCodec

    return (evaluate_grid_codec if isinstance(model, GridCodec) else evaluate_phrase_vae)(model, dataset, **kwargs)


@torch.no_grad()
def evaluate_grid_codec(
    model,
    dataset: PhraseDataset,
    max_bars: int | None = None,
    batch_size: int = 256,
    prior_samples: int = 512,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PhraseVAEReport:
    """The figures of `evaluate_phrase_vae` for a GridCodec (no token accuracy: it predicts no tokens)."""
    from musemorphic.generation.phrase_codec import decode_grid_bars, decode_grid_tracks, encode_bars_gaussian

    model.eval()
    tok = dataset.tokenizer
    batcher = PhraseBatcher(dataset, max_len=1 << 30)
    positions = _chosen(batcher.indices, max_bars, seed)
    tally, empty_exact, n_empty, n_tokens = NoteTally(), 0, 0, 0
    mus, logvars = [], []
    for start in range(0, len(positions), batch_size):
        bars, programs = batcher.bars(positions[start : start + batch_size])
        mu, logvar = encode_bars_gaussian(model, tok, bars, programs, batch_size)
        for bar, program, out, m, lv in zip(bars, programs, decode_grid_bars(model, tok, mu, batch_size), mu, logvar):
            n_tokens += len(bar)
            reference, predicted = phrase_notes(tok, [program, *bar]), phrase_notes(tok, [program, *out])
            if not reference:
                n_empty += 1
                empty_exact += not predicted
                continue
            tally.add(reference, predicted)
            mus.append(m)
            logvars.append(lv)
        if progress is not None:
            progress(min(start + batch_size, len(positions)), len(positions))
    mean = torch.stack(mus) if mus else torch.zeros(0, model.config.d_latent)
    log_var = torch.stack(logvars) if logvars else torch.zeros(0, model.config.d_latent)
    faults: Counter[str] = Counter()
    if prior_samples:
        z = torch.randn(prior_samples, model.config.d_latent, generator=torch.Generator().manual_seed(seed))
        for program, bar in decode_grid_tracks(model, tok, z, batch_size):
            faults[bar_fault(tok, program, bar)] += 1
        faults.pop(None, None)
    return PhraseVAEReport(
        bars=tally.bars, empty_bars=n_empty, too_long_bars=0, mean_phrase_tokens=n_tokens / max(len(positions), 1),
        token_accuracy=None, **tally.figures(), empty_bar_exact_rate=empty_exact / max(n_empty, 1), **latent_figures(mean, log_var),
        prior_grammatical=(1 - faults.total() / prior_samples) if prior_samples else None,
        prior_samples=prior_samples, prior_faults=dict(faults.most_common()),
    )


def latent_figures(mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, float | int]:
    """The report's latent figures from the posteriors (N, Z) of non-empty bars: mean KL per bar,
    active dimensions, median posterior std and median spread of the means."""
    return {
        "mean_kl": float((0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)).mean()) if len(mu) else 0.0,
        "active_dims": int((mu.var(dim=0) > 0.01).sum()) if len(mu) > 1 else 0,
        "posterior_std_median": float((0.5 * logvar).exp().median()) if len(mu) else 0.0,
        "mean_spread_median": float(mu.std(dim=0).median()) if len(mu) > 1 else 0.0,
    }


def _chosen(indices: np.ndarray, max_bars: int | None, seed: int) -> np.ndarray:
    """At most `max_bars` of the split positions, drawn once by `seed` (all when None), in order."""
    if max_bars is not None and len(indices) > max_bars:
        return np.sort(np.random.default_rng(seed).choice(indices, max_bars, replace=False))
    return indices


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
    positions = _chosen(batcher.indices, max_bars, seed)
    n_notes = dataset.shard.columns["phrase_n_notes"][dataset.phrase_indices[positions]]
    correct = total = empty_exact = 0
    tally = NoteTally()
    mus, log_vars = [], []
    for start in range(0, len(positions), batch_size):
        chunk = slice(start, start + batch_size)
        ids = batcher.encode(positions[chunk]).to(device)  # (B, T)
        logits, mu, logvar = model(ids)
        real = ids != model.config.pad_id
        correct += int((logits.argmax(-1) == ids)[real].sum())
        total += int(real.sum())
        empty = n_notes[chunk] == 0
        sounding = ~torch.from_numpy(empty)
        mus.append(mu[sounding].float().cpu())  # (B', Z)
        log_vars.append(logvar[sounding].float().cpu())
        decoded = model.generate(mu)
        for row, out, is_empty in zip(ids.tolist(), decoded, empty, strict=True):
            target = codec_ids_to_base(tok, row[: row.index(model.config.eos_id)])
            predicted = codec_ids_to_base(tok, out)
            if is_empty:
                empty_exact += predicted == target
                continue
            tally.add(phrase_notes(tok, target), phrase_notes(tok, predicted))
        if progress is not None:
            progress(min(start + batch_size, len(positions)), len(positions))
    empty_latents = torch.zeros(0, model.config.d_latent)
    mu_all, logvar_all = (torch.cat(mus), torch.cat(log_vars)) if mus else (empty_latents, empty_latents)
    faults = prior_faults(model, tok, prior_samples, seed)
    n_full = int((n_notes > 0).sum())
    n_empty = len(positions) - n_full
    return PhraseVAEReport(
        bars=n_full,
        empty_bars=n_empty,
        too_long_bars=batcher.n_too_long,
        mean_phrase_tokens=total / max(len(positions), 1),
        token_accuracy=correct / max(total, 1),
        **tally.figures(),
        empty_bar_exact_rate=empty_exact / max(n_empty, 1),
        **latent_figures(mu_all, logvar_all),
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
