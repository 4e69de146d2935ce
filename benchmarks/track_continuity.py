"""Does each track carry on from bar to bar? Generated pieces against the real test songs.

Groove consistency (`evaluation/music_metrics.py`) compares the onset grids of consecutive
bars with every track merged, so it cannot say which track breaks the groove, or how. This
script measures each track on its own (by its index in the song; POP909 and the shipped
layout both have three tracks): the share of its bars that sound, how often it switches
between sounding and silent from one bar to the next, and the Hamming distance (share of
cells) between the onset grids of consecutive bars that both sound: its mean, quartiles and
share of exact repeats. Beside them, with every track merged, the share of 8-bar windows
whose groove consistency is 0.95 or more. The real songs are the `--split` of the dataset
(test by default; valid to choose settings by).

    cd benchmarks && OMP_NUM_THREADS=1 python track_continuity.py --data ../data/pop909 \
        --pieces shipped=../runs/bench_generation_report_final/pieces
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.generation_report import read_tracks
from musemorphic.evaluation.music_metrics import Bar, groove_consistency, onset_grid, song_bars, windows


def track_figures(tracks: list[list[Bar]]) -> dict[str, float]:
    """Sounding share, switch rate and Hamming distance of one track over songs (each a list of bars)."""
    sounding, switches, distances = [], [], []
    for bars in tracks:
        grids = [onset_grid(bar) for bar in bars]
        on = np.array([grid.any() for grid in grids])
        sounding.extend(on)
        switches.extend(on[1:] != on[:-1])
        distances.extend(np.mean(a != b) for a, b in zip(grids, grids[1:]) if a.any() and b.any() and len(a) == len(b))
    return {
        "sounding_share": round(float(np.mean(sounding)), 3),
        "switch_rate": round(float(np.mean(switches)), 3),
        "hamming_between_sounding_bars": round(float(np.mean(distances)), 3),
        "hamming_quartiles": [round(float(q), 3) for q in np.quantile(distances, [0.25, 0.5, 0.75])],
        "exact_repeats": round(float(np.mean(np.asarray(distances) == 0)), 3),
        "bars": len(sounding),
    }


def per_track(songs: list[list[tuple[int, list[list[int]]]]], tokenizer, n_tracks: int) -> dict:
    """Figures per track index over the songs with `n_tracks` tracks, and over all their tracks."""
    kept = [song for song in songs if len(song) == n_tracks]
    by_track = [[song_bars(tokenizer, [song[t]]) for song in kept] for t in range(n_tracks)]
    figures = {f"track {t}": track_figures(bars) for t, bars in enumerate(by_track)}
    figures["all tracks"] = track_figures([bars for track in by_track for bars in track])
    grooves = np.array([groove_consistency(w) for song in kept for w in windows(song_bars(tokenizer, song))])
    grooves = grooves[~np.isnan(grooves)]
    return {"songs": len(kept), "songs_left_out": len(songs) - len(kept), "figures": figures,
            "windows_groove_at_least_0.95": round(float(np.mean(grooves >= 0.95)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="prepared dataset; its --split is the real music")
    parser.add_argument("--split", choices=("test", "valid", "train"), default="test")
    parser.add_argument("--pieces", action="append", default=[], help="NAME=FOLDER of generated MIDI pieces (repeatable)")
    parser.add_argument("--tracks", type=int, default=3)
    args = parser.parse_args()
    test = PhraseDataset(args.data, split=args.split)
    real = [test.song_tracks(int(song)) for song in test.song_indices]
    results = {f"real {args.split} songs": per_track(real, test.tokenizer, args.tracks)}
    for named in args.pieces:
        name, folder = named.split("=", 1)
        pieces = [read_tracks(test.tokenizer, path) for path in sorted(Path(folder).glob("*.mid"))]
        results[name] = per_track(pieces, test.tokenizer, args.tracks)
    print(json.dumps({"machine": machine(), "data": str(args.data), "results": results}, indent=1))


if __name__ == "__main__":
    main()
