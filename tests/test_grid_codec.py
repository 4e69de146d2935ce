"""GridCodec: the note grid round trip, grammatical decoding inside the bar, overfitting, strict reloads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from musemorphic.data.bar_grid import NO_NOTE, GridVocabulary
from musemorphic.data.bar_timing import bar_notes
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.data.remi_grammar import parse_bar
from musemorphic.evaluation.phrase_vae import evaluate_codec
from musemorphic.generation.phrase_codec import decode_bars, decode_grid_tracks, encode_bars
from musemorphic.generation.written_notes import TPQ
from musemorphic.models.grid_codec import GridCodec, grid_codec_config
from musemorphic.training.grid_codec import GridCodecTask, GridTrainingConfig, build_grid_codec, load_codec
from musemorphic.training.loop import TrainConfig, train


def _bar(tokenizer, vocabulary: GridVocabulary, time_signature: str, notes, drums: bool = False, tempo: str | None = None):
    """Base ids of a bar in REMI+ order; notes as (position, pitch, duration value, velocity level)."""
    vocab, kind = tokenizer.base_vocab, "PitchDrum_" if drums else "Pitch_"
    ids = [tokenizer.bar_id, vocab[f"TimeSig_{time_signature}"]]
    if tempo is not None:
        ids += [vocab["Position_0"], vocab[f"Tempo_{tempo}"]]
    last = 0 if tempo is not None else -1
    for position, pitch, duration, level in sorted(notes):
        if position != last:
            ids.append(vocab[f"Position_{position}"])
            last = position
        ids += [vocab[f"{kind}{pitch}"], vocab[f"Velocity_{vocabulary.level_velocity(level)}"], vocab[f"Duration_{duration}"]]
    return ids


def _round_trip(vocabulary: GridVocabulary, bars, programs):
    grid = vocabulary.grids(bars, programs)
    return [
        vocabulary.bar(grid.onsets[i].numpy() > 0, grid.durations[i].numpy(), grid.velocities[i].numpy(),
                       int(grid.time_signatures[i]), int(grid.programs[i]), int(grid.tempos[i]))
        for i in range(len(bars))
    ]


def test_every_time_signature_and_drums_round_trip_through_the_grid(tokenizer):
    vocabulary = GridVocabulary(tokenizer, velocity_levels=8)
    rng = np.random.default_rng(0)
    bars, programs = [], []
    for time_signature in vocabulary.time_signatures:
        last = vocabulary.n_positions[time_signature] - 1
        for program, drums in ((0, False), (33, False), (-1, True)):
            low, high = (27, 89) if drums else (0, 128)
            cells = {(int(p), int(k)) for p, k in zip(rng.integers(0, last, 12), rng.integers(low, high, 12))}
            cells |= {(0, low), (last, high - 1)}  # the first and last position, the range's ends
            notes = [(p, k, vocabulary.durations[int(rng.integers(len(vocabulary.durations)))], int(rng.integers(8))) for p, k in cells]
            bars.append(_bar(tokenizer, vocabulary, time_signature, notes, drums, tempo="118.0" if program == 33 else None))
            programs.append(program)
    bars.append(_bar(tokenizer, vocabulary, "4/4", []))  # an empty bar
    programs.append(0)
    assert _round_trip(vocabulary, bars, programs) == bars


def test_velocity_levels_group_the_bins_evenly(tokenizer):
    for levels in (1, 4, 8, 32):
        vocabulary = GridVocabulary(tokenizer, velocity_levels=levels)
        assigned = [vocabulary.velocity_level(v) for v in vocabulary.velocity_bins]
        assert assigned == sorted(assigned) and set(assigned) == set(range(levels))
        assert np.bincount(assigned).max() - np.bincount(assigned).min() <= 1
        assert all(vocabulary.velocity_level(vocabulary.level_velocity(level)) == level for level in range(levels))
    with pytest.raises(ValueError, match="velocity_levels"):
        GridVocabulary(tokenizer, velocity_levels=33)


def test_decoding_writes_grammatical_bars_with_no_note_past_their_end(tokenizer):
    vocabulary = GridVocabulary(tokenizer, velocity_levels=8)
    torch.manual_seed(0)
    model = GridCodec(grid_codec_config("tiny", vocabulary)).eval()
    with torch.no_grad():
        model.onset_head.bias.fill_(3.0)  # an untrained decoder that writes a note nearly everywhere
    z = torch.randn(200, model.config.d_latent) * 3
    lengths = {ts: n for ts, n in vocabulary.n_positions.items()}
    seen = set()
    for program, bar in decode_grid_tracks(model, tokenizer, z):
        (num, den), notes = parse_bar(tokenizer.token_names(bar))
        seen.add(f"{num}/{den}")
        assert notes and max(n.position for n in notes) < lengths[f"{num}/{den}"]
        _, timed = bar_notes(tokenizer.token_names(bar), TPQ)
        assert max(n.start for n in timed) < num * TPQ * 4 // den
        drum_notes = any(name.startswith("PitchDrum_") for name in tokenizer.token_names(bar))
        assert drum_notes == (program == -1)
    assert len(seen) > 1  # several time signatures were written


def test_decoding_follows_the_programs_it_is_given_and_can_be_made_to_sound(tokenizer):
    vocabulary = GridVocabulary(tokenizer, velocity_levels=8)
    torch.manual_seed(1)
    model = GridCodec(grid_codec_config("tiny", vocabulary)).eval()  # its onset logits start far below 0: silent bars
    z = torch.randn(6, model.config.d_latent)
    assert all(not parse_bar(tokenizer.token_names(bar))[1] for bar in decode_bars(model, tokenizer, z))
    programs = [-1, 0, -1, 40, 0, -1]
    sounding = decode_grid_tracks(model, tokenizer, z, must_sound=True, programs=programs)
    assert [program for program, _ in sounding] == programs
    for program, bar in sounding:
        names = tokenizer.token_names(bar)
        assert sum(name.startswith(("Pitch_", "PitchDrum_")) for name in names) == 1
        assert all(not name.startswith("Pitch_" if program == -1 else "PitchDrum_") for name in names)


def test_scale_bias_on_pitch_tokens_moves_the_onset_logits(fixture_dataset):
    from musemorphic.generation.phrase_codec import pitch_token_ids

    tokenizer = fixture_dataset.tokenizer  # with BPE: the bias is over its codec ids
    assert tokenizer.is_trained
    vocabulary = GridVocabulary(tokenizer, velocity_levels=8)
    torch.manual_seed(2)
    model = GridCodec(grid_codec_config("tiny", vocabulary)).eval()
    z = torch.randn(8, model.config.d_latent)
    bias = torch.zeros(tokenizer.vocab_size)
    bias[pitch_token_ids(tokenizer)[61]] = 100.0  # C#4 everywhere
    assert tokenizer.id_names(pitch_token_ids(tokenizer)[61]) == ["Pitch_61"]
    for bar in decode_bars(model, tokenizer, z, logit_bias=bias, programs=[0] * 8):
        notes = parse_bar(tokenizer.token_names(bar))[1]
        assert notes and {n.pitch for n in notes} == {61}
    with torch.no_grad():
        model.onset_head.bias.fill_(3.0)  # drums everywhere, whatever a scale lock says of pitched notes
    plain, biased = decode_bars(model, tokenizer, z, programs=[-1] * 8), decode_bars(model, tokenizer, z, logit_bias=-100 * bias, programs=[-1] * 8)
    assert plain == biased and any("PitchDrum_61" in tokenizer.token_names(bar) for bar in plain)


def _grid_task(dataset, steps: int, preset: str = "tiny", beta: float = 0.0, batch_size: int = 8) -> GridCodecTask:
    torch.manual_seed(0)
    model = build_grid_codec(dataset.tokenizer, preset)
    batcher = PhraseBatcher(dataset, max_len=1 << 30, bucket_size=len(dataset))
    return GridCodecTask(model, batcher, steps, batch_size, seed=0, training=GridTrainingConfig(beta=beta))


def test_the_tiny_preset_overfits_32_bars_exactly(fixture_dataset, tmp_path):
    task = _grid_task(fixture_dataset, 600, batch_size=32)
    rng = np.random.default_rng(0)
    sounding = task.batcher.indices[fixture_dataset.shard.columns["phrase_n_notes"][fixture_dataset.phrase_indices[task.batcher.indices]] > 0]
    chosen = np.sort(rng.choice(sounding, 32, replace=False))
    task.batcher.indices, task.batcher.buckets = chosen, [chosen]
    train(task, TrainConfig(out_dir=str(tmp_path), steps=600, batch_size=32, lr=3e-3, seed=0, warmup_steps=20, zclip=False))
    bars, programs = task.batcher.bars(chosen)
    decoded = decode_bars(task.model.eval(), fixture_dataset.tokenizer, encode_bars(task.model, fixture_dataset.tokenizer, bars, programs))

    def notes(bar):
        return sorted((n.position, n.pitch, n.duration) for n in parse_bar(fixture_dataset.tokenizer.token_names(bar))[1])

    assert [notes(bar) for bar in decoded] == [notes(bar) for bar in bars]


def test_a_checkpoint_reloads_strictly_with_identical_outputs(fixture_dataset, tmp_path):
    task = _grid_task(fixture_dataset, 3, beta=0.1)
    train(task, TrainConfig(out_dir=str(tmp_path), steps=3, batch_size=8, lr=1e-3, seed=0, warmup_steps=1))
    model, tokenizer = load_codec(tmp_path / "checkpoint")
    assert isinstance(model, GridCodec) and model.config == task.model.config
    config = json.loads((tmp_path / "checkpoint" / "config.json").read_text())
    assert config["kind"] == "phrase_vae" and config["codec"] == "grid"
    bars, programs = task.batcher.bars(task.batcher.indices[:16])
    task.model.eval()
    z = encode_bars(task.model, tokenizer, bars, programs)
    torch.testing.assert_close(encode_bars(model, tokenizer, bars, programs), z, rtol=0, atol=0)
    assert decode_bars(model, tokenizer, z) == decode_bars(task.model, tokenizer, z)


def test_the_codec_report_counts_what_comes_back(fixture_dataset):
    task = _grid_task(fixture_dataset, 1)
    report = evaluate_codec(task.model.eval(), fixture_dataset, max_bars=40, prior_samples=16)
    figures = report.to_dict()
    assert {"note_f1", "exact_bar_rate", "duration_match", "velocity_match", "mean_kl", "prior_grammatical"} <= set(figures)
    assert report.token_accuracy is None and report.prior_grammatical == 1.0
    assert report.bars + report.empty_bars == 40
    # an untrained decoder writes silence: every empty bar comes back, no note does
    assert report.empty_bar_exact_rate == 1.0 and report.note_f1 == 0.0 and report.exact_bar_rate == 0.0


def test_training_loss_falls_and_notes_are_learned(fixture_dataset, tmp_path):
    task = _grid_task(fixture_dataset, 60, preset="tiny", batch_size=16)
    result = train(task, TrainConfig(out_dir=str(tmp_path), steps=60, batch_size=16, lr=3e-3, seed=0, warmup_steps=5))
    losses = list(result.losses.values())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])
    grid = task.batch(0, 0)
    assert grid.onsets.sum() > 0 and torch.equal(grid.durations == NO_NOTE, grid.onsets == 0)


def test_note_tally_counts_exact_bars_by_onset_pitch_and_duration_alone():
    from musemorphic.data.remi_grammar import BarNote
    from musemorphic.evaluation.phrase_vae import NoteTally

    reference = [BarNote(0, 60, 80, "1.0.4"), BarNote(4, 64, 80, "0.2.4")]
    tally = NoteTally()
    tally.add(reference, [BarNote(4, 64, 99, "0.2.4"), BarNote(0, 60, 71, "1.0.4")])  # other velocities, other order: exact
    tally.add(reference, [BarNote(0, 60, 80, "2.0.4")])  # one note, with another duration
    figures = tally.figures()
    assert figures["exact_bar_rate"] == 0.5
    assert figures["note_precision"] == 1.0 and figures["note_recall"] == 0.75
    assert figures["duration_match"] == pytest.approx(2 / 3) and figures["velocity_match"] == pytest.approx(1 / 3)
    assert figures["velocity_error"] == pytest.approx((19 + 9 + 0) / 3)


def test_each_level_is_written_with_its_most_common_velocity(tokenizer, fixture_dataset):
    from musemorphic.data.bar_grid import common_level_velocities
    from musemorphic.training.grid_codec import velocity_counts

    plain = GridVocabulary(tokenizer, velocity_levels=8)
    table = common_level_velocities(plain, {79: 10, 71: 3, 91: 5, 95: 5})
    assert table[plain.velocity_level(79)] == 79  # the most common of its level, not the middle bin (71)
    assert table[plain.velocity_level(91)] == 91  # a tie goes to the lower bin
    assert table[0] == plain.level_velocity(0)  # no notes: the middle bin
    vocabulary = GridVocabulary(tokenizer, velocity_levels=8, level_velocities=table)
    bar = _bar(tokenizer, vocabulary, "4/4", [(0, 60, "1.0.4", plain.velocity_level(79))])
    assert "Velocity_79" in tokenizer.token_names(_round_trip(vocabulary, [bar], [0])[0])
    with pytest.raises(ValueError, match="level_velocities"):
        GridVocabulary(tokenizer, velocity_levels=8, level_velocities=table[::-1])
    counts = velocity_counts(fixture_dataset)
    assert counts and all(v in plain.velocity_bins for v in counts) and sum(counts.values()) == sum(
        int(n) for n in fixture_dataset.shard.columns["phrase_n_notes"][fixture_dataset.phrase_indices])
    model = build_grid_codec(fixture_dataset.tokenizer, "tiny", data=fixture_dataset)
    assert model.config.level_velocities == common_level_velocities(plain, counts)


def test_a_decoder_trained_on_noisy_latents_keeps_every_code(fixture_dataset, tmp_path):
    task = _grid_task(fixture_dataset, 3)
    bars, programs = task.batcher.bars(task.batcher.indices[:16])
    before = encode_bars(task.model.eval(), fixture_dataset.tokenizer, bars, programs)
    decoder_before = task.model.onset_head.weight.detach().clone()
    noisy = GridCodecTask(task.model, task.batcher, 3, 8, seed=0, training=GridTrainingConfig(decoder_noise=1.0, freeze_encoder=True))
    train(noisy, TrainConfig(out_dir=str(tmp_path), steps=3, batch_size=8, lr=1e-2, seed=0, warmup_steps=1))
    torch.testing.assert_close(encode_bars(task.model.eval(), fixture_dataset.tokenizer, bars, programs), before, rtol=0, atol=0)
    assert not torch.equal(task.model.onset_head.weight, decoder_before)


def test_an_autoregressive_loader_refuses_a_grid_checkpoint_by_name(fixture_dataset, tmp_path):
    from musemorphic.training.phrase_vae import load_phrase_vae

    task = _grid_task(fixture_dataset, 1)
    train(task, TrainConfig(out_dir=str(tmp_path), steps=1, batch_size=8, lr=1e-3, seed=0, warmup_steps=1))
    with pytest.raises(ValueError, match="grid codec, not an autoregressive PhraseVAE"):
        load_phrase_vae(tmp_path / "checkpoint")
