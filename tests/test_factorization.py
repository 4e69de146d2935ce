"""Seed 001: the factorization loss, zero-fill shifts, SIGReg, the figures, and the toy run."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from musemorphic.cli import app
from musemorphic.data.pianoroll import random_blobs, shift_each, shift_no_wrap
from musemorphic.evaluation.factorization import measure_factorization
from musemorphic.experiments.factorization import roll_embed, run_factorization, toy_held_out, toy_inputs
from musemorphic.models.pianoroll_encoder import PianoRollEncoder, pianoroll_encoder_config
from musemorphic.training.factorization import (
    PITCH,
    TIME,
    FactorizationConfig,
    cosine_targets,
    draw_shifts,
    factorization_loss,
    shifted_rolls,
    sigreg,
)
from musemorphic.training.loop import TrainConfig


def test_targets_are_sign_products_within_a_kind_and_zero_across():
    kinds = torch.tensor([[PITCH, PITCH, TIME, TIME]])
    signs = torch.tensor([[1.0, -1.0, -1.0, -1.0]])
    expected = torch.tensor(
        [[1, -1, 0, 0],
         [-1, 1, 0, 0],
         [0, 0, 1, 1],
         [0, 0, 1, 1]], dtype=torch.float32)
    assert torch.equal(cosine_targets(kinds, signs)[0], expected)


def test_loss_is_zero_for_factored_differences_and_counts_each_violation():
    e1, e2 = torch.eye(3)[0], torch.eye(3)[1]
    anchor = torch.tensor([[0.5, -1.0, 2.0]])
    kinds = torch.tensor([[PITCH, PITCH, TIME, TIME]])
    signs = torch.tensor([[1, -1, 1, 1]])
    good = anchor[:, None] + torch.stack([e1, -2 * e1, e2, 3 * e2])[None]  # (1, 4, 3)
    loss, stats = factorization_loss(anchor, good, kinds, signs)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    assert stats == pytest.approx({"cos_parallel": 1.0, "cos_antiparallel": -1.0, "cos_orthogonal": 0.0})
    # the pitch pair now points the same way although its signs differ: the antiparallel
    # group's error is (1 - (-1))^2 = 4, and the three groups are averaged
    bad = anchor[:, None] + torch.stack([e1, 2 * e1, e2, 3 * e2])[None]
    loss, _ = factorization_loss(anchor, bad, kinds, signs)
    assert loss.item() == pytest.approx(4 / 3, abs=1e-5)


def test_shift_no_wrap_zero_fills_instead_of_wrapping():
    x = torch.arange(1.0, 6.0)
    assert shift_no_wrap(x, 2, 0).tolist() == [0, 0, 1, 2, 3]
    assert shift_no_wrap(x, -2, 0).tolist() == [3, 4, 5, 0, 0]
    assert shift_no_wrap(x, 0, 0).tolist() == x.tolist()
    assert shift_no_wrap(x, 9, 0).tolist() == [0] * 5
    assert torch.roll(x, 2).tolist() == [4, 5, 1, 2, 3]  # what it replaces
    image = torch.zeros(1, 4, 4)
    image[0, 1, 1] = 1
    up = shift_no_wrap(image, 2, -2)  # pitch axis
    assert up[0, 3, 1] == 1 and up.sum() == 1
    assert shift_no_wrap(image, -2, -1).sum() == 0  # pushed out of the time axis: gone


def test_shift_each_moves_every_row_by_its_own_amount():
    x = torch.arange(1.0, 5.0).repeat(3, 1)  # (3, 4)
    out = shift_each(x, torch.tensor([1, 0, -1]), dim=-1)
    assert out.tolist() == [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 0]]


def test_views_are_the_drawn_shifts_of_each_roll():
    rolls = random_blobs(6, 16, torch.Generator().manual_seed(0))
    kinds, signs, shifts = draw_shifts(6, FactorizationConfig(max_pitch_shift=3, max_time_shift=2), torch.Generator().manual_seed(1))
    assert kinds.tolist() == [[PITCH, PITCH, TIME, TIME]] * 6
    assert (shifts.abs() >= 1).all() and (shifts[:, :2].abs() <= 3).all() and (shifts[:, 2:].abs() <= 2).all()
    assert torch.equal(signs, shifts.sign())
    views = shifted_rolls(rolls, kinds, shifts)  # (6, 4, 16, 16)
    for b in range(6):
        for v in range(4):
            axis = -2 if kinds[b, v] == PITCH else -1
            assert torch.equal(views[b, v], shift_no_wrap(rolls[b], int(shifts[b, v]), axis))


def test_sigreg_is_near_zero_for_gaussian_samples_and_large_for_collapsed_ones():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(4096, 16, generator=g)
    collapsed = torch.ones(4096, 16) * 0.3
    squeezed = torch.randn(4096, 16, generator=g) * 0.05
    assert sigreg(gaussian, seed=0) < 2e-3
    assert sigreg(collapsed, seed=0) > 0.1
    assert sigreg(squeezed, seed=0) > 0.1
    assert sigreg(torch.randn(4096, 16, generator=g) + 3.0, seed=0) > 0.1  # off-centre


def test_figures_of_an_exactly_factored_embedding():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(40, 8, generator=g)
    d_pitch, d_time = torch.eye(8)[0], torch.eye(8)[1]

    def embed(items, pitch, time):
        return base[items] + pitch[:, None] * d_pitch + time[:, None] * d_time

    figures = measure_factorization(embed, 40, 4, 3)
    assert figures.cross_abs_cos == pytest.approx(0.0, abs=1e-6)
    assert figures.same_sign_cos == pytest.approx(1.0, abs=1e-6)
    assert figures.opposite_sign_cos == pytest.approx(-1.0, abs=1e-6)
    assert figures.pitch_angle_deg == pytest.approx(180.0, abs=0.1)
    assert figures.time_angle_deg == pytest.approx(180.0, abs=0.1)
    assert 0 < figures.first_sv_share <= 1

    def tangled(items, pitch, time):  # shifts move the latent in directions unrelated to their kind
        noise = torch.randn(len(items), 8, generator=torch.Generator().manual_seed(int(pitch.sum() * 31 + time.sum())))
        return base[items] + noise * (pitch.abs() + time.abs())[:, None]

    worse = measure_factorization(tangled, 40, 4, 3)
    assert worse.cross_abs_cos > 0.3 and worse.same_sign_cos < 0.5


def test_toy_training_reaches_the_seeds_figures(tmp_path):
    held = toy_held_out(200)
    untrained = measure_factorization(
        roll_embed(PianoRollEncoder(pianoroll_encoder_config("toy")), held), 200, 4, 4
    )
    config = TrainConfig(out_dir=str(tmp_path), steps=80, batch_size=128, lr=4e-3, warmup_steps=8)
    result = run_factorization(toy_inputs, held, "toy", FactorizationConfig(), config, {"source": "random blobs"})
    f = result.figures
    assert f.cross_abs_cos <= 0.12 and f.same_sign_cos >= 0.95 and f.opposite_sign_cos <= -0.88
    assert untrained.opposite_sign_cos > 0  # the loss did this, not the architecture


def test_lejepa_terms_train_and_are_logged(tmp_path):
    config = TrainConfig(out_dir=str(tmp_path), steps=3, batch_size=16, warmup_steps=1)
    run_factorization(toy_inputs, toy_held_out(20), "toy", FactorizationConfig(lejepa=True), config, {"source": "random blobs"})
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert {"attraction", "sigreg", "factorization"} <= set(header)


def test_cli_toy_experiment_prints_json_and_analyze_writes_plots(tmp_path):
    runner = CliRunner()
    run = tmp_path / "toy"
    result = runner.invoke(app, ["experiment", "factorization", "--toy", "--steps", "20", "--held-out", "40", "-o", str(run), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) >= {"cross_abs_cos", "same_sign_cos", "opposite_sign_cos", "pitch_angle_deg", "first_sv_share"}
    assert all((run / name).stat().st_size > 0 for name in ("cosines.png", "pca.png", "spectra.png"))
    out = tmp_path / "analysis"
    result = runner.invoke(app, ["analyze", "latents", str(run / "checkpoint"), "--items", "40", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["cosines.png", "pca.png", "spectra.png"]


def test_cli_experiment_needs_exactly_one_source():
    result = CliRunner().invoke(app, ["experiment", "factorization"])
    assert result.exit_code != 0 and "exactly one of --toy and --data" in result.output


def test_track_roll_marks_each_note_for_its_duration_bar_after_bar(tokenizer):
    from musemorphic.data.pianoroll import track_roll

    names = [["Bar_None", "TimeSig_4/4", "Position_2", "Pitch_60", "Velocity_63", "Duration_1.0.4"],
             ["Bar_None", "TimeSig_3/4", "Position_11", "Pitch_62", "Velocity_63", "Duration_0.2.4"]]
    bars = [torch.tensor([tokenizer.base_vocab[n] for n in bar]).numpy() for bar in names]
    roll = track_roll(bars, tokenizer)
    assert roll.shape == (128, 16 + 12)
    assert roll[60].nonzero()[0].tolist() == [2, 3, 4, 5]  # a quarter note from the third sixteenth
    assert roll[62].nonzero()[0].tolist() == [16 + 11]  # cut at the end of the roll
    assert roll.sum() == 5


def test_music_windows_hold_notes_of_pitched_tracks(fixture_dataset):
    from musemorphic.data.pianoroll import roll_windows

    windows = roll_windows(fixture_dataset, 32, 40, seed=0)
    assert windows.shape[1:] == (128, 32) and 0 < len(windows) <= 40
    onsets = (torch.diff(windows, dim=-1, prepend=torch.zeros(len(windows), 128, 1)) > 0).sum((1, 2))
    assert (onsets >= 3).all()
    assert torch.equal(roll_windows(fixture_dataset, 32, 40, seed=0), windows)  # seeded
