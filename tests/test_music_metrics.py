"""Music metrics and distribution comparisons on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from musemorphic.evaluation.distributions import compare
from musemorphic.evaluation.music_metrics import make_bar, song_bars, window_metrics, windows

Q = 480  # ticks per quarter = one beat in 4/4
S = Q // 4  # a 16th


def test_a_c_major_triad_on_beat_one():
    m = window_metrics([make_bar([(0, Q, 60, 0), (0, Q, 64, 0), (0, Q, 67, 0)])])
    assert m["pitch_class_entropy"] == pytest.approx(math.log2(3))
    assert m["scale_consistency"] == 1.0
    assert m["polyphony"] == 3.0
    assert m["pitch_range"] == 7.0
    assert m["notes_per_bar"] == 3.0
    assert m["empty_beat_rate"] == 0.75  # beats 2-4 are silent
    assert math.isnan(m["groove_consistency"])  # one bar: no consecutive pair


def test_a_chromatic_run():
    m = window_metrics([make_bar([(i * S, S, 60 + i, 0) for i in range(12)])])
    assert m["pitch_class_entropy"] == pytest.approx(math.log2(12))
    assert m["scale_consistency"] == pytest.approx(7 / 12)
    assert m["polyphony"] == 1.0
    assert m["empty_beat_rate"] == 0.25  # the 12 16ths fill beats 1-3


def test_entropy_weights_by_duration():
    m = window_metrics([make_bar([(0, 3 * Q, 60, 0), (3 * Q, Q, 67, 0)])])
    assert m["pitch_class_entropy"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_polyphony_counts_held_notes_at_each_onset():
    m = window_metrics([make_bar([(0, 4 * Q, 60, 0), (Q, 3 * Q, 64, 0), (2 * Q, 2 * Q, 67, 0)])])
    assert m["polyphony"] == pytest.approx((1 + 2 + 3) / 3)


def test_polyphony_and_empty_beats_see_notes_held_over_the_bar_line():
    held = make_bar([(3 * Q, 2 * Q, 60, 0)])  # last beat of bar 1 into the first of bar 2
    onset = make_bar([(0, Q, 64, 0)])
    assert window_metrics([held, onset])["polyphony"] == pytest.approx((1 + 2) / 2)
    # bar 2 is silent but for the held note: its first beat still sounds
    assert window_metrics([held, make_bar([])])["empty_beat_rate"] == pytest.approx(6 / 8)
    assert window_metrics([make_bar([(3 * Q, Q, 60, 0)]), make_bar([])])["empty_beat_rate"] == pytest.approx(7 / 8)


def test_groove_is_one_minus_the_mean_hamming_share():
    a = make_bar([(0, S, 60, 0), (4 * S, S, 60, 0)])
    b = make_bar([(0, S, 60, 0), (8 * S, S, 60, 0)])
    silent = make_bar([])
    assert window_metrics([a, silent, silent, a])["groove_consistency"] == pytest.approx(1 - (2 + 2) / 16 / 2)  # silent pair skipped
    assert window_metrics([a, a])["groove_consistency"] == 1.0
    assert window_metrics([a, b])["groove_consistency"] == pytest.approx(1 - 2 / 16)
    assert window_metrics([a, b, a, a])["groove_consistency"] == pytest.approx(1 - (2 + 2 + 0) / 16 / 3)


def test_drums_count_for_rhythm_but_not_pitch():
    m = window_metrics([make_bar([(0, Q, 60, 0), (Q, Q, 36, 1), (2 * Q, Q, 42, 1)])])
    assert m["pitch_range"] == 0.0
    assert m["pitch_class_entropy"] == 0.0
    assert m["notes_per_bar"] == 3.0
    assert m["empty_beat_rate"] == 0.25


def test_silence_has_no_pitch_statistics():
    m = window_metrics([make_bar([]), make_bar([])])
    assert m["empty_beat_rate"] == 1.0
    assert m["notes_per_bar"] == 0.0
    for name in ("pitch_class_entropy", "scale_consistency", "polyphony", "pitch_range", "groove_consistency"):
        assert math.isnan(m[name])


def test_three_four_bars_have_three_beats_and_twelve_cells():
    a = make_bar([(0, S, 60, 0)], (3, 4))
    b = make_bar([(S, S, 60, 0)], (3, 4))
    m = window_metrics([a, b])
    assert m["empty_beat_rate"] == pytest.approx(4 / 6)
    assert m["groove_consistency"] == pytest.approx(1 - 2 / 12)


def test_windows_are_whole_and_short_songs_form_one():
    bars = [make_bar([]) for _ in range(19)]
    assert [len(w) for w in windows(bars, 8)] == [8, 8]
    assert [len(w) for w in windows(bars[:5], 8)] == [5]
    assert windows([], 8) == []


def test_song_bars_keep_every_note_of_a_tokenized_song(tokenizer):
    from conftest import FIXTURE_FILES
    from musemorphic.data.midi_io import load_score

    score = tokenizer.preprocess(load_score(FIXTURE_FILES[0]))
    song = tokenizer.encode_song(score, preprocessed=True)
    bars = song_bars(tokenizer, [(t.program, t.bars) for t in song.tracks])
    assert len(bars) == song.n_bars
    assert sum(len(b.notes) for b in bars) == sum(len(t.notes) for t in score.tracks)
    drums = sum(len(t.notes) for t in score.tracks if t.is_drum)
    assert sum(int(b.notes[:, 3].sum()) for b in bars) == drums


def test_overlap_and_kl_of_two_unit_normals_one_apart():
    rng = np.random.default_rng(0)
    c = compare(rng.normal(0, 1, 4000), rng.normal(1, 1, 4000))
    assert c.overlap == pytest.approx(2 * 0.3085375, abs=0.02)  # 2 * Phi(-1/2)
    assert c.kl == pytest.approx(0.5, abs=0.05)  # (mu1 - mu2)^2 / 2


def test_identical_samples_overlap_fully_and_disjoint_ones_not_at_all():
    x = np.random.default_rng(1).normal(size=300)
    same = compare(x, x)
    assert same.overlap == pytest.approx(1.0) and same.kl == pytest.approx(0.0, abs=1e-9)
    apart = compare(np.full(50, 3.0), np.full(50, 40.0))
    assert apart.overlap < 1e-3 and apart.kl > 5
    assert compare(np.full(50, 3.0), np.full(50, 3.0)).overlap == pytest.approx(1.0)


def test_nans_are_dropped_and_an_empty_side_gives_nan():
    c = compare(np.array([1.0, 2.0, np.nan]), np.array([1.0, 2.0]))
    assert c.overlap == pytest.approx(1.0)
    assert math.isnan(compare(np.array([np.nan]), np.array([1.0])).overlap)
