"""Encoding a prepared dataset into PhraseVAE latents (posterior means), cached on disk."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musemorphic.data.augment import AugmentConfig, Augmenter
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.key_frame import normalizing_shift
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.generation.phrase_codec import encode_bars
from musemorphic.models.phrase_vae import PhraseVAE


@torch.no_grad()
def encode_phrases(
    model: PhraseVAE,
    dataset: PhraseDataset,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
    key_normalized: bool = False,
) -> np.ndarray:
    """mu of every phrase of `dataset` (its split order): (n_phrases, Z) float32.

    With `key_normalized`, each song is first moved to C major / A minor (data/key_frame.py).
    Phrases longer than the codec's max_len are cut to it (they are rare; see the
    evaluation's `too_long_bars`).
    """
    model.eval()
    batcher = PhraseBatcher(dataset, max_len=1 << 30)  # keep every phrase
    order = np.argsort(np.diff(dataset.shard.offsets)[dataset.phrase_indices], kind="stable")  # short first
    out = np.zeros((len(dataset), model.config.d_latent), dtype=np.float32)
    if key_normalized:
        mover = Augmenter(dataset.tokenizer, AugmentConfig())
        songs = dataset.shard.columns["phrase_song"][dataset.phrase_indices]
        song_shift = {int(s): normalizing_shift(dataset.song_controls(int(s)).key) for s in np.unique(songs)}
        shifts = np.array([song_shift[int(s)] for s in songs])  # (n_phrases,) semitones
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        bars, programs = batcher.bars(chosen)
        if key_normalized:
            bars = [mover.transpose(bar, p, int(shifts[i])).tolist() for bar, p, i in zip(bars, programs, chosen)]
        out[chosen] = encode_bars(model, dataset.tokenizer, bars, programs, batch_size).numpy()
        if progress is not None:
            progress(min(start + batch_size, len(order)), len(order))
    return out


def codec_digest(codec_dir: str | Path) -> str:
    """Short hash of a codec checkpoint's weights: names what was computed with it."""
    return hashlib.sha1((Path(codec_dir) / "model.safetensors").read_bytes()).hexdigest()[:12]


def cached_latents(
    model: PhraseVAE,
    codec_dir: Path,
    dataset_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    key_normalized: bool = False,
) -> np.ndarray:
    """Latents of all phrases of a dataset (split=None order), computed once per codec and frame."""
    path = Path(dataset_dir) / f"latents-{codec_digest(codec_dir)}{'-keynorm' if key_normalized else ''}.npy"
    if path.exists():
        return np.load(path)
    dataset = PhraseDataset(dataset_dir, split=None)
    latents = encode_phrases(model, dataset, progress=progress, key_normalized=key_normalized)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, latents.astype(np.float16))
    tmp.replace(path)
    return np.load(path)
