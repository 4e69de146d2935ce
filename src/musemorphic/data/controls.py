"""Musical controls per song and per bar, extracted from a tick-based ``symusic.Score``.

The same extractor labels the training data and judges whether generated music obeys
requested controls, so every definition below is exact. Bars come from ``bar_ticks``
(start tick of every bar, as returned by ``miditok.utils.get_bars_ticks``): bar ``b``
spans ``[bar_ticks[b], bar_ticks[b + 1])``; the last bar ends at
``max(score.end(), bar start + its time-signature length)``. A note belongs to the bar
containing its onset; notes starting before ``bar_ticks[0]`` are ignored. Drums are the
tracks with ``track.is_drum``. Every ``parse_*`` function accepts the names used in
``SongControls.song_summary()``, so a summary round-trips into control requests.

**Tempo.** Quarter notes per minute (BPM). The tempo of a bar is the last tempo event
at or before the bar's start tick (120 BPM if there is none; events with a non-positive
tempo are ignored; of several events on one tick the last in the list wins). The song tempo is the
tempo value in force for the most ticks between the first bar start and the end of the
last bar (ties: the one heard first). Eight classes with edges
``TEMPO_CLASS_EDGES = (60, 76, 92, 108, 120, 140, 168)``: class ``i`` covers
``[edge[i-1], edge[i])``, named ``TEMPO_CLASS_NAMES = ("largo", "adagio", "andante",
"moderato", "allegretto", "allegro", "vivace", "presto")``; e.g. 60 is adagio, 59.9 largo.

**Time signature.** ``(numerator, denominator)``. The time signature of a bar is the last
valid event (positive numerator and denominator) at or before the bar's start tick, 4/4
if there is none; of several events on one tick the last in the list wins, as in
miditok. The song time signature is the one covering the most bars (ties: the first).

**Key.** 24 keys, ``KEY_NAMES[k]``: tonic pitch class ``k % 12`` (C=0), mode
``k // 12`` (0 major, 1 minor), e.g. 0 "C major", 21 "A minor". Estimated by
Krumhansl-Schmuckler: the Pearson correlation of a 12-bin pitch-class histogram with
the 24 rotations of the Krumhansl-Kessler major/minor profiles; argmax wins (ties: the
lower index). Histograms count non-drum notes only, each weighted by
``max(duration, 1)`` ticks. The key of bar ``b`` uses the notes with onsets in bars
``b-1, b, b+1`` (a 3-bar window centred on ``b``, truncated at the song edges); the song
key uses all notes. The key is -1 if the histogram is empty or flat (all 12 bins equal).

**Density.** Raw density of a bar = note onsets in the bar over all tracks, drums
included, divided by the bar length in quarter notes, so 3/4 and 4/4 bars compare. The
song density is the mean raw density over non-empty bars (0 if all are empty). Levels
``DENSITY_NAMES = ("low", "medium", "high")`` = 0, 1, 2 come from two thresholds
``(t1, t2)``: the 1/3 and 2/3 quantiles of the non-empty raw values of a reference set
(e.g. all training bars), or ``DEFAULT_DENSITY_THRESHOLDS = (1.0, 2.0)`` onsets per
quarter note when it has fewer than 3 non-empty values. A bar is level 0 if empty or
below ``t1``, level 1 if ``t1 <= value < t2``, level 2 if ``value >= t2``.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import symusic.core

__all__ = [
    "DEFAULT_DENSITY_THRESHOLDS",
    "DENSITY_NAMES",
    "KEY_NAMES",
    "MAJOR_STEPS",
    "NATURAL_MINOR_STEPS",
    "TEMPO_CLASS_EDGES",
    "TEMPO_CLASS_NAMES",
    "SongControls",
    "density_level",
    "density_thresholds",
    "extract_controls",
    "key_correlations",
    "key_from_histogram",
    "parse_density",
    "parse_key",
    "parse_tempo",
    "parse_time_signature",
    "scale_pitch_classes",
    "tempo_class",
]

# ----------------------------------------------------------------------------- keys

_TONICS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KEY_NAMES: tuple[str, ...] = tuple(f"{t} major" for t in _TONICS) + tuple(
    f"{t} minor" for t in _TONICS
)

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic
NATURAL_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)


def scale_pitch_classes(key: int) -> frozenset[int]:
    """Pitch classes of key index ``key`` (``KEY_NAMES``): its major or natural-minor scale."""
    if not 0 <= key < 24:
        raise ValueError(f"key must be a key index 0..23, got {key}")
    steps = MAJOR_STEPS if key < 12 else NATURAL_MINOR_STEPS
    return frozenset((key % 12 + step) % 12 for step in steps)


# Krumhansl-Kessler probe-tone profiles, index 0 = tonic.
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _key_profiles() -> np.ndarray:
    """Centred, unit-norm profiles of the 24 keys, shape (24, 12); row k = key k."""
    rows = [np.roll(_KK_MAJOR, t) for t in range(12)] + [np.roll(_KK_MINOR, t) for t in range(12)]
    profiles = np.stack(rows)
    profiles -= profiles.mean(axis=1, keepdims=True)
    return profiles / np.linalg.norm(profiles, axis=1, keepdims=True)


_PROFILES = _key_profiles()  # (24, 12)


def _profile_dots(hists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dot products of each centred histogram (n, 12) with the 24 unit-norm key profiles,
    (n, 24), and the centred histograms' norms, (n, 1)."""
    centred = hists - hists.mean(axis=1, keepdims=True)  # (n, 12)
    return centred @ _PROFILES.T, np.linalg.norm(centred, axis=1, keepdims=True)


