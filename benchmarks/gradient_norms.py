"""Gradient norms over a training run, from the `log.csv` that every `musemorphic train` writes.

The median of the logged gradient norm (before clipping) over each block of steps, one column
per run, to compare how training behaves: e.g. LatentMamba priors with and without a floor on
the mixture's scales (BENCHMARKS.md, "Scale floor").

    python benchmarks/gradient_norms.py runs/v3/latent_mamba_gmm/log.csv runs/v8/latent_mamba_gmm/log.csv --block 300
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np


def block_medians(log: Path, block: int) -> dict[str, float]:
    """{"first-last": median grad norm} over consecutive blocks of `block` steps."""
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = np.array([int(r["step"]) for r in rows])
    norms = np.array([float(r["grad_norm"]) for r in rows])
    out = {}
    for start in range(0, int(steps.max()) + 1, block):
        inside = (steps >= start) & (steps < start + block)
        if inside.any():
            out[f"{start}-{start + block - 1}"] = round(float(np.median(norms[inside])), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path, nargs="+")
    parser.add_argument("--block", type=int, default=300)
    args = parser.parse_args()
    print(json.dumps({str(log): block_medians(log, args.block) for log in args.logs}, indent=1))


if __name__ == "__main__":
    main()
