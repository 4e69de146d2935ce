"""Seed 001's soft pitch/time factorization loss, LeJEPA's terms, and a piano-roll encoder task.

For an input x and shifted copies x_i (kind_i = pitch or time, sign_i = +1 or -1), the
difference vectors d_i = f(x_i) - f(x) are pushed so that cos(d_i, d_j) is
    +1  for the same kind and the same sign (parallel),
    -1  for the same kind and opposite signs (anti-parallel),
     0  across kinds (orthogonal).
Nothing fixes the directions themselves; the encoder finds them. The three target groups
are averaged separately and then together, so the more numerous cross-kind pairs do not
outweigh the others.

LeJEPA (Balestriero & LeCun, 2025), optional: an attraction between the embeddings of an
input and its shifted views (weaker for bigger shifts) plus SIGReg, an Epps-Pulley test of
random 1-D projections against N(0, 1) that keeps the embeddings from collapsing.

Glossary: B batch, V views per input, Z latent width, S projection slices, K grid points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.data.pianoroll import PITCH_AXIS, TIME_AXIS, shift_each

PITCH, TIME = 0, 1


@dataclass
class FactorizationConfig:
    max_pitch_shift: int = 4
    max_time_shift: int = 4
    lejepa: bool = False
    lejepa_weight: float = 1.0
    lejepa_lambda: float = 0.5  # share of SIGReg in the LeJEPA term (the rest is attraction)
    attraction_tau: float = 100.0  # attraction falls off as exp(-shift^2 / tau)

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_targets(kinds: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """(B, V) kinds and signs -> (B, V, V) target cosines: sign_i * sign_j within a kind, 0 across."""
    same_kind = kinds[:, :, None] == kinds[:, None, :]
    return torch.where(same_kind, signs[:, :, None] * signs[:, None, :], torch.zeros((), dtype=signs.dtype))


def factorization_loss(
    anchor: torch.Tensor, views: torch.Tensor, kinds: torch.Tensor, signs: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """anchor (B, Z), views (B, V, Z), kinds and signs (B, V) -> (loss, mean cosine per target)."""
    diffs = views - anchor[:, None, :]  # (B, V, Z)
    cos = F.cosine_similarity(diffs[:, :, None, :], diffs[:, None, :, :], dim=-1, eps=1e-8)  # (B, V, V)
    target = cosine_targets(kinds, signs.to(cos.dtype))
    off_diagonal = ~torch.eye(views.shape[1], dtype=torch.bool, device=views.device)
    same_kind = kinds[:, :, None] == kinds[:, None, :]
    groups = {
        "parallel": same_kind & (target > 0) & off_diagonal,
        "antiparallel": same_kind & (target < 0),
        "orthogonal": ~same_kind,
    }
    losses, stats = [], {}
    for name, mask in groups.items():
        if mask.any():
            losses.append((cos[mask] - target[mask]).square().mean())
            stats[f"cos_{name}"] = float(cos[mask].mean().detach())
    return torch.stack(losses).mean(), stats


def attraction_loss(z1: torch.Tensor, z2: torch.Tensor, shift_sizes: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean squared distance of paired embeddings (N, Z), weighted by exp(-shift^2 / tau) per pair."""
    weight = torch.exp(-shift_sizes.float().square() / tau)  # (N,)
    return ((z1 - z2).square() * weight[:, None]).mean()


