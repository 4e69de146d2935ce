"""How often generation leaves a track silent, and why: broken bars against empty ones.

For each track of the layout, with broken bars left silent and then salvaged: the share of
generated bars left silent as invalid (ungrammatical with nothing to salvage, or notes of the
wrong kind for the track), and the share written without a note (decoded empty: the prior drew
a silent bar; once salvaged, also broken bars with no note before their first fault).

    cd benchmarks && OMP_NUM_THREADS=1 python broken_bars.py --codec ../src/musemorphic/pretrained/phrase_vae \
        --prior ../src/musemorphic/pretrained/latent_mamba --pieces 20 --bars 32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import machine
from musemorphic.generation.generate import MusicGenerator, Request


def track_shares(generator: MusicGenerator, pieces: int, bars: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Per track: bars left silent as invalid, and bars written without a note; and the bar count."""
    n_tracks = len(generator.default_programs)
    invalid, empty, total = np.zeros(n_tracks), np.zeros(n_tracks), 0
    for seed in range(pieces):
        for bar in generator.bars(Request(bars=bars, seed=seed)):
            total += 1
            for track, phrase in enumerate(bar.phrases):
                if track in bar.invalid_tracks:
                    invalid[track] += 1
                elif not any(name.startswith(("Pitch_", "PitchDrum_")) for name in generator.tokenizer.token_names(phrase)):
                    empty[track] += 1
    return invalid / total, empty / total, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--pieces", type=int, default=20)
    parser.add_argument("--bars", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for salvage in (False, True):
        generator = MusicGenerator.load(args.codec, args.prior, salvage=salvage)
        invalid, empty, total = track_shares(generator, args.pieces, args.bars)
        results["salvaged" if salvage else "left silent"] = {
            "bars": total, "invalid_share": invalid.round(4).tolist(), "written_empty_share": empty.round(4).tolist()
        }
    print(json.dumps({"machine": machine(), "codec": str(args.codec), "prior": str(args.prior), "results": results}, indent=1))


if __name__ == "__main__":
    main()