def _keys_from_histograms(hists: np.ndarray) -> np.ndarray:
    """Krumhansl-Schmuckler key per row of ``hists`` (n, 12) -> (n,) int64; -1 if empty/flat."""
    hists = np.asarray(hists, dtype=np.float64)
    # Pearson r = <centred, profile> / (|centred| |profile|); profiles are unit-norm and
    # |centred| is the same for all 24 keys, so the argmax of the dot product is the argmax of r.
    keys = np.argmax(_profile_dots(hists)[0], axis=1)  # (n,)
    valid = (hists.sum(axis=1) > 0) & (np.ptp(hists, axis=1) > 0)
    return np.where(valid, keys, -1)


def key_correlations(hists: np.ndarray) -> np.ndarray:
    """Pearson correlation of each 12-bin histogram (n, 12) with the 24 key profiles -> (n, 24);
    zeros for an empty or flat histogram. Its argmax is the Krumhansl-Schmuckler key."""
    dots, norms = _profile_dots(np.asarray(hists, dtype=np.float64))
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def key_from_histogram(hist: np.ndarray) -> int:
    """Key index (see ``KEY_NAMES``) of a 12-bin pitch-class histogram, -1 if empty or flat."""
    hist = np.asarray(hist, dtype=np.float64)
    if hist.shape != (12,):
        raise ValueError(f"expected a histogram of shape (12,), got {hist.shape}")
    return int(_keys_from_histograms(hist[None])[0])


_LETTER_PC = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTAL = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
# Tonic letter, optional accidental, optional mode: major/maj/minor/min (any case) or "m".
_KEY_RE = re.compile(r"([A-Ga-g])([#♯b♭]?)\s*((?i:major|maj|minor|min)|m)?")
_KEY_FORMS = (
    'accepted key forms: "<tonic> [major|maj|minor|min]" or "<tonic>m" (minor), '
    'where <tonic> is a letter A-G with optional "#" or "b" (e.g. "D minor", "Dm", '
    '"d min", "F# major", "Gb major", "Bb", "A#m", "C"; no mode means major)'
)


def parse_key(text: str) -> int:
    """Parse a key name such as "D minor", "Dm", "Gb major" or "C" into a key index."""
    match = _KEY_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"unknown key {text!r}; {_KEY_FORMS}")
    letter, accidental, mode = match.groups()
    tonic = (_LETTER_PC[letter.lower()] + _ACCIDENTAL[accidental]) % 12
    is_minor = mode is not None and mode.lower() in ("m", "minor", "min")
    return tonic + 12 * is_minor


# ---------------------------------------------------------------------------- tempo

TEMPO_CLASS_EDGES: tuple[float, ...] = (60, 76, 92, 108, 120, 140, 168)
TEMPO_CLASS_NAMES: tuple[str, ...] = (
    "largo", "adagio", "andante", "moderato", "allegretto", "allegro", "vivace", "presto",
)
_DEFAULT_MSPQ = 500_000  # 120 BPM


def tempo_class(bpm: float) -> int:
    """Tempo class index (see ``TEMPO_CLASS_NAMES``) of a positive, finite BPM."""
    if not (math.isfinite(bpm) and bpm > 0):
        raise ValueError(f"tempo must be a positive finite BPM, got {bpm!r}")
    return bisect.bisect_right(TEMPO_CLASS_EDGES, bpm)


def parse_tempo(text: str) -> int:
    """Parse a BPM number ("96", "96.5") or a tempo class name ("allegro") into a class index."""
    word = text.strip().lower()
    if word in TEMPO_CLASS_NAMES:
        return TEMPO_CLASS_NAMES.index(word)
    try:
        return tempo_class(float(word))
    except ValueError:
        raise ValueError(
            f"unknown tempo {text!r}; give a positive BPM number or one of {TEMPO_CLASS_NAMES}"
        ) from None


