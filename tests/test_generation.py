"""Generation: bar timing against miditok, the streaming MIDI writer, reproducible output."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import symusic
import torch

import midi_factory
from conftest import FIXTURE_FILES
from musemorphic.data.bar_timing import bar_notes, bar_ticks
from musemorphic.data.remi_grammar import parse_bar
from musemorphic.data.key_frame import normalizing_shift
from musemorphic.generation.generate import MusicGenerator, Request, requested_bpm
from musemorphic.generation.phrase_codec import encode_bars, pitch_groups
from musemorphic.generation.midi_writer import StreamingMidiWriter, channels_for
from musemorphic.data.controls import scale_pitch_classes
from musemorphic.generation.scale_lock import ScaleLock, scale_logit_bias
from musemorphic.generation.written_notes import TPQ, phrase_facts, sounded_classes
from musemorphic.models.latent_mamba import LatentMamba
from musemorphic.models.phrase_critic import PhraseCritic, PhraseCriticConfig
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
    """A briefly trained tiny codec (so decoded bars have notes) and an untrained tiny prior.

    The codec's KL is weighted strongly (beta 0.2 per phrase) so that the untrained prior's
    draws land where the codec's latents lie and decode to notes."""
    torch.manual_seed(0)
    codec = build_phrase_vae(fixture_dataset.tokenizer, "tiny", d_latent=16)
    batcher = PhraseBatcher(fixture_dataset, codec.config.max_len, nonempty_only=True)
    task = PhraseVAETask(codec, batcher, total_steps=150, batch_size=32, seed=0,
                         curriculum=CurriculumConfig(infill_fraction=0.0, ae_fraction=0.6, beta=0.2, beta_per="phrase"))
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


def test_a_silence_head_leaves_the_slots_it_draws_silent(generator, fixture_dataset, tmp_path, monkeypatch):
    torch.manual_seed(0)
    prior = build_latent_mamba(fixture_dataset, "tiny", d_latent=16, silence_head=True)
    g = MusicGenerator(generator.codec, generator.tokenizer, prior, default_programs=[0, 33])
    with torch.no_grad():
        prior.silence.bias.fill_(-30.0)  # never silent: every slot is decoded, as without the head
    bars = list(g.bars(Request(bars=4, seed=0)))
    assert sum(len(p) for b in bars for p in b.phrases) > len(bars) * 2
    read = []
    real_step = prior.step
    monkeypatch.setattr(prior, "step", lambda previous, *rest: (read.append(previous[0].clone()), real_step(previous, *rest))[1])
    with torch.no_grad():
        prior.silence.bias.fill_(30.0)  # always silent: nothing to decode, nothing written, nothing broken
    summary = g.write(Request(bars=4, seed=0), tmp_path / "quiet.mid")
    assert summary["bars"] == 4 and summary["silenced_phrases"] == 0
    assert symusic.Score(str(tmp_path / "quiet.mid")).note_num() == 0
    empty = encode_bars(g.codec, g.tokenizer, [g.tokenizer.empty_bar((4, 4))] * 2, [0, 33])
    torch.testing.assert_close(torch.stack(read[1:3]), empty)  # the prior reads each silent slot as its track's empty bar
    bars = list(g.bars(Request(bars=2, seed=0, time_signature="3/4")))
    assert all(b.time_signature == (3, 4) and b.phrases == [g.tokenizer.empty_bar((3, 4))] * 2 for b in bars)
    steered = MusicGenerator(g.codec, g.tokenizer, prior, [0, 33], critic=PhraseCritic(PhraseCriticConfig(d_latent=16, d_hidden=16)))
    assert steered.write(Request(bars=2, seed=0, key="D minor", density="high"), tmp_path / "steered.mid")["bars"] == 2


