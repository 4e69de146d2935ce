"""Phrase FID of LatentMamba priors: a sampled mixture head against an MSE head.

EVALUATION.md, "Phrase FID": generate pieces with each prior, decode every bar with the
PhraseVAE, re-encode the decoded non-empty phrases to their posterior means, and compare
them with the means of held-out (test split) non-empty real phrases: Frechet distance
between fitted Gaussians, same count on both sides. As a reference, the same distance
between train-split and test-split real phrases (the best a prior can hope for).

    OMP_NUM_THREADS=1 python benchmarks/latent_prior_quality.py --codec runs/phrase_vae_small/checkpoint \
        --data data/pop909 --prior gmm=runs/latent_mamba_gmm/checkpoint --prior mse=runs/latent_mamba_mse/checkpoint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from common import machine
from musemorphic.evaluation.phrase_fid import nonempty_phrase_means, phrase_fid, real_phrase_means
from musemorphic.generation.generate import MusicGenerator, Request


def generated_phrases(generator: MusicGenerator, pieces: int, bars: int, temperature: float) -> tuple[list, list]:
    """Every decoded track bar of `pieces` generated pieces, with its program."""
    phrases, programs = [], []
    for seed in range(pieces):
        for bar in generator.bars(Request(bars=bars, seed=seed, temperature=temperature)):
            phrases.extend(bar.phrases)
            programs.extend(generator.default_programs)
    return phrases, programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--prior", action="append", required=True, help="NAME=CHECKPOINT, repeatable")
    parser.add_argument("--pieces", type=int, default=48)
    parser.add_argument("--bars", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {}
    for spec in args.prior:
        name, path = spec.split("=", 1)
        generator = MusicGenerator.load(args.codec, path)
        codec, tok = generator.codec, generator.tokenizer
        if not results:
            test = real_phrase_means(codec, tok, args.data, "test")
            train = real_phrase_means(codec, tok, args.data, "train")
        fake, empty = nonempty_phrase_means(codec, tok, *generated_phrases(generator, args.pieces, args.bars, args.temperature))
        fid, n = phrase_fid(fake, test)
        results[name] = {"phrase_fid": round(fid, 3), "bars_compared": n, "empty_phrase_share": round(empty / (empty + len(fake)), 3)}
    fid, n = phrase_fid(train, test)
    results["real train vs real test"] = {"phrase_fid": round(fid, 3), "bars_compared": n}
    print(json.dumps({"machine": machine(), "pieces": args.pieces, "bars": args.bars, "results": results}, indent=1))


if __name__ == "__main__":
    main()
