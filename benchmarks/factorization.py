"""Seed 001's figures: toy blobs, piano rolls of real music, and PhraseVAE latents with and
without the factorization regulariser (plus what it costs in reconstruction, and latent
transposition). Prints one JSON object, then Markdown tables.

    OMP_NUM_THREADS=1 python benchmarks/factorization.py toy
    OMP_NUM_THREADS=1 python benchmarks/factorization.py music data/pop909
    OMP_NUM_THREADS=1 python benchmarks/factorization.py codecs data/pop909 \
        runs/phrase_vae_finetune/checkpoint runs/phrase_vae_factorize/checkpoint
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from common import machine
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.factorization import measure_factorization
from musemorphic.evaluation.latent_transposition import phrase_embed, pitched_bars, transposition_report
from musemorphic.evaluation.phrase_vae import evaluate_phrase_vae
from musemorphic.experiments.factorization import (
    music_windows, roll_embed, run_factorization, toy_held_out, toy_inputs, window_inputs,
)
from musemorphic.generation.transpose import pitch_direction
from musemorphic.models.pianoroll_encoder import PianoRollEncoder, pianoroll_encoder_config
from musemorphic.training.factorization import FactorizationConfig
from musemorphic.training.checkpoint import read_checkpoint_config
from musemorphic.training.loop import TrainConfig
from musemorphic.training.phrase_vae import CurriculumConfig, load_phrase_vae

FIGURES = ["cross_abs_cos", "same_sign_cos", "opposite_sign_cos", "pitch_angle_deg", "time_angle_deg", "first_sv_share"]
SEED_FIGURES = {"cross_abs_cos": 0.116, "same_sign_cos": 0.954, "opposite_sign_cos": -0.884,
                "pitch_angle_deg": 162.8, "time_angle_deg": 163.2}


def roll_arms(preset, inputs, held, shifts: FactorizationConfig, steps, batch_size, lr, arms) -> dict:
    """Untrained encoder, then one trained run per arm ({name: lejepa?})."""
    torch.manual_seed(0)
    height, width = held.shape[1:]
    untrained = PianoRollEncoder(pianoroll_encoder_config(preset, height=height, width=width)).eval()
    out = {"untrained": measure_factorization(roll_embed(untrained, held), len(held), shifts.max_pitch_shift, shifts.max_time_shift).to_dict()}
    for name, lejepa in arms.items():
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(out_dir=tmp, steps=steps, batch_size=batch_size, lr=lr, warmup_steps=min(100, steps // 10), log_every=50)
            result = run_factorization(inputs, held, preset, replace(shifts, lejepa=lejepa), config, {})
        out[name] = {**result.figures.to_dict(), "steps": result.steps, "train_seconds": result.seconds}
    return out


def codec_figures(checkpoint: Path, data: Path, n_bars: int, n_transpose: int, max_bars: int) -> dict:
    model, tokenizer = load_phrase_vae(checkpoint)
    test, train = PhraseDataset(data, "test"), PhraseDataset(data, "train")
    start = time.perf_counter()
    bars, programs = pitched_bars(test, n_bars, 0, model.config.max_len)
    shifts = CurriculumConfig.from_dict(read_checkpoint_config(checkpoint)["curriculum"])  # the shift sizes it trained with
    embed = phrase_embed(model, tokenizer, bars, programs)
    figures = measure_factorization(embed, len(bars), shifts.max_pitch_shift, shifts.max_time_shift).to_dict()
    reconstruction = evaluate_phrase_vae(model, test, max_bars=max_bars, prior_samples=500).to_dict()
    train_bars, train_programs = pitched_bars(train, 500, 1, model.config.max_len)
    direction = pitch_direction(model, tokenizer, train_bars, train_programs, max_shift=shifts.max_pitch_shift)
    rows = transposition_report(model, tokenizer, bars[:n_transpose], programs[:n_transpose], direction)
    return {
        "figures": figures,
        "reconstruction": {k: reconstruction[k] for k in ("token_accuracy", "note_f1", "exact_bar_rate", "prior_grammatical", "active_dims", "bars")},
        "transposition": [r.to_dict() for r in rows],
        "direction_norm": float(direction.norm()),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["toy", "music", "codecs"])
    parser.add_argument("paths", type=Path, nargs="*", help="music: DATASET; codecs: DATASET CHECKPOINT...")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--held-out", type=int, default=500)
    parser.add_argument("--transpose-bars", type=int, default=200)
    parser.add_argument("--max-bars", type=int, default=2000, help="codecs: test bars for the reconstruction figures")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.what == "toy":
        results = roll_arms("toy", toy_inputs, toy_held_out(args.held_out), FactorizationConfig(4, 4), args.steps, 256, 4e-3,
                            {"factorization loss": False, "factorization + LeJEPA": True})
    elif args.what == "music":
        data = args.paths[0]
        held = music_windows(data, "test", 32, args.held_out, 1)
        inputs = window_inputs(music_windows(data, "train", 32, 20_000, 0))
        results = roll_arms("roll", inputs, held, FactorizationConfig(6, 4), args.steps, 128, 2e-3, {"factorization loss": False})
    else:
        data, checkpoints = args.paths[0], args.paths[1:]
        results = {str(c): codec_figures(c, data, args.held_out, args.transpose_bars, args.max_bars) for c in checkpoints}
    print(json.dumps({"machine": machine(), "what": args.what, "paths": [str(p) for p in args.paths], "results": results}, indent=1))
    print()
    if args.what in ("toy", "music"):
        print("| encoder | " + " | ".join(FIGURES) + " | steps | train s |")
        print("|---|" + "---|" * (len(FIGURES) + 2))
        print("| seed 001 (GPU, 5000 steps) | " + " | ".join(str(SEED_FIGURES.get(f, "60-80%")) for f in FIGURES) + " | 5000 | |")
        for name, r in results.items():
            print(f"| {name} | " + " | ".join(f"{r[f]:.3f}" for f in FIGURES) + f" | {r.get('steps', 0)} | {r.get('train_seconds', '')} |")
    else:
        print("| codec | " + " | ".join(FIGURES) + " | token acc | note F1 | exact bars | prior grammatical |")
        print("|---|" + "---|" * (len(FIGURES) + 4))
        for name, r in results.items():
            rec = r["reconstruction"]
            print(f"| {name} | " + " | ".join(f"{r['figures'][f]:.3f}" for f in FIGURES)
                  + f" | {rec['token_accuracy']:.3f} | {rec['note_f1']:.3f} | {rec['exact_bar_rate']:.3f} | {rec['prior_grammatical']:.3f} |")
        print()
        names = list(results)
        print("| k | " + " | ".join(f"{n}: exact / F1 (re-encoded: exact / F1)" for n in names) + " |")
        print("|---|" + "---|" * len(names))
        for i, row in enumerate(results[names[0]]["transposition"]):
            cells = []
            for n in names:
                t = results[n]["transposition"][i]
                cells.append(f"{t['exact']:.3f} / {t['note_f1']:.3f} ({t['exact_reencoded']:.3f} / {t['note_f1_reencoded']:.3f})")
            print(f"| {row['semitones']:+d} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
