"""`eval generate`: the report end to end on the bundled fixtures with tiny models."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import FIXTURES
from musemorphic.cli import app
from musemorphic.data.dataset import PhraseDataset
from musemorphic.evaluation.distributions import compare
from musemorphic.evaluation.generation_report import (
    GenerationEvalConfig,
    evaluate_generation,
    excerpt_draw,
    generate_pieces,
    median_comparison,
)
from musemorphic.evaluation.music_metrics import METRICS
from musemorphic.generation.generate import MusicGenerator
from musemorphic.training.latent_mamba import build_latent_mamba
from musemorphic.training.phrase_vae import build_phrase_vae


@pytest.fixture(scope="module")
def split_dataset_dir(tmp_path_factory):
    """The fixtures prepared with a test split (the default 5% leaves none of six songs)."""
    from musemorphic.data.prepare import PrepareConfig, prepare

    out = tmp_path_factory.mktemp("split_dataset")
    prepare([FIXTURES], out, PrepareConfig(workers=1, valid_percent=0, test_percent=40))
    assert len(PhraseDataset(out, "test").song_indices) > 0 and len(PhraseDataset(out, "train").song_indices) > 0
    return out


def test_report_compares_every_set_and_checks_controls(split_dataset_dir, tmp_path):
    (tmp_path / "again").mkdir()
    dataset = PhraseDataset(split_dataset_dir, split=None)
    torch.manual_seed(0)
    codec = build_phrase_vae(dataset.tokenizer, "tiny", d_latent=8, max_len=24)
    prior = build_latent_mamba(dataset, "tiny", d_latent=8)
    generator = MusicGenerator(codec, dataset.tokenizer, prior, default_programs=[0])
    config = GenerationEvalConfig(pieces=2, bars=4, train_songs=2, control_seeds=1, control_bars=1)
    report = evaluate_generation(generator, split_dataset_dir, tmp_path, config)
    songs, _, _, trailing = generate_pieces(generator, tmp_path / "again", config, lambda *args: None)
    assert [len(bars) for bars in songs] == [config.bars] * config.pieces  # silent ends restored

    assert sorted(p.name for p in (tmp_path / "pieces").iterdir()) == ["piece_000.mid", "piece_001.mid"]
    windows = report["windows"]
    assert windows["generated"] == 2  # every set is compared at the generated set's size
    assert windows["shuffled_bars"] == windows["random_notes"] == windows["train"] == 2
    assert windows["train_pool"] >= 2 and windows["draws"] == config.draws
    for name in METRICS:
        row = report["metrics"][name]
        for kind in ("generated", "shuffled_bars", "random_notes"):
            assert set(row[kind]) == {"mean", "overlap", "kl"}
        assert set(row["train"]) == {"mean", "overlap", "kl", "all_windows"}
        assert 0.0 <= row["train"]["overlap"] <= 1.0 and 0.0 <= row["train"]["all_windows"]["overlap"] <= 1.0
        assert row["meets_target"] == (
            row["generated"]["overlap"] >= row["train"]["overlap"] - 0.1 and row["generated"]["overlap"] > row["shuffled_bars"]["overlap"]
        )
    # the random-notes floor has no repeated groove and notes all over the range
    assert report["metrics"]["groove_consistency"]["random_notes"]["mean"] < report["metrics"]["groove_consistency"]["real_mean"]
    # tempo and meter are written as requested, so re-extraction must find them
    assert report["controls"]["tempo"]["accuracy"] == 1.0
    assert report["controls"]["time_signature"]["accuracy"] == 1.0
    assert report["controls"]["key"]["requests"] == 24
    assert report["phrase_fid"]["train_bars_compared"] > 0
    assert json.loads((tmp_path / "report.json").read_text())["metrics"].keys() == report["metrics"].keys()
    markdown = (tmp_path / "report.md").read_text()
    assert all(name in markdown for name in METRICS) and "Control accuracy" in markdown
    assert (tmp_path / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_excerpt_draws_are_runs_of_consecutive_windows_from_distinct_songs():
    songs = [["a0", "a1", "a2", "a3"], ["b0"], ["c0", "c1", "c2"]]
    flat = [w for song in songs for w in song]
    rng = np.random.default_rng(0)
    for _ in range(20):
        drawn = [flat[i] for i in excerpt_draw(songs, pieces=3, per_piece=2, rng=rng)]
        runs = {}
        for window in drawn:
            runs.setdefault(window[0], []).append(int(window[1]))
        assert set(runs) == {"a", "b", "c"}  # three pieces from three songs: each song once
        assert runs["b"] == [0]  # a one-window song gives what it has
        for song in ("a", "c"):
            assert len(runs[song]) == 2 and runs[song][1] == runs[song][0] + 1
    more = excerpt_draw(songs, pieces=5, per_piece=1, rng=rng)  # more pieces than songs: songs repeat
    assert len(more) == 5


def test_median_comparison_is_the_median_over_draws():
    rng = np.random.default_rng(1)
    real, sample = rng.normal(0, 1, 300), rng.normal(0.5, 1, 300)
    draws = [rng.choice(300, 40, replace=False) for _ in range(5)]
    overlaps = sorted(compare(real, sample[d]).overlap for d in draws)
    assert median_comparison(real, sample, draws)["overlap"] == pytest.approx(overlaps[2])


def test_cli_evaluates_the_shipped_model_as_json(split_dataset_dir, tmp_path):
    args = ["eval", "generate", "--data", str(split_dataset_dir), "-o", str(tmp_path / "report"), "--pieces", "1",
            "--bars", "2", "--train-songs", "2", "--control-seeds", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["windows"]["generated"] == 1 and report["controls"] == {}
    assert (tmp_path / "report" / "pieces" / "piece_000.mid").exists()


def test_a_dataset_without_a_test_split_is_refused_by_name(tmp_path):
    from musemorphic.data.prepare import PrepareConfig, prepare

    prepare([FIXTURES], tmp_path / "data", PrepareConfig(workers=1, valid_percent=0, test_percent=0))
    with pytest.raises(ValueError, match="the test split holds no songs"):
        evaluate_generation(None, tmp_path / "data", tmp_path / "report", GenerationEvalConfig())
    with pytest.raises(ValueError, match="the valid split holds no songs"):
        evaluate_generation(None, tmp_path / "data", tmp_path / "report", GenerationEvalConfig(reference="valid"))
    with pytest.raises(ValueError, match="test or valid"):
        evaluate_generation(None, tmp_path / "data", tmp_path / "report", GenerationEvalConfig(reference="train"))


def test_settings_are_chosen_against_the_valid_split_and_reported_against_test(tmp_path):
    from musemorphic.data.prepare import PrepareConfig, prepare

    prepare([FIXTURES], tmp_path / "data", PrepareConfig(workers=1, valid_percent=40, test_percent=40))
    dataset = PhraseDataset(tmp_path / "data", split=None)
    assert all(len(PhraseDataset(tmp_path / "data", s).song_indices) > 0 for s in ("train", "valid", "test"))
    torch.manual_seed(0)
    codec = build_phrase_vae(dataset.tokenizer, "tiny", d_latent=8, max_len=24)
    generator = MusicGenerator(codec, dataset.tokenizer, build_latent_mamba(dataset, "tiny", d_latent=8), default_programs=[0])
    config = GenerationEvalConfig(pieces=1, bars=4, train_songs=2, control_seeds=0)
    reports = {ref: evaluate_generation(generator, tmp_path / "data", tmp_path / ref, replace(config, reference=ref)) for ref in ("test", "valid")}
    assert reports["test"]["metrics"]["pitch_range"]["real_mean"] != reports["valid"]["metrics"]["pitch_range"]["real_mean"]
    piece = "pieces/piece_000.mid"
    assert (tmp_path / "test" / piece).read_bytes() == (tmp_path / "valid" / piece).read_bytes()  # the same music, measured twice
    assert "the valid split of" in (tmp_path / "valid" / "report.md").read_text()


def test_in_scale_share_counts_pitched_notes_in_the_requested_scale(tmp_path):
    import symusic

    from musemorphic.data import controls as ctl
    from musemorphic.data.midi_io import load_score
    from musemorphic.evaluation.control_accuracy import in_scale_share

    score = symusic.Score(480)
    piano, drums = symusic.Track(program=0), symusic.Track(program=0, is_drum=True)
    for i, pitch in enumerate((60, 62, 64, 66)):  # C D E F#
        piano.notes.append(symusic.Note(i * 480, 480, pitch, 80))
    drums.notes.append(symusic.Note(0, 120, 61, 80))  # C# on drums: not a pitch
    score.tracks.extend([piano, drums])
    score.dump_midi(str(tmp_path / "x.mid"))
    score = load_score(tmp_path / "x.mid")
    assert in_scale_share(score, ctl.parse_key("C major")) == 0.75
    assert in_scale_share(score, ctl.parse_key("G major")) == 1.0
    assert in_scale_share(score, ctl.parse_key("E minor")) == 1.0
    assert in_scale_share(score, ctl.parse_key("C minor")) == 0.5
