"""GridCodec training recipe on top of the shared loop.

The loss is the bar's negative ELBO: the negative log-likelihood of its grid (every cell's
onset, each note's duration and velocity level, the time signature, program and tempo),
summed over the bar, plus beta times the KL of its posterior to N(0, I), summed over the
latent's dimensions; z is drawn from the posterior. Beta ramps up linearly from 0 over the
first `beta_warmup` of the steps. Below 1, beta buys the decoder more rate than the ELBO
would (sharper bars) at the cost of a less Gaussian code space for the prior.

Decoder noise (`decoder_noise > 0`): the decoder sees z plus isotropic noise of a std drawn per
bar in [0, decoder_noise], so that it also writes a plausible bar from a latent that misses
every code, as a prior's samples do. With `freeze_encoder` only the decoder trains: the codes
stay exactly as they were, so a prior trained on them still applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from musemorphic.data.bar_grid import GridVocabulary, common_level_velocities
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.data.tokenizer import PhraseTokenizer
from musemorphic.models.grid_codec import GridCodec, GridCodecConfig, grid_codec_config
from musemorphic.models.phrase_vae import PhraseVAE, kl_per_dim
from musemorphic.training.checkpoint import load_model_checkpoint
from musemorphic.training.phrase_vae import load_phrase_vae


@dataclass
class GridTrainingConfig:
    beta: float = 0.1
    beta_warmup: float = 0.2  # share of the steps over which beta ramps up from 0
    decoder_noise: float = 0.0  # largest std of the noise added to the decoder's z (0 = off)
    freeze_encoder: bool = False  # train the decoder only (the codes stay as they are)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GridTrainingConfig:
        return cls(**d)

    @classmethod
    def fine_tune(cls, trained: GridTrainingConfig, **overrides) -> GridTrainingConfig:
        """Training on from a trained codec: its beta at once, no ramp."""
        return cls(**{**asdict(trained), "beta_warmup": 0.0, **overrides})


class GridCodecTask:
    """Batches and losses for `training.loop.train`."""

    def __init__(self, model: GridCodec, batcher: PhraseBatcher, total_steps: int, batch_size: int, seed: int,
                 training: GridTrainingConfig = GridTrainingConfig()):
        self.model, self.batcher = model, batcher
        self.vocabulary = GridVocabulary(batcher.tokenizer, model.config.velocity_levels, model.config.level_velocities)
        self.total_steps, self.batch_size, self.seed, self.training = total_steps, batch_size, seed, training
        if training.freeze_encoder:
            model.freeze_encoder()

    def beta(self, step: int) -> float:
        ramp = max(1.0, self.training.beta_warmup * self.total_steps)
        return self.training.beta * min(1.0, (step + 1) / ramp)

    def batch(self, step: int, rank: int):
        return self.vocabulary.grids(*self.batcher.sample_bars(self.batch_size, self.seed, rank, step))

    def loss(self, model: nn.Module, grid, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        out, mu, logvar = model(grid, decoder_noise=self.training.decoder_noise)
        terms = self.model.reconstruction(out, grid)
        kl = kl_per_dim(mu.float(), logvar.float()).sum()
        beta = self.beta(step)
        loss = sum(terms.values()) + beta * kl
        inside = self.model.position_mask(grid.lengths, grid.onsets.shape[1])[..., None]
        predicted, actual = (out.onsets > 0) & inside, grid.onsets.bool()
        matched = float((predicted & actual).sum())
        f1 = 2 * matched / max(float(predicted.sum() + actual.sum()), 1.0)
        return loss, {**{k: float(v.detach()) for k, v in terms.items()}, "kl": float(kl.detach()), "beta": beta, "note_f1": f1}

    def checkpoint_config(self) -> dict:
        return {
            "kind": "phrase_vae",
            "codec": "grid",
            "model": self.model.config.to_dict(),
            "training": self.training.to_dict(),
            "tokenizer": self.batcher.tokenizer.to_json(),
        }


def build_grid_codec(tokenizer: PhraseTokenizer, preset: str, velocity_levels: int = 8, data: PhraseDataset | None = None,
                     **overrides) -> GridCodec:
    """A fresh GridCodec for this tokenizer's time signatures, programs, tempos and durations;
    with `data`, each velocity level is written with its most common bin there."""
    vocabulary = GridVocabulary(tokenizer, velocity_levels)
    level_velocities = common_level_velocities(vocabulary, velocity_counts(data)) if data is not None else []
    return GridCodec(grid_codec_config(preset, vocabulary, velocity_levels=velocity_levels, level_velocities=level_velocities, **overrides))


def velocity_counts(dataset: PhraseDataset) -> dict[int, int]:
    """Notes per velocity bin in a dataset's split (from its base tokens)."""
    names = dataset.tokenizer.base_names
    shard = dataset.shard
    rows = dataset.phrase_indices
    if len(rows) == 0:
        return {}
    tokens = np.concatenate([shard.tokens[shard.offsets[i] : shard.offsets[i + 1]] for i in rows])
    ids, counts = np.unique(tokens, return_counts=True)
    return {int(names[int(i)].split("_")[1]): int(n) for i, n in zip(ids, counts) if names[int(i)].startswith("Velocity_")}


def load_codec(directory: str | Path) -> tuple[GridCodec | PhraseVAE, PhraseTokenizer]:
    """Rebuild the bar codec saved in a checkpoint folder (a GridCodec, or the autoregressive
    PhraseVAE) and its tokenizer, with strict weights."""
    ckpt = load_model_checkpoint(directory, "phrase_vae", "bar codec")
    if ckpt.config.get("codec", "autoregressive") != "grid":
        return load_phrase_vae(directory)
    tokenizer = PhraseTokenizer.from_json(ckpt.config["tokenizer"])
    model = GridCodec(GridCodecConfig.from_dict(ckpt.config["model"]))
    model.load_state_dict(ckpt.weights, strict=True)
    return model.eval(), tokenizer
