"""PhraseCritic training recipe: latents of real phrases, and what the codec decodes them to.

The table is built once per codec and cached next to the dataset: `n_phrases` training-split
latents (the prior's key frame when `key_normalized`), each greedily decoded and measured as
the generator would write it (`phrase_facts`, and `onset_cells` for a critic with an onset
grid; an ungrammatical decoding counts as silent, where
the generator now keeps its complete notes before the first fault: a small difference, as real phrases' codes
decode broken far less often than prior draws). Batches are drawn from a generator seeded by
(seed, rank, step), so resuming reproduces them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.generation.phrase_codec import decode_bars
from musemorphic.generation.written_notes import onset_cells, phrase_facts
from musemorphic.models.phrase_critic import N_TARGETS, PhraseCritic, PhraseCriticConfig
from musemorphic.models.phrase_vae import PhraseVAE
from musemorphic.training.checkpoint import load_model_checkpoint
from musemorphic.training.latents import cached_latents, codec_digest


@torch.no_grad()
def decoded_facts(
    codec: PhraseVAE,
    tokenizer: PhraseTokenizer,
    latents: np.ndarray,
    programs: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
    cells: int = 0,
) -> np.ndarray:
    """(N, 13 + cells) `phrase_facts`, then `onset_cells`, of the greedy decoding of each latent (N, Z)."""
    out = np.zeros((len(latents), N_TARGETS + cells), dtype=np.float32)
    step = 1024
    for start in range(0, len(latents), step):
        z = torch.from_numpy(np.asarray(latents[start : start + step], dtype=np.float32))
        for i, bar in enumerate(decode_bars(codec, tokenizer, z, programs=programs[start : start + step].tolist())):
            program = int(programs[start + i])
            out[start + i, :N_TARGETS] = phrase_facts(tokenizer, bar, program)
            out[start + i, N_TARGETS:] = onset_cells(tokenizer, bar, program, cells)
        if progress is not None:
            progress(min(start + step, len(latents)), len(latents))
    return out


def critic_table(
    codec: PhraseVAE,
    codec_dir: Path,
    dataset_dir: Path,
    split: str,
    n_phrases: int,
    key_normalized: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cells: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(latents (n, Z) float32, facts (n, 13 + cells) float32) of `n_phrases` random phrases of a split, cached."""
    grid = f"-cells{cells}" if cells else ""
    path = Path(dataset_dir) / f"critic-{codec_digest(codec_dir)}-{split}-{n_phrases}{'-keynorm' if key_normalized else ''}{grid}.npz"
    if path.exists():
        cached = np.load(path)
        return cached["latents"], cached["facts"]
    all_latents = cached_latents(codec, codec_dir, dataset_dir, key_normalized=key_normalized)
    dataset = PhraseDataset(dataset_dir, split=split)
    rows = np.sort(np.random.default_rng(0).choice(dataset.phrase_indices, size=min(n_phrases, len(dataset)), replace=False))
    latents = all_latents[rows].astype(np.float32)
    facts = decoded_facts(codec, dataset.tokenizer, latents, dataset.shard.columns["phrase_program"][rows], progress, cells)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, latents=latents, facts=facts)
    tmp.replace(path)
    return latents, facts


class PhraseCriticTask:
    """Batches and loss for `training.loop.train`: Poisson likelihood of the facts, plus the
    onset grid's binary cross-entropy (per cell) for a critic that predicts one."""

    def __init__(self, model: PhraseCritic, latents: np.ndarray, facts: np.ndarray, batch_size: int, seed: int, codec_config: dict):
        columns = N_TARGETS + model.config.onset_cells
        if facts.shape[1] != columns:
            raise ValueError(f"a critic with {model.config.onset_cells} onset cells learns {columns} facts per phrase, got {facts.shape[1]}")
        self.model, self.batch_size, self.seed = model, batch_size, seed
        self.latents = torch.from_numpy(latents)
        self.targets = torch.from_numpy(facts)
        self.codec_config = codec_config

    def batch(self, step: int, rank: int) -> dict[str, torch.Tensor]:
        rows = np.random.default_rng([self.seed, rank, step]).integers(0, len(self.latents), self.batch_size)
        return {"latents": self.latents[rows], "targets": self.targets[rows]}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        out, targets = model(batch["latents"]), batch["targets"]
        counts = F.poisson_nll_loss(out[:, :N_TARGETS], targets[:, :N_TARGETS], log_input=True)
        if out.shape[1] == N_TARGETS:
            return counts, {}
        grid = F.binary_cross_entropy_with_logits(out[:, N_TARGETS:], targets[:, N_TARGETS:])
        return counts + grid, {"counts": counts.item(), "grid": grid.item()}

    def checkpoint_config(self) -> dict:
        return {"kind": "phrase_critic", "model": self.model.config.to_dict(), "codec": self.codec_config}


def load_phrase_critic(directory: str | Path) -> tuple[PhraseCritic, dict]:
    """Rebuild a PhraseCritic from its checkpoint (strict); also returns the codec record."""
    ckpt = load_model_checkpoint(directory, "phrase_critic", "PhraseCritic")
    model = PhraseCritic(PhraseCriticConfig.from_dict(ckpt.config["model"]))
    model.load_state_dict(ckpt.weights, strict=True)
    return model.eval(), ckpt.config["codec"]
