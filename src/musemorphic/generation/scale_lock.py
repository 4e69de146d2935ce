"""A soft scale lock: decoding that leans away from notes outside the piece's scale.

A codec decoding a latent that lies off every bar it learned (as a prior's sample does)
writes some of its notes a semitone off, so generated music holds more notes outside its key
than real music (BENCHMARKS.md, issue 5). The lock subtracts `strength` nats from the
decoder's logit of every token for each pitch it writes outside the scale: a wrong note then
needs a clearly better reason to be written, while a chromatic note the decoder is sure of
still is. Drum notes (PitchDrum tokens) are never touched.

The scale is the one the prior composes in: C major / A minor (the same pitch classes) for
a key-normalised prior, which writes every piece in that frame before it is moved to its key;
the requested key's for another prior; none when that prior gets no key.
"""

from __future__ import annotations

import torch

from musemorphic.data.tokenizer import PhraseTokenizer


def scale_logit_bias(tokenizer: PhraseTokenizer, pitch_classes: frozenset[int], strength: float) -> torch.Tensor:
    """(V,) float32: -strength per pitched note outside `pitch_classes` (e.g.
    `controls.scale_pitch_classes(key)`) that each id writes."""
    if strength < 0:
        raise ValueError(f"the scale lock's strength must be at least 0, got {strength}")
    return -strength * outside_notes(tokenizer, pitch_classes).float()


def outside_notes(tokenizer: PhraseTokenizer, pitch_classes: frozenset[int]) -> torch.Tensor:
    """(V,) int64: how many pitched notes outside `pitch_classes` each id writes."""
    return torch.tensor([
        sum(1 for name in tokenizer.id_names(i) if _is_pitch_outside(name, pitch_classes))
        for i in range(tokenizer.vocab_size)
    ])


def _is_pitch_outside(name: str, pitch_classes: frozenset[int]) -> bool:
    kind, _, value = name.partition("_")
    return kind == "Pitch" and int(value) % 12 not in pitch_classes
