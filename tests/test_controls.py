"""Tests for musemorphic.data.controls."""

from __future__ import annotations

import json

import numpy as np
import pytest
from miditok.utils import get_bars_ticks
from symusic import Note, Score, Tempo, TimeSignature, Track

from musemorphic.data.controls import (
    DEFAULT_DENSITY_THRESHOLDS,
    DENSITY_NAMES,
    KEY_NAMES,
    TEMPO_CLASS_EDGES,
    TEMPO_CLASS_NAMES,
    density_level,
    density_thresholds,
    extract_controls,
    key_from_histogram,
    parse_density,
    parse_key,
    parse_tempo,
    parse_time_signature,
    tempo_class,
)

TPQ = 480
C_MAJOR_SCALE_PCS = [0, 2, 4, 5, 7, 9, 11]


def _hist(pcs: list[int], weights: dict[int, float] | None = None) -> np.ndarray:
    hist = np.zeros(12)
    hist[pcs] = 1.0
    for pc, w in (weights or {}).items():
        hist[pc] = w
    return hist


# ------------------------------------------------------------------------------ keys


def test_key_names_layout() -> None:
    assert len(KEY_NAMES) == 24
    assert KEY_NAMES[0] == "C major" and KEY_NAMES[3] == "Eb major"
    assert KEY_NAMES[12] == "C minor" and KEY_NAMES[21] == "A minor"
    assert KEY_NAMES[23] == "B minor"


def test_ks_c_major_scale() -> None:
    assert KEY_NAMES[key_from_histogram(_hist(C_MAJOR_SCALE_PCS))] == "C major"


def test_ks_a_minor_weighted_to_tonic() -> None:
    hist = _hist(C_MAJOR_SCALE_PCS, {9: 3.0, 4: 2.0})  # A natural minor, A and E stressed
    assert KEY_NAMES[key_from_histogram(hist)] == "A minor"


@pytest.mark.parametrize(
    "base", [_hist(C_MAJOR_SCALE_PCS), _hist(C_MAJOR_SCALE_PCS, {9: 3.0, 4: 2.0})]
)
def test_ks_transposition_rotates_key(base: np.ndarray) -> None:
    key = key_from_histogram(base)
    for shift in range(12):
        expected = (key % 12 + shift) % 12 + 12 * (key // 12)
        assert key_from_histogram(np.roll(base, shift)) == expected


def test_ks_empty_flat_and_bad_shape() -> None:
    assert key_from_histogram(np.zeros(12)) == -1
    assert key_from_histogram(np.ones(12)) == -1
    with pytest.raises(ValueError):
        key_from_histogram(np.ones(11))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("D minor", "D minor"),
        ("d minor", "D minor"),
        ("Dm", "D minor"),
        ("D min", "D minor"),
        ("F# major", "F# major"),
        ("Gb major", "F# major"),
        ("Bb", "Bb major"),
        ("A#m", "Bb minor"),
        ("C", "C major"),
        ("  eb MAJOR ", "Eb major"),
        ("Cb", "B major"),
        ("bm", "B minor"),
    ],
)
def test_parse_key(text: str, name: str) -> None:
    assert KEY_NAMES[parse_key(text)] == name


def test_parse_key_round_trips_all_names() -> None:
    assert [parse_key(name) for name in KEY_NAMES] == list(range(24))


@pytest.mark.parametrize("text", ["", "H major", "C dorian", "C##", "CM", "minor", "C major minor"])
def test_parse_key_errors(text: str) -> None:
    with pytest.raises(ValueError, match="accepted key forms"):
        parse_key(text)


# ----------------------------------------------------------------------------- tempo


