"""Where a window metric's values lie: quantiles for the real test songs and generated pieces.

The overlap of two distributions says how far apart they are, not how; this prints each
set's mean, share of windows at the metric's top value (1 for scale consistency) and
quantiles, for 8-bar windows measured as `eval generate` measures them (but for the silent
bars at the end of a piece, which a MIDI file does not hold and the report restores).
Every set also gets its chromatic profile: the share of windows with 0, 1, 2, 3 and 4 or
more pitch classes outside the window's best scale (the one scale consistency counts in), and
the share of those outside notes that are strays, the only note of their pitch class in the
window.

    cd benchmarks && OMP_NUM_THREADS=1 python metric_quantiles.py --data ../data/pop909 \
        --metric scale_consistency --pieces locked=../runs/s11/rep_dn06_l05/pieces
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.generation_report import dataset_songs, metric_values, read_tracks, to_windows
from musemorphic.evaluation.music_metrics import METRICS, best_scale, song_bars, window_notes

QUANTILES = (0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9)


def summary(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    return {
        "windows": len(finite),
        "mean": round(float(finite.mean()), 4),
        "share_at_max_1": round(float(np.mean(finite >= 1 - 1e-9)), 3),
        "quantiles": {str(q): round(float(v), 4) for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES))},
    }


def chromatic_profile(windows: list) -> dict:
    """Shares of windows by how many pitch classes lie outside their best scale (4: 4 or
    more), and the share of outside notes that are their pitch class's only note in the window."""
    classes, outside_notes, strays = [], 0, 0
    for window in windows:
        notes = window_notes(window)
        counts = np.bincount(notes[notes[:, 3] == 0, 2] % 12, minlength=12)  # (12,) pitched notes per class
        if counts.sum() == 0:
            continue
        outside = np.delete(counts, best_scale(counts))  # (5,)
        classes.append(min(4, int((outside > 0).sum())))
        outside_notes, strays = outside_notes + int(outside.sum()), strays + int((outside == 1).sum())
    shares = np.bincount(classes, minlength=5) / max(1, len(classes))
    return {"outside_classes_0_1_2_3_4+": [round(float(x), 3) for x in shares], "stray_share": round(strays / max(1, outside_notes), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared dataset; its --split is the real music")
    parser.add_argument("--metric", choices=METRICS, default="scale_consistency")
    parser.add_argument("--pieces", action="append", default=[], help="NAME=FOLDER of generated MIDI pieces (repeatable)")
    parser.add_argument("--window-bars", type=int, default=8)
    parser.add_argument("--split", choices=("test", "valid"), default="test", help="the held-out real songs")
    args = parser.parse_args()
    held_out = PhraseDataset(args.data, split=args.split)
    sets = {f"real {args.split} songs": to_windows(dataset_songs(held_out, held_out.song_indices), args.window_bars)}
    for named in args.pieces:
        name, folder = named.split("=", 1)
        songs = [song_bars(held_out.tokenizer, read_tracks(held_out.tokenizer, path)) for path in sorted(Path(folder).glob("*.mid"))]
        sets[name] = to_windows(songs, args.window_bars)
    results = {name: {**summary(metric_values(w)[args.metric]), **chromatic_profile(w)} for name, w in sets.items()}
    print(json.dumps({"machine": machine(), "metric": args.metric, "results": results}, indent=1))


if __name__ == "__main__":
    main()