def test_a_slot_the_silence_head_draws_sounding_writes_notes(generator, fixture_dataset, monkeypatch):
    torch.manual_seed(0)
    prior = build_latent_mamba(fixture_dataset, "tiny", d_latent=16, silence_head=True)
    with torch.no_grad():
        prior.silence.bias.fill_(-30.0)  # every slot drawn sounding
    real_generate = generator.codec.generate
    eager = torch.zeros(generator.codec.config.vocab_size)
    eager[generator.codec.config.eos_id] = 8.0  # a codec that would rather end every bar at once

    def eager_generate(z, *args, logit_bias=None, **kwargs):
        return real_generate(z, *args, logit_bias=eager if logit_bias is None else logit_bias + eager, **kwargs)

    monkeypatch.setattr(generator.codec, "generate", eager_generate)
    tok = generator.tokenizer
    has_notes = lambda phrase: any(name.startswith("Pitch") for name in tok.token_names(phrase))
    plain = [p for b in generator.bars(Request(bars=4, seed=0)) for p in b.phrases]
    assert not any(has_notes(p) for p in plain)  # without a silence head an empty bar is the codec's to write
    with_head = MusicGenerator(generator.codec, tok, prior, default_programs=[0, 33])
    sounding = [has_notes(p) for b in with_head.bars(Request(bars=4, seed=0)) for p in b.phrases]
    assert sum(sounding) >= 0.75 * len(sounding)  # each writes a note; a broken one may still be salvaged to nothing


def test_a_request_without_a_temperature_takes_the_priors_own(generator, tmp_path):
    g = MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs)
    assert g.temperature(Request()) == 1.0 and g.temperature(Request(temperature=0.0)) == 0.0
    g.write(Request(bars=3, seed=1, temperature=0.5), tmp_path / "asked.mid")
    g.prior.config = dataclasses.replace(g.prior.config, temperature=0.5)
    try:
        assert g.temperature(Request()) == 0.5
        g.write(Request(bars=3, seed=1), tmp_path / "own.mid")
    finally:
        g.prior.config = dataclasses.replace(g.prior.config, temperature=1.0)
    assert (tmp_path / "own.mid").read_bytes() == (tmp_path / "asked.mid").read_bytes()


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


def test_continuation_takes_the_prompt_layout_and_tempo(generator, tmp_path):
    prompt = tmp_path / "prompt.mid"
    score = symusic.Score.from_midi(midi_factory.simple_song(n_bars=4))
    for tempo in score.tempos:
        tempo.qpm = 96.0
    score.dump_midi(str(prompt))
    summary = generator.write(Request(bars=3, prompt=prompt), tmp_path / "cont.mid")
    assert summary["tracks"] == 2 and summary["bars"] == 3
    written = symusic.Score(str(tmp_path / "cont.mid"))
    assert written.ticks_per_quarter == 480 and round(written.tempos[0].qpm) == 96  # the prompt's tempo
    generator.write(Request(bars=3, prompt=prompt, tempo="80"), tmp_path / "faster.mid")
    assert round(symusic.Score(str(tmp_path / "faster.mid")).tempos[0].qpm) == 80  # a request wins


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


@pytest.mark.parametrize("decode_temperature", [0.0, 1.0], ids=["greedy", "sampled"])
def test_batched_decoding_of_chunks_writes_the_same_music_as_bar_by_bar(generator, tmp_path, decode_temperature):
    request = Request(bars=7, seed=5, temperature=1.0)
    batch, tracks, temperature = generator.decode_phrases, len(generator.default_programs), generator.decode_temperature
    try:
        generator.decode_temperature = decode_temperature
        generator.decode_phrases = tracks  # one bar per batch
        generator.write(request, tmp_path / "one.mid")
        generator.decode_phrases = 4 * tracks + 1  # 7 bars: a chunk of 4, then a short one of 3
        assert generator.bars_per_batch(tracks) == 4
        generator.write(request, tmp_path / "four.mid")
    finally:
        generator.decode_phrases, generator.decode_temperature = batch, temperature
    assert (tmp_path / "one.mid").read_bytes() == (tmp_path / "four.mid").read_bytes()
    assert symusic.Score(str(tmp_path / "one.mid")).note_num() > 0


