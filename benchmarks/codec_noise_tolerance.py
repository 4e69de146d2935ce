"""How far from a bar's code can a PhraseVAE's decoder still write that bar? Latents with noise.

`--bars` random non-empty test-split bars of a dataset are encoded to their posterior means;
each codec then decodes (greedily) mu + sigma * noise for every `--sigma`, the same noise draws
for every codec. Per sigma: the share of grammatical decodings (`phrase_fault`), note F1 on
(onset, pitch) against the original bar (an ungrammatical decoding writes no notes, as the
generator leaves it silent), and the share of written notes whose pitch class the original bar
holds. A prior's draws miss the code by about the RMS error of its prediction;
a decoder is useful to it only as far as these figures hold up at that distance.

    OMP_NUM_THREADS=1 python benchmarks/codec_noise_tolerance.py --data data/pop909 \
        --codec shipped=src/musemorphic/pretrained/phrase_vae --codec other=runs/x/checkpoint
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher, codec_ids_to_base
from musemorphic.data.remi_grammar import note_f1, precision_recall_f1
from musemorphic.evaluation.phrase_vae import phrase_fault, phrase_notes
from musemorphic.training.phrase_vae import load_phrase_vae


@torch.no_grad()
def tolerance(checkpoint: str, data: str, n_bars: int, sigmas: list[float], seed: int) -> dict:
    model, tokenizer = load_phrase_vae(checkpoint)
    dataset = PhraseDataset(data, split="test")
    dataset.tokenizer = tokenizer  # base tokens are shared; encode with the model's BPE
    batcher = PhraseBatcher(dataset, model.config.max_len, nonempty_only=True)
    positions = np.random.default_rng(seed).choice(batcher.indices, min(n_bars, len(batcher.indices)), replace=False)
    ids = batcher.encode(positions)  # (N, T)
    mu, _ = model.encode(ids)  # (N, Z)
    originals = [phrase_notes(tokenizer, codec_ids_to_base(tokenizer, row[: row.index(tokenizer.eos_id)])) for row in ids.tolist()]
    noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))  # (N, Z), the same for every codec
    rows = {}
    for sigma in sigmas:
        decoded = model.generate(mu + sigma * noise)
        grammatical = matched = n_ref = n_pred = in_key = 0
        for original, out in zip(originals, decoded, strict=True):
            if phrase_fault(tokenizer, out) is not None:  # writes nothing: every original note is missed
                n_ref += len(original)
                continue
            grammatical += 1
            notes = phrase_notes(tokenizer, codec_ids_to_base(tokenizer, out))
            m, r, p = note_f1(original, notes)
            matched, n_ref, n_pred = matched + m, n_ref + r, n_pred + p
            classes = {n.pitch % 12 for n in original}
            in_key += sum(n.pitch % 12 in classes for n in notes)
        rows[str(sigma)] = {
            "grammatical": round(grammatical / len(decoded), 3),
            "note_f1": round(precision_recall_f1(matched, n_ref, n_pred)[2], 3),
            "pitch_classes_kept": round(in_key / max(n_pred, 1), 3),
        }
    return {"bars": len(positions), "by_sigma": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="prepared dataset; its test split gives the bars")
    parser.add_argument("--codec", action="append", required=True, help="NAME=CHECKPOINT (repeatable)")
    parser.add_argument("--bars", type=int, default=512)
    parser.add_argument("--sigma", type=float, action="append", help="noise std (repeatable; default 0, 0.1, 0.3, 0.6, 1.0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sigmas = args.sigma or [0.0, 0.1, 0.3, 0.6, 1.0]
    results = {}
    for spec in args.codec:
        name, _, path = spec.partition("=")
        results[name] = tolerance(path, args.data, args.bars, sigmas, args.seed)
    print(json.dumps({"machine": machine(), "data": args.data, "results": results}, indent=1))
    print("\n| codec | sigma | grammatical | note F1 | pitch classes kept |\n|---|---|---|---|---|")
    for name, result in results.items():
        for sigma, row in result["by_sigma"].items():
            print(f"| {name} | {sigma} | {row['grammatical']:.3f} | {row['note_f1']:.3f} | {row['pitch_classes_kept']:.3f} |")


if __name__ == "__main__":
    main()
