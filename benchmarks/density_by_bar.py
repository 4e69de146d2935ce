"""Where does a long run thin out? Notes per bar and each track's sounding share by bar index.

`--pieces` unsteered pieces of `--bars` bars each (seeds 0.., no control requested, the
generator's defaults), pooled by bar-index range: is a long run sparser from its start, or
from the point where it outlives the windows the prior was trained on (192 slots, 64 bars of
3 tracks, for the shipped prior)?

    OMP_NUM_THREADS=1 python benchmarks/density_by_bar.py --codec src/musemorphic/pretrained/phrase_vae \
        --prior src/musemorphic/pretrained/latent_mamba --pieces 12 --bars 512
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import machine
from musemorphic.generation.generate import MusicGenerator, Request

RANGES = ((0, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, 1 << 30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--bars", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = MusicGenerator.load(args.codec, args.prior)
    tok = generator.tokenizer
    notes = []  # (pieces, bars, tracks) notes per phrase
    for seed in range(args.pieces):
        piece = [[sum(name.startswith("Pitch") for name in tok.token_names(p)) for p in bar.phrases]
                 for bar in generator.bars(Request(bars=args.bars, seed=seed))]
        notes.append(piece)
    counts = np.array(notes)  # (pieces, bars, tracks)
    rows = []
    for start, end in RANGES:
        part = counts[:, start : min(end, args.bars)]
        if part.shape[1] == 0:
            break
        rows.append({"bars": f"{start}-{min(end, args.bars)}", "notes_per_bar": round(float(part.sum(-1).mean()), 2),
                     "sounding_share_per_track": [round(float(x), 3) for x in (part > 0).mean(axis=(0, 1))]})
    print(json.dumps({"machine": machine(), "prior": str(args.prior), "pieces": args.pieces, "bars": args.bars,
                      "by_bar_index": rows}, indent=1))


if __name__ == "__main__":
    main()
