"""Token-level transposition and onset shifts of one bar, and latent-space transposition."""

from __future__ import annotations

import pytest
import symusic
import torch
from torch import nn
from typer.testing import CliRunner

from musemorphic.cli import app
from musemorphic.data.bar_shifts import shift_bar
from musemorphic.data.phrase_batches import PhraseBatcher
from musemorphic.data.remi_grammar import parse_bar
from musemorphic.evaluation.latent_transposition import _agreement, transposition_report
from musemorphic.generation.transpose import pitch_direction, transpose_song_latent
from musemorphic.training.phrase_vae import CurriculumConfig, PhraseVAETask, build_phrase_vae

from conftest import FIXTURE_FILES, FIXTURES


def ids(tokenizer, names):
    return [tokenizer.base_vocab[n] for n in names]


NOTE = ["Velocity_63", "Duration_1.0.4"]
BAR = ["Bar_None", "TimeSig_4/4", "Position_0", "Tempo_118.0", "Pitch_60", *NOTE, "Pitch_127", *NOTE,
       "Position_6", "Pitch_1", *NOTE, "Position_14", "Pitch_64", *NOTE]


def test_transposition_moves_pitches_and_drops_what_leaves_the_range(tokenizer):
    up = tokenizer.token_names(shift_bar(tokenizer, ids(tokenizer, BAR), semitones=2))
    assert up == ["Bar_None", "TimeSig_4/4", "Position_0", "Tempo_118.0", "Pitch_62", *NOTE,  # Pitch_129 is gone
                  "Position_6", "Pitch_3", *NOTE, "Position_14", "Pitch_66", *NOTE]
    down = tokenizer.token_names(shift_bar(tokenizer, ids(tokenizer, BAR), semitones=-3))
    assert "Position_6" not in down  # its only note fell below pitch 0, so the position goes too
    assert [n for n in down if n.startswith("Pitch_")] == ["Pitch_57", "Pitch_124", "Pitch_61"]


def test_onset_shift_moves_positions_and_drops_notes_leaving_the_bar(tokenizer):
    late = tokenizer.token_names(shift_bar(tokenizer, ids(tokenizer, BAR), positions=2))
    assert [n for n in late if n.startswith("Position_")] == ["Position_2", "Position_8"]  # 14 + 2 is past 15
    assert late[late.index("Position_2") + 1] == "Tempo_118.0"  # a tempo travels with its position
    early = tokenizer.token_names(shift_bar(tokenizer, ids(tokenizer, BAR), positions=-6))
    assert [n for n in early if n.startswith("Position_")] == ["Position_0", "Position_8"]
    parse_bar(late), parse_bar(early)  # still well-formed


def test_drums_are_never_transposed_and_a_shift_round_trips_when_nothing_is_lost(tokenizer):
    drums = ["Bar_None", "Position_4", "PitchDrum_36", *NOTE]
    assert shift_bar(tokenizer, ids(tokenizer, drums), semitones=5) == ids(tokenizer, drums)
    middle = ["Bar_None", "TimeSig_3/4", "Position_3", "Pitch_60", *NOTE, "Position_7", "Pitch_67", *NOTE]
    there = shift_bar(tokenizer, ids(tokenizer, middle), semitones=4, positions=2)
    assert shift_bar(tokenizer, there, semitones=-4, positions=-2) == ids(tokenizer, middle)


def test_phrase_vae_task_adds_the_regulariser_on_shifted_bars(fixture_dataset):
    torch.manual_seed(0)
    model = build_phrase_vae(fixture_dataset.tokenizer, "tiny")
    task = PhraseVAETask(model, PhraseBatcher(fixture_dataset, 160), total_steps=10, batch_size=16, seed=0,
                         curriculum=CurriculumConfig.fine_tune(factorize=0.5, factorize_bars=4))
    batch = task.batch(0, 0)
    n = len(batch["factor_anchor"])
    assert 1 <= n <= 4 and batch["factor_views"].shape[0] == 4 * n
    assert batch["factor_kinds"].shape == batch["factor_signs"].shape == (n, 4)
    loss, metrics = task.loss(model, batch, 0)
    assert torch.isfinite(loss) and metrics["factorization"] > 0
    plain = PhraseVAETask(model, task.batcher, total_steps=10, batch_size=16, seed=0, curriculum=CurriculumConfig.fine_tune())
    assert "factor_anchor" not in plain.batch(0, 0)