def test_sampled_decoding_writes_other_notes_from_the_same_latents(generator, tmp_path):
    g = MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs, decode_temperature=0.0)
    request = Request(bars=6, seed=2, temperature=1.0)
    g.write(request, tmp_path / "greedy.mid")
    sampled = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_temperature=1.0, decode_sampled="all")
    sampled.write(request, tmp_path / "sampled.mid")
    sampled.write(request, tmp_path / "again.mid")
    assert (tmp_path / "sampled.mid").read_bytes() == (tmp_path / "again.mid").read_bytes()
    assert _pitched_notes(tmp_path / "sampled.mid") != _pitched_notes(tmp_path / "greedy.mid")
    with pytest.raises(ValueError, match="decode_temperature"):
        MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_temperature=-0.5)
    with pytest.raises(ValueError, match="decode_sampled"):
        MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_sampled="rhythm")


def test_pitch_groups_join_tokens_that_differ_in_their_pitches_alone(tokenizer):
    groups = pitch_groups(tokenizer)
    assert groups.shape == (tokenizer.vocab_size,)
    skeleton = lambda i: [n.split("_")[0] if n.startswith("Pitch_") else n for n in tokenizer.token_names(tokenizer.bpe_decode([i]))]
    ids = {name: i for i, name in enumerate(tokenizer.token_names(range(tokenizer.base_vocab_size)))}
    assert groups[ids["Pitch_60"]] == groups[ids["Pitch_61"]] != groups[ids["PitchDrum_36"]]
    assert groups[ids["Position_0"]] != groups[ids["Position_4"]]
    for i in range(0, tokenizer.vocab_size, 7):
        same = (groups == groups[i]).nonzero()[:, 0].tolist()
        assert all(skeleton(j) == skeleton(i) for j in same)


def test_pitch_sampled_decoding_draws_only_pitches(generator, tmp_path):
    g = generator
    sampled = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_temperature=1.0, decode_sampled="pitches")
    groups = sampled.draw_groups(-1)
    torch.manual_seed(0)
    z = torch.randn(16, g.codec.config.d_latent)
    with torch.no_grad():
        greedy = g.codec.generate(z)
        drawn = g.codec.generate(z, temperature=1.0, token_groups=groups)
    diverged = [next((k for k, (a, b) in enumerate(zip(x, y)) if a != b), None) for x, y in zip(greedy, drawn)]
    assert any(k is not None for k in diverged)
    for x, y, k in zip(greedy, drawn, diverged):  # where a draw first leaves the greedy path, it swapped pitches alone
        if k is not None:
            assert groups[x[k]] == groups[y[k]]
    assert sampled.write(Request(bars=4, seed=3, temperature=1.0), tmp_path / "pitches.mid")["bars"] == 4


def test_in_scale_pitch_draws_never_move_to_or_from_a_note_outside_the_scale(generator):
    from musemorphic.data.controls import scale_pitch_classes
    from musemorphic.generation.scale_lock import outside_notes, pitch_class_notes

    g = generator
    in_scale = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_temperature=1.0, decode_sampled="scale-pitches")
    outside = outside_notes(pitch_class_notes(g.tokenizer), scale_pitch_classes(0)) > 0  # (V,) C major's
    groups = in_scale.draw_groups(0)
    assert outside.any() and all(int((groups == groups[i]).sum()) == 1 for i in outside.nonzero()[:, 0].tolist())
    assert torch.equal(in_scale.draw_groups(-1), MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_sampled="pitches").draw_groups(0))  # no key: as "pitches"
    torch.manual_seed(0)
    z = torch.randn(32, g.codec.config.d_latent)
    with torch.no_grad():
        greedy = g.codec.generate(z)
        drawn = g.codec.generate(z, temperature=1.0, token_groups=groups)
    moved = [(a, b) for x, y in zip(greedy, drawn) for a, b in zip(x, y) if a != b][:32]
    assert moved  # some pitches were drawn ...
    first = [next(((a, b) for a, b in zip(x, y) if a != b), None) for x, y in zip(greedy, drawn)]
    assert all(not outside[a] and not outside[b] for a, b in filter(None, first))  # ... inside the scale alone
    with pytest.raises(ValueError, match="decode_sampled"):
        MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, decode_sampled="some")


