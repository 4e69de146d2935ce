"""PhraseCritic: what a phrase latent will sound like once the codec decodes it.

A small MLP reads a PhraseVAE latent and predicts two facts of the bar that greedy decoding
of it writes (an ungrammatical or wrong-kind phrase writes nothing): its note onsets, and
the time each of the 12 pitch classes sounds, in quarter notes (pitched notes only). Those
are the quantities the control extractor turns into density and key, so the generator can
draw several candidate latents from the prior and keep the one that brings the piece
closest to the requested density or key (`generation/steering.py`) without decoding each.
The outputs are log-means, learnt by a Poisson likelihood, so the predictions are unbiased
means (a squared error on log1p targets predicts below the mean, so too few onsets, and
steering then overshot the density it aimed at). With `onset_cells` > 0 it also predicts,
for each of the bar's first cells (a quarter of a beat each), the probability that a note
starts there: the bar's rhythm, which steering keeps close to the track's previous bar.

Glossary: N latents, Z latent width, H hidden width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from musemorphic.data.controls import DEFAULT_DENSITY_THRESHOLDS
from musemorphic.models.config import JsonConfig

N_TARGETS = 13  # onsets, then the 12 pitch-class durations (C first)
MAX_LOG_MEAN = 8.0  # e^8, about 3000 onsets in a bar: a bound, not a limit of music


@dataclass
class PhraseCriticConfig(JsonConfig):
    d_latent: int = 64
    d_hidden: int = 256
    n_layers: int = 2
    density_thresholds: list[float] = field(default_factory=lambda: list(DEFAULT_DENSITY_THRESHOLDS))  # of its training data
    key_normalized: bool = True  # trained on latents of songs moved to C major / A minor, as the prior's
    onset_cells: int = 0  # cells of the onset grid predicted (0: none, as critics before session 16)


@dataclass
class PhraseFacts:
    onsets: torch.Tensor  # (N,) notes started in the bar
    pitch_classes: torch.Tensor  # (N, 12) quarter notes each pitch class sounds
    onset_grid: torch.Tensor | None = None  # (N, C) probability that a note starts in each cell; None: not predicted


class PhraseCritic(nn.Module):
    def __init__(self, config: PhraseCriticConfig):
        super().__init__()
        self.config = c = config
        layers: list[nn.Module] = []
        width = c.d_latent
        for _ in range(c.n_layers):
            layers += [nn.Linear(width, c.d_hidden), nn.GELU()]
            width = c.d_hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, N_TARGETS + c.onset_cells))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, Z) -> log of the predicted means (N, 13), then the onset grid's logits (N, C)."""
        return self.net(z)

    @torch.no_grad()
    def predict(self, z: torch.Tensor) -> PhraseFacts:
        out = self(z.float())
        means = out[:, :N_TARGETS].clamp(max=MAX_LOG_MEAN).exp()
        grid = out[:, N_TARGETS:].sigmoid() if self.config.onset_cells else None
        return PhraseFacts(onsets=means[:, 0], pitch_classes=means[:, 1:], onset_grid=grid)
