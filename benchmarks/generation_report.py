"""Generated music vs real music: `musemorphic eval generate` as a benchmark.

Runs `evaluation/generation_report.py` (metrics with overlap and KL against held-out songs,
ceiling, floors, phrase FID, control table) and prints the report's JSON with the machine.
`--silence-temperature` is an experiment the library has no setting for: a silence head's
draw at its own temperature while the mixture keeps the prior's (session 13, BENCHMARKS.md).

    OMP_NUM_THREADS=1 python benchmarks/generation_report.py --data data/pop909 \
        --codec src/musemorphic/pretrained/phrase_vae --prior src/musemorphic/pretrained/latent_mamba \
        --control-seeds 8 -o runs/bench_generation_report
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from common import machine
from musemorphic.evaluation.generation_report import REFERENCE_SPLITS, GenerationEvalConfig, evaluate_generation
from musemorphic.generation.generate import (
    DECODE_SAMPLED, DECODE_SAMPLED_CHOICES, DECODE_TEMPERATURE, DECODE_TOP_P, GROOVE_DISTANCE, GROOVE_DRAWS, SCALE_LOCK, SCALE_LOCK_MEMORY,
    SCALE_LOCK_WELCOME, MusicGenerator,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--critic", type=Path, help="PhraseCritic that steers the control table's density and key requests")
    parser.add_argument("-o", "--out", type=Path, required=True, help="report folder")
    parser.add_argument("--pieces", type=int, default=48)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--control-seeds", type=int, default=8, help="pieces per control value (0: no control table)")
    parser.add_argument("--temperature", type=float, default=None, help="the prior's sampling temperature (default: the one it records)")
    parser.add_argument("--no-salvage", action="store_true", help="leave ungrammatical bars silent instead of keeping their complete notes before the first fault")
    parser.add_argument("--scale-lock", type=float, default=SCALE_LOCK, help="the generator's scale lock (nats per note outside the scale)")
    parser.add_argument("--scale-lock-memory", type=int, default=SCALE_LOCK_MEMORY,
                        help="bars a pitch class outside the scale, once sounded, is let through the scale lock")
    parser.add_argument("--scale-lock-welcome", type=float, default=SCALE_LOCK_WELCOME,
                        help="nats the scale lock adds per note of a chromatic pitch class its memory holds")
    parser.add_argument("--decode-temperature", type=float, default=DECODE_TEMPERATURE, help="the codec's sampling temperature (0: greedy decoding)")
    parser.add_argument("--decode-top-p", type=float, default=DECODE_TOP_P, help="the nucleus sampled decoding draws from")
    parser.add_argument("--decode-sampled", choices=DECODE_SAMPLED_CHOICES, default=DECODE_SAMPLED, help="which tokens sampled decoding draws")
    parser.add_argument("--groove-draws", type=int, default=GROOVE_DRAWS, help="prior draws per slot groove steering chooses from (1: off)")
    parser.add_argument("--groove-distance", type=float, default=GROOVE_DISTANCE,
                        help="share of onset-grid cells groove steering aims at changing from a track's previous bar")
    parser.add_argument("--silence-temperature", type=float, help="draw a silence head's slots at this temperature (0: the likelier)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first piece and of the sampled sets")
    parser.add_argument("--reference", choices=REFERENCE_SPLITS, default="test",
                        help="the held-out split to measure against: test to report, valid to choose settings by")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = MusicGenerator.load(args.codec, args.prior, args.critic, scale_lock=args.scale_lock, salvage=not args.no_salvage,
                                    decode_temperature=args.decode_temperature, decode_top_p=args.decode_top_p,
                                    decode_sampled=args.decode_sampled, groove_draws=args.groove_draws,
                                    groove_distance=args.groove_distance, scale_lock_memory=args.scale_lock_memory,
                                    scale_lock_welcome=args.scale_lock_welcome)
    if args.silence_temperature is not None:
        draw_silence, silence_temperature = generator.prior.silent, args.silence_temperature
        generator.prior.silent = lambda prediction, temperature, gen=None: draw_silence(
            prediction, silence_temperature if temperature > 0 else temperature, gen
        )
    config = GenerationEvalConfig(pieces=args.pieces, bars=args.bars, control_seeds=args.control_seeds, temperature=args.temperature,
                                  seed=args.seed, reference=args.reference)
    report = evaluate_generation(generator, args.data, args.out, config)
    print(json.dumps({"machine": machine(), "codec": str(args.codec), "prior": str(args.prior), "critic": str(args.critic),
                      "silence_temperature": args.silence_temperature, "report": report}, indent=1))


if __name__ == "__main__":
    main()
