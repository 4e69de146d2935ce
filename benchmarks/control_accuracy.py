"""Control accuracy: ask for a control, generate, re-extract it with the training extractor.

EVALUATION.md, "Control accuracy": for every value of each control, `--seeds` pieces of
`--bars` bars are generated with only that control given; the control is re-extracted from
the written MIDI by the same code that labels training data (`data/controls.py`, song level,
after the tokenizer's quantization) and compared exactly; key also counts "correct or
relative major/minor". Density levels use the dataset's thresholds. Prints accuracies and
confusion matrices as JSON.

    OMP_NUM_THREADS=1 python benchmarks/control_accuracy.py --codec runs/phrase_vae_small/checkpoint \
        --prior runs/latent_mamba_gmm/checkpoint --data data/pop909
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from common import machine
from musemorphic.data import controls as ctl
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.midi_io import load_score
from musemorphic.generation.generate import MusicGenerator, Request


def extract(generator: MusicGenerator, path: Path, thresholds) -> dict:
    score = generator.tokenizer.preprocess(load_score(path))
    song = generator.tokenizer.encode_song(score, preprocessed=True)
    found = ctl.extract_controls(score, song.bar_ticks)
    return {
        "tempo": ctl.tempo_class(found.tempo),
        "key": found.key,
        "time_signature": "/".join(map(str, found.time_signature)),
        "density": ctl.density_level(found.density, thresholds),
    }


def sweeps(generator: MusicGenerator) -> dict[str, list[tuple[str, object]]]:
    """Request text and expected class of every value of every control."""
    middle = {i: str(round((lo + hi) / 2)) for i, (lo, hi) in enumerate(zip((40, *ctl.TEMPO_CLASS_EDGES), (*ctl.TEMPO_CLASS_EDGES, 200)))}
    return {
        "tempo": [(middle[i], i) for i in range(len(ctl.TEMPO_CLASS_NAMES))],
        "key": [(name, i) for i, name in enumerate(ctl.KEY_NAMES)],
        "time_signature": [(ts, ts) for ts in generator.prior.config.time_signatures if ts in {"4/4", "3/4", "2/4", "6/8"}],
        "density": [(name, i) for i, name in enumerate(ctl.DENSITY_NAMES)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="dataset whose density thresholds define the levels")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--bars", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = MusicGenerator.load(args.codec, args.prior)
    thresholds = PhraseDataset(args.data, split="test").density_thresholds
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for control, values in sweeps(generator).items():
            confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            hits = relative_hits = total = 0
            for text, expected in values:
                for seed in range(args.seeds):
                    path = Path(tmp) / "piece.mid"
                    generator.write(Request(bars=args.bars, seed=seed, **{control: text}), path)
                    got = extract(generator, path, thresholds)[control]
                    confusion[str(expected)][str(got)] += 1
                    hits += got == expected
                    if control == "key":
                        relative_hits += got == expected or (got >= 0 and got == _relative(expected))
                    total += 1
            results[control] = {"accuracy": round(hits / total, 3), "requests": total, "confusion": confusion}
            if control == "key":
                results[control]["accuracy_or_relative"] = round(relative_hits / total, 3)
    print(json.dumps({"machine": machine(), "seeds": args.seeds, "bars": args.bars, "results": results}, indent=1))


def _relative(key: int) -> int:
    """Relative minor of a major key and vice versa (C major <-> A minor)."""
    return (key + 9) % 12 + 12 if key < 12 else (key + 3) % 12


if __name__ == "__main__":
    main()
