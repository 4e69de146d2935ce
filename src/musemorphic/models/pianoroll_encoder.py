"""A small convolutional encoder from a piano roll (or toy image) to a latent vector.

Strided 3x3 convolutions, then a flatten and two linear layers. There is no global
pooling: the latent must keep where things are, since seed 001's loss shapes how it moves
when the input is shifted in pitch or time.

Glossary: B batch, P pitch rows, T time steps, C channels, Z latent width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from musemorphic.models.config import JsonConfig


@dataclass
class PianoRollEncoderConfig(JsonConfig):
    height: int  # P
    width: int  # T
    channels: tuple[int, ...] = (16, 32)
    d_hidden: int = 128
    d_latent: int = 16

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        scale = 2 ** len(self.channels)
        if self.height % scale or self.width % scale:
            raise ValueError(f"a {self.height}x{self.width} input does not halve {len(self.channels)} times")


PRESETS = {
    "toy": dict(height=16, width=16, channels=(16, 32), d_hidden=128, d_latent=16),
    "roll": dict(height=128, width=32, channels=(8, 16, 32), d_hidden=128, d_latent=32),
}


def pianoroll_encoder_config(preset: str, **overrides) -> PianoRollEncoderConfig:
    return PianoRollEncoderConfig.from_preset(PRESETS, preset, **overrides)


class PianoRollEncoder(nn.Module):
    def __init__(self, config: PianoRollEncoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in config.channels:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        cells = (config.height * config.width) // 4 ** len(config.channels)
        self.head = nn.Sequential(
            nn.Linear(c_in * cells, config.d_hidden), nn.GELU(), nn.Linear(config.d_hidden, config.d_latent)
        )

    def forward(self, rolls: torch.Tensor) -> torch.Tensor:  # (B, P, T) -> (B, Z)
        h = self.convs(rolls.unsqueeze(1))  # (B, C, P / 2^k, T / 2^k)
        return self.head(h.flatten(1))
