"""Steering a piece towards a requested density or key with a PhraseCritic.

The prior learned little from its density and mode controls (BENCHMARKS.md), so the
generator also steers: at every slot it draws `candidates` latents from the prior's
predicted mixture, the critic predicts what each will write (onsets, time per pitch class),
and the candidate that keeps the piece closest to the request is kept and fed back to the
prior. The music stays the prior's (every candidate is one of its samples, a silent bar when
its silence head draws one); the request only chooses among them. What the steering tracks
is what the control extractor measures:

* density: onsets per quarter note over all tracks, empty bars left out. The running onset
  count is kept near `target x quarters so far`, a bar's quarters shared equally among its
  track slots, so a track that falls short is made up by the next. Targets sit inside the requested level:
  0.75 x t1 (low), (t1 + t2) / 2 (medium), 1.15 x t2 (high), with the critic's thresholds.
* key: the running pitch-class durations; a candidate scores by how far the requested key's
  Krumhansl-Kessler correlation leads the best other key's, as the extractor picks the argmax.

The totals are closed-loop: the generator decodes a steered piece bar by bar and `settle`
replaces the critic's guesses for that bar with what its phrases really write (in the bar's
written length), so the critic's errors do not pile up.
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


class ControlSteering:
    """Running totals of one piece and the choice among candidate latents."""

    def __init__(self, critic: PhraseCritic, target: SteeringTarget, n_tracks: int, bar_quarters: float = 4.0):
        self.critic, self.target, self.n_tracks = critic, target, n_tracks
        self.onsets = 0.0
        self.quarters = 0.0  # of the non-empty bars so far, as the extractor's density counts them
        self.pitch_classes = np.zeros(12)
        self.bar_quarters = bar_quarters  # the length guessed for the bar being drawn: the last written one's
        self._guesses: list[np.ndarray] = []  # (13,) critic facts of the slots not yet settled
        self._guessed_quarters = 0.0

    def choose(self, candidates: torch.Tensor, silent: torch.Tensor | None = None) -> int:
        """Index of the candidate latent (K, Z) to keep for the next slot; updates the totals.
        A candidate marked `silent` (K,) (drawn silent by a prior's silence head) writes nothing
        but is still its share of the bar."""
        facts = self.critic.predict(candidates)
        onsets = facts.onsets.double().cpu().numpy()  # (K,)
        pitch_classes = facts.pitch_classes.double().cpu().numpy()  # (K, 12)
        if silent is not None:
            quiet = silent.cpu().numpy()
            onsets, pitch_classes = np.where(quiet, 0.0, onsets), np.where(quiet[:, None], 0.0, pitch_classes)
        share = self.bar_quarters / self.n_tracks  # this slot's part of the bar
        cost = np.zeros(len(candidates))
        if self.target.density is not None:
            wanted = self.target.density * (self.quarters + share)
            cost += np.abs(self.onsets + onsets - wanted) / (self.target.density * self.bar_quarters)
        if self.target.key is not None:
            correlations = key_correlations(self.pitch_classes + pitch_classes)  # (K, 24)
            others = np.delete(correlations, self.target.key, axis=1).max(axis=1)
            cost -= correlations[:, self.target.key] - others
        best = int(np.argmin(cost))  # ties: the first, i.e. the prior's first draw
        self.onsets += onsets[best]
        self.pitch_classes += pitch_classes[best]
        self.quarters += share
        self._guessed_quarters += share
        self._guesses.append(np.concatenate([onsets[best : best + 1], pitch_classes[best]]))
        return best

    def settle(self, written: list[np.ndarray], bar_quarters: float) -> None:
        """Swap the guesses for the bar just drawn for what it wrote: its tracks' (13,)
        `phrase_facts` in slot order, and its length in quarter notes. A silent bar adds no
        time, as the extractor's density leaves empty bars out."""
        for guess, facts in zip(self._guesses, written, strict=True):
            self.onsets += facts[0] - guess[0]
            self.pitch_classes += facts[1:] - guess[1:]
        heard = any(facts[0] > 0 for facts in written)
        self.quarters += (bar_quarters if heard else 0.0) - self._guessed_quarters
        self.bar_quarters = bar_quarters
        self._guesses, self._guessed_quarters = [], 0.0
