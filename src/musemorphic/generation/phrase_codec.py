"""Bars <-> latents through a PhraseVAE, in batches: posterior means in, greedy or sampled decoding out."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from musemorphic.data.phrase_batches import codec_batch, grammatical_bar, salvaged_bar
from musemorphic.data.remi_grammar import GrammarError
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.models.phrase_vae import PhraseVAE


@torch.no_grad()
def encode_bars(
    model: PhraseVAE, tokenizer: PhraseTokenizer, bars: Sequence[list[int]], programs: Sequence[int], batch_size: int = 256
) -> torch.Tensor:
    """Posterior means (N, Z) of base-id bars with their programs (cut to the codec's max_len)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(bars), batch_size):
        ids = codec_batch(tokenizer, bars[start : start + batch_size], programs[start : start + batch_size])
        out.append(model.encode(ids[:, : model.config.max_len].to(device))[0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.config.d_latent)


@torch.no_grad()
def decode_bars(
    model: PhraseVAE,
    tokenizer: PhraseTokenizer,
    z: torch.Tensor,
    batch_size: int = 256,
    logit_bias: torch.Tensor | None = None,
    salvage: bool = False,
    temperature: float = 0.0,
    uniforms: torch.Tensor | None = None,
    top_p: float = 1.0,
    token_groups: torch.Tensor | None = None,
    note_ends: torch.Tensor | None = None,
) -> list[list[int] | None]:
    """Decoding of latents (N, Z) to base-id bars, None where ungrammatical: greedy, or sampled
    at `temperature` from each step's top-p nucleus with each bar's `uniforms` (N, max_len)
    (`PhraseVAE.generate`), only among the greedy token's `token_groups` (V,) when given; with
    `note_ends` (V,) bool, every bar completes a note before it ends (`note_ends()`). With
    `salvage`, an ungrammatical bar keeps its complete notes before the first fault
    (`salvaged_bar`). `logit_bias` (V,) is added to the decoder's logits."""
    device = next(model.parameters()).device
    bias = logit_bias.to(device) if logit_bias is not None else None
    if temperature > 0 and uniforms is None:
        uniforms = torch.rand(len(z), model.config.max_len, dtype=torch.float64)
    draws = uniforms.split(batch_size) if uniforms is not None else [None] * len(z.split(batch_size))
    groups = token_groups.to(device) if token_groups is not None else None
    notes = note_ends.to(device) if note_ends is not None else None
    out: list[list[int] | None] = []
    for chunk, chunk_uniforms in zip(z.split(batch_size), draws):
        for ids in model.generate(chunk.to(device), temperature, uniforms=chunk_uniforms, logit_bias=bias, top_p=top_p,
                                  token_groups=groups, note_ends=notes):
            if salvage:
                out.append(salvaged_bar(tokenizer, ids))
                continue
            try:
                out.append(grammatical_bar(tokenizer, ids))
            except GrammarError:
                out.append(None)
    return out


def pitch_groups(tokenizer: PhraseTokenizer, apart: torch.Tensor | None = None) -> torch.Tensor:
    """(V,) a group id per codec token: tokens share one when they stand for the same base
    tokens but for their pitches (the same positions, velocities and durations), so sampling
    within a group changes which notes sound and not when. Tokens marked in `apart` (V,) bool
    are each a group of their own: a draw never moves to or from them."""
    skeletons: dict[tuple[str, ...], int] = {}
    groups = []
    for i in range(tokenizer.vocab_size):
        names = tokenizer.id_names(i)
        skeleton = tuple("Pitch" if name.startswith("Pitch_") else name for name in names)
        if apart is not None and apart[i]:
            skeleton = (f"apart {i}",)
        groups.append(skeletons.setdefault(skeleton, len(skeletons)))
    return torch.tensor(groups)


def note_ends(tokenizer: PhraseTokenizer) -> torch.Tensor:
    """(V,) bool: the codec tokens that complete a note, those holding a Duration base token
    (REMI writes a note as its pitch, velocity and then its duration)."""
    return torch.tensor([any(name.startswith("Duration_") for name in tokenizer.id_names(i))
                         for i in range(tokenizer.vocab_size)])