def test_tempo_class_edges() -> None:
    assert len(TEMPO_CLASS_NAMES) == len(TEMPO_CLASS_EDGES) + 1 == 8
    for i, edge in enumerate(TEMPO_CLASS_EDGES):
        assert tempo_class(edge) == i + 1  # an edge opens the next class
        assert tempo_class(edge - 0.01) == i
    assert tempo_class(20) == 0 and tempo_class(300) == 7
    for bad in (0.0, -10.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            tempo_class(bad)


def test_parse_tempo() -> None:
    assert parse_tempo("96") == parse_tempo("96.5") == TEMPO_CLASS_NAMES.index("moderato")
    assert parse_tempo("60") == 1
    assert parse_tempo(" Allegro ") == 5
    assert [parse_tempo(name) for name in TEMPO_CLASS_NAMES] == list(range(8))
    for bad in ("fast", "", "-5", "0", "nan", "96 bpm"):
        with pytest.raises(ValueError):
            parse_tempo(bad)


# --------------------------------------------------------------------------- density


def test_density_thresholds_and_levels() -> None:
    values = np.array([0, 0, 1, 2, 3, 4, 5, 6], dtype=np.float32)
    low, high = density_thresholds(values)
    assert low == pytest.approx(1 + 5 / 3) and high == pytest.approx(1 + 10 / 3)
    levels = [density_level(v, (low, high)) for v in values]
    assert levels == [0, 0, 0, 0, 1, 1, 2, 2]  # non-empty values split in equal thirds


def test_density_defaults_and_boundaries() -> None:
    assert density_thresholds(np.array([0.0, 5.0, 7.0])) == DEFAULT_DENSITY_THRESHOLDS
    assert density_thresholds(np.array([])) == DEFAULT_DENSITY_THRESHOLDS
    assert [density_level(v, (1.0, 2.0)) for v in (0.0, 0.5, 1.0, 1.99, 2.0)] == [0, 0, 1, 1, 2]
    assert density_level(0.0, (-1.0, -0.5)) == 0  # empty bars are always low


def test_parse_density() -> None:
    assert [parse_density(n) for n in DENSITY_NAMES] == [0, 1, 2]
    assert [parse_density(t) for t in ("0", "1", " 2 ", "HIGH")] == [0, 1, 2, 2]
    for bad in ("3", "dense", ""):
        with pytest.raises(ValueError):
            parse_density(bad)


# -------------------------------------------------------------------- time signature


def test_parse_time_signature() -> None:
    assert parse_time_signature("3/4") == (3, 4)
    assert parse_time_signature(" 6 / 8 ") == (6, 8)
    assert parse_time_signature("5/1") == (5, 1)
    for bad in ("3/5", "3/0", "0/4", "3-4", "abc", "3/4/4", "-3/4"):
        with pytest.raises(ValueError):
            parse_time_signature(bad)


# ------------------------------------------------------------------------ extraction


def _song(drums_are_pitched: bool = False) -> Score:
    """4 bars: 4/4, 4/4, 3/4, 3/4; tempo 120 -> 90 at bar 1 -> 150 inside bar 1."""
    score = Score(TPQ)
    piano = Track("piano", 0, False)
    q = TPQ
    pitches = [60, 62, 64, 65, 67, 69, 71, 72, 60, 64, 67, 64]  # C major
    onsets = [0, q, 2 * q, 3 * q, 4 * q, 5 * q, 6 * q, 7 * q, 8 * q, 9 * q, 10 * q, 11 * q]
    for time, pitch in zip(onsets, pitches):
        piano.notes.append(Note(time, q, pitch, 80))
    drums = Track("drums", 0, not drums_are_pitched)
    for time in (4 * q, 5 * q):  # two long C#/Eb hits in bar 1
        drums.notes.append(Note(time, 3 * q, 37, 100))
        drums.notes.append(Note(time, 3 * q, 39, 100))
    score.tracks.extend([piano, drums])
    score.time_signatures.extend([TimeSignature(0, 4, 4), TimeSignature(8 * q, 3, 4)])
    score.tempos.extend([Tempo(0, 120.0), Tempo(4 * q, 90.0), Tempo(4 * q + 80, 150.0)])
    return score


def test_song_bars_match_miditok() -> None:
    assert get_bars_ticks(_song()) == [0, 1920, 3840, 5280]


def test_extract_per_bar_controls() -> None:
    controls = extract_controls(_song(), [0, 1920, 3840, 5280])
    assert controls.n_bars == 4
    np.testing.assert_allclose(controls.bar_tempo, [120, 90, 150, 150], atol=1e-3)
    assert controls.bar_tempo.dtype == np.float32
    assert controls.bar_time_signature.tolist() == [[4, 4], [4, 4], [3, 4], [3, 4]]
    assert controls.bar_time_signature.dtype == np.int16
    assert controls.bar_n_notes.tolist() == [4, 8, 3, 1]  # drums counted
    # onsets per quarter note: the 3/4 bar with 3 onsets equals the 4/4 bar with 4.
    np.testing.assert_allclose(controls.bar_density, [1.0, 2.0, 1.0, 1 / 3], rtol=1e-6)
    # bars 0 and 1 see the whole C major scale; bar 3's window is bars 2-3 only (C E G E).
    assert controls.bar_key[:2].tolist() == [parse_key("C")] * 2
    c_e_g_e = np.zeros(12)
    c_e_g_e[[0, 4, 7]] = [TPQ, 2 * TPQ, TPQ]
    assert controls.bar_key[3] == key_from_histogram(c_e_g_e)


def test_extract_song_controls() -> None:
    controls = extract_controls(_song(), [0, 1920, 3840, 5280])
    assert controls.tempo == pytest.approx(150.0, abs=1e-3)  # 150 covers most ticks
    assert controls.time_signature == (4, 4)  # 2 bars each: tie goes to the first
    assert KEY_NAMES[controls.key] == "C major"
    assert controls.density == pytest.approx((1 + 2 + 1 + 1 / 3) / 4)
    summary = controls.song_summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["key"] == "C major" and summary["time_signature"] == "4/4"
    assert parse_tempo(summary["tempo_class"]) == tempo_class(controls.tempo) == 6


def test_drums_excluded_from_key() -> None:
    with_drums = extract_controls(_song(), [0, 1920, 3840, 5280])
    as_pitched = extract_controls(_song(drums_are_pitched=True), [0, 1920, 3840, 5280])
    assert as_pitched.key != with_drums.key == parse_key("C")
    assert as_pitched.bar_n_notes.tolist() == with_drums.bar_n_notes.tolist()


def test_key_window_and_empty_bars() -> None:
    # Two trailing empty bars: bar 4 still sees bar 3 (a lone E) in its window, bar 5 nothing.
    controls = extract_controls(_song(), [0, 1920, 3840, 5280, 6720, 8160])
    lone_e = np.zeros(12)
    lone_e[4] = 1.0
    assert controls.bar_key[4] == key_from_histogram(lone_e) != -1
    assert controls.bar_key[5] == -1
    assert controls.bar_n_notes[4:].tolist() == [0, 0]
    assert controls.density == pytest.approx((1 + 2 + 1 + 1 / 3) / 4)  # empty bars ignored


def test_bar_key_follows_local_notes() -> None:
    score = Score(TPQ)
    track = Track("piano", 0, False)
    # Bars 0-4 play a C major scale in eighths, bars 5-9 the same transposed to F# major.
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    for bar in range(10):
        shift = 6 if bar >= 5 else 0
        for i, pitch in enumerate(scale):
            track.notes.append(Note(bar * 4 * TPQ + i * TPQ // 2, TPQ // 2, pitch + shift, 80))
    score.tracks.append(track)
    controls = extract_controls(score, get_bars_ticks(score))
    names = [KEY_NAMES[k] for k in controls.bar_key]
    assert len(names) == 10
    assert names[:4] == ["C major"] * 4 and names[6:] == ["F# major"] * 4


def test_defaults_without_tempo_or_time_signature() -> None:
    score = Score(TPQ)
    track = Track("piano", 0, False)
    track.notes.append(Note(0, TPQ, 60, 80))
    score.tracks.append(track)
    controls = extract_controls(score, get_bars_ticks(score))
    assert controls.bar_tempo.tolist() == [120.0] and controls.tempo == 120.0
    assert controls.time_signature == (4, 4)
    assert controls.bar_density.tolist() == [0.25]  # one onset in a full 4/4 bar


def test_empty_score() -> None:
    controls = extract_controls(Score(TPQ), [0])
    assert controls.key == -1 and controls.density == 0.0 and controls.bar_key.tolist() == [-1]
    assert controls.song_summary()["key"] is None


def test_extract_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        extract_controls(_song(), [])
    with pytest.raises(ValueError):
        extract_controls(_song(), [0, 1920, 1920])
    with pytest.raises(TypeError):
        extract_controls(_song().to("quarter"), [0, 1920])
