"""The codec as a user meets it: latent transposition, and continuing a prompt.

* Latent transposition: on held-out pitched bars, greedy decoding of mu(x) + k * d_pitch
  (d_pitch estimated from other held-out bars, as `transpose --latent` estimates it) against
  the bar transposed by k semitones, k = -6..6 but 0: exact-match rate (every note's onset,
  pitch and duration) and note F1, with the same figures for decoding the truly transposed
  bar's own latent (the ceiling).
* Continuation: for held-out songs, the first `--prompt-bars` bars are written to a MIDI file
  and continued for `--bars` bars with the generator's defaults. Reported: how much of the
  prompt's last 4 bars the codec gives back (note F1 and exact bars of encoding and decoding
  them), and how the continuation's notes per bar and pitch classes (duration-weighted
  histogram) compare with the prompt's last 8 bars (ratio of notes per bar, histogram overlap =
  sum of the minimum of the two normalised histograms).

    OMP_NUM_THREADS=1 python benchmarks/codec_in_use.py --model src/musemorphic/pretrained --data data/pop909
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import symusic
import torch

from common import machine
from musemorphic.data.bar_shifts import pitched
from musemorphic.data.bar_timing import bar_notes
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.remi_grammar import parse_bar
from musemorphic.data.tokenizer import SongTokens, TrackTokens
from musemorphic.evaluation.latent_transposition import transposition_report
from musemorphic.evaluation.phrase_vae import NoteTally
from musemorphic.generation.generate import MusicGenerator, Request
from musemorphic.generation.phrase_codec import decode_bars, encode_bars
from musemorphic.generation.transpose import pitch_direction
from musemorphic.generation.written_notes import TPQ


def held_out_pitched_bars(dataset: PhraseDataset, n: int, seed: int) -> tuple[list[list[int]], list[int]]:
    bars, programs = [], []
    for i in np.random.default_rng(seed).permutation(len(dataset)):
        bar, program = dataset.phrase(int(i)).tolist(), dataset.phrase_program(int(i))
        if pitched(dataset.tokenizer, bar, program):
            bars.append(bar)
            programs.append(program)
            if len(bars) == n:
                break
    return bars, programs


def transposition(generator: MusicGenerator, dataset: PhraseDataset, n_bars: int) -> dict:
    codec, tok = generator.codec, generator.tokenizer
    bars, programs = held_out_pitched_bars(dataset, 2 * n_bars, seed=0)
    direction = pitch_direction(codec, tok, bars[n_bars:], programs[n_bars:])
    rows = transposition_report(codec, tok, bars[:n_bars], programs[:n_bars], direction, [k for k in range(-6, 7) if k])
    mean = {key: round(statistics.mean(getattr(r, key) for r in rows), 3) for key in ("exact", "note_f1", "exact_reencoded", "note_f1_reencoded")}
    return {"bars": n_bars, "mean_over_k": mean, "rows": [r.to_dict() for r in rows]}


def pitch_class_histogram(score: symusic.Score) -> np.ndarray:
    hist = np.zeros(12)
    for track in score.tracks:
        if not track.is_drum:
            for note in track.notes:
                hist[note.pitch % 12] += max(note.duration, 1)
    return hist / max(hist.sum(), 1e-9)


def notes_per_bar(score: symusic.Score, n_bars: int) -> float:
    return sum(len(t.notes) for t in score.tracks) / n_bars


def continuation(generator: MusicGenerator, dataset: PhraseDataset, n_songs: int, prompt_bars: int, bars: int) -> dict:
    tok = generator.tokenizer
    rows = []
    songs = [s for s in dataset.song_indices if dataset.shard.songs[s]["n_bars"] >= prompt_bars]
    for song in songs[:n_songs]:
        tracks = dataset.song_tracks(int(song))
        prompt = SongTokens([TrackTokens(p, [b.tolist() for b in grid[:prompt_bars]]) for p, grid in tracks], [0] * prompt_bars)
        last = [(bar.tolist(), p) for p, grid in tracks for bar in grid[prompt_bars - 4 : prompt_bars]]
        z = encode_bars(generator.codec, tok, [b for b, _ in last], [p for _, p in last])
        decoded = decode_bars(generator.codec, tok, z, programs=[p for _, p in last])
        tally = NoteTally()
        for (bar, _), out in zip(last, decoded):
            reference = parse_bar(tok.token_names(bar))[1]
            if reference:
                tally.add(reference, parse_bar(tok.token_names(out))[1] if out is not None else [])
        with tempfile.TemporaryDirectory() as tmp:
            prompt_path, out_path = Path(tmp) / "prompt.mid", Path(tmp) / "more.mid"
            tok.decode_song(prompt).dump_midi(str(prompt_path))
            generator.write(Request(bars=bars, prompt=prompt_path, seed=int(song)), out_path)
            more = symusic.Score(str(out_path))
        tail_bars = min(8, prompt_bars)
        tail_notes = [(n, p) for p, grid in tracks for bar in grid[prompt_bars - tail_bars : prompt_bars]
                      for n in bar_notes(tok.token_names(bar.tolist()), TPQ)[1]]
        tail_hist, more_hist = np.zeros(12), pitch_class_histogram(more)
        for note, program in tail_notes:
            if program != -1:
                tail_hist[note.pitch % 12] += max(note.duration, 1)
        tail_hist /= max(tail_hist.sum(), 1e-9)
        figures = tally.figures()
        rows.append({
            "song": dataset.shard.songs[int(song)]["source"],
            "prompt_note_f1": round(figures["note_f1"], 3), "prompt_exact_bars": round(figures["exact_bar_rate"], 3),
            "prompt_notes_per_bar": round(len(tail_notes) / tail_bars, 2),
            "continuation_notes_per_bar": round(notes_per_bar(more, bars), 2),
            "pitch_class_overlap": round(float(np.minimum(tail_hist, more_hist).sum()), 3),
        })
    summary = {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0] if key != "song"}
    summary["notes_per_bar_ratio"] = round(summary["continuation_notes_per_bar"] / max(summary["prompt_notes_per_bar"], 1e-9), 3)
    return {"songs": len(rows), "prompt_bars": prompt_bars, "bars": bars, "median": summary, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a folder with phrase_vae/, latent_mamba/ and phrase_critic/")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--transpose-bars", type=int, default=300)
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--prompt-bars", type=int, default=16)
    parser.add_argument("--bars", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    critic = args.model / "phrase_critic"
    generator = MusicGenerator.load(args.model / "phrase_vae", args.model / "latent_mamba", critic if critic.is_dir() else None)
    dataset = PhraseDataset(args.data, split=args.split)
    print(json.dumps({
        "machine": machine(), "model": str(args.model), "data": str(args.data), "split": args.split,
        "latent_transposition": transposition(generator, dataset, args.transpose_bars),
        "continuation": continuation(generator, dataset, args.songs, args.prompt_bars, args.bars),
    }, indent=1))


if __name__ == "__main__":
    main()
