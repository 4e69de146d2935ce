"""GridCodec design probes: how fast each variant learns, from scratch, in the same steps.

Variants (each the `small` preset, seed 0, the training recipe's batches, peak learning rate,
warm-up and beta ramp of a 10,000-step run; plain AdamW without weight decay and a gradient-norm
clip of 5, no cosine schedule: the probes are short):
* default: the shipped design (each position's state keeps its place on the way to the latent;
  each note's duration and velocity through its pitch's own linear map);
* pooled: the encoder pools the positions with learned attention queries (the PhraseVAE's
  bottleneck) instead of keeping each position in its place;
* shared-note-head: one MLP reads every note's duration and velocity from its position's
  features plus an embedding of its pitch.

Reported per variant: the onset and duration negative log-likelihoods per bar (training batches,
mean of the last 50 steps), and on held-out bars of each style the note F1 and duration match.

    OMP_NUM_THREADS=1 python benchmarks/grid_codec_design.py --data data/mix --steps 400
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import machine
from musemorphic.data.augment import AugmentConfig
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.evaluation.phrase_vae import evaluate_codec
from musemorphic.models.grid_codec import N_PITCHES, GridCodec
from musemorphic.nn.bottleneck import QueryBottleneck
from musemorphic.training.grid_codec import GridCodecTask, GridTrainingConfig, build_grid_codec

RUN_STEPS = 10_000  # the recipe's run, whose beta ramp the probes follow


class PooledEncoder(GridCodec):
    """The encoder's positions pooled by two attention queries into (mu, logvar)."""

    def __init__(self, config):
        super().__init__(config)
        self.pool = QueryBottleneck(config.d_model, config.n_heads, 2, config.d_latent, sigma_reparam=False)

    def encode(self, grid):
        c = self.config
        B, P, _ = grid.onsets.shape
        x = self.encoder_in(torch.cat([grid.onsets, (grid.durations + 1).float() / c.n_durations,
                                       (grid.velocities + 1).float() / c.velocity_levels], dim=-1)) + self.encoder_positions.weight[:P]
        head = (self.time_signature_embedding(grid.time_signatures) + self.program_embedding(grid.programs)
                + self.tempo_embedding(grid.tempos))[:, None]
        real = torch.cat([torch.ones(B, 1, dtype=torch.bool), self.position_mask(grid.lengths, P)], dim=1)
        return self.pool(self.encoder(torch.cat([head, x], dim=1), key_padding_mask=real), key_padding_mask=real)


class SharedNoteHead(GridCodec):
    """Every note's duration and velocity from one MLP over its position's features plus a pitch embedding."""

    def __init__(self, config):
        super().__init__(config)
        d = config.d_model
        self.pitch_embedding = nn.Embedding(N_PITCHES, d)
        self.shared_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, config.n_durations + config.velocity_levels))

    def note_logits(self, hidden, rows, positions, pitches):
        out = self.shared_head(hidden[rows, positions] + self.pitch_embedding(pitches))
        return out.split([self.config.n_durations, self.config.velocity_levels], dim=-1)


VARIANTS = {"default": GridCodec, "pooled": PooledEncoder, "shared-note-head": SharedNoteHead}


def probe(name: str, train: PhraseDataset, test: PhraseDataset, steps: int, max_bars: int) -> dict:
    torch.manual_seed(0)
    config = build_grid_codec(train.tokenizer, "small").config
    model = VARIANTS[name](config)
    batcher = PhraseBatcher(train, 1 << 30, AugmentConfig(), bucket_size=len(train))
    task = GridCodecTask(model, batcher, RUN_STEPS, 128, seed=0, training=GridTrainingConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    start, rows = time.perf_counter(), []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * min(1.0, (step + 1) / 200)  # the recipe's warmup
        loss, metrics = task.loss(model, task.batch(step, 0), step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        rows.append(metrics)
    seconds = time.perf_counter() - start
    model.eval()
    held_out = {}
    for style in sorted({s["style"] for s in test.songs}):
        report = evaluate_codec(model, test.of_style(style), max_bars=max_bars, prior_samples=0)
        held_out[style] = {"note_f1": round(report.note_f1, 3), "duration_match": round(report.duration_match, 3)}
    last = rows[-50:]
    return {"variant": name, "steps": steps, "train_seconds": round(seconds), "parameters": sum(p.numel() for p in model.parameters()),
            "onset_nll": round(float(np.mean([r["onset"] for r in last])), 2),
            "duration_nll": round(float(np.mean([r["duration"] for r in last])), 2), "held_out": held_out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--max-bars", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = PhraseDataset(args.data, split="train"), PhraseDataset(args.data, split="test")
    results = []
    for name in args.variants:
        results.append(probe(name, train, test, args.steps, args.max_bars))
        print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"machine": machine(), "data": str(args.data), "results": results}))
    styles = sorted(results[0]["held_out"])
    print("\n| variant | onset NLL | duration NLL | " + " | ".join(f"F1 / dur {s}" for s in styles) + " |")
    print("|---|---|---|" + "---|" * len(styles))
    for r in results:
        cells = [f"{r['held_out'][s]['note_f1']:.3f} / {r['held_out'][s]['duration_match']:.3f}" for s in styles]
        print(f"| {r['variant']} | {r['onset_nll']} | {r['duration_nll']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
