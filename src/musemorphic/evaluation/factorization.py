"""How factored a latent space is: seed 001's figures, measured on held-out inputs.

`embed(items, pitch_shifts, time_shifts)` returns the latents (N, Z) of the held-out items
items[i], shifted by pitch_shifts[i] and time_shifts[i] (0, 0 = the item itself). It hides
what an item is: a piano roll shifted with zero fill, or a REMI bar transposed and moved.

For each item, two sizes a != b in 1..max are drawn and the difference vectors
d(kind, sign, size) = embed(shifted) - embed(item) are compared:
    cross      |cos| of pitch vs time differences (ideal 0)
    same-sign  cos(d(k, s, a), d(k, s, b))        (ideal +1)
    opposite   cos(d(k, s, a), d(k, -s, b))       (ideal -1)
    angle      between the mean positive and mean negative difference of a kind (ideal 180)
    first_sv   share of the first singular value (of the sum) of each item's shift grid
               embeddings reshaped to (pitch shifts, time shifts x Z) and to (time, pitch x Z),
               averaged: the seed's measure of low rank. The grid is not centred, so an encoder
               that barely moves with shifts also scores high (one constant vector dominates),
               and an additive layout z0 + p u + t v has rank up to 3: read it beside the
               spectra plot, not as a score to maximise.

Glossary: N items, Z latent width, G grid points per axis (2 * max + 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

Embed = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class FactorizationFigures:
    cross_abs_cos: float
    same_sign_cos: float
    opposite_sign_cos: float
    pitch_angle_deg: float
    time_angle_deg: float
    first_sv_share: float
    n_items: int
    max_pitch_shift: int
    max_time_shift: int
    samples: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # for plots

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "samples"}


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.cosine_similarity(a, b, dim=-1, eps=1e-8)


def _angle(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.rad2deg(torch.arccos(_cos(a, b).clamp(-1, 1))))


@torch.no_grad()
def measure_factorization(
    embed: Embed, n_items: int, max_pitch_shift: int, max_time_shift: int, seed: int = 0, n_grid: int = 50
) -> FactorizationFigures:
    """Seed 001's figures for `embed` over n_items items (the first n_grid also get shift grids)."""
    if max_pitch_shift < 2 or max_time_shift < 2:
        raise ValueError("need shifts of at least 2 steps (two distinct sizes per kind)")
    rng = np.random.default_rng(seed)
    items = torch.arange(n_items)
    zero = torch.zeros(n_items, dtype=torch.long)
    base = embed(items, zero, zero)  # (N, Z)
    diffs: dict[tuple[str, int, str], torch.Tensor] = {}
    for kind, limit in (("pitch", max_pitch_shift), ("time", max_time_shift)):
        a = torch.from_numpy(rng.integers(1, limit + 1, n_items))
        b = 1 + (a - 1 + torch.from_numpy(rng.integers(1, limit, n_items))) % limit  # b != a
        for sign in (1, -1):
            for label, size in (("a", a), ("b", b)):
                shifts = sign * size
                z = embed(items, shifts, zero) if kind == "pitch" else embed(items, zero, shifts)
                diffs[kind, sign, label] = z - base  # (N, Z)

    cross = torch.cat([_cos(diffs["pitch", sp, "a"], diffs["time", st, "a"]) for sp in (1, -1) for st in (1, -1)])
    same = torch.cat([_cos(diffs[k, s, "a"], diffs[k, s, "b"]) for k in ("pitch", "time") for s in (1, -1)])
    opposite = torch.cat([_cos(diffs[k, s, "a"], diffs[k, -s, "b"]) for k in ("pitch", "time") for s in (1, -1)])
    angles = {
        k: _angle(torch.cat([diffs[k, 1, x] for x in "ab"]).mean(0), torch.cat([diffs[k, -1, x] for x in "ab"]).mean(0))
        for k in ("pitch", "time")
    }
    n_grid = min(n_grid, n_items)
    spectra = grid_spectra(embed, n_grid, max_pitch_shift, max_time_shift)
    return FactorizationFigures(
        cross_abs_cos=float(cross.abs().mean()),
        same_sign_cos=float(same.mean()),
        opposite_sign_cos=float(opposite.mean()),
        pitch_angle_deg=angles["pitch"],
        time_angle_deg=angles["time"],
        first_sv_share=float(np.mean([s[:, 0].mean() for s in spectra])),
        n_items=n_items,
        max_pitch_shift=max_pitch_shift,
        max_time_shift=max_time_shift,
        samples={
            "cos_cross": cross.numpy(),
            "cos_same": same.numpy(),
            "cos_opposite": opposite.numpy(),
            "diff_pitch": torch.cat([diffs["pitch", s, x] for s in (1, -1) for x in "ab"]).numpy(),
            "diff_time": torch.cat([diffs["time", s, x] for s in (1, -1) for x in "ab"]).numpy(),
            "spectrum_pitch": spectra[0],
            "spectrum_time": spectra[1],
        },
    )


def grid_spectra(embed: Embed, n_items: int, max_pitch_shift: int, max_time_shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised singular values (each row sums to 1) of the first n_items items' shift
    grids, reshaped pitch-major (N, Gp) and time-major (N, Gt)."""
    items = torch.arange(n_items)
    pitch = range(-max_pitch_shift, max_pitch_shift + 1)
    time = range(-max_time_shift, max_time_shift + 1)
    grid = torch.stack(
        [
            torch.stack([embed(items, torch.full((n_items,), dp), torch.full((n_items,), dt)) for dt in time], dim=1)
            for dp in pitch
        ],
        dim=1,
    )  # (N, Gp, Gt, Z)
    by_pitch = torch.linalg.svdvals(grid.flatten(2))  # (N, min(Gp, Gt * Z))
    by_time = torch.linalg.svdvals(grid.transpose(1, 2).flatten(2))  # (N, min(Gt, Gp * Z))
    return tuple((s / s.sum(1, keepdim=True)).numpy() for s in (by_pitch, by_time))  # type: ignore[return-value]
