"""Control accuracy: ask for a control, generate, re-extract it with the training extractor.

EVALUATION.md, "Control accuracy", as `evaluation/control_accuracy.py` defines it: every
value of each control, `--seeds` pieces of `--bars` bars each. With `--critic`, the same
sweep runs twice in one run, the prior alone and steered by the critic (`--candidates`
draws per slot), with the median milliseconds per generated bar of each. Prints
accuracies and confusion matrices as JSON.

    OMP_NUM_THREADS=1 python benchmarks/control_accuracy.py --codec runs/phrase_vae_small/checkpoint \
        --prior runs/latent_mamba_gmm/checkpoint --critic runs/phrase_critic/checkpoint --data data/pop909
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from common import machine, median
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.control_accuracy import control_accuracy
from musemorphic.generation.generate import MusicGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="dataset whose density thresholds define the levels")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--bars", type=int, default=8)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--critic", type=Path, help="also run steered by this PhraseCritic")
    parser.add_argument("--candidates", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    thresholds = PhraseDataset(args.data, split="test").density_thresholds
    runs = {"prior alone": None, **({"steered by the critic": args.critic} if args.critic else {})}
    results = {}
    for name, critic in runs.items():
        generator = MusicGenerator.load(args.codec, args.prior, critic, candidates=args.candidates)
        write = generator.write
        bar_ms = []

        def timed_write(request, path, **kwargs):  # milliseconds per bar of each piece
            start = time.perf_counter()
            summary = write(request, path, **kwargs)
            bar_ms.append(1000 * (time.perf_counter() - start) / max(1, summary["bars"]))
            return summary

        generator.write = timed_write
        results[name] = control_accuracy(generator, thresholds, args.seeds, args.bars, guidance=args.guidance)
        results[name]["median_ms_per_bar"] = round(median(bar_ms), 1)
    print(json.dumps({"machine": machine(), "seeds": args.seeds, "bars": args.bars, "guidance": args.guidance,
                      "candidates": args.candidates, "results": results}, indent=1))


if __name__ == "__main__":
    main()
