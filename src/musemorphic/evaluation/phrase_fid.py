"""Phrase FID (EVALUATION.md): Frechet distance between PhraseVAE posterior means of
generated and of held-out real non-empty phrases, the same number on both sides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.evaluation.frechet import frechet_distance
from musemorphic.generation.phrase_codec import encode_bars
from musemorphic.models.phrase_vae import PhraseVAE
from musemorphic.training.latents import encode_phrases


def real_phrase_means(
    codec: PhraseVAE, tokenizer: PhraseTokenizer, data: str | Path, split: str, limit: int = 12_000, seed: int = 0
) -> np.ndarray:
    """Posterior means (n, Z) of (a seeded sample of at most `limit`) non-empty phrases of a
    split, BPE-encoded with the codec's tokenizer."""
    dataset = PhraseDataset(data, split=split)
    dataset.tokenizer = tokenizer
    nonempty = np.flatnonzero(dataset.shard.columns["phrase_n_notes"][dataset.phrase_indices] > 0)
    if len(nonempty) > limit:
        nonempty = np.sort(np.random.default_rng(seed).choice(nonempty, limit, replace=False))
    dataset.phrase_indices = dataset.phrase_indices[nonempty]
    return encode_phrases(codec, dataset)


def nonempty_phrase_means(
    codec: PhraseVAE, tokenizer: PhraseTokenizer, phrases: Sequence[list[int]], programs: Sequence[int]
) -> tuple[np.ndarray, int]:
    """Posterior means (n, Z) of the phrases that hold notes, and how many were empty."""
    names = tokenizer.base_names
    kept = [(bar, p) for bar, p in zip(phrases, programs, strict=True) if any(names[i].startswith(("Pitch_", "PitchDrum_")) for i in bar)]
    means = encode_bars(codec, tokenizer, [bar for bar, _ in kept], [p for _, p in kept]).numpy()
    return means, len(phrases) - len(kept)


def phrase_fid(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, int]:
    """Frechet distance between equal-sized random subsets of a and b, and that size."""
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    if n < 2:
        return float("nan"), n
    return frechet_distance(a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]), n
