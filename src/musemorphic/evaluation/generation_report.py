"""`musemorphic eval generate`: how close generated music is to real music (EVALUATION.md).

Sets of 8-bar windows, each summarised by the metrics of `music_metrics`:
- generated (G): `pieces` pieces from the model, written as MIDI and read back;
- held-out real (R): the dataset's test songs, the reference every set is compared with;
- training real (T): excerpts of training songs shaped like G (`pieces` excerpts of `bars`
  bars, starting on a window boundary); T vs R is the ceiling;
- two floors from the same training songs, so that they differ from the ceiling only in how
  their windows are made: their bars shuffled across songs (right statistics per bar, no
  coherence), and random notes at their density and pitch range.

Per metric and set: the overlapping area and KL(R || set) of the metric's distribution
(`distributions.compare`). Every set is compared with R at G's size, because a density
estimated from fewer windows overlaps less with R even when drawn from real music: the
ceiling and floors are the median over `draws` seeded draws of that many windows (the
ceiling over all sampled training windows is kept for reference). Also the phrase FID of G
(and T) against R, and the control accuracy table. The target for a model: every metric's
overlap within 0.1 of the ceiling and above the shuffled floor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from musemorphic.data.bar_timing import POSITIONS_PER_BEAT
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.midi_io import load_score
from musemorphic.evaluation.control_accuracy import control_accuracy
from musemorphic.evaluation.distributions import compare
from musemorphic.evaluation.metric_plots import metric_densities_png
from musemorphic.evaluation.music_metrics import METRICS, Bar, make_bar, song_bars, window_metrics, windows
from musemorphic.evaluation.phrase_fid import nonempty_phrase_means, phrase_fid, real_phrase_means
from musemorphic.generation.generate import MusicGenerator, Request
from musemorphic.models.grid_codec import GridCodec

SETS = ("generated", "train", "shuffled_bars", "random_notes")  # each compared with held-out real
REFERENCE_SPLITS = ("test", "valid")  # held-out splits a report may measure against
TARGET_MARGIN = 0.1
MIN_FID_BARS = 1000


@dataclass
class GenerationEvalConfig:
    pieces: int = 48
    bars: int = 16
    window_bars: int = 8
    temperature: float | None = None  # None: the prior's own
    guidance: float = 1.0  # for the control table (the other pieces request no control)
    train_songs: int = 200  # training songs the ceiling's excerpts are drawn from
    draws: int = 16  # seeded draws of G's size behind the ceiling and the floors (medians)
    control_seeds: int = 2  # pieces per control value (0: skip the control table)
    control_bars: int = 8
    seed: int = 0
    reference: str = "test"  # the held-out split pieces are measured against: test to report, valid to choose settings


Progress = Callable[[str, int, int], None]


def evaluate_generation(
    generator: MusicGenerator, data: str | Path, out: str | Path, config: GenerationEvalConfig, progress: Progress | None = None
) -> dict:
    """Generate, measure, compare; writes report.json, report.md, metrics.png and pieces/ into `out`."""
    out = Path(out)
    (out / "pieces").mkdir(parents=True, exist_ok=True)
    progress = progress or (lambda stage, done, total: None)
    if config.reference not in REFERENCE_SPLITS:
        raise ValueError(f"the reference split must be {' or '.join(REFERENCE_SPLITS)}, got {config.reference!r}")
    test, train = PhraseDataset(data, split=config.reference), PhraseDataset(data, split="train")
    for name, split in ((config.reference, test), ("train", train)):
        if len(split.song_indices) == 0:
            raise ValueError(f"{data}: the {name} split holds no songs; eval generate needs it and the train split")
    config = replace(config, temperature=generator.temperature(Request(temperature=config.temperature)))
    rng = np.random.default_rng(config.seed)

    generated_bars, phrases, programs, trailing_silent = generate_pieces(generator, out / "pieces", config, progress)
    test_songs = dataset_songs(test, test.song_indices)
    train_ids = rng.choice(train.song_indices, min(config.train_songs, len(train.song_indices)), replace=False)
    train_bars = dataset_songs(train, np.sort(train_ids))
    train_songs = [windows(bars, config.window_bars) for bars in train_bars]
    real, generated = to_windows(test_songs, config.window_bars), to_windows(generated_bars, config.window_bars)
    n, n_pool = len(generated), max(len(generated), len(real))  # floors: a pool of windows, drawn n at a time
    sets = {
        "real": real,
        "generated": generated,
        "train": [w for song in train_songs for w in song],
        "shuffled_bars": shuffled_windows(train_bars, n_pool, config.window_bars, rng),
        "random_notes": random_windows(train_bars, n_pool, config.window_bars, rng),
    }
    values = {name: metric_values(w) for name, w in sets.items()}
    per_piece = max(1, config.bars // config.window_bars)  # windows per generated piece (`windows`)
    draws = {
        "generated": [np.arange(n)],
        "train": [excerpt_draw(train_songs, config.pieces, per_piece, rng) for _ in range(config.draws)],
        "shuffled_bars": [rng.choice(n_pool, n, replace=False) for _ in range(config.draws)],
        "random_notes": [rng.choice(n_pool, n, replace=False) for _ in range(config.draws)],
    }
    progress("metrics", 1, 1)

    metrics = compare_metrics(values, draws)
    phrase_fids = phrase_fid_figures(generator, data, phrases, programs, config.seed, config.reference)
    phrase_fids["empty_generated_phrases"] += trailing_silent
    progress("phrase FID", 1, 1)

    controls = {}
    if config.control_seeds > 0:
        controls = control_accuracy(
            generator, test.density_thresholds, config.control_seeds, config.control_bars, config.seed,
            config.temperature, config.guidance, lambda d, t: progress("controls", d, t),
        )

    report = {
        "config": asdict(config),
        "data": str(data),
        "windows": {"real": len(sets["real"]), "generated": n, "train": len(draws["train"][0]), "train_pool": len(sets["train"]),
                    "shuffled_bars": n, "random_notes": n, "draws": config.draws},
        "metrics": metrics,
        "phrase_fid": phrase_fids,
        "controls": controls,
        "key_frame": generator.prior.config.key_normalized,
        "scale_lock": generator.scale_lock,
        "scale_lock_memory": generator.scale_lock_memory,
        "scale_lock_welcome": generator.scale_lock_welcome,
        "decoding": {"temperature": generator.decode_temperature, "top_p": generator.decode_top_p, "sampled": generator.decode_sampled},
        "groove_steering": {"draws": generator.groove_draws, "distance": generator.groove_distance,
                            "on": generator.steering(Request(temperature=config.temperature), 1) is not None},
        "salvage": generator.salvage,
        "codec": "grid" if isinstance(generator.codec, GridCodec) else "autoregressive",
        "all_metrics_meet_target": all(m["meets_target"] for m in metrics.values()),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    metric_densities_png(values, out / "metrics.png")
    (out / "report.md").write_text(markdown_report(report))
    return report


def compare_metrics(values: dict[str, dict[str, np.ndarray]], draws: dict[str, list[np.ndarray]]) -> dict[str, dict]:
    """Per metric: each set's mean, median overlap and KL against the real set over its draws
    (window indices into the set), and the target check."""
    metrics = {}
    for metric in METRICS:
        real = values["real"][metric]
        row = {"real_mean": _mean(real)}
        for name in SETS:
            sample = values[name][metric]
            row[name] = {"mean": _mean(sample[np.concatenate(draws[name])]), **median_comparison(real, sample, draws[name])}
        all_train = compare(real, values["train"][metric])
        row["train"]["all_windows"] = {"overlap": all_train.overlap, "kl": all_train.kl}
        g, ceiling, floor = row["generated"]["overlap"], row["train"]["overlap"], row["shuffled_bars"]["overlap"]
        row["meets_target"] = bool(g >= ceiling - TARGET_MARGIN and g > floor)
        metrics[metric] = row
    return metrics


def median_comparison(real: np.ndarray, sample: np.ndarray, draws: list[np.ndarray]) -> dict[str, float]:
    """Median overlap and KL(real || sample[draw]) over the draws."""
    comparisons = [compare(real, sample[draw]) for draw in draws]
    return {"overlap": float(np.median([c.overlap for c in comparisons])), "kl": float(np.median([c.kl for c in comparisons]))}


def excerpt_draw(song_windows: list[list], pieces: int, per_piece: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (into the songs' concatenated windows) of `pieces` excerpts of `per_piece`
    consecutive windows, each from a random song (distinct while there are enough) at a
    random window; a song shorter than that gives all its windows."""
    starts = np.cumsum([0] + [len(w) for w in song_windows])
    songs = rng.choice(len(song_windows), pieces, replace=pieces > len(song_windows))
    out = []
    for song in songs:
        count = len(song_windows[song])
        first = int(rng.integers(0, max(1, count - per_piece + 1)))
        out.extend(range(starts[song] + first, starts[song] + min(count, first + per_piece)))
    return np.array(out, dtype=np.int64)


