"""Control accuracy: ask for a control, generate, re-extract it with the training extractor.

EVALUATION.md, "Control accuracy": for every value of each control, `seeds` pieces of
`bars` bars are generated with only that control given; the control is re-extracted from
the written MIDI by the same code that labels training data (`data/controls.py`, song level,
after the tokenizer's quantization) and compared exactly; key also counts "correct or
relative major/minor", and the share of notes inside the requested key's scale.
Density levels use the dataset's thresholds.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import symusic

from musemorphic.data import controls as ctl
from musemorphic.data.midi_io import load_score
from musemorphic.generation.generate import MusicGenerator, Request

SWEPT_TIME_SIGNATURES = ("4/4", "3/4", "2/4", "6/8")


def extract(generator: MusicGenerator, score: symusic.Score, thresholds: tuple[float, float]) -> dict:
    """The control classes of a score read from MIDI, as the training data is labelled. A
    silent score keeps its tempo and meter events but has no key and the lowest density."""
    score = generator.tokenizer.preprocess(score)
    if score.note_num() == 0:
        ts = score.time_signatures[0] if len(score.time_signatures) else None
        return {
            "tempo": ctl.tempo_class(score.tempos[0].qpm if len(score.tempos) else 120.0),
            "key": -1,
            "time_signature": f"{ts.numerator}/{ts.denominator}" if ts is not None else "4/4",
            "density": ctl.density_level(0.0, thresholds),
        }
    song = generator.tokenizer.encode_song(score, preprocessed=True)
    found = ctl.extract_controls(score, song.bar_ticks)
    return {
        "tempo": ctl.tempo_class(found.tempo),
        "key": found.key,
        "time_signature": "/".join(map(str, found.time_signature)),
        "density": ctl.density_level(found.density, thresholds),
    }


def sweeps(generator: MusicGenerator) -> dict[str, list[tuple[str, object]]]:
    """Request text and expected class of every value of every control."""
    edges = (40, *ctl.TEMPO_CLASS_EDGES, 200)
    return {
        "tempo": [(str(round((edges[i] + edges[i + 1]) / 2)), i) for i in range(len(ctl.TEMPO_CLASS_NAMES))],
        "key": [(name, i) for i, name in enumerate(ctl.KEY_NAMES)],
        "time_signature": [(ts, ts) for ts in generator.prior.config.time_signatures if ts in SWEPT_TIME_SIGNATURES],
        "density": [(name, i) for i, name in enumerate(ctl.DENSITY_NAMES)],
    }


def in_scale_share(score: symusic.Score, key: int) -> float:
    """Share of the pitched notes of a score inside the scale of `key` (NaN without notes)."""
    pitches = np.array([n.pitch for t in score.tracks if not t.is_drum for n in t.notes], dtype=int)
    if len(pitches) == 0:
        return float("nan")
    return float(np.isin(pitches % 12, sorted(ctl.scale_pitch_classes(key))).mean())


def relative_key(key: int) -> int:
    """Relative minor of a major key and vice versa (C major <-> A minor)."""
    return (key + 9) % 12 + 12 if key < 12 else (key + 3) % 12


def control_accuracy(
    generator: MusicGenerator,
    thresholds: tuple[float, float],
    seeds: int = 8,
    bars: int = 8,
    first_seed: int = 0,
    temperature: float | None = None,  # None: the prior's own
    guidance: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict]:
    """Per control: accuracy, requests and confusion {expected: {got: count}}."""
    plan = sweeps(generator)
    total_requests = sum(len(values) for values in plan.values()) * seeds
    done = 0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "piece.mid"
        for control, values in plan.items():
            confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            hits = relative_hits = 0
            scale_shares = []
            for text, expected in values:
                for seed in range(first_seed, first_seed + seeds):
                    generator.write(Request(bars=bars, seed=seed, temperature=temperature, guidance=guidance, **{control: text}), path)
                    score = load_score(path, allow_silent=True)
                    if control == "key":  # before `extract`, which quantizes the score
                        scale_shares.append(in_scale_share(score, expected))
                    got = extract(generator, score, thresholds)[control]
                    confusion[str(expected)][str(got)] += 1
                    hits += got == expected
                    if control == "key":
                        relative_hits += got == expected or (got >= 0 and got == relative_key(expected))
                    done += 1
                    if progress is not None:
                        progress(done, total_requests)
            requests = len(values) * seeds
            results[control] = {
                "accuracy": hits / max(1, requests),
                "requests": requests,
                "confusion": {k: dict(v) for k, v in confusion.items()},
            }
            if control == "key":
                results[control]["accuracy_or_relative"] = relative_hits / max(1, requests)
                shares = [x for x in scale_shares if np.isfinite(x)]  # silent pieces have none
                results[control]["notes_in_requested_scale"] = float(np.mean(shares)) if shares else float("nan")
    return results
