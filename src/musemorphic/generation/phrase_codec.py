"""Bars <-> latents through a bar codec (GridCodec or PhraseVAE), in batches: posterior means in,
decoded bars out (greedy or sampled for a PhraseVAE, greedy for a GridCodec)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from musemorphic.data.bar_grid import GridVocabulary
from musemorphic.data.phrase_batches import codec_batch, grammatical_bar, salvaged_bar
from musemorphic.data.remi_grammar import GrammarError
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.models.grid_codec import GridCodec
from musemorphic.models.phrase_vae import PhraseVAE


@torch.no_grad()
def encode_bars(
    model: PhraseVAE | GridCodec, tokenizer: PhraseTokenizer, bars: Sequence[list[int]], programs: Sequence[int], batch_size: int = 256
) -> torch.Tensor:
    """Posterior means (N, Z) of base-id bars with their programs (cut to a PhraseVAE's max_len)."""
    return encode_bars_gaussian(model, tokenizer, bars, programs, batch_size)[0]


@torch.no_grad()
def encode_bars_gaussian(
    model: PhraseVAE | GridCodec, tokenizer: PhraseTokenizer, bars: Sequence[list[int]], programs: Sequence[int], batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances (N, Z) of base-id bars with their programs."""
    device = next(model.parameters()).device
    if isinstance(model, GridCodec):
        vocabulary = grid_vocabulary(tokenizer, model)
        chunks = [model.encode(vocabulary.grids(bars[s : s + batch_size], programs[s : s + batch_size]).to(device))
                  for s in range(0, len(bars), batch_size)]
    else:
        chunks = [model.encode(codec_batch(tokenizer, bars[s : s + batch_size], programs[s : s + batch_size])[:, : model.config.max_len].to(device))
                  for s in range(0, len(bars), batch_size)]
    if not chunks:
        return torch.zeros(0, model.config.d_latent), torch.zeros(0, model.config.d_latent)
    return torch.cat([mu for mu, _ in chunks]).float().cpu(), torch.cat([logvar for _, logvar in chunks]).float().cpu()


@torch.no_grad()
def decode_bars(
    model: PhraseVAE | GridCodec,
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
    programs: Sequence[int] | None = None,
) -> list[list[int] | None]:
    """Decoding of latents (N, Z) to base-id bars, None where ungrammatical: greedy, or sampled
    at `temperature` from each step's top-p nucleus with each bar's `uniforms` (N, max_len)
    (`PhraseVAE.generate`), only among the greedy token's `token_groups` (V,) when given; with
    `note_ends` (V,) bool, every bar completes a note before it ends (`note_ends()`). With
    `salvage`, an ungrammatical bar keeps its complete notes before the first fault
    (`salvaged_bar`). `logit_bias` (V,) is added to the decoder's logits.

    A GridCodec decodes greedily in one pass per batch, and every bar it writes is grammatical:
    `logit_bias` at the Pitch tokens is added to each pitch's onset logits, `note_ends` makes
    every bar sound, `programs` (N,) sets each bar's program (else z's), and the sampling
    arguments do not apply."""
    device = next(model.parameters()).device
    if isinstance(model, GridCodec):
        return decode_grid_bars(model, tokenizer, z, batch_size, logit_bias, note_ends is not None, programs)
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


@torch.no_grad()
def decode_grid_bars(model: GridCodec, tokenizer: PhraseTokenizer, z: torch.Tensor, batch_size: int = 256,
                     logit_bias: torch.Tensor | None = None, must_sound: bool = False,
                     programs: Sequence[int] | None = None) -> list[list[int]]:
    """A GridCodec's greedy decoding of latents (N, Z) to base-id bars (see `decode_bars`)."""
    return [bar for _, bar in decode_grid_tracks(model, tokenizer, z, batch_size, logit_bias, must_sound, programs)]


@torch.no_grad()
def decode_grid_tracks(model: GridCodec, tokenizer: PhraseTokenizer, z: torch.Tensor, batch_size: int = 256,
                       logit_bias: torch.Tensor | None = None, must_sound: bool = False,
                       programs: Sequence[int] | None = None) -> list[tuple[int, list[int]]]:
    """`decode_grid_bars` with the program each bar is written for."""
    device = next(model.parameters()).device
    vocabulary = grid_vocabulary(tokenizer, model)
    pitch_bias = None if logit_bias is None else logit_bias[pitch_token_ids(tokenizer)].float().to(device)  # (128,)
    program_classes = None if programs is None else torch.tensor([vocabulary.program_index(p) for p in programs])
    out = []
    for start in range(0, len(z), batch_size):
        chunk_programs = None if program_classes is None else program_classes[start : start + batch_size].to(device)
        for grids in model.write(z[start : start + batch_size].to(device), pitch_bias, chunk_programs, must_sound):
            out.append((vocabulary.programs[grids[4]], vocabulary.bar(*grids)))
    return out


def grid_vocabulary(tokenizer: PhraseTokenizer, model: GridCodec) -> GridVocabulary:
    """The GridVocabulary a GridCodec reads and writes bars of this tokenizer with (built once per pair of settings)."""
    return _grid_vocabulary(tokenizer, model.config.velocity_levels, tuple(model.config.level_velocities))


@functools.lru_cache(maxsize=8)
def _grid_vocabulary(tokenizer: PhraseTokenizer, velocity_levels: int, level_velocities: tuple[int, ...]) -> GridVocabulary:
    return GridVocabulary(tokenizer, velocity_levels, level_velocities)


@functools.lru_cache(maxsize=8)
def pitch_token_ids(tokenizer: PhraseTokenizer) -> list[int]:
    """(128,) the codec id that stands for each pitch's Pitch token alone."""
    alone = {tuple(tokenizer.id_names(i)): i for i in range(tokenizer.vocab_size)}
    return [alone[(f"Pitch_{p}",)] for p in range(128)]


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
