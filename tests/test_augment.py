"""Tests for musemorphic.data.augment."""

from __future__ import annotations

import json

import numpy as np
import pytest
import symusic

from musemorphic.data.augment import AugmentConfig, Augmentation, Augmenter, transpose_key
from musemorphic.data.tokenizer import PhraseTokenizer, SongTokens, TrackTokens

IDENTITY = Augmentation(transpose=0, velocity_factor=1.0, tempo_factor=1.0)


@pytest.fixture(scope="module")
def tok() -> PhraseTokenizer:
    return PhraseTokenizer()


@pytest.fixture(scope="module")
def aug(tok) -> Augmenter:
    return Augmenter(tok, AugmentConfig())


def ids(tok, *names: str) -> np.ndarray:
    return np.array([tok.base_vocab[n] for n in names], dtype=np.int64)


def pitched_phrase(tok, *pitches: int) -> np.ndarray:
    names = ["Bar_None", "TimeSig_4/4", "Position_0", "Tempo_122.0"]
    for p in pitches:
        names += [f"Pitch_{p}", "Velocity_99", "Duration_1.0.4"]
    return ids(tok, *names)


@pytest.fixture(scope="module")
def score() -> symusic.Score:
    s = symusic.Score(480)
    piano = symusic.Track("piano", program=0, is_drum=False)
    for i, p in enumerate([48, 60, 64, 67, 72, 76, 79, 84]):
        piano.notes.append(symusic.Note(i * 480, 480, p, 100))
    bass = symusic.Track("bass", program=33, is_drum=False)
    for i, p in enumerate([36, 43, 41, 38]):
        bass.notes.append(symusic.Note(i * 960, 960, p, 80))
    drums = symusic.Track("drums", program=0, is_drum=True)
    for i in range(16):
        drums.notes.append(symusic.Note(i * 240, 120, 36 + (i % 2) * 2, 90))
    s.tracks.extend([piano, bass, drums])
    s.tempos.append(symusic.Tempo(0, 120.0))
    s.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    return s


def song_phrases(tok, score):
    song = tok.encode_song(score)
    phrases = [np.array(bar, dtype=np.int64) for t in song.tracks for bar in t.bars]
    programs = [t.program for t in song.tracks for _ in t.bars]
    return song, phrases, programs


def test_config_json_round_trip():
    cfg = AugmentConfig(max_transpose=3, velocity_scale=(0.7, 1.3), tempo_stretch=(1.0, 1.0))
    back = AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    assert back.velocity_scale == (0.7, 1.3)


def test_config_rejects_bad_ranges():
    with pytest.raises(ValueError):
        AugmentConfig(max_transpose=-1)
    with pytest.raises(ValueError):
        AugmentConfig(velocity_scale=(1.2, 0.8))


def test_same_seed_same_result_different_seeds_differ(tok, score, aug):
    _, phrases, programs = song_phrases(tok, score)
    out_a, aug_a = aug.augment_song(phrases, programs, np.random.default_rng(7))
    out_b, aug_b = aug.augment_song(phrases, programs, np.random.default_rng(7))
    assert aug_a == aug_b
    assert all(np.array_equal(a, b) for a, b in zip(out_a, out_b, strict=True))

    draws = {aug.sample(np.random.default_rng(seed), (48, 84)) for seed in range(5)}
    assert len(draws) > 1


def test_transposition_shifts_only_pitch_tokens(tok, aug):
    phrase = pitched_phrase(tok, 40, 60, 100)
    out = aug.apply(phrase, program=0, aug=Augmentation(3, 1.0, 1.0))
    assert out is not phrase and len(out) == len(phrase)
    names_in, names_out = tok.token_names(phrase), tok.token_names(out)
    for a, b in zip(names_in, names_out, strict=True):
        if a.startswith("Pitch_"):
            assert b == f"Pitch_{int(a.split('_')[1]) + 3}"
        else:
            assert b == a
    assert tok.token_names(aug.apply(phrase, 0, Augmentation(-5, 1.0, 1.0)))[4] == "Pitch_35"


def test_transposition_leaves_non_pitch_vocab_alone(tok, aug):
    everything = np.arange(tok.base_vocab_size)
    out = aug.apply(everything, program=0, aug=Augmentation(-4, 1.0, 1.0))
    changed = {tok.base_names[i] for i in everything[out != everything]}
    assert changed and all(name.startswith("Pitch_") for name in changed)


def test_drums_never_transposed(tok, aug):
    phrase = pitched_phrase(tok, 36, 38)  # Pitch tokens on a drum track: still left alone
    out = aug.apply(phrase, program=-1, aug=Augmentation(5, 1.0, 1.0))
    np.testing.assert_array_equal(out, phrase)


def test_sample_respects_pitch_bounds(aug):
    rng = np.random.default_rng(0)
    draws = [aug.sample(rng, (60, 125)).transpose for _ in range(300)]
    assert max(draws) == 2 and min(draws) == -6
    assert all(aug.sample(rng, (0, 127)).transpose == 0 for _ in range(50))
    assert all(aug.sample(rng, None).transpose == 0 for _ in range(50))


