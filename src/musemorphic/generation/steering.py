"""Steering a piece towards a requested density or key, and each track's rhythm, with a PhraseCritic.

The prior learned little from its density and mode controls (BENCHMARKS.md), so the
generator also steers: at every slot it draws several latents from the prior's predicted
mixture (`candidates` for a request, `groove_draws` for the rhythm alone), the critic
predicts what each will write (onsets, time per pitch class, onset grid), and the candidate
that keeps the piece closest to the request is kept and fed back to the prior. The music
stays the prior's (every candidate is one of its samples, a silent bar when its silence head
draws one); the request only chooses among them. What the steering tracks is what the
control extractor and the groove metric measure:

* density: onsets per quarter note over all tracks, empty bars left out. The running onset
  count is kept near `target x quarters so far`, a bar's quarters shared equally among its
  track slots, so a track that falls short is made up by the next. Targets sit inside the requested level:
  0.75 x t1 (low), (t1 + t2) / 2 (medium), 1.15 x t2 (high), with the critic's thresholds.
* key: the running pitch-class durations; a candidate scores by how far the requested key's
  Krumhansl-Kessler correlation leads the best other key's, as the extractor picks the argmax.
* groove (with a critic that predicts onset grids): real songs repeat a track's rhythm from bar
  to bar more than the prior's draws do (BENCHMARKS.md, "Groove steering"). A sounding candidate
  scores by how far the expected share of grid cells in which its onsets differ from the
  track's previous bar's (the groove metric's distance, over the bar's own cells, at most
  the critic's) lies from `groove_distance`, when that bar sounded. Alone, groove steering keeps the prior's own choice of silence (its first
  draw's) and picks the best of the sounding draws; beside a density or key request it adds
  each sounding draw's score beyond the best one's.

The totals are closed-loop: the generator decodes a steered piece bar by bar and `settle`
replaces the critic's guesses for that bar with what its phrases really write (in the bar's
written length), and each track's guessed onset grid with its written one, so the critic's
errors do not pile up.

Glossary: K candidates, C onset-grid cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from musemorphic.data.controls import key_correlations
from musemorphic.models.phrase_critic import PhraseCritic


def density_target(level: int, thresholds: tuple[float, float]) -> float:
    """Onsets per quarter note to aim at for a density level 0/1/2."""
    low, high = thresholds
    return (0.75 * low, (low + high) / 2, 1.15 * high)[level]


@dataclass
class SteeringTarget:
    density: float | None = None  # onsets per quarter note, all tracks
    key: int | None = None  # key index, in the prior's key frame
    groove: bool = False  # keep each track's rhythm near its previous bar's (needs a critic's onset grid)
    groove_distance: float = 0.0  # the grid distance from the previous bar aimed at


def grid_distance(grids: np.ndarray, previous: np.ndarray, cells: int | None = None) -> np.ndarray:
    """Expected share of cells in which onset grids (K, C) of probabilities differ from a
    previous grid (C,) of probabilities: the groove metric's Hamming distance, in expectation,
    over the first `cells` (a bar's own cells; default: all C)."""
    grids, previous = grids[:, :cells], previous[:cells]
    return (grids * (1 - previous) + (1 - grids) * previous).mean(axis=1)


class ControlSteering:
    """Running totals of one piece and the choice among candidate latents."""

    def __init__(self, critic: PhraseCritic, target: SteeringTarget, n_tracks: int, bar_quarters: float = 4.0):
        self.critic, self.target, self.n_tracks = critic, target, n_tracks
        self.onsets = 0.0
        self.quarters = 0.0  # of the non-empty bars so far, as the extractor's density counts them
        self.pitch_classes = np.zeros(12)
        self.bar_quarters = bar_quarters  # the length guessed for the bar being drawn: the last written one's
        self.bar_cells: int | None = None  # onset-grid cells of the last written bar (None: all the critic's)
        self._guesses: list[np.ndarray] = []  # (13,) critic facts of the slots not yet settled
        self._guessed_quarters = 0.0
        self.grids: list[np.ndarray | None] = [None] * n_tracks  # (C,) each track's last bar's onsets; None: silent

    def choose(self, candidates: torch.Tensor, silent: torch.Tensor | None = None, track: int = 0) -> int:
        """Index of the candidate latent (K, Z) to keep for the next slot, of `track`; updates
        the totals. A candidate marked `silent` (K,) (drawn silent by a prior's silence head)
        writes nothing but is still its share of the bar."""
        facts = self.critic.predict(candidates)
        onsets = facts.onsets.double().cpu().numpy()  # (K,)
        pitch_classes = facts.pitch_classes.double().cpu().numpy()  # (K, 12)
        quiet = np.zeros(len(candidates), dtype=bool) if silent is None else silent.cpu().numpy()
        onsets, pitch_classes = np.where(quiet, 0.0, onsets), np.where(quiet[:, None], 0.0, pitch_classes)
        grids = None if facts.onset_grid is None else facts.onset_grid.double().cpu().numpy()  # (K, C)
        share = self.bar_quarters / self.n_tracks  # this slot's part of the bar
        cost = np.zeros(len(candidates))
        if self.target.density is not None:
            wanted = self.target.density * (self.quarters + share)
            cost += np.abs(self.onsets + onsets - wanted) / (self.target.density * self.bar_quarters)
        if self.target.key is not None:
            correlations = key_correlations(self.pitch_classes + pitch_classes)  # (K, 24)
            others = np.delete(correlations, self.target.key, axis=1).max(axis=1)
            cost -= correlations[:, self.target.key] - others
        previous = self.grids[track]
        if self.target.groove and grids is not None and previous is not None and not quiet.all():
            distance = grid_distance(grids, previous, self.bar_cells)
            distance = np.where(quiet, np.inf, np.abs(distance - self.target.groove_distance))
            if self.target.density is None and self.target.key is None:
                cost = np.zeros(len(cost)) if quiet[0] else distance  # the prior's own choice of silence
            else:
                cost += np.where(quiet, 0.0, distance - distance.min())
        best = int(np.argmin(cost))  # ties: the first, i.e. the prior's first draw
        self.grids[track] = None if quiet[best] or grids is None else grids[best]  # a guess until `settle`
        self.onsets += onsets[best]
        self.pitch_classes += pitch_classes[best]
        self.quarters += share
        self._guessed_quarters += share
        self._guesses.append(np.concatenate([onsets[best : best + 1], pitch_classes[best]]))
        return best

    def hear(self, grids: list[np.ndarray] | None, bar_cells: int | None) -> None:
        """Take each track's (C,) written onset grid of the last bar, of `bar_cells` cells, as
        the rhythm its next bar is steered from (an empty grid: silent, nothing to keep; None:
        no grids, as from a critic that predicts none: the guesses stand)."""
        if grids is not None:
            self.grids = [grid if grid.any() else None for grid in grids]
            self.bar_cells = bar_cells

    def settle(
        self, written: list[np.ndarray], bar_quarters: float, grids: list[np.ndarray] | None = None, bar_cells: int | None = None
    ) -> None:
        """Swap the guesses for the bar just drawn for what it wrote: its tracks' (13,)
        `phrase_facts` in slot order, its length in quarter notes, and its tracks' (C,)
        `onset_cells` with the bar's own number of cells (when the critic predicts them). A
        silent bar adds no time, as the extractor's density leaves empty bars out."""
        self.hear(grids, bar_cells)
        for guess, facts in zip(self._guesses, written, strict=True):
            self.onsets += facts[0] - guess[0]
            self.pitch_classes += facts[1:] - guess[1:]
        heard = any(facts[0] > 0 for facts in written)
        self.quarters += (bar_quarters if heard else 0.0) - self._guessed_quarters
        self.bar_quarters = bar_quarters
        self._guesses, self._guessed_quarters = [], 0.0
