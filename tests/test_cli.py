"""The command line: the README's main job and the data commands."""

from __future__ import annotations

import json

import symusic
from typer.testing import CliRunner

import midi_factory
from musemorphic.cli import app

runner = CliRunner()


def test_demo_writes_a_transposed_song(tmp_path):
    result = runner.invoke(app, ["demo", "-o", str(tmp_path / "demo"), "--transpose", "3"])
    assert result.exit_code == 0, result.output
    written = list((tmp_path / "demo").glob("*_transposed+3.mid"))
    assert len(written) == 1
    assert symusic.Score(str(written[0])).note_num() > 100


def test_prepare_then_retrain_the_tokenizer(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(3):
        (corpus / f"s{seed}.mid").write_bytes(midi_factory.simple_song(n_bars=16, seed=seed))
    (corpus / "broken.mid").write_bytes(midi_factory.truncated())
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", str(corpus), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "3 songs" in result.output and "1 files skipped" in result.output
    result = runner.invoke(app, ["tokenizer", "train", str(out), "--vocab-size", "520"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "tokenizer.json").read_text())  # valid JSON, rewritten
    assert "BPE vocabulary 520" in result.output


def test_prepare_names_a_missing_folder(tmp_path):
    result = runner.invoke(app, ["prepare", str(tmp_path / "nowhere"), "-o", str(tmp_path / "ds")])
    assert result.exit_code != 0
    assert "nowhere" in str(result.exception) or "nowhere" in result.output
