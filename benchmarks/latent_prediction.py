"""How well does a LatentMamba prior predict the next latent? Against simple per-track baselines.

Every test-split song of a dataset, read whole and teacher-forced. For each slot after a
song's first bar: the mean squared error (per latent dimension) of the prior's mixture mean,
and of four predictions that need no training: the previous slot's latent, the same track's
latent one bar earlier, and that track's moving average of its earlier latents (bias-corrected,
decays 0.5, 0.7 and 0.85, as `TrackMemory` keeps it). Also the prior's mixture NLL (nats per
dimension) over the same slots. A prior with a silence head models only the sounding bars
with its mixture, so these figures do not apply to it; the script says so and stops.

    OMP_NUM_THREADS=1 python benchmarks/latent_prediction.py --codec runs/phrase_vae_small/checkpoint \
        --data data/pop909 --prior runs/latent_mamba_gmm/checkpoint
"""

from __future__ import annotations

import json

import numpy as np
import torch

from common import machine, prior_benchmark_args, priors_on_test_songs
from musemorphic.models.latent_mamba import TrackMemory
from musemorphic.nn.mixture import GaussianMixtureHead
from musemorphic.training.latent_mamba import LatentSongWindows

DECAYS = (0.5, 0.7, 0.85)


def song_errors(model, windows: LatentSongWindows, song: int) -> dict[str, torch.Tensor]:
    """Squared error per dimension (slots after the first bar,) of every prediction, and the NLL."""
    rows = windows.songs[song][0]
    n_tracks = rows.shape[1]
    latents, tracks, programs, controls, _ = windows.window(song, 0, rows.shape[0])
    z = torch.from_numpy(np.asarray(latents, dtype=np.float32))  # (L, Z)
    track_ids = torch.from_numpy(tracks)
    with torch.no_grad():
        prediction = model(torch.tensor([controls]), z[None], track_ids[None], torch.from_numpy(programs)[None])
    logits, means, _ = prediction
    guesses = {
        "prior (mixture mean)": (logits.softmax(-1)[..., None] * means).sum(-2)[0],
        "previous slot": torch.cat([torch.zeros_like(z[:1]), z[:-1]]),
        "same track, one bar earlier": torch.cat([torch.zeros_like(z[:n_tracks]), z[:-n_tracks]]),
    }
    for decay in DECAYS:
        guesses[f"track moving average, decay {decay}"] = TrackMemory.averages(z[None], track_ids[None], decay, model.config.max_tracks)[0]
    errors = {name: (z - guess)[n_tracks:].pow(2).mean(-1) for name, guess in guesses.items()}
    errors["prior NLL"] = GaussianMixtureHead.nll(model.mixture(prediction), z[None])[0, n_tracks:]
    return errors


def main() -> None:
    args = prior_benchmark_args(__doc__, "repeatable (mixture-head priors)")
    torch.set_num_threads(1)
    results = {}
    for path, model, windows in priors_on_test_songs(args.codec, args.data, args.prior):
        if model.config.silence_head:
            raise SystemExit(f"{path}: a prior with a silence head; its mixture mean and NLL cover the sounding bars only")
        per_song = [song_errors(model, windows, song) for song in range(len(windows.songs))]
        results[str(path)] = {
            "songs": len(per_song),
            "slots": int(sum(len(e["prior NLL"]) for e in per_song)),
            "track_memory_decay": model.config.track_memory_decay,
            "mse_per_dimension": {
                name: round(float(torch.cat([e[name] for e in per_song]).mean()), 4) for name in per_song[0] if name != "prior NLL"
            },
            "prior_nll_per_dimension": round(float(torch.cat([e["prior NLL"] for e in per_song]).mean()), 4),
        }
    print(json.dumps({"machine": machine(), "data": str(args.data), "results": results}, indent=1))


if __name__ == "__main__":
    main()
