"""Throughput of `musemorphic prepare` against plain miditok encoding of the same files.

Plain miditok = load each file with symusic and `tokenizer.encode` it with the same REMI+
configuration, in one process, keeping nothing. `prepare` does that plus bar splitting,
empty-slot padding, controls, duplicate detection, shards on disk, BPE training and the
dataset summary. The variants alternate within each repeat, so ratios are measured in
the same run.

    OMP_NUM_THREADS=1 python benchmarks/prepare_throughput.py ../shared/corpus/pop909 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import symusic
import torch

from common import machine, median
from musemorphic.data.midi_io import find_midi_files
from musemorphic.data.prepare import PrepareConfig, prepare
from musemorphic.data.tokenizer import PhraseTokenizer


def plain_miditok(paths: list[Path]) -> int:
    tok = PhraseTokenizer().remi
    notes = 0
    for path in paths:
        score = symusic.Score(str(path))
        tok.encode(score)
        notes += score.note_num()
    return notes


def run_prepare(corpus: Path, workers: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="mm-bench-"))
    try:
        prepare([corpus], out, PrepareConfig(workers=workers))
    finally:
        shutil.rmtree(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = [s.path for s in find_midi_files([args.corpus])]
    n_notes = sum(symusic.Score(str(p)).note_num() for p in paths)
    variants = {
        "plain miditok (1 process)": lambda: plain_miditok(paths),
        "prepare --workers 1": lambda: run_prepare(args.corpus, 1),
        "prepare --workers 2": lambda: run_prepare(args.corpus, 2),
    }
    plain_miditok(paths[:20])  # warm-up: imports, caches
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = median(times["plain miditok (1 process)"])
    rows = []
    for name, values in times.items():
        t = median(values)
        ratios = [times["plain miditok (1 process)"][i] / v for i, v in enumerate(values)]
        rows.append(
            {
                "variant": name,
                "median_s": round(t, 2),
                "files_per_s": round(len(paths) / t, 1),
                "notes_per_s": round(n_notes / t),
                "throughput_vs_plain_miditok": round(median(ratios), 2),
                "all_s": [round(v, 2) for v in values],
            }
        )
    print(json.dumps({"machine": machine(), "files": len(paths), "notes": n_notes, "plain_s": base, "rows": rows}, indent=1))
    print()
    print("| variant | median time (s) | files/s | notes/s | throughput vs plain miditok |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['median_s']} | {r['files_per_s']} | {r['notes_per_s']:,} | {r['throughput_vs_plain_miditok']}x |")


if __name__ == "__main__":
    main()