@pytest.fixture(scope="module")
def key_frame_generator(generator) -> MusicGenerator:
    """The same models, the prior marked as trained in the C major / A minor frame."""
    prior = LatentMamba(dataclasses.replace(generator.prior.config, key_normalized=True))
    prior.load_state_dict(generator.prior.state_dict(), strict=True)
    return MusicGenerator(generator.codec, generator.tokenizer, prior, generator.default_programs, scale_lock=0.0, scale_lock_welcome=0.0)


def _pitched_notes(path) -> list[tuple[int, int, int]]:
    score = symusic.Score(str(path))
    return sorted((n.time, n.duration, n.pitch) for t in score.tracks if not t.is_drum for n in t.notes)


def test_a_key_frame_prior_moves_its_music_to_the_requested_key(key_frame_generator, tmp_path):
    g = key_frame_generator
    assert g.control_classes(Request(key="C major")) == g.control_classes(Request(key="D major"))  # both C in the frame
    assert g.control_classes(Request(key="D minor"))[1] == 21  # A minor
    g.write(Request(bars=4, seed=2, key="C major"), tmp_path / "c.mid")
    g.write(Request(bars=4, seed=2, key="D major"), tmp_path / "d.mid")
    c, d = _pitched_notes(tmp_path / "c.mid"), _pitched_notes(tmp_path / "d.mid")
    assert c and [(t, dur, p + 2) for t, dur, p in c] == d


def test_a_key_frame_prior_continues_a_prompt_in_the_prompt_key(key_frame_generator, tmp_path):
    score = symusic.Score.from_midi(midi_factory.simple_song(n_bars=4))
    up = score.copy()
    for track in up.tracks:
        if not track.is_drum:
            for note in track.notes:
                note.pitch += 2
    score.dump_midi(str(tmp_path / "prompt.mid"))
    up.dump_midi(str(tmp_path / "prompt_up.mid"))
    keys = [key_frame_generator._prompt_latents(tmp_path / name)[2] for name in ("prompt.mid", "prompt_up.mid")]
    assert normalizing_shift(keys[0]) - normalizing_shift(keys[1]) == 2  # the frame undoes the move exactly
    key_frame_generator.write(Request(bars=3, seed=1, prompt=tmp_path / "prompt.mid"), tmp_path / "a.mid")
    key_frame_generator.write(Request(bars=3, seed=1, prompt=tmp_path / "prompt_up.mid"), tmp_path / "b.mid")
    a, b = _pitched_notes(tmp_path / "a.mid"), _pitched_notes(tmp_path / "b.mid")
    assert a and [(t, dur, p + 2) for t, dur, p in a] == b


def test_the_scale_lock_keeps_a_key_frame_prior_in_its_scale(key_frame_generator, tmp_path):
    g = key_frame_generator
    locked = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=50.0, scale_lock_memory=0)
    d_major = scale_pitch_classes(2)
    request = Request(bars=6, seed=2, key="D major")
    g.write(request, tmp_path / "free.mid")
    locked.write(request, tmp_path / "locked.mid")
    free, kept = _pitched_notes(tmp_path / "free.mid"), _pitched_notes(tmp_path / "locked.mid")
    assert any(p % 12 not in d_major for _, _, p in free)  # the tiny codec writes wrong notes...
    assert kept and all(p % 12 in d_major for _, _, p in kept)  # ...which the lock keeps out
    assert g.layout(request).frame_key == 0  # the frame's C major, moved to D major on the way out
    assert g.new_scale_lock(0) is None  # no lock, no bias