def phrase_fid_figures(generator: MusicGenerator, data: str | Path, phrases, programs, seed: int, reference: str = "test") -> dict:
    """Phrase FID of the generated phrases against the reference split, and train vs it as the
    ceiling (keyed `train_vs_test` whichever the split)."""
    codec, tokenizer = generator.codec, generator.tokenizer
    real_means = real_phrase_means(codec, tokenizer, data, reference)
    fake_means, empty = nonempty_phrase_means(codec, tokenizer, phrases, programs)
    train_means = real_phrase_means(codec, tokenizer, data, "train", limit=len(real_means))
    fid, n_fid = phrase_fid(fake_means, real_means, seed)
    ceiling_fid, n_ceiling = phrase_fid(train_means, real_means, seed)
    return {
        "generated": fid,
        "bars_compared": n_fid,
        "train_vs_test": ceiling_fid,
        "train_bars_compared": n_ceiling,
        "empty_generated_phrases": empty,
    }


def generate_pieces(generator: MusicGenerator, folder: Path, config: GenerationEvalConfig, progress: Progress):
    """Write `pieces` MIDI files; returns their bars (read back as a user would, silent bars at
    the end restored: a MIDI file ends at its last note), the phrases and programs of every
    track bar for the phrase FID, and how many track bars were silent at the ends."""
    songs, phrases, programs, trailing = [], [], [], 0
    for i in range(config.pieces):
        path = folder / f"piece_{i:03d}.mid"
        summary = generator.write(Request(bars=config.bars, seed=config.seed + i, temperature=config.temperature), path)
        tracks = read_tracks(generator.tokenizer, path)
        bars = song_bars(generator.tokenizer, tracks) if tracks else []
        last = bars[-1] if bars else make_bar([])
        missing = max(0, config.bars - len(bars))
        songs.append(bars + [Bar(last.notes[:0], last.ticks, last.beat)] * missing)
        trailing += missing * summary["tracks"]
        for program, track_bars in tracks:
            phrases.extend(track_bars)
            programs.extend([program] * len(track_bars))
        progress("generating", i + 1, config.pieces)
    return songs, phrases, programs, trailing


