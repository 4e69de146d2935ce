"""A soft scale lock: decoding that leans away from notes outside the piece's scale.

A codec decoding a latent that lies off every bar it learned (as a prior's sample does)
writes some of its notes a semitone off, so generated music holds more notes outside its key
than real music (BENCHMARKS.md, issue 5). The lock subtracts `strength` nats from the
decoder's logit of every token for each pitch it writes outside the scale: a wrong note then
needs a clearly better reason to be written, while a chromatic note the decoder is sure of
still is. Drum notes (PitchDrum tokens) are never touched.

With a `memory` of M bars, a pitch class outside the scale that some track sounded in the last
M bars is let through, and even welcomed with `welcome` nats per note: real music's notes
outside the key come back (a borrowed chord, a leading tone, a passage in another key), where
a codec's slips are strays, one here and one there (BENCHMARKS.md, "A scale lock with
memory"). The lock then guards the first bar in which a new chromatic pitch class would
sound, and what it lets in tends to return, as in real songs.

The scale is the one the prior composes in: C major / A minor (the same pitch classes) for
a key-normalised prior, which writes every piece in that frame before it is moved to its key;
the requested key's for another prior; none when that prior gets no key.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from musemorphic.data.tokenizer import PhraseTokenizer


def scale_logit_bias(tokenizer: PhraseTokenizer, pitch_classes: frozenset[int], strength: float) -> torch.Tensor:
    """(V,) float32: -strength per pitched note outside `pitch_classes` (e.g.
    `controls.scale_pitch_classes(key)`) that each id writes: the bias of a lock without
    memory, built directly (the tests' reference for `ScaleLock`)."""
    if strength < 0:
        raise ValueError(f"the scale lock's strength must be at least 0, got {strength}")
    return -strength * outside_notes(pitch_class_notes(tokenizer), pitch_classes).float()


def outside_notes(class_notes: torch.Tensor, pitch_classes: frozenset[int]) -> torch.Tensor:
    """(V,) int64: how many pitched notes outside `pitch_classes` each id writes, from its
    (V, 12) `pitch_class_notes`."""
    outside = [pc for pc in range(12) if pc not in pitch_classes]
    return class_notes[:, outside].sum(dim=1)


def pitch_class_notes(tokenizer: PhraseTokenizer) -> torch.Tensor:
    """(V, 12) int64: how many pitched notes of each pitch class each id writes."""
    counts = torch.zeros(tokenizer.vocab_size, 12, dtype=torch.int64)
    for i in range(tokenizer.vocab_size):
        for name in tokenizer.id_names(i):
            kind, _, value = name.partition("_")
            if kind == "Pitch":
                counts[i, int(value) % 12] += 1
    return counts


class ScaleLock:
    """The lock's logit bias for the next bar. With a `memory` of M bars, a chromatic pitch
    class some track sounded in the last M bars pays nothing and gains `welcome` nats per
    note instead (0 bars: every note outside the scale pays, always)."""

    def __init__(self, notes: torch.Tensor, pitch_classes: frozenset[int], strength: float, memory: int = 0, welcome: float = 0.0):
        for name, value in (("strength", strength), ("memory", memory), ("welcome", welcome)):
            if value < 0:
                raise ValueError(f"the scale lock's {name} must be at least 0, got {value}")
        self.notes = notes.float()  # (V, 12) from pitch_class_notes
        self.strength, self.welcome = strength, welcome
        self.outside = np.array([pc not in pitch_classes for pc in range(12)])  # (12,)
        self.recent: deque[np.ndarray] = deque(maxlen=memory)  # (12,) bool per bar: chromatic classes sounded

    @property
    def remembers(self) -> bool:
        """Whether the lock hears written bars (a memory of at least one bar)."""
        return bool(self.recent.maxlen)

    def heard_lately(self) -> tuple[bool, ...]:
        """Per pitch class (12), whether it is a chromatic one heard in the memory: all `bias` depends on."""
        return tuple(np.any(list(self.recent), axis=0).tolist()) if self.recent else (False,) * 12

    def bias(self) -> torch.Tensor:
        """(V,) float32: per note each id writes, -strength for a chromatic class not heard
        lately and +welcome for one heard lately."""
        heard = np.array(self.heard_lately())  # (12,), outside the scale only
        per_class = torch.from_numpy(np.where(heard, self.welcome, np.where(self.outside, -self.strength, 0.0))).float()  # (12,)
        return self.notes @ per_class

    def hear(self, sounded: np.ndarray) -> None:
        """Take a written bar's (12,) pitch classes that sounded (any track) into the memory."""
        self.recent.append(np.asarray(sounded, dtype=bool) & self.outside)  # a memory of 0 bars keeps nothing
