"""Endless generation: memory and speed of LatentMamba + PhraseVAE over a long run,
against a token-level transformer with a KV cache generating the same bars.

EVALUATION.md, "Endless generation": process RSS sampled every 500 bars (and at bar 100)
of one run of `--bars` bars written to a streaming MIDI file; wall ms per bar (p50, p99)
and the real-time factor (seconds of music / seconds of compute). The codec decodes
`MusicGenerator.bars_per_decode` bars per batch (about `decode_phrases` phrases, or one bar
when steering needs each bar written before the next is drawn; a scale lock with memory decodes
the rest of a chunk again from a bar that changes it), so a bar's time is its chunk's time
divided by the chunk's bars; the drift figures are
computed outside the timed stretches. Speed is measured for the model's default track layout and for one piano track. The baseline is a
decoder-only transformer (the package's Pre-LN blocks with KV cache) of about the same
parameter count as prior + codec, generating `tokens_per_bar` tokens per bar, where
tokens_per_bar is the mean number of BPE tokens in a bar (all tracks) of the codec's data;
its cache grows with the music, so its cost per bar does too.

    OMP_NUM_THREADS=1 python benchmarks/endless_generation.py --bars 10000 \
        --codec runs/phrase_vae_small/checkpoint --prior runs/latent_mamba_gmm/checkpoint

With `--critic`, the generator steers as `musemorphic generate` does by default (groove
steering with a critic that predicts onset grids), decoding bar by bar; without, it samples
the prior alone. `--old-codec/--old-prior/--old-critic` run another set of models (e.g. an
earlier default) through the same measurements in the same process and report the speed
ratios (new / old real-time factor, for the default layout and for one piano track).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from torch import nn

from common import machine
from musemorphic.data.bar_timing import bar_ticks
from musemorphic.evaluation.music_metrics import groove_consistency, pitch_class_entropy, song_bars, window_metrics, windows
from musemorphic.generation.generate import TPQ, MusicGenerator, Request
from musemorphic.nn.transformer import KVCache, Transformer


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def run_latent_mamba(generator: MusicGenerator, n_bars: int, seed: int, programs: list[int] | None = None) -> dict:
    times, rss, quarters = [], {}, 0.0
    request = Request(bars=n_bars, seed=seed, programs=programs)
    n_tracks = len(programs or generator.default_programs)
    chunk = generator.bars_per_decode(n_tracks, generator.steering(request, n_tracks) is not None)
    drift = Drift(generator.tokenizer, programs or generator.default_programs)
    last, untimed = time.perf_counter(), 0.0

    def on_bar(bar) -> None:
        nonlocal last, quarters, untimed
        start = time.perf_counter()
        drift.add(bar.phrases)
        untimed += time.perf_counter() - start
        quarters += bar_ticks(TPQ, bar.time_signature) / TPQ
        done = bar.index + 1
        if done % chunk == 0 or done == n_bars:
            now = time.perf_counter()
            times.extend([(now - last - untimed) / (done - len(times))] * (done - len(times)))
            last, untimed = now, 0.0
        if done == 100 or done % 500 == 0:
            rss[done] = round(rss_mb(), 1)

    with tempfile.TemporaryDirectory() as tmp:
        summary = generator.write(request, Path(tmp) / "endless.mid", on_bar=on_bar)
    music_seconds = quarters * 60.0 / summary["tempo"]  # the tempo the file was written at
    ms = sorted(1000 * t for t in times)
    return {
        "bars": summary["bars"],
        "tracks": summary["tracks"],
        "bars_per_batch": chunk,
        "tempo": summary["tempo"],
        "ms_per_bar_p50": round(statistics.median(ms), 2),
        "ms_per_bar_p99": round(ms[int(0.99 * (len(ms) - 1))], 2),
        "real_time_factor": round(music_seconds / sum(times), 1),
        "rss_mb": rss,
        "rss_growth_mb_100_to_end": round(rss[max(rss)] - rss[100], 1) if 100 in rss else None,
        "silenced_phrases": summary["silenced_phrases"],
        "drift_per_1000_bars": drift.windows,
    }


class Drift:
    """Per window of bars: notes per bar, pitch-class entropy (bits, duration-weighted) and
    groove consistency as `evaluation/music_metrics.py` measures them over the whole window,
    the mean scale consistency of its 8-bar windows (as the report measures it), and the share
    of distinct bars, to catch silence, loops or a drift out of key late in a run (EVALUATION.md)."""

    def __init__(self, tokenizer, programs: list[int], window: int = 1000):
        self.tokenizer, self.programs, self.window = tokenizer, programs, window
        self.windows, self.bars, self.distinct = [], [], set()

    def add(self, phrases: list[list[int]]) -> None:
        self.bars.extend(song_bars(self.tokenizer, [(p, [phrase]) for p, phrase in zip(self.programs, phrases)]))
        self.distinct.add(tuple(map(tuple, phrases)))
        if len(self.bars) == self.window:
            notes = np.concatenate([bar.notes for bar in self.bars])
            self.windows.append({
                "notes_per_bar": round(len(notes) / self.window, 2),
                "pitch_class_entropy": round(pitch_class_entropy(notes[notes[:, 3] == 0]), 3),
                "groove_consistency": round(groove_consistency(self.bars), 3),
                "scale_consistency_8_bars": round(float(np.nanmean([window_metrics(w)["scale_consistency"] for w in windows(self.bars)])), 4),
                "distinct_bar_share": round(len(self.distinct) / self.window, 3),
            })
            self.bars, self.distinct = [], set()


class TokenTransformer(nn.Module):
    def __init__(self, vocab: int, d_model: int, n_layers: int, n_heads: int, max_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = Transformer(n_layers, d_model, n_heads, sigma_reparam=False)
        self.head = nn.Linear(d_model, vocab)

    @torch.no_grad()
    def step(self, token: torch.Tensor, cache: KVCache) -> torch.Tensor:
        pos = torch.tensor([cache.length])
        x = self.embed(token)[:, None] + self.pos(pos)
        return self.head(self.blocks(x, causal=True, cache=cache))[:, -1]


def run_transformer(n_params_target: int, vocab: int, tokens_per_bar: int, n_bars: int, seed: int) -> dict:
    d_model, n_heads = 256, 4
    n_layers = max(1, round((n_params_target - 2 * vocab * d_model) / (12 * d_model**2)))
    model = TokenTransformer(vocab, d_model, n_layers, n_heads, max_len=tokens_per_bar * n_bars + 1).eval()
    generator = torch.Generator().manual_seed(seed)
    cache = KVCache()
    token = torch.tensor([1])
    times, rss = [], {}
    for bar in range(n_bars):
        start = time.perf_counter()
        for _ in range(tokens_per_bar):
            logits = model.step(token, cache)
            token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        times.append(time.perf_counter() - start)
        if bar + 1 in (10, 100) or (bar + 1) % 100 == 0:
            rss[bar + 1] = round(rss_mb(), 1)
    ms = [1000 * t for t in times]
    return {
        "bars": n_bars,
        "parameters": sum(p.numel() for p in model.parameters()),
        "layers": n_layers,
        "tokens_per_bar": tokens_per_bar,
        "ms_per_bar_first_10": round(statistics.median(ms[:10]), 2),
        "ms_per_bar_last_10": round(statistics.median(ms[-10:]), 2),
        "rss_mb": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", type=Path, required=True)
    parser.add_argument("--prior", type=Path, required=True)
    parser.add_argument("--bars", type=int, default=10_000)
    parser.add_argument("--baseline-bars", type=int, default=300)
    parser.add_argument("--tokens-per-bar", type=int, default=43)  # mean BPE tokens of a 3-track POP909 bar
    parser.add_argument("--critic", type=Path, help="PhraseCritic that steers, as generate's default (none: the prior alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--old-codec", type=Path, help="another codec to measure in the same run (with --old-prior)")
    parser.add_argument("--old-prior", type=Path)
    parser.add_argument("--old-critic", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = MusicGenerator.load(args.codec, args.prior, args.critic)
    n_params = sum(p.numel() for p in generator.prior.parameters()) + sum(p.numel() for p in generator.codec.parameters())
    ours = run_latent_mamba(generator, args.bars, args.seed)
    ours_short = run_latent_mamba(generator, args.baseline_bars, args.seed)
    piano = run_latent_mamba(generator, args.baseline_bars, args.seed, programs=[0])
    baseline = run_transformer(n_params, generator.tokenizer.vocab_size, args.tokens_per_bar, args.baseline_bars, args.seed)
    result = {"machine": machine(), "critic": str(args.critic), "parameters_prior_plus_codec": n_params, "latent_mamba": ours,
              "latent_mamba_same_bars_as_baseline": ours_short, "latent_mamba_one_piano_track": piano, "token_transformer": baseline}
    if args.old_codec is not None:
        old = MusicGenerator.load(args.old_codec, args.old_prior, args.old_critic)
        old_layout = run_latent_mamba(old, args.baseline_bars, args.seed)
        old_piano = run_latent_mamba(old, args.baseline_bars, args.seed, programs=[0])
        result["old"] = {"codec": str(args.old_codec), "critic": str(args.old_critic), "default_layout": old_layout, "one_piano_track": old_piano}
        result["speed_ratio_new_over_old"] = {
            "default_layout": round(ours_short["real_time_factor"] / old_layout["real_time_factor"], 1),
            "one_piano_track": round(piano["real_time_factor"] / old_piano["real_time_factor"], 1),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
