"""Where a window metric's values lie: quantiles for the real test songs and generated pieces.

The overlap of two distributions says how far apart they are, not how; this prints each
set's mean, share of windows at the metric's top value (1 for scale consistency) and
quantiles, for 8-bar windows measured as `eval generate` measures them (but for the silent
bars at the end of a piece, which a MIDI file does not hold and the report restores).

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
from musemorphic.evaluation.music_metrics import METRICS, song_bars

QUANTILES = (0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9)


def summary(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    return {
        "windows": len(finite),
        "mean": round(float(finite.mean()), 4),
        "share_at_max_1": round(float(np.mean(finite >= 1 - 1e-9)), 3),
        "quantiles": {str(q): round(float(v), 4) for q, v in zip(QUANTILES, np.quantile(finite, QUANTILES))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared dataset; its test split is the real music")
    parser.add_argument("--metric", choices=METRICS, default="scale_consistency")
    parser.add_argument("--pieces", action="append", default=[], help="NAME=FOLDER of generated MIDI pieces (repeatable)")
    parser.add_argument("--window-bars", type=int, default=8)
    args = parser.parse_args()
    test = PhraseDataset(args.data, split="test")
    real = to_windows(dataset_songs(test, test.song_indices), args.window_bars)
    results = {"real test songs": summary(metric_values(real)[args.metric])}
    for named in args.pieces:
        name, folder = named.split("=", 1)
        songs = [song_bars(test.tokenizer, read_tracks(test.tokenizer, path)) for path in sorted(Path(folder).glob("*.mid"))]
        results[name] = summary(metric_values(to_windows(songs, args.window_bars))[args.metric])
    print(json.dumps({"machine": machine(), "metric": args.metric, "results": results}, indent=1))


if __name__ == "__main__":
    main()
