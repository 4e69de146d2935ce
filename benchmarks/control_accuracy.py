"""Control accuracy: ask for a control, generate, re-extract it with the training extractor.

EVALUATION.md, "Control accuracy", as `evaluation/control_accuracy.py` defines it: every
value of each control, `--seeds` pieces of `--bars` bars each. Prints accuracies and
confusion matrices as JSON.

    OMP_NUM_THREADS=1 python benchmarks/control_accuracy.py --codec runs/phrase_vae_small/checkpoint \
        --prior runs/latent_mamba_gmm/checkpoint --data data/pop909
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from common import machine
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = MusicGenerator.load(args.codec, args.prior)
    thresholds = PhraseDataset(args.data, split="test").density_thresholds
    results = control_accuracy(generator, thresholds, args.seeds, args.bars, guidance=args.guidance)
    print(json.dumps({"machine": machine(), "seeds": args.seeds, "bars": args.bars, "guidance": args.guidance, "results": results}, indent=1))


if __name__ == "__main__":
    main()
