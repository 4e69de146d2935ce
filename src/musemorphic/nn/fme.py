"""Fundamental Music Embedding (Liang et al. 2022) and a per-token musical-feature embedding.

FME(f) = concat_k [sin(w_k f) + b_sin_k, cos(w_k f) + b_cos_k],  w_k = B^(-2k/d),  k < d/2.

Because the biases cancel in a difference, ||FME(f + t) - FME(g + t)|| = ||FME(f) - FME(g)||:
distances depend only on the interval f - g (translation invariance), and grow with it
over the range covered by the wavelengths 2*pi/w_k.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

A4_MIDI = 69
A4_HZ = 440.0


def pitch_to_log_frequency(pitch: Tensor) -> Tensor:
    """log2 of the equal-tempered frequency in Hz of a MIDI pitch: log2(440) + (p - 69) / 12.

    Musical intervals are frequency ratios, i.e. differences of log-frequency, so in these
    units equal semitone intervals are equal steps and FME's translation invariance becomes
    invariance under transposition.
    """
    return math.log2(A4_HZ) + (pitch.float() - A4_MIDI) / 12


class FME(nn.Module):
    """Sinusoidal embedding of a scalar with learnable biases; (...) -> (..., dim)."""

    def __init__(self, dim: int, base: float):
        super().__init__()
        if dim % 2:
            raise ValueError(f"FME dim must be even, got {dim}")
        self.dim, self.base = dim, base
        freqs = base ** (-2 * torch.arange(dim // 2, dtype=torch.float32) / dim)
        self.register_buffer("freqs", freqs, persistent=False)  # (d/2,)
        self.bias = nn.Parameter(torch.zeros(dim))  # interleaved [b_sin_0, b_cos_0, b_sin_1, ...]

    def forward(self, values: Tensor) -> Tensor:
        angles = values.float().unsqueeze(-1) * self.freqs  # (..., d/2)
        emb = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)  # (..., d)
        return emb + self.bias  # (..., d)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base:g}"


class MusicFeatureEmbedding(nn.Module):
    """Embeds the (pitch, duration, onset) values of each token id with one FME per kind.

    `feature_table` (V, 3) holds, per token id, the MIDI pitch, the duration in beats and the
    onset in beats from the bar start, NaN where the token has no such value (its FME then
    contributes zeros). The three FMEs are concatenated and projected to `dim`.

    Before the FME, values are put in units whose step is one musical quantum, so the fastest
    wavelength (2*pi at w_0 = 1) resolves neighbouring values by ~1 rad, and the base B makes
    the slowest wavelength (~2*pi*B) longer than the value range (no aliasing):
      * pitch: 12 * log2(f_hz), semitones (range ~128), B = 100 -> wavelengths 6..630;
      * duration: 16th notes = 4 * beats (range ~1..16), B = 10 -> wavelengths 6..63;
      * onset: 16th notes = 4 * beats (range 0..48, bars up to 12 beats), B = 100.
    """

    BASES = (100.0, 10.0, 100.0)  # pitch, duration, onset

    def __init__(self, feature_table: Tensor, dim: int, fme_dim: int = 32):
        super().__init__()
        if feature_table.ndim != 2 or feature_table.shape[1] != 3:
            raise ValueError(f"feature_table must be (V, 3), got {tuple(feature_table.shape)}")
        self.register_buffer("feature_table", feature_table.float().clone())  # (V, 3)
        self.fmes = nn.ModuleList(FME(fme_dim, base) for base in self.BASES)
        self.proj = nn.Linear(3 * fme_dim, dim)

    def forward(self, ids: Tensor) -> Tensor:
        values = self.feature_table[ids]  # (B, T, 3)
        present = ~values.isnan()  # (B, T, 3)
        values = values.nan_to_num(0.0)  # (B, T, 3); keeps NaN out of sin/cos and their grads
        pitch = 12 * pitch_to_log_frequency(values[..., 0])  # (B, T) semitones
        units = (pitch, 4 * values[..., 1], 4 * values[..., 2])  # (B, T) each, 16ths for time
        embs = [
            fme(u) * present[..., i : i + 1]  # (B, T, fme_dim)
            for i, (fme, u) in enumerate(zip(self.fmes, units))
        ]
        return self.proj(torch.cat(embs, dim=-1))  # (B, T, dim)
