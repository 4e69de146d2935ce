"""Mamba scan paths on this machine: chunked parallel scan vs the sequential loop.

Forward + backward of `selective_scan` (chunk sizes 8, 16, 64) and
`selective_scan_reference` on the shapes LatentMamba trains with here; median of
`--repeats` runs after a warm-up, variants alternating. This is what `scan="auto"` rests on.

    OMP_NUM_THREADS=1 python benchmarks/mamba_scan.py
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import machine, median
from musemorphic.nn.mamba import selective_scan, selective_scan_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--inner", type=int, default=256, help="E = expand * d_model")
    parser.add_argument("--state", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = (args.batch, args.length, args.inner, args.state)
    dA, dBx = torch.rand(shape) * 0.5 + 0.5, torch.randn(shape)
    C = torch.randn(args.batch, args.length, args.state)
    variants = {
        "sequential": lambda a, b, c: selective_scan_reference(a, b, c),
        **{f"parallel, chunk {k}": (lambda a, b, c, k=k: selective_scan(a, b, c, chunk_size=k)) for k in (8, 16, 64)},
    }
    times = {name: [] for name in variants}
    for repeat in range(args.repeats + 1):
        for name, scan in variants.items():
            a, b, c = (t.clone().requires_grad_() for t in (dA, dBx, C))
            start = time.perf_counter()
            y, _ = scan(a, b, c)
            y.sum().backward()
            if repeat:  # the first round is the warm-up
                times[name].append(time.perf_counter() - start)
    base = times["sequential"]
    rows = {
        name: {"median_ms": round(1000 * median(t), 1), "vs_sequential": round(median([x / y for x, y in zip(t, base)]), 2)}
        for name, t in times.items()
    }
    print(json.dumps({"machine": machine(), "shape_B_L_E_N": shape, "forward_plus_backward": rows}, indent=1))


if __name__ == "__main__":
    main()