def _prompt_file(path, pitches) -> Path:
    """A one-track piano prompt of quarter notes at 120 BPM."""
    score = symusic.Score(480)
    track = symusic.Track(program=0)
    for i, pitch in enumerate(pitches):
        track.notes.append(symusic.Note(i * 480, 480, pitch, 80))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def test_the_scale_lock_follows_the_key_the_prior_writes_in(generator, key_frame_generator, tmp_path):
    chromatic = _prompt_file(tmp_path / "chromatic.mid", range(60, 72))  # a flat histogram: no key
    d_major = _prompt_file(tmp_path / "d.mid", [62, 64, 66, 67, 69, 71, 73, 74, 62, 66, 69, 74])
    assert key_frame_generator.layout(Request(prompt=chromatic)).frame_key == -1  # left untransposed: no C major to lock to
    assert key_frame_generator.layout(Request(prompt=chromatic, key="E minor")).frame_key == 0  # moved from the frame
    assert key_frame_generator.layout(Request(prompt=d_major)).frame_key == 0
    assert generator.layout(Request(prompt=d_major)).frame_key == 2  # a prior outside the frame keeps the prompt's key
    assert generator.layout(Request(prompt=d_major, key="F major")).frame_key == 5


def test_the_scale_lock_needs_a_scale(generator):
    locked = MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs, scale_lock=2.0, scale_lock_memory=0)
    assert locked.layout(Request()).frame_key == -1  # a prior outside the key frame, no key asked for
    assert locked.new_scale_lock(-1) is None
    assert locked.layout(Request(key="D minor")).frame_key == 14
    expected = scale_logit_bias(generator.tokenizer, scale_pitch_classes(14), 2.0)
    assert torch.equal(locked.new_scale_lock(14).bias(), expected)
    with pytest.raises(ValueError, match="scale_lock"):
        MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs, scale_lock=-1.0)
    with pytest.raises(ValueError, match="scale_lock_memory"):
        MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs, scale_lock_memory=-1)
    with pytest.raises(ValueError, match="scale_lock_welcome"):
        MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs, scale_lock_welcome=-1.0)


def test_salvage_keeps_the_notes_of_broken_bars(generator):
    g = generator
    strict = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, salvage=False)
    request = Request(bars=24, seed=7)
    kept, dropped = list(g.bars(request)), list(strict.bars(request))
    n_dropped = sum(len(bar.invalid_tracks) for bar in dropped)
    assert n_dropped > 0  # the tiny codec writes broken bars...
    assert sum(len(bar.invalid_tracks) for bar in kept) < n_dropped  # ...most of which keep notes
    for a, b in zip(kept, dropped):
        for track, (salvaged, strict_phrase) in enumerate(zip(a.phrases, b.phrases)):
            parse_bar(g.tokenizer.token_names(salvaged))
            if track not in b.invalid_tracks:
                assert salvaged == strict_phrase  # well-formed bars are untouched


def test_guidance_changes_controlled_music_only(generator, tmp_path):
    for name, request in (("plain", Request(bars=3, seed=4, density="high")), ("guided", Request(bars=3, seed=4, density="high", guidance=3.0)),
                          ("free", Request(bars=3, seed=4)), ("free_guided", Request(bars=3, seed=4, guidance=3.0))):
        generator.write(request, tmp_path / f"{name}.mid")
    read = lambda name: (tmp_path / f"{name}.mid").read_bytes()  # noqa: E731
    assert read("plain") != read("guided")
    assert read("free") == read("free_guided")  # nothing requested: nothing to guide


