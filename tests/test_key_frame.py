"""The key-normalised frame: shifts, and latents of songs moved into it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musemorphic.data import controls as ctl
from musemorphic.data.augment import AugmentConfig, Augmentation, Augmenter
from musemorphic.data.key_frame import normalized_key, normalizing_shift
from musemorphic.data.phrase_batches import PhraseBatcher, codec_batch
from musemorphic.training.latents import encode_phrases
from musemorphic.training.phrase_vae import build_phrase_vae


@pytest.mark.parametrize(
    "name, shift, frame",
    [("C major", 0, "C major"), ("D major", -2, "C major"), ("F# major", -6, "C major"), ("G major", 5, "C major"),
     ("A minor", 0, "A minor"), ("D minor", -5, "A minor"), ("C minor", -3, "A minor"), ("E minor", 5, "A minor")],
)
def test_every_key_moves_by_at_most_six_semitones_to_c_major_or_a_minor(name, shift, frame):
    key = ctl.parse_key(name)
    assert normalizing_shift(key) == shift
    assert normalized_key(key) == ctl.parse_key(frame)


def test_an_unknown_key_stays_put():
    assert normalizing_shift(-1) == 0 and normalized_key(-1) == -1


def test_key_normalised_latents_are_those_of_the_moved_songs(fixture_dataset):
    torch.manual_seed(0)
    codec = build_phrase_vae(fixture_dataset.tokenizer, "tiny", d_latent=8).eval()
    moved = encode_phrases(codec, fixture_dataset, key_normalized=True)
    plain = encode_phrases(codec, fixture_dataset)
    songs = fixture_dataset.shard.columns["phrase_song"][fixture_dataset.phrase_indices]
    shifts = {int(s): normalizing_shift(fixture_dataset.song_controls(int(s)).key) for s in np.unique(songs)}
    song = next(s for s, k in shifts.items() if k != 0)  # a song outside the frame
    rows = np.flatnonzero(songs == song)
    bars, programs = PhraseBatcher(fixture_dataset, max_len=1 << 30).bars(rows)
    mover = Augmenter(fixture_dataset.tokenizer, AugmentConfig())
    by_hand = [mover.apply(b, p, Augmentation(shifts[song], 1.0, 1.0)).tolist() for b, p in zip(bars, programs)]
    with torch.no_grad():
        expected = codec.encode(codec_batch(fixture_dataset.tokenizer, by_hand, programs)[:, : codec.config.max_len])[0]
    np.testing.assert_allclose(moved[rows], expected.numpy(), atol=1e-5)
    assert not np.allclose(moved[rows], plain[rows], atol=1e-3)
