"""`musemorphic prepare`: turn folders of MIDI into a resumable, sharded phrase dataset.

Layout of a dataset folder:
  shards/shard-NNNNN.npz   prepared songs (see `shards.py`), written atomically
  skipped.json             every file that was not used, with the reason
  tokenizer.json           the REMI+ tokenizer with its BPE (trained on the train split)
  dataset.json             summary: splits, style vocabulary, density thresholds, tokenizer info

A re-run skips every file already in a shard or in skipped.json, so an interrupted build
resumes where it stopped. Files are parsed in worker processes: a file that crashes its
worker is retried alone and then reported, never ending the build.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from musemorphic.data import controls
from musemorphic.data.midi_io import Limits, MidiError, MidiSource, find_midi_files, load_score
from musemorphic.data.shards import PreparedSong, build_shard, read_shard_songs, write_shard
from musemorphic.data.tokenizer import PhraseTokenizer, default_bpe_vocab_size

SPLITS = ("train", "valid", "test")
DATASET_VERSION = 1
SUSPECT_WINDOW = 16  # files retried one by one after a worker crash


@dataclass
class PrepareConfig:
    workers: int = 2
    shard_songs: int = 256  # songs per shard
    limits: Limits = field(default_factory=Limits)
    vocab_size: int | None = None  # BPE vocabulary; None = chosen from the corpus size
    bpe_max_phrases: int = 100_000  # train-split phrases sampled for BPE training
    styles_csv: Path | None = None  # columns: path, style
    valid_percent: int = 5
    test_percent: int = 5


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class PrepareReport:
    songs: int
    phrases: int
    skipped: int
    new_songs: int
    new_skipped: int
    reasons: dict[str, int]


def split_for(relative_path: str, valid_percent: int = 5, test_percent: int = 5) -> str:
    """Deterministic song-level split from a hash of the song's path."""
    bucket = int(hashlib.sha1(relative_path.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + valid_percent:
        return "valid"
    return "train"


def song_id(relative_path: str) -> str:
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def style_for(source: MidiSource, styles: dict[str, str]) -> str:
    """Style tag: from the metadata CSV (by relative path or file name), else the top folder."""
    relative = source.relative
    for key in (relative, relative.split("/", 1)[-1], source.path.name):
        if key in styles:
            return styles[key]
    parts = relative.split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def read_styles_csv(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"path", "style"} <= set(rows[0]):
        raise ValueError(f"{path}: a styles CSV needs the columns 'path' and 'style'")
    return {row["path"]: row["style"] for row in rows}


# ---- worker side -------------------------------------------------------------------
_TOKENIZER: PhraseTokenizer | None = None


def _worker_tokenizer() -> PhraseTokenizer:
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = PhraseTokenizer()
    return _TOKENIZER


def prepare_song(source: MidiSource, style: str, limits: Limits, split: str) -> PreparedSong:
    """Load, quantize, tokenize and label one file (raises MidiError when unusable)."""
    from miditok.utils import get_bars_ticks

    tok = _worker_tokenizer()
    data_hash = hashlib.sha1(source.path.read_bytes()).hexdigest()
    score = tok.preprocess(load_score(source.path, limits))
    if score.note_num() == 0:
        raise MidiError(source.path, "no notes left after quantization")
    bar_ticks = [int(t) for t in get_bars_ticks(score)]
    if len(bar_ticks) > limits.max_bars:
        raise MidiError(source.path, f"absurd length: {len(bar_ticks)} bars (limit {limits.max_bars})")
    song = tok.encode_song(score, preprocessed=True)
    ctrl = controls.extract_controls(score, song.bar_ticks)
    n_notes = np.zeros((len(song.tracks), song.n_bars), dtype=np.int32)
    bar_edges = np.asarray(song.bar_ticks)
    for t, track in enumerate(score.tracks):
        onsets = track.notes.numpy()["time"]
        bar_of_note = np.searchsorted(bar_edges, onsets, side="right") - 1
        n_notes[t] = np.bincount(bar_of_note, minlength=song.n_bars)[: song.n_bars]
    relative = source.relative
    meta = {
        "id": song_id(relative),
        "source": relative,
        "path": str(source.path),
        "sha1": data_hash,
        "split": split,
        "style": style,
        "programs": [t.program for t in song.tracks],
        "n_bars": song.n_bars,
        "n_notes": int(score.note_num()),
        "controls": ctrl.song_summary(),
    }
    bars = {
        "bar_tempo": ctrl.bar_tempo,
        "bar_time_signature": ctrl.bar_time_signature,
        "bar_density": ctrl.bar_density,
        "bar_key": ctrl.bar_key,
        "bar_n_notes": ctrl.bar_n_notes,
    }
    return PreparedSong(
        meta=meta,
        programs=meta["programs"],
        phrases=[t.bars for t in song.tracks],
        phrase_n_notes=n_notes,
        bars=bars,
    )


def _prepare_or_skip(job: tuple[MidiSource, str, Limits, str]) -> PreparedSong | Skipped:
    source = job[0]
    try:
        return prepare_song(*job)
    except MidiError as err:
        return Skipped(str(source.path), err.reason)
    except Exception as err:  # any other failure is this file's problem, not the build's
        return Skipped(str(source.path), f"{type(err).__name__}: {err}")


def _run_jobs(jobs: Sequence[tuple], workers: int) -> Iterator[PreparedSong | Skipped]:
    """Results in job order; a job that kills its worker process is reported, not fatal."""
    done = 0
    while done < len(jobs):
        try:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_prepare_or_skip, jobs[done:], chunksize=2):
                    done += 1
                    yield result
        except BrokenProcessPool:
            for job in jobs[done : done + SUSPECT_WINDOW]:
                done += 1
                yield _run_isolated(job)


def _run_isolated(job: tuple) -> PreparedSong | Skipped:
    try:
        with ProcessPoolExecutor(max_workers=1) as pool:
            return pool.submit(_prepare_or_skip, job).result()
    except BrokenProcessPool:
        return Skipped(str(job[0].path), "crashed the MIDI parser (worker process died)")


# ---- main side ---------------------------------------------------------------------
class DatasetBuilder:
    """Resumable state of one dataset folder."""

    def __init__(self, out_dir: Path, config: PrepareConfig):
        self.out_dir = Path(out_dir)
        self.config = config
        self.shard_dir = self.out_dir / "shards"
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.skipped: list[Skipped] = self._read_skipped()
        self.done_paths: set[str] = {s.path for s in self.skipped}
        self.sha1_to_source: dict[str, str] = {}
        self.n_shards = 0
        for path in self.shard_paths():
            for song in read_shard_songs(path):
                self.done_paths.add(song["path"])
                self.sha1_to_source[song["sha1"]] = song["source"]
            self.n_shards += 1

    def shard_paths(self) -> list[Path]:
        return sorted(self.shard_dir.glob("shard-*.npz"))

    def _read_skipped(self) -> list[Skipped]:
        path = self.out_dir / "skipped.json"
        if not path.exists():
            return []
        return [Skipped(**row) for row in json.loads(path.read_text())]

    def add(self, songs: list[PreparedSong], skipped: list[Skipped]) -> None:
        """Persist a batch: the shard first, then the skip report (both atomic)."""
        if songs:
            path = self.shard_dir / f"shard-{self.n_shards:05d}.npz"
            write_shard(path, build_shard(songs))
            self.n_shards += 1
        self.skipped.extend(skipped)
        _write_json(self.out_dir / "skipped.json", [asdict(s) for s in self.skipped])


def prepare(
    roots: Sequence[str | Path],
    out_dir: str | Path,
    config: PrepareConfig = PrepareConfig(),
    progress: Callable[[int, int], None] | None = None,
    tokenizer: PhraseTokenizer | None = None,
) -> PrepareReport:
    """Build (or resume) a dataset from MIDI folders; returns counts of what happened.

    `progress(done, total)` is called after every file. `tokenizer`: use this (trained)
    tokenizer instead of training BPE on the train split.
    """
    if tokenizer is not None:
        check_base_vocabulary(tokenizer)
    sources = find_midi_files(roots)
    builder = DatasetBuilder(Path(out_dir), config)
    styles = read_styles_csv(config.styles_csv)
    todo = [s for s in sources if str(s.path) not in builder.done_paths]
    jobs = [
        (s, style_for(s, styles), config.limits, split_for(s.relative, config.valid_percent, config.test_percent))
        for s in todo
    ]
    songs: list[PreparedSong] = []
    skipped: list[Skipped] = []
    new_songs = 0
    for i, result in enumerate(_run_jobs(jobs, max(1, config.workers))):
        if isinstance(result, PreparedSong):
            original = builder.sha1_to_source.get(result.meta["sha1"])
            if original is not None:
                skipped.append(Skipped(result.meta["path"], f"duplicate of {original}"))
            else:
                builder.sha1_to_source[result.meta["sha1"]] = result.meta["source"]
                songs.append(result)
                new_songs += 1
        else:
            skipped.append(result)
        if len(songs) >= config.shard_songs:
            builder.add(songs, skipped)
            songs, skipped = [], []
        if progress is not None:
            progress(i + 1, len(jobs))
    builder.add(songs, skipped)
    return finalize(builder, tokenizer, new_songs=new_songs, new_skipped=len(jobs) - new_songs)


def finalize(
    builder: DatasetBuilder,
    tokenizer: PhraseTokenizer | None,
    new_songs: int,
    new_skipped: int,
) -> PrepareReport:
    """Corpus-level statistics, the BPE tokenizer and dataset.json."""
    from musemorphic.data.dataset import load_shards

    out_dir = builder.out_dir
    shard = load_shards(out_dir)
    split = np.array([s["split"] for s in shard.songs])
    train_songs = np.flatnonzero(split == "train")
    bar_is_train = np.isin(shard.columns["bar_song"], train_songs)
    thresholds = controls.density_thresholds(shard.columns["bar_density"][bar_is_train])
    tokenizer_path = out_dir / "tokenizer.json"
    summary_path = out_dir / "dataset.json"
    previous = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    train_ids = sorted(shard.songs[i]["id"] for i in train_songs)
    train_digest = hashlib.sha1(" ".join(train_ids).encode()).hexdigest()[:16]
    if tokenizer is None and tokenizer_path.exists() and previous.get("bpe_train_digest") == train_digest:
        tokenizer = PhraseTokenizer.load(tokenizer_path)  # the train split has not changed
    else:
        if tokenizer is None:
            tokenizer = train_tokenizer(shard, train_songs, builder.config)
        tokenizer.save(tokenizer_path)
    reasons = Counter(_reason_kind(s.reason) for s in builder.skipped)
    summary = {
        "version": DATASET_VERSION,
        "songs": {name: int((split == name).sum()) for name in SPLITS},
        "phrases": int(shard.n_phrases),
        "styles": sorted({s["style"] for s in shard.songs}),
        "density_thresholds": [float(x) for x in thresholds],
        "tokenizer": {"vocab_size": tokenizer.vocab_size, "base_vocab_size": tokenizer.base_vocab_size},
        "bpe_train_digest": train_digest,
        "skipped": len(builder.skipped),
        "skipped_reasons": dict(reasons),
    }
    _write_json(summary_path, summary)
    return PrepareReport(
        songs=len(shard.songs),
        phrases=int(shard.n_phrases),
        skipped=len(builder.skipped),
        new_songs=new_songs,
        new_skipped=new_skipped,
        reasons=dict(reasons),
    )


def check_base_vocabulary(tokenizer: PhraseTokenizer) -> None:
    """ValueError unless a given tokenizer's base tokens are this version's, which the shards are written in."""
    if tokenizer.base_vocab != PhraseTokenizer().base_vocab:
        raise ValueError("the given tokenizer's base vocabulary differs from this version's REMI+ tokens; the shards are written in the latter")


def train_tokenizer(shard, train_songs: np.ndarray, config: PrepareConfig) -> PhraseTokenizer:
    """A fresh tokenizer with BPE learned from (a seeded sample of) train-split phrases."""
    tokenizer = PhraseTokenizer()
    phrase_is_train = np.isin(shard.columns["phrase_song"], train_songs)
    phrase_is_train &= shard.columns["phrase_n_notes"] > 0
    candidates = np.flatnonzero(phrase_is_train)
    if len(candidates) == 0:
        return tokenizer  # nothing to learn from: base vocabulary only
    if len(candidates) > config.bpe_max_phrases:
        candidates = np.sort(np.random.default_rng(0).choice(candidates, config.bpe_max_phrases, replace=False))
    vocab_size = config.vocab_size or default_bpe_vocab_size(len(train_songs), tokenizer.base_vocab_size)
    tokenizer.train_bpe((shard.phrase(i).tolist() for i in candidates), vocab_size)
    return tokenizer


def _reason_kind(reason: str) -> str:
    """Group skip reasons for the summary ("duplicate of X" -> "duplicate")."""
    if reason.startswith("duplicate of"):
        return "duplicate"
    return reason.split(":")[0]


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False))
    os.replace(tmp, path)
