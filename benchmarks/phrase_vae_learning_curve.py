"""A bar codec run's learning curve: codec figures of its snapshots on the same held-out bars.

Takes the checkpoints a run kept (`train phrase-vae --keep-every N` writes them to
OUT/snapshots/), evaluates each on the same random test-split bars (EVALUATION.md's
definitions, `evaluation/phrase_vae.py`), and prints one JSON object and a Markdown table:
step, training minutes, teacher-forced token accuracy (autoregressive codecs), note F1, exact
bars, duration match, mean KL and the share of grammatical bars decoded from z ~ N(0, I). With
--by-style, the note F1 of each style (corpus folder) of the split too.

    OMP_NUM_THREADS=1 python benchmarks/phrase_vae_learning_curve.py --data data/pop909 \
        runs/phrase_vae/snapshots/* runs/phrase_vae/checkpoint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.phrase_vae import evaluate_codec
from musemorphic.training.checkpoint import load_checkpoint
from musemorphic.models.grid_codec import GridCodec
from musemorphic.training.grid_codec import load_codec

FIGURES = ["token_accuracy", "note_f1", "exact_bar_rate", "duration_match", "mean_kl", "prior_grammatical"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-bars", type=int, default=2048, help="bars drawn (seeded) from the split, empty ones included")
    parser.add_argument("--prior-samples", type=int, default=256)
    parser.add_argument("--by-style", action="store_true", help="also the note F1 of each style of the split")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = PhraseDataset(args.data, split=args.split)
    rows, seen = [], set()
    for path in args.checkpoints:
        if ".tmp-" in path.name or path.name.endswith(".old"):  # left by an interrupted save
            continue
        checkpoint = load_checkpoint(path)
        if checkpoint.step in seen:  # the last snapshot and the final checkpoint
            continue
        seen.add(checkpoint.step)
        model, tokenizer = load_codec(path)
        same = tokenizer.base_vocab == dataset.tokenizer.base_vocab if isinstance(model, GridCodec) else tokenizer.to_json() == dataset.tokenizer.to_json()
        if not same:
            raise SystemExit(f"{path}: its tokenizer differs from {args.data}'s")
        report = evaluate_codec(model, dataset, max_bars=args.max_bars, prior_samples=args.prior_samples)
        styles = {}
        if args.by_style:
            for style in sorted({s["style"] for s in dataset.songs}):
                styles[style] = evaluate_codec(model, dataset.of_style(style), max_bars=args.max_bars, prior_samples=0).note_f1
        elapsed = (checkpoint.extra_state or {}).get("elapsed_s")
        rows.append({"checkpoint": str(path), "step": checkpoint.step,
                     "minutes": None if elapsed is None else round(elapsed / 60, 1),
                     "bars": report.bars, **{k: getattr(report, k) for k in FIGURES}, "note_f1_by_style": styles})
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda row: row["step"])
    print(json.dumps({"machine": machine(), "data": str(args.data), "split": args.split, "max_bars": args.max_bars, "rows": rows}))
    styles = sorted({style for row in rows for style in row["note_f1_by_style"]})
    print("\n| step | minutes | token acc | note F1 | exact bars | duration match | mean KL | prior grammatical |"
          + "".join(f" F1 {style} |" for style in styles))
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(styles))
    for row in rows:
        cells = ["" if row[k] is None else f"{row[k]:.1f}" if k == "mean_kl" else f"{row[k]:.3f}" for k in FIGURES]
        cells += [f"{row['note_f1_by_style'].get(style, float('nan')):.3f}" for style in styles]
        print(f"| {row['step']} | {row['minutes'] or ''} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