def test_sample_factors_within_config(tok):
    cfg = AugmentConfig(velocity_scale=(0.5, 0.6), tempo_stretch=(1.5, 1.6))
    augmenter, rng = Augmenter(tok, cfg), np.random.default_rng(1)
    for _ in range(50):
        a = augmenter.sample(rng, (60, 72))
        assert 0.5 <= a.velocity_factor <= 0.6 and 1.5 <= a.tempo_factor <= 1.6


def test_pitch_range_ignores_drums(tok, aug):
    phrases = [pitched_phrase(tok, 50, 70), pitched_phrase(tok, 20, 110), pitched_phrase(tok, 64)]
    assert aug.pitch_range(phrases, [0, -1, 33]) == (50, 70)
    assert aug.pitch_range(phrases[1:2], [-1]) is None


def test_unit_factors_are_identity(tok, aug):
    everything = np.arange(tok.base_vocab_size)
    np.testing.assert_array_equal(aug.apply(everything, 0, IDENTITY), everything)


def test_velocity_maps_to_nearest_bin(tok, aug):
    phrase = ids(tok, "Velocity_99", "Velocity_3", "Velocity_127")
    up = tok.token_names(aug.apply(phrase, 0, Augmentation(0, 1.1, 1.0)))
    assert up == ["Velocity_107", "Velocity_3", "Velocity_127"]  # 108.9 -> 107, 3.3 -> 3, clip
    down = tok.token_names(aug.apply(phrase, 0, Augmentation(0, 0.5, 1.0)))
    assert down == ["Velocity_51", "Velocity_3", "Velocity_63"]  # 49.5 -> 51, 1.5 -> 3, 63.5 -> 63


def test_tempo_scaled_and_clipped(tok, aug):
    phrase = ids(tok, "Tempo_122.0", "Tempo_190.0", "Tempo_34.0", "Velocity_99")
    up = tok.token_names(aug.apply(phrase, 0, Augmentation(0, 1.0, 1.2)))
    assert up == ["Tempo_146.0", "Tempo_210.0", "Tempo_42.0", "Velocity_99"]  # 146.4, 228, 40.8
    phrase = ids(tok, "Tempo_122.0", "Tempo_190.0", "Tempo_30.0", "Velocity_99")
    down = tok.token_names(aug.apply(phrase, 0, Augmentation(0, 1.0, 0.9)))
    assert down == ["Tempo_110.0", "Tempo_170.0", "Tempo_30.0", "Velocity_99"]  # 109.8, 171, 27


def test_out_of_range_transpose_rejected(tok, aug):
    with pytest.raises(ValueError):
        aug.apply(pitched_phrase(tok, 60), 0, Augmentation(7, 1.0, 1.0))


def test_decoded_song_is_transposed(tok, score, aug):
    song, phrases, programs = song_phrases(tok, score)
    original = tok.decode_song(song)
    seen = set()
    for seed in range(6):
        out, a = aug.augment_song(phrases, programs, np.random.default_rng(seed))
        seen.add(a.transpose)
        assert [len(p) for p in out] == [len(p) for p in phrases]
        it = iter(out)
        tracks = [TrackTokens(t.program, [next(it).tolist() for _ in t.bars]) for t in song.tracks]
        decoded = tok.decode_song(SongTokens(tracks=tracks, bar_ticks=song.bar_ticks))
        for before, after in zip(original.tracks, decoded.tracks, strict=True):
            k = 0 if before.is_drum else a.transpose
            assert [n.pitch + k for n in before.notes] == [n.pitch for n in after.notes]
            assert [n.time for n in before.notes] == [n.time for n in after.notes]
    assert seen - {0}


@pytest.mark.parametrize(
    ("key", "k", "expected"),
    [
        (0, 2, 2),  # C major + 2 = D major
        (21, 3, 12),  # A minor + 3 = C minor
        (11, 1, 0),  # B major + 1 = C major
        (12, -1, 23),  # C minor - 1 = B minor
        (7, -6, 1),  # G major - 6 = C# major
        (-1, 5, -1),  # unknown stays unknown
    ],
)
def test_transpose_key(key, k, expected):
    assert transpose_key(key, k) == expected


def test_transpose_key_rejects_bad_index():
    with pytest.raises(ValueError):
        transpose_key(24, 1)


def test_transpose_is_apply_with_unit_velocity_and_tempo_factors(tok, aug):
    phrase = ids(tok, "Bar_None", "Position_0", "Tempo_122.0", "Pitch_60", "Velocity_83", "Duration_1.0.4", "Pitch_127", "Velocity_3", "Duration_0.1.4")
    drums = ids(tok, "Bar_None", "Position_0", "PitchDrum_36", "Velocity_83", "Duration_0.1.4")
    for k in range(-6, 7):
        for bar, program in ((phrase, 0), (drums, -1)):
            np.testing.assert_array_equal(aug.transpose(bar, program, k), aug.apply(bar, program, Augmentation(k, 1.0, 1.0)))
    assert tok.token_names(aug.transpose(phrase, 0, 2).tolist())[3] == "Pitch_62"
    with pytest.raises(ValueError, match="outside"):
        aug.transpose(phrase, 0, 7)
