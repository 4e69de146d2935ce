"""Generation: bar timing against miditok, the streaming MIDI writer, reproducible output."""

from __future__ import annotations

import itertools

import pytest
import symusic
import torch

import midi_factory
from conftest import FIXTURE_FILES
from musemorphic.data.bar_timing import bar_notes, bar_ticks
from musemorphic.generation.generate import MusicGenerator, Request, requested_bpm
from musemorphic.generation.midi_writer import StreamingMidiWriter, channels_for
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.training.latent_mamba import build_latent_mamba
from musemorphic.training.loop import TrainConfig, train
from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae


@pytest.mark.parametrize("path", FIXTURE_FILES[:4], ids=lambda p: p.name)
def test_bar_notes_match_miditok_decoding(tokenizer, path):
    song = tokenizer.encode_song(symusic.Score(str(path)))
    decoded = tokenizer.decode_song(song)
    tpq = decoded.ticks_per_quarter
    for track, reference in zip(song.tracks, decoded.tracks):
        tick, mine = 0, []
        for bar in track.bars:
            ts, notes = bar_notes(tokenizer.token_names(bar), tpq)
            mine += [(tick + n.start, n.duration, n.pitch, n.velocity) for n in notes]
            tick += bar_ticks(tpq, ts)
        assert sorted(mine) == sorted((n.time, n.duration, n.pitch, n.velocity) for n in reference.notes)


def test_streaming_writer_is_valid_after_every_flush(tmp_path):
    path = tmp_path / "stream.mid"
    with StreamingMidiWriter(path, 480, programs=[0, 33, -1]) as writer:
        writer.tempo(0, 100)
        writer.time_signature(0, 3, 4)
        for bar in range(6):
            start = bar * 1440
            writer.note(0, start, 1440 * 2, 60 + bar, 90)  # crosses the next bar line
            writer.note(1, start + 480, 240, 40, 70)
            writer.note(2, start, 120, 36, 100)
            writer.flush(until=start + 1440)
            score = symusic.Score(str(path))
            onsets = sorted(n.time for t in score.tracks for n in t.notes if n.pitch == 36)
            assert onsets == [b * 1440 for b in range(bar + 1)]
    score = symusic.Score(str(path))
    assert score.note_num() == 18
    by_program = {(t.program, t.is_drum): t for t in score.tracks}
    assert {(0, False), (33, False)} <= set(by_program) and any(drum for _, drum in by_program)
    assert sorted(n.duration for n in by_program[(0, False)].notes) == [2880] * 6
    assert round(score.tempos[0].qpm) == 100 and score.time_signatures[0].numerator == 3


def test_channels_put_drums_on_ten():
    assert channels_for([0, -1, 5]) == [0, 9, 1]
    with pytest.raises(ValueError, match="pitched tracks"):
        channels_for([0] * 16)


@pytest.fixture(scope="module")
def generator(fixture_dataset, tmp_path_factory) -> MusicGenerator:
    """A briefly trained tiny codec (so decoded bars have notes) and an untrained tiny prior."""
    torch.manual_seed(0)
    codec = build_phrase_vae(fixture_dataset.tokenizer, "tiny", d_latent=16)
    batcher = PhraseBatcher(fixture_dataset, codec.config.max_len, nonempty_only=True)
    task = PhraseVAETask(codec, batcher, total_steps=150, batch_size=32, seed=0,
                         curriculum=CurriculumConfig(infill_fraction=0.0, ae_fraction=0.6))
    train(task, TrainConfig(out_dir=str(tmp_path_factory.mktemp("codec")), steps=150, lr=3e-3, warmup_steps=10, checkpoint_every=150))
    prior = build_latent_mamba(fixture_dataset, "tiny", d_latent=16)
    return MusicGenerator(codec, fixture_dataset.tokenizer, prior, default_programs=[0, 33])


def test_same_seed_same_midi_and_streaming_equals_batch(generator, tmp_path):
    request = Request(bars=6, seed=3, temperature=1.0)
    a = generator.write(request, tmp_path / "a.mid", chunk_bars=2, stream=True)
    b = generator.write(request, tmp_path / "b.mid", stream=False)
    assert a["bars"] == b["bars"] == 6
    assert symusic.Score(str(tmp_path / "a.mid")).note_num() > 0
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    generator.write(Request(bars=6, seed=4), tmp_path / "c.mid")
    assert (tmp_path / "c.mid").read_bytes() != (tmp_path / "a.mid").read_bytes()


def test_controls_are_parsed_and_checked(generator):
    classes = generator.control_classes(Request(tempo="96", key="D minor", time_signature="3/4", density="high", style="fixtures"))
    assert classes[0] == 3 and classes[1] == 14 and classes[3] == 2 and classes[4] == 0
    assert generator.control_classes(Request()) == [-1] * 5
    with pytest.raises(ValueError):
        generator.control_classes(Request(key="H major"))
    with pytest.raises(ValueError, match="style"):
        generator.control_classes(Request(style="polka"))
    assert requested_bpm("allegro") == pytest.approx(130) and requested_bpm(None) is None


def test_endless_generation_yields_bars_without_end(generator):
    bars = list(itertools.islice(generator.bars(Request(bars=None, seed=0)), 40))
    assert [b.index for b in bars] == list(range(40))
    assert all(len(b.phrases) == 2 for b in bars)


def test_continuation_takes_the_prompt_layout(generator, tmp_path):
    prompt = tmp_path / "prompt.mid"
    prompt.write_bytes(midi_factory.simple_song(n_bars=4))
    summary = generator.write(Request(bars=3, prompt=prompt), tmp_path / "cont.mid")
    assert summary["tracks"] == 2 and summary["bars"] == 3
    assert symusic.Score(str(tmp_path / "cont.mid")).ticks_per_quarter == 480


def test_interrupted_endless_run_leaves_a_valid_file(generator, tmp_path):
    path = tmp_path / "endless.mid"

    def interrupt_after_five(bar):
        if bar.index == 4:
            raise KeyboardInterrupt

    summary = generator.write(Request(bars=None, seed=1), path, chunk_bars=2, on_bar=interrupt_after_five)
    assert summary["bars"] == 5
    score = symusic.Score(str(path))
    assert score.note_num() > 0
    assert max(n.time for t in score.tracks for n in t.notes) < 5 * bar_ticks(480, (4, 4)) + 1
