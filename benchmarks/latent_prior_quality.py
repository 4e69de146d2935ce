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

import numpy as np
import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import codec_batch
from musemorphic.evaluation.frechet import frechet_distance
from musemorphic.generation.generate import MusicGenerator, Request
from musemorphic.training.latents import encode_phrases


def real_means(codec, data: Path, split: str, limit: int = 12_000) -> np.ndarray:
    """Posterior means of (a seeded sample of at most `limit`) non-empty phrases of a split."""
    dataset = PhraseDataset(data, split=split)
    nonempty = np.flatnonzero(dataset.shard.columns["phrase_n_notes"][dataset.phrase_indices] > 0)
    if len(nonempty) > limit:
        nonempty = np.sort(np.random.default_rng(0).choice(nonempty, limit, replace=False))
    dataset.phrase_indices = dataset.phrase_indices[nonempty]
    return encode_phrases(codec, dataset)


@torch.no_grad()
def generated_means(generator: MusicGenerator, pieces: int, bars: int, temperature: float) -> tuple[np.ndarray, float]:
    """Posterior means of the non-empty decoded phrases of generated pieces, and the empty share."""
    tok = generator.tokenizer
    pitched = {i for t, i in tok.base_vocab.items() if t.startswith(("Pitch_", "PitchDrum_"))}
    phrases, programs, empty = [], [], 0
    for seed in range(pieces):
        request = Request(bars=bars, seed=seed, temperature=temperature)
        layout = generator.default_programs
        for bar in generator.bars(request):
            for program, phrase in zip(layout, bar.phrases, strict=True):
                if pitched.intersection(phrase):
                    phrases.append(phrase)
                    programs.append(program)
                else:
                    empty += 1
    means = []
    for start in range(0, len(phrases), 256):
        ids = codec_batch(tok, phrases[start : start + 256], programs[start : start + 256])
        mu, _ = generator.codec.encode(ids[:, : generator.codec.config.max_len])
        means.append(mu.float().numpy())
    return np.concatenate(means), empty / max(1, empty + len(phrases))


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
    rng = np.random.default_rng(0)
    results = {}
    test = None
    for spec in args.prior:
        name, path = spec.split("=", 1)
        generator = MusicGenerator.load(args.codec, path)
        if test is None:
            test = real_means(generator.codec, args.data, "test")
            train = real_means(generator.codec, args.data, "train")
        fake, empty_share = generated_means(generator, args.pieces, args.bars, args.temperature)
        n = min(len(fake), len(test))
        results[name] = {
            "phrase_fid": round(frechet_distance(fake[rng.permutation(len(fake))[:n]], test[rng.permutation(len(test))[:n]]), 3),
            "bars_compared": n,
            "empty_phrase_share": round(empty_share, 3),
        }
    n = min(len(train), len(test))
    real_fid = frechet_distance(train[rng.permutation(len(train))[:n]], test[rng.permutation(len(test))[:n]])
    results["real train vs real test"] = {"phrase_fid": round(real_fid, 3), "bars_compared": n}
    print(json.dumps({"machine": machine(), "pieces": args.pieces, "bars": args.bars, "results": results}, indent=1))


if __name__ == "__main__":
    main()