def read_tracks(tokenizer, path: Path) -> list[tuple[int, list[list[int]]]]:
    """(program, base ids per bar) of each track of a MIDI file; none for a silent file."""
    score = load_score(path, allow_silent=True)
    if score.note_num() == 0:
        return []
    return [(t.program, t.bars) for t in tokenizer.encode_song(score).tracks]


def dataset_songs(dataset: PhraseDataset, songs) -> list[list[Bar]]:
    """Bars of these (global) songs of a prepared dataset."""
    return [song_bars(dataset.tokenizer, dataset.song_tracks(int(song))) for song in songs]


def to_windows(songs: list[list[Bar]], size: int) -> list[list[Bar]]:
    return [w for bars in songs for w in windows(bars, size)]


def shuffled_windows(songs: list[list[Bar]], n: int, size: int, rng: np.random.Generator) -> list[list[Bar]]:
    """Floor 1: windows of bars drawn at random across all songs."""
    pool = [bar for bars in songs for bar in bars]
    return [[pool[i] for i in rng.integers(0, len(pool), size)] for _ in range(n)]


def random_windows(songs: list[list[Bar]], n: int, size: int, rng: np.random.Generator) -> list[list[Bar]]:
    """Floor 2: 4/4 bars of uniformly random pitched notes, as many per bar as the songs' mean,
    pitches within the songs' range, onsets on the 16th grid, lengths 1-8 sixteenths."""
    bars = [bar for s in songs for bar in s]
    notes = np.concatenate([b.notes for b in bars])
    pitches = notes[notes[:, 3] == 0, 2]
    low, high = (int(pitches.min()), int(pitches.max())) if len(pitches) else (48, 84)
    mean_notes = len(notes) / max(1, len(bars))
    template = make_bar([])
    cell = template.beat // POSITIONS_PER_BEAT
    out = []
    for _ in range(n):
        window = []
        for _ in range(size):
            k = rng.poisson(mean_notes)
            rows = np.stack(
                [rng.integers(0, template.ticks // cell, k) * cell, rng.integers(1, 9, k) * cell, rng.integers(low, high + 1, k), np.zeros(k, int)],
                axis=1,
            )
            window.append(make_bar(rows))
        out.append(window)
    return out


def metric_values(windows_: list[list[Bar]]) -> dict[str, np.ndarray]:
    """metric -> (windows,) values."""
    rows = [window_metrics(w) for w in windows_]
    return {m: np.array([r[m] for r in rows], dtype=np.float64) for m in METRICS}


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def markdown_report(report: dict) -> str:
    """The report's figures as Markdown (the JSON holds the same numbers)."""
    c, d = report["config"], report["decoding"]
    decoding = "greedy decoding" if d["temperature"] == 0 else f"decoding sampled ({d['sampled']} tokens) at temperature {d['temperature']}, top-p {d['top_p']}"
    grid = report.get("codec") == "grid"  # one-pass greedy decoding, never a broken bar
    if grid:
        decoding = "a grid codec decoding greedily"
    g = report["groove_steering"]
    groove = f"groove steering ({g['draws']} draws, distance {g['distance']})" if g["on"] else "no groove steering"
    memory = (f" remembering {report['scale_lock_memory']} bars, welcome {report['scale_lock_welcome']}"
              if report["scale_lock_memory"] and (report["scale_lock"] or report["scale_lock_welcome"]) else "")
    lines = [
        "# Generation report",
        "",
        f"{c['pieces']} generated pieces of {c['bars']} bars (temperature {c['temperature']}, {decoding}, scale lock {report['scale_lock']}{memory}, "
        f"{groove}, " + ("" if grid else f"broken bars {'salvaged' if report['salvage'] else 'left silent'}, ") +
        f"seeds {c['seed']}..) against "
        f"the {c['reference']} split of `{report['data']}`, in {c['window_bars']}-bar windows: "
        + ", ".join(f"{k} {v}" for k, v in report["windows"].items())
        + ".",
        "",
        "Overlapping area (OA, higher is closer) and KL(real || set) of each metric's distribution against held-out real "
        f"music. Ceiling: {c['pieces']} excerpts of {c['bars']} bars from training songs, the generated set's shape. "
        "Floors, from the same training songs: their bars shuffled across songs, and random notes. Ceiling and floors are medians over "
        f"{c['draws']} draws of as many windows as were generated (fewer windows overlap less, even real ones); "
        "the last column compares every sampled training window. "
        f"Target: OA within {TARGET_MARGIN} of the ceiling and above the shuffled floor.",
        "",
        "| metric | real mean | generated mean | OA generated | KL generated | OA ceiling | KL ceiling | OA shuffled | OA random | target | OA all training windows |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in report["metrics"].items():
        g, t = m["generated"], m["train"]
        lines.append(
            f"| {name} | {m['real_mean']:.3f} | {g['mean']:.3f} | {g['overlap']:.3f} | {g['kl']:.3f} | {t['overlap']:.3f} | {t['kl']:.3f} "
            f"| {m['shuffled_bars']['overlap']:.3f} | {m['random_notes']['overlap']:.3f} | {'met' if m['meets_target'] else 'missed'} "
            f"| {t['all_windows']['overlap']:.3f} |"
        )
    f = report["phrase_fid"]
    lines += [
        "",
        "![metric distributions](metrics.png)",
        "",
        "## Phrase FID",
        "",
        f"Generated vs {c['reference']}: **{f['generated']:.3f}** over {f['bars_compared']} non-empty bars each"
        f"{' (fewer than ' + str(MIN_FID_BARS) + ': generate more pieces for a stable figure)' if f['bars_compared'] < MIN_FID_BARS else ''}; "
        f"train vs {c['reference']} (ceiling): {f['train_vs_test']:.3f} over {f['train_bars_compared']}. "
        f"Generated phrases without notes: {f['empty_generated_phrases']}.",
    ]
    if report["controls"]:
        lines += ["", "## Control accuracy", "", "Each value of each control requested alone, re-extracted from the MIDI file by the "
                  "extractor that labels the training data."]
        if report["key_frame"]:
            lines += ["With this key-normalised prior the tonic is set by transposing the output, so the key figures "
                      "measure the mode and whether the extractor hears the intended tonic."]
        lines += ["", "| control | accuracy | requests |", "|---|---|---|"]
        for control, r in report["controls"].items():
            extra = (
                f" (or relative key: {r['accuracy_or_relative']:.3f}; notes in the requested scale: {r['notes_in_requested_scale']:.3f})"
                if control == "key" else ""
            )
            lines.append(f"| {control} | {r['accuracy']:.3f}{extra} | {r['requests']} |")
    lines += ["", f"All metrics meet the target: **{'yes' if report['all_metrics_meet_target'] else 'no'}**.", ""]
    return "\n".join(lines)
