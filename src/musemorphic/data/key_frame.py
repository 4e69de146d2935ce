"""The key-normalised frame: every song moved to C major or A minor.

A prior trained on songs in every key must learn each key's version of every pattern, and
its samples drift between keys. Moved to one frame (a major song to C major, a minor one to
A minor, which shares its scale, by at most six semitones either way), the songs share
one scale, so the prior learns the music instead of the key; the mode stays a control.
Generation then moves the output to the requested key (or the prompt's, or a random one).
Drums are never moved. Keys are indices of `controls.KEY_NAMES` (-1 = unknown).
"""

from __future__ import annotations

from musemorphic.data.augment import transpose_key

MAJOR_TONIC, MINOR_TONIC = 0, 9  # C major, A minor


def normalizing_shift(key: int) -> int:
    """Semitones in -6..5 that move `key` to C major or A minor (0 for an unknown key)."""
    if key == -1:
        return 0
    target = MAJOR_TONIC if key < 12 else MINOR_TONIC
    return (target - key % 12 + 6) % 12 - 6


def normalized_key(key: int) -> int:
    """The key after `normalizing_shift`: 0 (C major), 21 (A minor) or -1 (unknown)."""
    return transpose_key(key, normalizing_shift(key))
