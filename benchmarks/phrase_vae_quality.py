"""Bar codec reconstruction and prior figures on held-out songs.

Evaluates one checkpoint (grid or autoregressive) on the test split of each prepared dataset
given, or with --by-style on each style (corpus folder) inside it, and prints one JSON object
plus a Markdown table.

    OMP_NUM_THREADS=1 python benchmarks/phrase_vae_quality.py runs/grid_codec/checkpoint data/mix --by-style
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.phrase_vae import evaluate_codec
from musemorphic.training.grid_codec import load_codec

COLUMNS = [
    ("token_accuracy", "token acc"),
    ("note_f1", "note F1"),
    ("exact_bar_rate", "exact bars"),
    ("prior_grammatical", "prior grammatical"),
    ("note_precision", "note P"),
    ("note_recall", "note R"),
    ("duration_match", "dur match"),
    ("velocity_match", "vel match"),
    ("velocity_error", "vel error"),
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
    parser.add_argument("--split", default="test", help="train, valid, test, or all (every song: music the codec never saw)")
    parser.add_argument("--max-bars", type=int, default=None)
    parser.add_argument("--prior-samples", type=int, default=1000)
    parser.add_argument("--by-style", action="store_true", help="one row per style (corpus folder) of each dataset")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_codec(args.checkpoint)
    results = {}
    for path in args.datasets:
        dataset = PhraseDataset(path, split=None if args.split == "all" else args.split)
        dataset.tokenizer = tokenizer  # base tokens are shared; encode with the model's BPE
        parts = {path.name: dataset}
        if args.by_style:
            parts = {f"{path.name}/{style}": dataset.of_style(style) for style in sorted({s["style"] for s in dataset.songs})}
        for name, part in parts.items():
            start = time.perf_counter()
            report = evaluate_codec(model, part, max_bars=args.max_bars, prior_samples=args.prior_samples)
            results[name] = {**report.to_dict(), "songs": len(part.songs), "seconds": round(time.perf_counter() - start, 1)}
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