def test_notes_of_the_wrong_kind_for_their_track_leave_it_silent(generator):
    vocab = generator.tokenizer.base_vocab
    bar = lambda pitch: [vocab[n] for n in ("Bar_None", "Position_0", pitch, "Velocity_91", "Duration_1.0.4")]  # noqa: E731
    made = generator._bar(0, [bar("PitchDrum_44"), bar("Pitch_60"), bar("Pitch_60"), bar("PitchDrum_44")], [0, 0, -1, -1], 0, None)
    assert made.invalid_tracks == [0, 2]
    assert made.phrases[1] == bar("Pitch_60") and made.phrases[3] == bar("PitchDrum_44")
    assert made.phrases[0] == made.phrases[2] == [generator.tokenizer.bar_id]


def test_a_lock_with_memory_lets_through_the_chromatic_notes_the_prompt_sounded(key_frame_generator, tmp_path):
    g = key_frame_generator
    prompt = _prompt_file(tmp_path / "prompt.mid", [60, 64, 67, 65, 60, 64, 67, 65, 60, 66, 67, 72])  # C major, F# in its last bar
    layout = g.layout(Request(prompt=prompt))
    assert (layout.frame_key, layout.shift) == (0, 0)  # heard in C major: written as the frame writes it
    plain = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=50.0, scale_lock_memory=0)
    remembering = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=50.0, scale_lock_memory=2, scale_lock_welcome=0.0)
    c_major, chromatic = scale_pitch_classes(0), set()
    for seed in range(6):
        request = Request(bars=3, seed=seed, prompt=prompt)
        plain.write(request, tmp_path / "plain.mid")
        remembering.write(request, tmp_path / "remembering.mid")
        assert all(p % 12 in c_major for _, _, p in _pitched_notes(tmp_path / "plain.mid"))
        chromatic |= {p % 12 for _, _, p in _pitched_notes(tmp_path / "remembering.mid") if p % 12 not in c_major}
    assert chromatic == {6}  # the prompt's F#, and no other note outside the scale


def test_a_lock_with_memory_hears_the_prompts_last_bars_then_every_bar_it_writes(key_frame_generator, tmp_path, monkeypatch):
    g = key_frame_generator
    heard = []
    hear = ScaleLock.hear
    monkeypatch.setattr(ScaleLock, "hear", lambda lock, classes: (heard.append(classes.copy()), hear(lock, classes)))
    prompt = _prompt_file(tmp_path / "prompt.mid", [60, 64, 67, 65, 60, 66, 67, 72, 60, 64, 67, 65, 60, 64, 70, 72])  # F# in bar 2 of 4, Bb in 4
    remembering = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=0.25, scale_lock_memory=2)
    bars = list(remembering.bars(Request(bars=4, seed=3, prompt=prompt)))
    programs = remembering.layout(Request(prompt=prompt)).programs
    written = [sounded_classes([phrase_facts(g.tokenizer, p, program, bar_ticks(TPQ, bar.time_signature))
                                for p, program in zip(bar.phrases, programs)]) for bar in bars]
    assert len(heard) == 2 + 4  # the prompt's last two bars, then each bar as it is written
    assert [set(np.flatnonzero(h)) for h in heard[:2]] == [{0, 4, 5, 7}, {0, 4, 10}]  # not bar 2's F#
    assert all(np.array_equal(h, w) for h, w in zip(heard[2:], written))


def test_a_lock_with_memory_forgets_what_the_prompt_sounded_before_its_memory(key_frame_generator, tmp_path):
    g = key_frame_generator
    prompt = _prompt_file(tmp_path / "prompt.mid", [60, 64, 67, 65, 60, 66, 67, 72, 60, 64, 67, 65, 60, 64, 67, 72])  # F# only in bar 2 of 4
    remembering = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=50.0, scale_lock_memory=2, scale_lock_welcome=0.0)
    c_major = scale_pitch_classes(0)
    for seed in range(6):
        remembering.write(Request(bars=3, seed=seed, prompt=prompt), tmp_path / "out.mid")
        assert all(p % 12 in c_major for _, _, p in _pitched_notes(tmp_path / "out.mid"))


