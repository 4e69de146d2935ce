"""What the codec alone keeps of real music: the generation report's metrics after a round trip.

Every bar of every track of the test songs is encoded to its posterior mean and greedily
decoded (an ungrammatical decoding is left silent, as the generator does); the songs rebuilt
from the decoded bars are measured in the same 8-bar windows as the originals, and each
metric's distribution is compared with the originals' (overlapping area and KL, as in
`eval generate`, same number of windows on both sides). A prior whose latents were perfect
could reach these figures through this codec, and no further.

    OMP_NUM_THREADS=1 python benchmarks/codec_roundtrip_metrics.py --codec src/musemorphic/pretrained/phrase_vae \
        --data data/pop909
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.distributions import compare
from musemorphic.evaluation.generation_report import metric_values, to_windows
from musemorphic.evaluation.music_metrics import METRICS, song_bars
from musemorphic.generation.phrase_codec import decode_bars, encode_bars
from musemorphic.training.grid_codec import load_codec


def round_trip(
    codec, tokenizer, tracks: list[tuple[int, list[list[int]]]], temperature: float = 0.0, top_p: float = 1.0,
    salvage: bool = False,
) -> list[tuple[int, list[list[int]]]]:
    """(program, base-id bars) per track -> the same with every bar encoded and decoded
    (an ungrammatical decoding becomes a bar without tokens, which `song_bars` reads as silent;
    with `salvage`, it keeps its notes before the fault, as the generator's bars do)."""
    bars = [bar for _, track_bars in tracks for bar in track_bars]
    programs = [program for program, track_bars in tracks for _ in track_bars]
    decoded = iter(decode_bars(codec, tokenizer, encode_bars(codec, tokenizer, bars, programs), temperature=temperature, top_p=top_p, salvage=salvage))
    return [(program, [next(decoded) or [] for _ in track_bars]) for program, track_bars in tracks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--decode-temperature", type=float, default=0.0, help="0: greedy decoding")
    parser.add_argument("--decode-top-p", type=float, default=1.0, help="the nucleus sampled decoding draws from")
    parser.add_argument("--seed", type=int, default=0, help="for sampled decoding")
    parser.add_argument("--salvage", action="store_true", help="a broken bar keeps its notes before the fault (as generated bars do)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    codec, tokenizer = load_codec(args.codec)
    test = PhraseDataset(args.data, split="test")
    originals, rebuilt = [], []
    for song in test.song_indices:
        tracks = [(p, [[int(t) for t in bar] for bar in bars]) for p, bars in test.song_tracks(int(song))]
        originals.append(song_bars(tokenizer, tracks))
        rebuilt.append(song_bars(tokenizer, round_trip(codec, tokenizer, tracks, args.decode_temperature, args.decode_top_p, args.salvage)))
    windows = to_windows(originals, 8)
    real, decoded = metric_values(windows), metric_values(to_windows(rebuilt, 8))
    rows = {}
    for metric in METRICS:
        c = compare(real[metric], decoded[metric])
        rows[metric] = {"real_mean": float(real[metric].mean()), "round_trip_mean": float(decoded[metric].mean()),
                        "overlap": round(c.overlap, 3), "kl": round(c.kl, 3)}
    print(json.dumps({"machine": machine(), "codec": str(args.codec), "decode_temperature": args.decode_temperature,
                      "decode_top_p": args.decode_top_p, "salvage": args.salvage, "songs": len(originals),
                      "windows": len(windows), "metrics": rows}, indent=1))


if __name__ == "__main__":
    main()
