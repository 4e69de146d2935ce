"""Does a LatentMamba prior listen to its controls? Held-out likelihood with true and with broken controls.

Teacher-forced mixture NLL (nats per latent dimension, lower is better) of every test-split
song of a dataset, read whole, under three control settings: the song's own controls; the
controls of another test song (each song takes the next one's); every control unspecified.
A prior that ignores its controls scores the same in all three; the gaps are what the
controls tell it.

    OMP_NUM_THREADS=1 python benchmarks/control_sensitivity.py --codec runs/phrase_vae_small/checkpoint \
        --data data/pop909 --prior runs/latent_mamba_gmm/checkpoint
"""

from __future__ import annotations

import json

import numpy as np
import torch

from common import machine, prior_benchmark_args, priors_on_test_songs
from musemorphic.training.latent_mamba import LatentSongWindows


def song_nll(model, windows: LatentSongWindows, song: int, setting: str) -> tuple[float, int]:
    """Summed NLL and slot count of one whole song under a control setting."""
    rows = windows.songs[song][0]
    latents, tracks, programs, controls, silent = windows.window(song, 0, rows.shape[0])
    if setting == "another song's":
        controls = windows.songs[(song + 1) % len(windows.songs)][2]
    if setting == "none":
        controls = [-1] * len(controls)
    z = torch.from_numpy(np.asarray(latents, dtype=np.float32))[None]
    prediction = model(torch.tensor([controls]), z, torch.from_numpy(tracks)[None], torch.from_numpy(programs)[None])
    slots = z.shape[1]
    return float(model.loss(prediction, z, torch.ones(1, slots), torch.from_numpy(silent)[None])) * slots, slots


def main() -> None:
    args = prior_benchmark_args(__doc__, "repeatable")
    torch.set_num_threads(1)
    results = {}
    for path, model, windows in priors_on_test_songs(args.codec, args.data, args.prior):
        row = {}
        for setting in ("own", "another song's", "none"):
            with torch.no_grad():
                totals = [song_nll(model, windows, song, setting) for song in range(len(windows.songs))]
            row[setting] = round(sum(t for t, _ in totals) / sum(n for _, n in totals), 4)
        results[str(path)] = {"songs": len(windows.songs), "nll_per_dimension_by_controls": row}
    print(json.dumps({"machine": machine(), "data": str(args.data), "results": results}, indent=1))


if __name__ == "__main__":
    main()