# -------------------------------------------------------------------------- density

DENSITY_NAMES: tuple[str, ...] = ("low", "medium", "high")
DEFAULT_DENSITY_THRESHOLDS: tuple[float, float] = (1.0, 2.0)


def density_thresholds(values: np.ndarray) -> tuple[float, float]:
    """1/3 and 2/3 quantiles of the non-empty raw densities; defaults if fewer than 3."""
    values = np.asarray(values, dtype=np.float64).ravel()
    nonempty = values[values > 0]
    if nonempty.size < 3:
        return DEFAULT_DENSITY_THRESHOLDS
    low, high = np.quantile(nonempty, [1 / 3, 2 / 3])
    return float(low), float(high)


def density_level(value: float, thresholds: tuple[float, float]) -> int:
    """Density level 0/1/2 of a raw density; an empty bar (value <= 0) is level 0."""
    if value <= 0:
        return 0
    low, high = thresholds
    return int(value >= low) + int(value >= high)


def parse_density(text: str) -> int:
    """Parse a density level name ("low", "medium", "high") or "0"/"1"/"2"."""
    word = text.strip().lower()
    if word in DENSITY_NAMES:
        return DENSITY_NAMES.index(word)
    if word in ("0", "1", "2"):
        return int(word)
    raise ValueError(f"unknown density {text!r}; accepted: {DENSITY_NAMES} or 0, 1, 2")


# ------------------------------------------------------------------- time signature

_TIME_SIG_RE = re.compile(r"(\d+)\s*/\s*(\d+)")


def parse_time_signature(text: str) -> tuple[int, int]:
    """Parse "3/4" into (3, 4); the denominator must be a power of two."""
    match = _TIME_SIG_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"unknown time signature {text!r}; expected 'N/D' such as '3/4'")
    num, den = int(match.group(1)), int(match.group(2))
    if num < 1 or den < 1 or den & (den - 1):
        raise ValueError(
            f"invalid time signature {text!r}: numerator must be >= 1 and "
            "denominator a power of two"
        )
    return num, den


# ------------------------------------------------------------------------ extraction


@dataclass
class SongControls:
    """Per-bar and song-level controls of one song (definitions in the module docstring)."""

    bar_tempo: np.ndarray  # (n_bars,) float32, BPM at bar start
    bar_time_signature: np.ndarray  # (n_bars, 2) int16, (numerator, denominator)
    bar_density: np.ndarray  # (n_bars,) float32, onsets per quarter note
    bar_key: np.ndarray  # (n_bars,) int8, key index or -1
    bar_n_notes: np.ndarray  # (n_bars,) int32, onsets in the bar, all tracks
    tempo: float  # BPM in force for the most ticks
    time_signature: tuple[int, int]  # covering the most bars
    key: int  # key index or -1
    density: float  # mean raw density of non-empty bars

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return len(self.bar_tempo)

    def song_summary(self) -> dict[str, Any]:
        """JSON-friendly song-level controls; names round-trip through the ``parse_*`` functions."""
        return {
            "n_bars": self.n_bars,
            "tempo": round(self.tempo, 2),
            "tempo_class": TEMPO_CLASS_NAMES[tempo_class(self.tempo)],
            "time_signature": f"{self.time_signature[0]}/{self.time_signature[1]}",
            "key": KEY_NAMES[self.key] if self.key >= 0 else None,
            "density": round(self.density, 4),
        }


