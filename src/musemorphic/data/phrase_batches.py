"""Batches of phrases for codec training and evaluation.

A phrase as a codec sees it: `Program_p  BPE(bar tokens)  EOS`, PAD-padded to the longest
in the batch. Batches are drawn from a generator seeded by (seed, rank, step), so any step's
batch can be rebuilt without replaying the ones before it (this is what makes resumed
training identical to uninterrupted training).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from musemorphic.data.augment import Augmenter, AugmentConfig
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.remi_grammar import GrammarError, grammatical_prefix, parse_bar
from musemorphic.data.tokenizer import PhraseTokenizer


class PhraseBatcher:
    def __init__(
        self,
        dataset: PhraseDataset,
        max_len: int,
        augment: AugmentConfig | None = None,
        nonempty_only: bool = False,
        bucket_size: int = 4096,
    ):
        self.dataset = dataset
        self.tokenizer = dataset.tokenizer
        self.max_len = max_len
        cols = dataset.shard.columns
        rows = dataset.phrase_indices
        lengths = np.diff(dataset.shard.offsets)[rows]
        keep = lengths + 2 <= max_len  # BPE never lengthens, so this bound is safe
        if nonempty_only:
            keep &= cols["phrase_n_notes"][rows] > 0
        self.indices = np.flatnonzero(keep)  # positions within the split
        self.n_too_long = int((lengths + 2 > max_len).sum())
        # length buckets: a batch is drawn from one bucket of similar lengths, so little
        # compute goes to padding; every phrase is still drawn with the same probability
        by_length = self.indices[np.argsort(lengths[self.indices], kind="stable")]
        self.buckets = [by_length[i : i + bucket_size] for i in range(0, len(by_length), bucket_size)]
        if len(self.buckets) > 1 and len(self.buckets[-1]) < bucket_size:
            short = self.buckets.pop()  # too small a bucket joins its neighbour
            self.buckets[-1] = np.concatenate([self.buckets[-1], short])
        self.augmenter = Augmenter(self.tokenizer, augment) if augment is not None else None

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, batch_size: int, seed: int, rank: int, step: int) -> torch.Tensor:
        """A seeded random batch (B, T) for this (seed, rank, step)."""
        return codec_batch(self.tokenizer, *self.sample_bars(batch_size, seed, rank, step))

    def sample_bars(self, batch_size: int, seed: int, rank: int, step: int) -> tuple[list[list[int]], list[int]]:
        """The base-id bars and programs of `sample`'s batch."""
        rng = np.random.default_rng([seed, rank, step])
        sizes = np.array([len(b) for b in self.buckets])
        bucket = self.buckets[rng.choice(len(sizes), p=sizes / sizes.sum())]
        chosen = bucket[rng.integers(0, len(bucket), batch_size)]
        return self.bars(chosen, rng if self.augmenter is not None else None)

    def encode(self, positions: Sequence[int], rng: np.random.Generator | None = None) -> torch.Tensor:
        """Phrases at these split positions as a padded id batch (B, T)."""
        return codec_batch(self.tokenizer, *self.bars(positions, rng))

    def bars(self, positions: Sequence[int], rng: np.random.Generator | None = None) -> tuple[list[list[int]], list[int]]:
        """Base-id bars (augmented when rng is given) and programs at these split positions."""
        bars, programs = [], []
        for i in positions:
            phrase, program = self.dataset.phrase(int(i)), self.dataset.phrase_program(int(i))
            if rng is not None:
                aug = self.augmenter.sample(rng, self.augmenter.pitch_range([phrase], [program]))
                phrase = self.augmenter.apply(phrase, program, aug)
            bars.append(phrase.tolist())
            programs.append(program)
        return bars, programs


def codec_batch(tokenizer: PhraseTokenizer, bars: Sequence[Sequence[int]], programs: Sequence[int]) -> torch.Tensor:
    """Base-id bars and their programs -> padded codec input (B, T): `Program_p BPE(bar) EOS`."""
    encoded = tokenizer.bpe_encode(bars)
    seqs = [[tokenizer.program_ids[p], *ids, tokenizer.eos_id] for p, ids in zip(programs, encoded, strict=True)]
    batch = torch.full((len(seqs), max(map(len, seqs))), tokenizer.pad_id, dtype=torch.long)
    for row, seq in enumerate(seqs):
        batch[row, : len(seq)] = torch.tensor(seq)
    return batch


def codec_ids_to_base(tokenizer: PhraseTokenizer, ids: Sequence[int]) -> list[int]:
    """Codec ids (Program, BPE bar tokens...) -> base ids (Program, bar tokens...): codec_batch undone."""
    return list(ids[:1]) + tokenizer.bpe_decode(ids[1:])


def salvaged_bar(tokenizer: PhraseTokenizer, ids: Sequence[int]) -> list[int] | None:
    """The bar of `grammatical_bar` when it is well-formed, or else the longest well-formed bar
    the decoded ids begin with (its complete notes before the first fault), or None when they
    hold no Program or no bar head."""
    if not ids or ids[0] not in tokenizer.program_by_id:
        return None
    bar = tokenizer.bpe_decode(ids[1:])
    cut = grammatical_prefix(tokenizer.token_names(bar))
    return bar[:cut] if cut else None


def grammatical_bar(tokenizer: PhraseTokenizer, ids: Sequence[int]) -> list[int]:
    """Base ids of the bar in decoded codec ids; GrammarError unless it opens with a Program
    and the rest is a well-formed REMI+ bar."""
    if not ids or ids[0] not in tokenizer.program_by_id:
        raise GrammarError("no leading Program token")
    bar = tokenizer.bpe_decode(ids[1:])
    parse_bar(tokenizer.token_names(bar))
    return bar