def sigreg(x: torch.Tensor, seed: int, n_slices: int = 256) -> torch.Tensor:
    """SIGReg with the Epps-Pulley statistic: x (N, Z) projected on `n_slices` random unit
    directions; the weighted squared gap between each projection's empirical characteristic
    function and N(0, 1)'s, integrated over t in [-5, 5], averaged over slices.
    About 1/N for Gaussian samples, of order 0.1 or more for collapsed ones."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    directions = torch.randn(x.shape[1], n_slices, generator=g).to(x)  # (Z, S)
    directions = directions / directions.norm(dim=0, keepdim=True)
    t = torch.linspace(-5, 5, 17, device=x.device, dtype=x.dtype)  # (K,)
    normal_cf = torch.exp(-0.5 * t**2)  # (K,)
    xt = (x @ directions)[:, :, None] * t  # (N, S, K)
    real, imag = torch.cos(xt).mean(0), torch.sin(xt).mean(0)  # (S, K) each
    gap = ((real - normal_cf).square() + imag.square()) * normal_cf  # (S, K)
    return torch.trapezoid(gap, t, dim=1).mean()


def draw_shifts(
    n: int, config: FactorizationConfig, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four views per input: two pitch shifts then two time shifts, each of random sign and
    size 1..max. Returns kinds, signs and signed shifts, each (n, 4)."""
    kinds = torch.tensor([PITCH, PITCH, TIME, TIME]).repeat(n, 1)
    limit = torch.tensor([config.max_pitch_shift, config.max_pitch_shift, config.max_time_shift, config.max_time_shift])
    sizes = 1 + (torch.rand(n, 4, generator=generator) * limit).long()  # (n, 4) in 1..limit
    signs = torch.where(torch.rand(n, 4, generator=generator) < 0.5, -1, 1)
    return kinds, signs, signs * sizes


def shifted_rolls(rolls: torch.Tensor, kinds: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """rolls (B, P, T), kinds and shifts (B, V) -> (B, V, P, T) zero-filled shifted copies."""
    views = []
    for v in range(kinds.shape[1]):
        pitch_rows = kinds[:, v] == PITCH
        view = torch.empty_like(rolls)
        view[pitch_rows] = shift_each(rolls[pitch_rows], shifts[pitch_rows, v], PITCH_AXIS)
        view[~pitch_rows] = shift_each(rolls[~pitch_rows], shifts[~pitch_rows, v], TIME_AXIS)
        views.append(view)
    return torch.stack(views, dim=1)


class RollFactorizationTask:
    """Trains a piano-roll encoder with the factorization loss (and optionally LeJEPA).

    `inputs(generator, n)` returns n rolls (n, P, T) for a batch: fresh blobs for the toy,
    random windows of real music otherwise.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Callable[[torch.Generator, int], torch.Tensor],
        batch_size: int,
        seed: int,
        config: FactorizationConfig,
        data_description: dict,
    ):
        self.model = model
        self.inputs = inputs
        self.batch_size = batch_size
        self.seed = seed
        self.config = config
        self.data_description = data_description

    def batch(self, step: int, rank: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, rank, step]).generate_state(1)[0]))
        rolls = self.inputs(g, self.batch_size)
        kinds, signs, shifts = draw_shifts(len(rolls), self.config, g)
        return {"rolls": rolls, "views": shifted_rolls(rolls, kinds, shifts), "kinds": kinds, "signs": signs, "shifts": shifts}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        rolls, views = batch["rolls"], batch["views"]
        b, v = views.shape[:2]
        z = model(torch.cat([rolls, views.flatten(0, 1)])).float()  # (B + B * V, Z); fp32 even under autocast
        anchor, viewed = z[:b], z[b:].view(b, v, -1)
        loss, stats = factorization_loss(anchor, viewed, batch["kinds"], batch["signs"])
        stats["factorization"] = float(loss.detach())
        if self.config.lejepa:
            c = self.config
            attraction = attraction_loss(
                anchor.repeat_interleave(v, 0), viewed.flatten(0, 1), batch["shifts"].flatten(), c.attraction_tau
            )
            spread = sigreg(z, seed=step)
            loss = loss + c.lejepa_weight * ((1 - c.lejepa_lambda) * attraction + c.lejepa_lambda * spread)
            stats.update(attraction=float(attraction.detach()), sigreg=float(spread.detach()))
        return loss, stats

    def checkpoint_config(self) -> dict:
        return {
            "kind": "pianoroll_encoder",
            "model": self.model.config.to_dict(),
            "factorization": self.config.to_dict(),
            "data": self.data_description,
        }
