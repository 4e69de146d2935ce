"""Rendering to audio: soundfont lookup, its error message, and a WAV that holds the music."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import symusic
from typer.testing import CliRunner

from musemorphic.audio import render
from musemorphic.audio.render import SoundfontNotFound, find_soundfont, render_wav
from musemorphic.cli import app

from conftest import FIXTURES
from sf2_factory import sine_soundfont


@pytest.fixture()
def sine_sf2(tmp_path):
    path = tmp_path / "sine.sf2"
    path.write_bytes(sine_soundfont())
    return path


def read_wav(path):
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, w.getnchannels())
        return frames, w.getframerate()


def test_render_writes_stereo_audio_as_long_as_the_music(sine_sf2, tmp_path):
    midi = FIXTURES / "pop909_098.mid"
    out = render_wav(midi, tmp_path / "song.wav", sine_sf2, sample_rate=22050)
    frames, rate = read_wav(out)
    seconds = symusic.Score(str(midi)).to("second").end()
    assert rate == 22050 and frames.shape[1] == 2
    assert seconds <= len(frames) / rate <= seconds + 3  # plus the release tail
    level = np.abs(frames.astype(np.int32))
    assert level.max() <= 0.96 * 32767  # scaled below full scale, never clipped
    assert (level.max(axis=1) > 300).mean() > 0.5  # sounding most of the time


def test_soundfont_search_order_and_the_message_when_none_is_found(sine_sf2, tmp_path, monkeypatch):
    monkeypatch.delenv(render.SOUNDFONT_ENV, raising=False)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    monkeypatch.setattr(render, "SEARCH_DIRS", (str(empty),))
    with pytest.raises(SoundfontNotFound, match="fluid-soundfont-gm"):
        find_soundfont()
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / "b.sf2").write_bytes(b"x")
    (shelf / "default-GM.sf2").write_bytes(b"x")
    monkeypatch.setattr(render, "SEARCH_DIRS", (str(empty), str(shelf)))
    assert find_soundfont() == shelf / "default-GM.sf2"  # a GM default before other files
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(sine_sf2))
    assert find_soundfont() == sine_sf2
    assert find_soundfont(shelf / "b.sf2") == shelf / "b.sf2"  # an explicit file wins
    with pytest.raises(SoundfontNotFound, match="missing.sf2: no such soundfont file"):
        find_soundfont(tmp_path / "missing.sf2")


def test_generate_renders_wav_next_to_the_midi(sine_sf2, tmp_path):
    runner = CliRunner()
    out = tmp_path / "song.mid"
    result = runner.invoke(app, ["generate", "-o", str(out), "--bars", "2", "--render", "wav", "--soundfont", str(sine_sf2)])
    assert result.exit_code == 0, result.output
    frames, _ = read_wav(out.with_suffix(".wav"))
    assert len(frames) > 0
    result = runner.invoke(app, ["generate", "-o", str(out), "--bars", "2", "--render", "mp3"])
    assert result.exit_code != 0 and "wav" in result.output