def test_a_lock_hears_a_prompt_only_in_the_scale_it_keeps_to(generator, key_frame_generator, tmp_path):
    d_major = _prompt_file(tmp_path / "d.mid", [62, 64, 66, 67, 69, 71, 73, 74, 62, 66, 69, 74])
    chromatic = _prompt_file(tmp_path / "chromatic.mid", range(60, 72))  # no key
    assert generator.layout(Request(prompt=d_major)).prompt_in_key
    assert generator.layout(Request(prompt=d_major, key="B minor")).prompt_in_key  # the same scale
    assert not generator.layout(Request(prompt=d_major, key="F major")).prompt_in_key  # its C# would pull from F major
    assert key_frame_generator.layout(Request(prompt=d_major, key="F major")).prompt_in_key  # moved into the frame first
    assert not key_frame_generator.layout(Request(prompt=chromatic, key="F major")).prompt_in_key
    assert not generator.layout(Request()).prompt_in_key


def test_a_continuation_hears_each_prompt_bar_of_every_track_in_the_key_frame(key_frame_generator, tmp_path):
    score = symusic.Score(480)
    piano, bass = symusic.Track(program=0), symusic.Track(program=33)
    for bar in range(3):
        for beat, pitch in enumerate([62, 66, 69, 73]):  # D major: D F# A C#
            piano.notes.append(symusic.Note(bar * 1920 + beat * 480, 480, pitch, 80))
        bass.notes.append(symusic.Note(bar * 1920, 960, 38, 80))  # D
        bass.notes.append(symusic.Note(bar * 1920 + 960, 960, 41 if bar == 0 else 45, 80))  # F natural in the first bar only, else A
    score.tracks.extend([piano, bass])
    score.dump_midi(str(tmp_path / "d_major.mid"))
    g = key_frame_generator
    layout = g.layout(Request(prompt=tmp_path / "d_major.mid"))
    assert layout.shift == 2 and len(layout.prompt_bars) == 3  # D major is written as C major, then moved up 2
    c_major = scale_pitch_classes(0)
    facts = [[phrase_facts(g.tokenizer, p, program) for p, program in zip(bar, layout.programs)] for bar in layout.prompt_bars]
    chromatic = [{pc for pc in np.flatnonzero(sounded_classes(bar)) if pc not in c_major} for bar in facts]
    assert chromatic == [{3}, set(), set()]  # the bass's F, two semitones down in the frame: D#


def test_a_lock_with_memory_that_hears_nothing_outside_the_scale_writes_what_the_plain_lock_writes(key_frame_generator):
    g = key_frame_generator
    plain = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=50.0, scale_lock_memory=0)
    remembering = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=50.0, scale_lock_memory=8)
    frame = plain.layout(Request()).frame_key
    assert remembering.new_scale_lock(frame).remembers and remembering.bars_per_decode(3, False) > 1  # decoded in chunks
    request = Request(bars=6, seed=4)
    assert [b.phrases for b in plain.bars(request)] == [b.phrases for b in remembering.bars(request)]


@pytest.mark.parametrize("decode_temperature", [0.0, 1.0], ids=["greedy", "sampled"])
def test_a_lock_with_memory_decoding_chunks_ahead_writes_what_it_writes_bar_by_bar(key_frame_generator, monkeypatch, decode_temperature):
    g = key_frame_generator
    tracks = len(g.default_programs)
    remembering = MusicGenerator(g.codec, g.tokenizer, g.prior, g.default_programs, scale_lock=0.25, scale_lock_memory=2,
                                 scale_lock_welcome=0.5, decode_temperature=decode_temperature)
    decodings = []
    decode_slots = MusicGenerator._decode_slots
    monkeypatch.setattr(MusicGenerator, "_decode_slots", lambda self, seed, first, *rest: (decodings.append(first), decode_slots(self, seed, first, *rest))[1])
    request = Request(bars=12, seed=6, temperature=1.0)
    remembering.decode_phrases = tracks  # one bar per batch: the reference
    one = [b.phrases for b in remembering.bars(request)]
    assert decodings == [bar * tracks for bar in range(12)]
    decodings.clear()
    remembering.decode_phrases = 6 * tracks  # two chunks of 6 bars
    six = [b.phrases for b in remembering.bars(request)]
    assert 2 < len(decodings) < 12  # the lock heard changes: parts of chunks were decoded again, but not every bar
    assert six == one


