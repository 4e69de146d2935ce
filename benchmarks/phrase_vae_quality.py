"""PhraseVAE reconstruction and prior figures on held-out songs (EVALUATION.md definitions).

Evaluates one checkpoint on the test split of each prepared dataset given, and prints one
JSON object per dataset plus a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/phrase_vae_quality.py runs/phrase_vae_small/checkpoint \
        data/pop909 data/wjd_solos
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.phrase_vae import evaluate_phrase_vae
from musemorphic.training.phrase_vae import load_phrase_vae

COLUMNS = [
    ("token_accuracy", "token acc"),
    ("note_f1", "note F1"),
    ("exact_bar_rate", "exact bars"),
    ("prior_grammatical", "prior grammatical"),
    ("note_precision", "note P"),
    ("note_recall", "note R"),
    ("duration_match", "dur match"),
    ("velocity_match", "vel match"),
    ("empty_bar_exact_rate", "empty bars exact"),
    ("mean_kl", "mean KL"),
    ("active_dims", "active dims"),
    ("posterior_std_median", "posterior std"),
    ("mean_spread_median", "spread of means"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("datasets", type=Path, nargs="+")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-bars", type=int, default=None)
    parser.add_argument("--prior-samples", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_phrase_vae(args.checkpoint)
    results = {}
    for path in args.datasets:
        dataset = PhraseDataset(path, split=args.split)
        dataset.tokenizer = tokenizer  # base tokens are shared; encode with the model's BPE
        start = time.perf_counter()
        report = evaluate_phrase_vae(model, dataset, max_bars=args.max_bars, prior_samples=args.prior_samples)
        results[path.name] = {**report.to_dict(), "seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps({"machine": machine(), "checkpoint": str(args.checkpoint), "split": args.split, "results": results}, indent=1))
    print()
    print("| dataset | bars | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for name, r in results.items():
        cells = [f"{r[key]:.3f}" if isinstance(r[key], float) else str(r[key]) for key, _ in COLUMNS]
        print(f"| {name} | {r['bars']} | " + " | ".join(cells) + " |")
    first = next(iter(results.values()))  # the prior samples do not depend on the dataset
    faults = first["prior_faults"]
    print(f"\nOf {first['prior_samples']} bars decoded from z ~ N(0, I), ungrammatical: {sum(faults.values())}")
    for reason, count in faults.items():
        print(f"  {count:>5}  {reason}")


if __name__ == "__main__":
    main()