class MeanPitchCodec(nn.Module):
    """A stand-in codec whose latent is (mean pitch of the phrase, 0): transposition by k
    moves it by exactly (k, 0)."""

    def __init__(self, tokenizer):
        super().__init__()
        pitch = torch.from_numpy(tokenizer.music_features()[:, 0]).float()
        self.register_buffer("pitch", torch.nan_to_num(pitch, nan=0.0))
        self.register_buffer("is_pitch", torch.from_numpy(~torch.isnan(torch.from_numpy(tokenizer.music_features()[:, 0])).numpy()))
        self.config = type("Config", (), {"max_len": 10_000, "d_latent": 2})()
        self.unused = nn.Parameter(torch.zeros(1))  # a codec has parameters; they tell the device

    def encode(self, ids):
        weight = self.is_pitch[ids].float()
        mean = (self.pitch[ids] * weight).sum(1) / weight.sum(1).clamp(min=1)
        mu = torch.stack([mean, torch.zeros_like(mean)], 1)
        return mu, torch.zeros_like(mu)


def test_pitch_direction_is_the_least_squares_semitone_step(tokenizer):
    codec = MeanPitchCodec(tokenizer)
    bars = [ids(tokenizer, ["Bar_None", "Position_0", "Pitch_60", *NOTE, "Pitch_64", *NOTE]),
            ids(tokenizer, ["Bar_None", "Position_4", "Pitch_50", *NOTE])]
    drums = ids(tokenizer, ["Bar_None", "Position_0", "PitchDrum_36", *NOTE])
    direction = pitch_direction(codec, tokenizer, [*bars, drums], [0, 33, -1], max_shift=3)
    assert direction.tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="no pitched bar"):
        pitch_direction(codec, tokenizer, [drums], [-1])


def test_agreement_counts_exact_bars_and_note_f1(tokenizer):
    a = ids(tokenizer, ["Bar_None", "Position_0", "Pitch_60", *NOTE, "Pitch_64", *NOTE])
    b = ids(tokenizer, ["Bar_None", "Position_0", "Pitch_60", *NOTE])
    exact, f1 = _agreement(tokenizer, [a, a, a], [a, b, None])
    assert exact == pytest.approx(1 / 3)
    assert f1 == pytest.approx(2 * 3 / (6 + 3))  # 3 of 6 reference notes matched, 3 predicted


def test_latent_transposition_of_a_song_keeps_drums_and_layout(fixture_dataset):
    torch.manual_seed(0)
    tok = fixture_dataset.tokenizer
    model = build_phrase_vae(tok, "tiny").eval()
    score = symusic.Score(str(FIXTURE_FILES[0]))
    moved, summary = transpose_song_latent(model, tok, score, 2)
    assert summary.semitones == 2 and summary.bars_moved > 0
    assert 0 <= summary.bars_silenced <= summary.bars_moved and summary.bars_too_long >= 0
    original = tok.decode_song(tok.encode_song(score))
    # an untrained codec decodes noise, so most bars fall silent (and silent tracks are
    # dropped), but the drums are copied note for note
    assert {t.program for t in moved.tracks if not t.is_drum} <= {t.program for t in original.tracks}
    drums = [[(n.time, n.pitch) for n in t.notes] for t in moved.tracks if t.is_drum]
    assert drums and drums == [[(n.time, n.pitch) for n in t.notes] for t in original.tracks if t.is_drum]
    rows = transposition_report(model, tok, [bar for t in tok.encode_song(score).tracks[:1] for bar in t.bars[:6]],
                                [0] * 6, torch.zeros(model.config.d_latent), semitones=[-1, 0, 1])
    assert [r.semitones for r in rows] == [-1, 0, 1]
    assert all(0 <= r.exact <= 1 and 0 <= r.note_f1 <= 1 for r in rows)


def test_cli_transposes_exactly_and_through_the_latent_space(tmp_path):
    runner = CliRunner()
    source = FIXTURES / "pop909_098.mid"  # small: the latent path decodes every bar
    out = tmp_path / "up.mid"
    before = symusic.Score(str(source))
    for k in (3, 127 - max(n.pitch for t in before.tracks for n in t.notes) + 1):  # the second pushes a note out
        result = runner.invoke(app, ["transpose", str(source), "-k", str(k), "-o", str(out)])
        assert result.exit_code == 0, result.output
        after = symusic.Score(str(out))
        for t0, t1 in zip(before.tracks, after.tracks):
            shift = 0 if t0.is_drum else k
            assert [n.pitch + shift for n in t0.notes if 0 <= n.pitch + shift <= 127] == [n.pitch for n in t1.notes]
    assert after.note_num() < before.note_num()
    latent = tmp_path / "latent.mid"
    result = runner.invoke(app, ["transpose", str(source), "-k", "3", "--latent", "-o", str(latent)])
    assert result.exit_code == 0, result.output
    assert symusic.Score(str(latent)).note_num() > 0
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["transpose", str(empty), "-k", "1", "-o", str(tmp_path / "x.mid")])
    assert result.exit_code != 0 and "empty.mid" in result.output
