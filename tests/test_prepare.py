"""The `prepare` pipeline: bad inputs, resumability, splits, duplicates, styles, crashes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import midi_factory
from conftest import FIXTURE_FILES
from musemorphic.data import prepare as prep
from musemorphic.data.dataset import PhraseDataset
from musemorphic.data.midi_io import MidiSource, find_midi_files
from score_utils import notes_of, same_resolution

EXPECTED_SKIPS = {
    "zero_bytes.mid": "empty file",
    "text_file.mid": "not a MIDI file",
    "truncated.mid": "truncated",
    "header_only.mid": "header only",
    "no_notes.mid": "no notes",
    "ten_thousand_bars.mid": "absurd length: 10000 bars",
}
EXPECTED_SONGS = {
    "drums_only.mid",
    "seven_eight.mid",
    "five_four_tempo_changes.mid",
    "zero_length_notes.mid",
    "format0_multichannel.mid",
    "chanson_été_♪.mid",
}


@pytest.fixture(scope="module")
def messy_corpus(tmp_path_factory) -> Path:
    """Every bad and edge case, plus a non-ASCII name, in nested folders with odd suffixes."""
    root = tmp_path_factory.mktemp("corpus") / "messy"
    (root / "deep" / "er").mkdir(parents=True)
    for name, build in midi_factory.CASES.items():
        (root / f"{name}.mid").write_bytes(build())
    (root / "chanson_été_♪.mid").write_bytes(midi_factory.simple_song(seed=1))
    (root / "deep" / "er" / "UPPER.MIDI").write_bytes(midi_factory.simple_song(seed=2))
    (root / "deep" / "notes.txt").write_text("not a MIDI suffix, never looked at")
    return root


@pytest.fixture(scope="module")
def messy_dataset(messy_corpus, tmp_path_factory) -> tuple[Path, prep.PrepareReport]:
    out = tmp_path_factory.mktemp("datasets") / "messy"
    report = prep.prepare([messy_corpus], out, prep.PrepareConfig(workers=2))
    return out, report


def test_finds_midi_files_by_suffix_in_any_case_and_depth(messy_corpus):
    names = {s.path.name for s in find_midi_files([messy_corpus])}
    assert "UPPER.MIDI" in names and "notes.txt" not in names
    assert len(names) == len(midi_factory.CASES) + 2


def test_every_bad_input_is_reported_with_its_reason_and_the_build_completes(messy_dataset):
    out, report = messy_dataset
    skipped = {Path(row["path"]).name: row["reason"] for row in json.loads((out / "skipped.json").read_text())}
    assert set(skipped) == set(EXPECTED_SKIPS)
    for name, reason in EXPECTED_SKIPS.items():
        assert reason in skipped[name], (name, skipped[name])
    songs = {Path(s["path"]).name for s in PhraseDataset(out, split=None).shard.songs}
    assert songs == EXPECTED_SONGS | {"UPPER.MIDI"}
    assert report.songs == len(songs) and report.skipped == len(EXPECTED_SKIPS)


def test_edge_cases_are_read_correctly(messy_dataset):
    out, _ = messy_dataset
    data = PhraseDataset(out, split=None)
    by_name = {Path(s["path"]).name: (i, s) for i, s in enumerate(data.shard.songs)}
    _, drums = by_name["drums_only.mid"]
    assert drums["programs"] == [-1]
    _, seven = by_name["seven_eight.mid"]
    assert seven["controls"]["time_signature"] == "7/8" and seven["n_bars"] == 8
    i, five = by_name["five_four_tempo_changes.mid"]
    assert five["controls"]["time_signature"] == "5/4"
    bar_tempo = data.bar_controls(i)["bar_tempo"]
    # written: 100 BPM, 130 from bar 2, 80 from bar 5; quantized to the 4 BPM tempo bins
    assert bar_tempo[:2] == pytest.approx([100, 100], abs=2.5)
    assert bar_tempo[2:5] == pytest.approx([130] * 3, abs=2.5)
    assert bar_tempo[5:] == pytest.approx([80] * 3, abs=2.5)
    _, fmt0 = by_name["format0_multichannel.mid"]
    assert sorted(fmt0["programs"]) == [-1, 0, 33]


def test_dataset_grid_decodes_to_the_quantized_song(messy_dataset, messy_corpus, tokenizer):
    import symusic

    from musemorphic.data.tokenizer import SongTokens, TrackTokens

    out, _ = messy_dataset
    data = PhraseDataset(out, split=None)
    for i, meta in enumerate(data.shard.songs):
        song = SongTokens([TrackTokens(p, [b.tolist() for b in bars]) for p, bars in data.song_tracks(i)], [])
        decoded = tokenizer.decode_song(song)
        reference = tokenizer.preprocess(symusic.Score(meta["path"]))
        assert notes_of(decoded) == notes_of(same_resolution(reference, decoded)), meta["path"]


def test_every_track_bar_slot_is_recorded_including_empty_ones(tmp_path):
    bar = 4 * midi_factory.TPQ
    melody = [(b * bar, bar // 2, 72, 90, 0) for b in range(8)]  # every bar
    bass = [(b * bar, bar, 36, 90, 1) for b in (1, 2, 6)]  # bars 1, 2 and 6 only
    data = midi_factory.midi_bytes(
        [midi_factory.conductor(4, 4, 120), midi_factory.notes_track(melody), midi_factory.notes_track(bass)]
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "gaps.mid").write_bytes(data)
    prep.prepare([corpus], tmp_path / "ds", prep.PrepareConfig(workers=1))
    dataset = PhraseDataset(tmp_path / "ds", split=None)
    cols = dataset.shard.columns
    assert dataset.shard.songs[0]["n_bars"] == 8
    assert cols["phrase_track"].tolist() == [0] * 8 + [1] * 8
    assert cols["phrase_bar"].tolist() == list(range(8)) * 2
    assert cols["phrase_n_notes"].tolist() == [1] * 8 + [0, 1, 1, 0, 0, 0, 1, 0]
    bass_bars = dataset.song_grid(0)[1]
    for b in (3, 7):  # a gap between notes, and padding after the track's last note
        assert dataset.tokenizer.token_names(bass_bars[b]) == ["Bar_None", "TimeSig_4/4"]


def test_rerun_skips_finished_files_and_picks_up_new_ones(messy_corpus, tmp_path):
    out = tmp_path / "ds"
    corpus = tmp_path / "corpus"
    shutil.copytree(messy_corpus, corpus)
    first = prep.prepare([corpus], out, prep.PrepareConfig(workers=1))
    shards_before = {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.npz")}
    again = prep.prepare([corpus], out, prep.PrepareConfig(workers=1))
    assert again.new_songs == 0 and again.new_skipped == 0
    assert again.songs == first.songs and again.skipped == first.skipped
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").glob("*.npz")} == shards_before
    (corpus / "late_arrival.mid").write_bytes(midi_factory.simple_song(seed=7))
    third = prep.prepare([corpus], out, prep.PrepareConfig(workers=1))
    assert third.new_songs == 1 and third.songs == first.songs + 1


def test_interrupted_build_leaves_no_partial_shard(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(6):
        (corpus / f"song{seed}.mid").write_bytes(midi_factory.simple_song(seed=seed))
    out = tmp_path / "ds"
    config = prep.PrepareConfig(workers=1, shard_songs=2)

    def interrupt(done, total):
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prep.prepare([corpus], out, config, progress=interrupt)
    assert len(list((out / "shards").glob("*.npz"))) == 2
    assert not list(out.rglob("*.tmp"))
    report = prep.prepare([corpus], out, config)
    assert report.songs == 6 and report.new_songs == 2


def test_duplicates_are_reported_not_prepared_twice(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.mid").write_bytes(midi_factory.simple_song(seed=3))
    (corpus / "b_copy.mid").write_bytes(midi_factory.simple_song(seed=3))
    report = prep.prepare([corpus], tmp_path / "ds", prep.PrepareConfig(workers=1))
    skipped = json.loads((tmp_path / "ds" / "skipped.json").read_text())
    assert report.songs == 1
    assert skipped == [{"path": str(corpus / "b_copy.mid"), "reason": "duplicate of corpus/a.mid"}]


def test_split_is_deterministic_and_song_level(messy_dataset):
    paths = [f"set/song_{i}.mid" for i in range(2000)]
    splits = [prep.split_for(p) for p in paths]
    assert splits == [prep.split_for(p) for p in paths]
    share = {name: splits.count(name) / len(paths) for name in prep.SPLITS}
    assert 0.85 < share["train"] < 0.95 and 0.02 < share["test"] < 0.08 and 0.02 < share["valid"] < 0.08
    out, _ = messy_dataset
    for split in prep.SPLITS:
        data = PhraseDataset(out, split=split)
        songs_of_phrases = set(data.shard.columns["phrase_song"][data.phrase_indices].tolist())
        assert songs_of_phrases == set(data.song_indices.tolist())
        assert all(data.shard.songs[s]["split"] == split for s in songs_of_phrases)


def test_style_comes_from_top_folder_or_csv(tmp_path):
    root = tmp_path / "corpus"
    (root / "jazz" / "sub").mkdir(parents=True)
    (root / "jazz" / "sub" / "x.mid").write_bytes(b"")
    (root / "y.mid").write_bytes(b"")
    sources = {s.path.name: s for s in find_midi_files([root])}
    assert prep.style_for(sources["x.mid"], {}) == "jazz"
    assert prep.style_for(sources["y.mid"], {}) == "corpus"
    csv_path = tmp_path / "styles.csv"
    csv_path.write_text("path,style\ny.mid,bossa\n")
    assert prep.style_for(sources["y.mid"], prep.read_styles_csv(csv_path)) == "bossa"
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file,genre\ny.mid,x\n")
    with pytest.raises(ValueError, match="path.*style"):
        prep.read_styles_csv(bad_csv)


_prepare_or_skip = prep._prepare_or_skip


def _die_on_crash_files(job):
    if "crash" in job[0].path.name:
        os._exit(1)  # what a segfault in the MIDI parser looks like from outside
    return _prepare_or_skip(job)


def test_a_file_that_kills_its_worker_is_reported_and_the_rest_is_prepared(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "_prepare_or_skip", _die_on_crash_files)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(5):
        (corpus / f"s{i}.mid").write_bytes(midi_factory.simple_song(seed=i))
    (corpus / "s2_crash.mid").write_bytes(midi_factory.simple_song(seed=9))
    report = prep.prepare([corpus], tmp_path / "ds", prep.PrepareConfig(workers=2))
    skipped = json.loads((tmp_path / "ds" / "skipped.json").read_text())
    assert report.songs == 5
    assert [Path(s["path"]).name for s in skipped] == ["s2_crash.mid"]
    assert "crashed" in skipped[0]["reason"]


def test_tokenizer_and_density_thresholds_travel_with_the_dataset(messy_dataset):
    out, _ = messy_dataset
    summary = json.loads((out / "dataset.json").read_text())
    data = PhraseDataset(out, split=None)
    assert data.tokenizer.vocab_size == summary["tokenizer"]["vocab_size"]
    low, high = summary["density_thresholds"]
    assert 0 < low <= high
    assert summary["songs"]["train"] + summary["songs"]["valid"] + summary["songs"]["test"] == len(data.shard.songs)
    levels = data.bar_controls(0)["bar_density_level"]
    assert set(np.unique(levels)) <= {0, 1, 2}


def test_relative_path_names_the_corpus_root(tmp_path):
    src = MidiSource(root=tmp_path / "pop", path=tmp_path / "pop" / "a" / "b.mid")
    assert src.relative == "pop/a/b.mid"


def test_song_level_augmentation_moves_all_pitched_tracks_together(messy_dataset):
    from musemorphic.data.augment import AugmentConfig, Augmenter

    out, _ = messy_dataset
    data = PhraseDataset(out, split=None)
    song = next(i for i, s in enumerate(data.shard.songs) if s["source"].endswith("format0_multichannel.mid"))
    augmenter = Augmenter(data.tokenizer, AugmentConfig(velocity_scale=(1.0, 1.0), tempo_stretch=(1.0, 1.0)))
    rng = np.random.default_rng(5)
    grid, aug = data.augmented_song(song, augmenter, rng)
    original = data.song_grid(song)
    assert aug.transpose != 0
    pitch = {i: int(t.split("_")[1]) for t, i in data.tokenizer.base_vocab.items() if t.startswith("Pitch_")}

    def described(ids, shift=0):
        return [("pitch", pitch[i] + shift) if i in pitch else ("token", i) for i in ids.tolist()]

    for program, before, after in zip(data.shard.songs[song]["programs"], original, grid):
        shift = 0 if program == -1 else aug.transpose
        assert [described(bar, shift) for bar in before] == [described(bar) for bar in after]


def test_a_given_tokenizer_must_write_this_versions_base_tokens(tmp_path):
    from musemorphic.data.tokenizer import PhraseTokenizer

    other = PhraseTokenizer()
    other.base_vocab = {**other.base_vocab, "Pitch_128": len(other.base_vocab)}  # as another REMI+ configuration would
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.mid").write_bytes(midi_factory.simple_song(n_bars=4, seed=0))
    with pytest.raises(ValueError, match="base vocabulary"):
        prep.prepare([tmp_path / "corpus"], tmp_path / "ds", prep.PrepareConfig(workers=1), tokenizer=other)
    assert not (tmp_path / "ds").exists()  # refused before anything is written


def test_a_split_restricted_to_one_style_keeps_only_its_songs(messy_dataset):
    dataset = PhraseDataset(messy_dataset[0], split=None)
    styles = sorted({s["style"] for s in dataset.songs})
    parts = [dataset.of_style(style) for style in styles]
    assert sum(len(part) for part in parts) == len(dataset)
    assert sum(len(part.songs) for part in parts) == len(dataset.songs)
    for style, part in zip(styles, parts):
        assert {s["style"] for s in part.songs} == {style}
        songs = {int(i) for i in dataset.shard.columns["phrase_song"][part.phrase_indices]}
        assert songs == {int(i) for i in part.song_indices}
    assert len(dataset.of_style("no such style")) == 0
    assert len(styles) > 1  # "messy" and "deep": the restriction is tested on more than one style