def _last_event_index(event_times: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Index of the last event at or before each tick (``event_times`` sorted); -1 if none."""
    return np.searchsorted(event_times, ticks, side="right") - 1


def _heaviest_first_index(codes: np.ndarray, weights: np.ndarray) -> int:
    """Index of the first occurrence of the code with the largest total weight (ties: earliest)."""
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    totals = np.bincount(inverse, weights=weights)
    return int(first[totals == totals.max()].min())


def _gather_notes(score: symusic.core.ScoreTick) -> tuple[np.ndarray, ...]:
    """All notes as (time, duration, pitch, is_drum) arrays of shape (n_notes,)."""
    parts = [(track.notes.numpy(), track.is_drum) for track in score.tracks]
    if not parts:
        return tuple(np.zeros(0, dtype=dt) for dt in (np.int64, np.int64, np.int64, bool))
    time = np.concatenate([n["time"] for n, _ in parts]).astype(np.int64)
    duration = np.concatenate([n["duration"] for n, _ in parts]).astype(np.int64)
    pitch = np.concatenate([n["pitch"] for n, _ in parts]).astype(np.int64)
    is_drum = np.concatenate([np.full(len(n["time"]), drum) for n, drum in parts])
    return time, duration, pitch, is_drum


def extract_controls(score: symusic.core.ScoreTick, bar_ticks: Sequence[int]) -> SongControls:
    """Extract per-bar and song-level controls from a tick-based Score and its bar start ticks."""
    if not isinstance(score, symusic.core.ScoreTick):
        raise TypeError(f"expected a tick-based symusic Score, got {type(score).__name__}")
    starts = np.asarray(bar_ticks, dtype=np.int64)  # (n_bars,)
    if starts.ndim != 1 or starts.size == 0 or np.any(np.diff(starts) <= 0):
        raise ValueError("bar_ticks must be a non-empty, strictly increasing list of ticks")
    n_bars, tpq = len(starts), score.ticks_per_quarter

    # Time signatures: default 4/4 at tick 0, then the valid events, stably sorted by time.
    ts = score.time_signatures.numpy()
    ok = (ts["numerator"] > 0) & (ts["denominator"] > 0)
    ts_time = np.concatenate([[0], ts["time"][ok]]).astype(np.int64)
    ts_pair = np.concatenate([[[4, 4]], np.stack([ts["numerator"][ok], ts["denominator"][ok]], 1)])
    order = np.argsort(ts_time, kind="stable")
    ts_time, ts_pair = ts_time[order], ts_pair[order].astype(np.int16)
    bar_time_signature = ts_pair[_last_event_index(ts_time, starts)]  # (n_bars, 2)

    # Bar ends and lengths in quarter notes.
    last_num, last_den = (int(v) for v in bar_time_signature[-1])
    last_end = max(score.end(), int(starts[-1]) + round(last_num * 4 * tpq / last_den))
    ends = np.append(starts[1:], last_end)  # (n_bars,)
    bar_quarters = (ends - starts) / tpq  # (n_bars,)

    # Tempos: default 120 BPM at tick 0, then the valid events, stably sorted by time.
    tempos = score.tempos.numpy()
    ok = tempos["mspq"] > 0
    tempo_time = np.concatenate([[0], tempos["time"][ok]]).astype(np.int64)
    tempo_mspq = np.concatenate([[_DEFAULT_MSPQ], tempos["mspq"][ok]]).astype(np.int64)
    order = np.argsort(tempo_time, kind="stable")
    tempo_time, tempo_mspq = tempo_time[order], tempo_mspq[order]
    bar_tempo = 60_000_000 / tempo_mspq[_last_event_index(tempo_time, starts)]  # (n_bars,)
    # Ticks each tempo event is in force within [first bar start, last bar end).
    seg_bounds = np.append(np.clip(tempo_time, starts[0], last_end), last_end)
    song_mspq = tempo_mspq[_heaviest_first_index(tempo_mspq, np.diff(seg_bounds))]

    # Notes -> bar of their onset; drop notes starting before the first bar.
    time, duration, pitch, is_drum = _gather_notes(score)
    bar = _last_event_index(starts, time)  # (n_notes,)
    keep = bar >= 0
    bar, duration, pitch, is_drum = bar[keep], duration[keep], pitch[keep], is_drum[keep]
    bar_n_notes = np.bincount(bar, minlength=n_bars)  # (n_bars,)
    bar_density = bar_n_notes / bar_quarters  # (n_bars,)

    # Duration-weighted pitch-class histogram of non-drum notes per bar, (n_bars, 12).
    pitched = ~is_drum
    pc_hist = np.bincount(
        bar[pitched] * 12 + pitch[pitched] % 12,
        weights=np.maximum(duration[pitched], 1),
        minlength=n_bars * 12,
    ).reshape(n_bars, 12)
    padded = np.pad(pc_hist, ((1, 1), (0, 0)))  # (n_bars + 2, 12)
    window_hist = padded[:-2] + padded[1:-1] + padded[2:]  # bars b-1, b, b+1

    nonempty = bar_n_notes > 0
    ts_codes = bar_time_signature[:, 0].astype(np.int64) * 1024 + bar_time_signature[:, 1]
    song_ts = bar_time_signature[_heaviest_first_index(ts_codes, np.ones(n_bars))]
    return SongControls(
        bar_tempo=bar_tempo.astype(np.float32),
        bar_time_signature=bar_time_signature,
        bar_density=bar_density.astype(np.float32),
        bar_key=_keys_from_histograms(window_hist).astype(np.int8),
        bar_n_notes=bar_n_notes.astype(np.int32),
        tempo=60_000_000 / float(song_mspq),
        time_signature=(int(song_ts[0]), int(song_ts[1])),
        key=key_from_histogram(pc_hist.sum(axis=0)),
        density=float(bar_density[nonempty].mean()) if nonempty.any() else 0.0,
    )