def test_a_lock_is_made_only_where_it_can_change_something(generator):
    def lock(strength, memory, welcome, frame_key=0):
        g = MusicGenerator(generator.codec, generator.tokenizer, generator.prior, generator.default_programs,
                           scale_lock=strength, scale_lock_memory=memory, scale_lock_welcome=welcome)
        return g.new_scale_lock(frame_key)

    assert lock(0.0, 8, 0.5) is not None  # welcomes what it remembers
    assert lock(0.0, 0, 0.5) is None and lock(0.0, 8, 0.0) is None  # nothing to remember, or nothing to give
    assert lock(0.25, 8, 0.5, frame_key=-1) is None  # no scale known


@pytest.fixture(scope="module")
def grid_generator(fixture_dataset, tmp_path_factory) -> MusicGenerator:
    """A briefly trained tiny GridCodec and an untrained tiny prior with a silence head (a slot
    it draws sounding must write a note)."""
    from musemorphic.training.grid_codec import GridCodecTask, GridTrainingConfig, build_grid_codec

    torch.manual_seed(0)
    codec = build_grid_codec(fixture_dataset.tokenizer, "tiny", d_latent=16)
    batcher = PhraseBatcher(fixture_dataset, 1 << 30, nonempty_only=True, bucket_size=len(fixture_dataset))
    task = GridCodecTask(codec, batcher, 100, 32, seed=0, training=GridTrainingConfig(beta=1.0))
    train(task, TrainConfig(out_dir=str(tmp_path_factory.mktemp("grid_codec")), steps=100, lr=3e-3, warmup_steps=10, checkpoint_every=100))
    prior = build_latent_mamba(fixture_dataset, "tiny", d_latent=16, silence_head=True)
    return MusicGenerator(codec.eval(), fixture_dataset.tokenizer, prior, default_programs=[0, -1])


def test_a_grid_codec_writes_grammatical_bars_for_each_track_and_chunking_changes_nothing(grid_generator, tmp_path):
    g = grid_generator
    # a requested time signature: a silent slot's empty bar otherwise takes the last decoded chunk's
    request = Request(bars=7, seed=5, temperature=1.0, time_signature="4/4")
    bars = list(g.bars(request))
    assert len(bars) == 7 and not any(bar.invalid_tracks for bar in bars)
    for bar in bars:
        for phrase, program in zip(bar.phrases, g.default_programs):
            names = g.tokenizer.token_names(phrase)
            parse_bar(names)
            assert not any(name.startswith("Pitch_" if program == -1 else "PitchDrum_") for name in names)
    batch = g.decode_phrases
    try:
        g.decode_phrases = 2  # one bar per batch
        g.write(request, tmp_path / "one.mid", chunk_bars=2, stream=True)
        g.decode_phrases = 9  # chunks of 4 bars
        g.write(request, tmp_path / "four.mid", stream=False)
    finally:
        g.decode_phrases = batch
    assert (tmp_path / "one.mid").read_bytes() == (tmp_path / "four.mid").read_bytes()
    assert symusic.Score(str(tmp_path / "one.mid")).note_num() > 0


def test_a_grid_codec_continues_a_prompt(grid_generator, tmp_path):
    result = grid_generator.write(Request(bars=3, prompt=FIXTURE_FILES[0], seed=1), tmp_path / "more.mid")
    assert result["bars"] == 3 and result["tracks"] >= 1
    assert symusic.Score(str(tmp_path / "more.mid")).note_num() > 0
