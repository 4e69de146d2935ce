"""What the scale lock costs per bar: the generator's defaults against the same generator with the
lock off, alternated in one process, for the model's default track layout and one piano track.

Each repeat generates `--bars` bars of one seeded piece with each setting in turn (the order
alternates between repeats); the figures are medians over the repeats of wall ms per bar, and
the ratio is of those medians. With a critic, both settings steer, so both decode bar by bar:
the difference is the lock's own work (its bias at every decoding step, and hearing each written
bar) and the different notes it makes the decoder write. Without one, both decode many bars per
batch, and the lock's memory adds the decodings again of a chunk's rest from each bar that
changes what it remembers.

    cd benchmarks && OMP_NUM_THREADS=1 python scale_lock_cost.py --codec ../src/musemorphic/pretrained/phrase_vae \
        --prior ../src/musemorphic/pretrained/latent_mamba [--critic ../src/musemorphic/pretrained/phrase_critic]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from common import machine
from musemorphic.generation.generate import MusicGenerator, Request
from musemorphic.generation.written_notes import written_notes

SETTINGS = {"default lock": None, "lock off": {"scale_lock": 0.0, "scale_lock_welcome": 0.0}}


def ms_per_bar(generator: MusicGenerator, request: Request, settings: dict | None) -> tuple[float, float]:
    """Wall ms per bar of one piece with `settings` (attributes of the generator; None: as
    loaded), and the notes per bar it writes."""
    saved = {name: getattr(generator, name) for name in (settings or {})}
    for name, value in (settings or {}).items():
        setattr(generator, name, value)
    try:
        start = time.perf_counter()
        bars = list(generator.bars(request))
        elapsed = time.perf_counter() - start
    finally:
        for name, value in saved.items():
            setattr(generator, name, value)
    notes = sum(len(written_notes(generator.tokenizer, phrase)) for bar in bars for phrase in bar.phrases)
    return 1000 * elapsed / len(bars), notes / len(bars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--critic", type=Path, help="PhraseCritic that steers, as generate's default")
    parser.add_argument("--bars", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = MusicGenerator.load(args.codec, args.prior, args.critic)
    results = {}
    for layout, programs in (("default tracks", None), ("one piano track", [0])):
        request = Request(bars=args.bars, seed=args.seed, programs=programs)
        times, notes = {name: [] for name in SETTINGS}, {}
        for repeat in range(args.repeats):
            order = list(SETTINGS) if repeat % 2 == 0 else list(reversed(SETTINGS))
            for name in order:
                ms, notes[name] = ms_per_bar(generator, request, SETTINGS[name])  # the same notes every repeat: one seed
                times[name].append(ms)
        medians = {name: round(statistics.median(values), 2) for name, values in times.items()}
        results[layout] = {"ms_per_bar_median": medians, "ratio_default_to_off": round(medians["default lock"] / medians["lock off"], 3),
                           "notes_per_bar": {name: round(n, 2) for name, n in notes.items()}}
    print(json.dumps({"machine": machine(), "bars": args.bars, "repeats": args.repeats, "critic": str(args.critic),
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
