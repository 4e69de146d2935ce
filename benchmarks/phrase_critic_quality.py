"""How well a PhraseCritic predicts what its codec writes, on held-out phrases.

`--phrases` random test-split phrases of a dataset (latents in the key frame the critic was
trained in), each greedily decoded and measured as the generator writes it
(`written_notes.phrase_facts`), against the critic's prediction from the latent alone:
R^2 and mean error of the onsets per bar, R^2 of the 12 pitch-class durations, and how
often the Krumhansl-Schmuckler key of the predicted pitch classes equals that of the
written ones (phrases with pitched notes); for a critic with an onset grid, the share of grid
cells it predicts right (probability above 0.5 where a note starts) against always predicting
none, and its mean expected Hamming distance (the groove steering's measure) to the written
grid against the written grids' own to the next phrase's in the sample (drawn at random, then
sorted, so often of one song).

    OMP_NUM_THREADS=1 python benchmarks/phrase_critic_quality.py --codec runs/phrase_vae_small/checkpoint \
        --critic runs/phrase_critic/checkpoint --data data/pop909
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from common import machine
from musemorphic.data import controls as ctl
from musemorphic.generation.steering import grid_distance
from musemorphic.training.phrase_critic import critic_table, load_phrase_critic
from musemorphic.training.grid_codec import load_codec


def r_squared(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(1 - ((predicted - true) ** 2).sum() / ((true - true.mean(axis=0)) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--critic", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--phrases", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    codec, _ = load_codec(args.codec)
    critic, _ = load_phrase_critic(args.critic)
    cells = critic.config.onset_cells
    latents, facts = critic_table(codec, args.codec, args.data, "test", args.phrases, critic.config.key_normalized, cells=cells)
    predicted = critic.predict(torch.from_numpy(latents))
    onsets, pitch_classes = predicted.onsets.numpy(), predicted.pitch_classes.numpy()
    pitched = facts[:, 1:13].sum(axis=1) > 0
    keys_written = ctl.key_correlations(facts[pitched, 1:13]).argmax(axis=1)
    keys_predicted = ctl.key_correlations(pitch_classes[pitched]).argmax(axis=1)
    results = {
        "phrases": len(latents),
        "onsets_r2": round(r_squared(onsets, facts[:, 0]), 3),
        "onsets_mean_error": round(float((onsets - facts[:, 0]).mean()), 3),
        "onsets_mean_written": round(float(facts[:, 0].mean()), 3),
        "pitch_class_r2": round(r_squared(pitch_classes, facts[:, 1:13]), 3),
        "phrase_key_agreement": round(float((keys_written == keys_predicted).mean()), 3),
        "pitched_phrases": int(pitched.sum()),
    }
    if cells:
        grids, written = predicted.onset_grid.double().numpy(), facts[:, 13:]
        results["onset_cells"] = cells
        results["grid_cell_accuracy"] = round(float(((grids > 0.5) == (written > 0.5)).mean()), 3)
        results["grid_cell_accuracy_none"] = round(float((written < 0.5).mean()), 3)
        results["grid_distance_to_written"] = round(float(np.mean([grid_distance(g[None], w)[0] for g, w in zip(grids, written)])), 3)
        results["grid_distance_written_to_another"] = round(float(np.mean([grid_distance(a[None], b)[0] for a, b in zip(written, written[1:])])), 3)
    print(json.dumps({"machine": machine(), "critic": str(args.critic), "results": results}, indent=1))


if __name__ == "__main__":
    main()
