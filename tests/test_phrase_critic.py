"""PhraseCritic and control steering: what a decoded bar writes, the choice among draws, training."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import symusic
import torch

import midi_factory
from musemorphic.data import controls as ctl
from musemorphic.generation import generate as generate_module
from musemorphic.generation.generate import MusicGenerator, Request
from musemorphic.generation.steering import ControlSteering, SteeringTarget, density_target, grid_distance
from musemorphic.generation.written_notes import bar_cells, onset_cells, phrase_facts
from musemorphic.models.phrase_critic import PhraseCritic, PhraseCriticConfig, PhraseFacts
from musemorphic.training.latent_mamba import build_latent_mamba
from musemorphic.training.loop import TrainConfig, train
from musemorphic.training.phrase_critic import PhraseCriticTask, load_phrase_critic
from musemorphic.training.phrase_vae import build_phrase_vae

C_MAJOR_TRIAD = np.eye(12)[[0, 4, 7]].sum(0)
A_MINOR_TRIAD = np.eye(12)[[9, 0, 4]].sum(0)


def _bar(tokenizer, *tokens: str) -> list[int]:
    return [tokenizer.base_vocab[t] for t in ("Bar_None", *tokens)]


def test_phrase_facts_count_what_the_generator_writes(tokenizer):
    bar = _bar(tokenizer, "Position_0", "Pitch_60", "Velocity_91", "Duration_1.0.4", "Pitch_76", "Velocity_91", "Duration_0.2.4",
               "Position_12", "Pitch_67", "Velocity_63", "Duration_2.0.4")
    facts = phrase_facts(tokenizer, bar, program=0)
    assert facts[0] == 3
    expected = np.zeros(12)
    expected[0], expected[4], expected[7] = 1.0, 0.5, 2.0  # quarter notes, ringing past the bar end included
    np.testing.assert_allclose(facts[1:], expected)
    drums = _bar(tokenizer, "Position_0", "PitchDrum_36", "Velocity_91", "Duration_0.1.4")
    np.testing.assert_allclose(phrase_facts(tokenizer, drums, program=-1), [1] + [0] * 12)  # drums: onsets, no pitch classes
    assert not phrase_facts(tokenizer, drums, program=0).any()  # wrong kind: silent
    assert not phrase_facts(tokenizer, None, program=0).any()  # ungrammatical: silent


def test_key_correlations_are_pearson_and_pick_the_extractor_key():
    rng = np.random.default_rng(0)
    hists = rng.random((20, 12))
    got = ctl.key_correlations(hists)
    for hist, row in zip(hists, got):
        assert int(row.argmax()) == ctl.key_from_histogram(hist)
        major = np.roll([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88], 2)  # D major
        assert row[2] == pytest.approx(np.corrcoef(hist, major)[0, 1])
    assert not ctl.key_correlations(np.ones((1, 12))).any()


def test_density_targets_lie_inside_their_level():
    for thresholds in ((1.0, 2.0), (4.25, 6.0)):
        assert [ctl.density_level(density_target(level, thresholds), thresholds) for level in range(3)] == [0, 1, 2]


class TableCritic:
    """Stands in for a PhraseCritic: candidate i (z[:, 0] == i) writes table row i."""

    def __init__(self, onsets, pitch_classes, grids=None):
        self.onsets, self.pitch_classes = torch.tensor(onsets, dtype=torch.float64), torch.tensor(np.asarray(pitch_classes))
        self.grids = None if grids is None else torch.tensor(np.asarray(grids, dtype=np.float64))

    def predict(self, z):
        rows = z[:, 0].long()
        return PhraseFacts(self.onsets[rows], self.pitch_classes[rows], None if self.grids is None else self.grids[rows])


def test_onset_cells_mark_where_written_notes_start(tokenizer):
    bar = _bar(tokenizer, "Position_0", "Pitch_60", "Velocity_91", "Duration_1.0.4", "Pitch_64", "Velocity_91", "Duration_1.0.4",
               "Position_6", "Pitch_67", "Velocity_63", "Duration_0.2.4", "Position_12", "Pitch_72", "Velocity_63", "Duration_1.0.4")
    np.testing.assert_array_equal(np.flatnonzero(onset_cells(tokenizer, bar, 0, 16)), [0, 6, 12])  # a chord is one onset
    np.testing.assert_array_equal(np.flatnonzero(onset_cells(tokenizer, bar, 0, 8)), [0, 6])  # the first cells only
    np.testing.assert_array_equal(np.flatnonzero(onset_cells(tokenizer, bar, 0, 16, bar_length=480 * 3)), [0, 6])  # cut at 3 quarters
    eighths = _bar(tokenizer, "TimeSig_6/8", "Position_4", "Pitch_60", "Velocity_91", "Duration_0.2.4")  # one eighth-note beat in
    np.testing.assert_array_equal(np.flatnonzero(onset_cells(tokenizer, eighths, 0, 24)), [4])  # a quarter of a beat per cell, as the groove metric's
    assert not onset_cells(tokenizer, None, 0, 16).any() and not onset_cells(tokenizer, bar, -1, 16).any()  # broken, wrong kind


def test_grid_distance_is_the_expected_hamming_share():
    grids = np.array([[1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]])
    np.testing.assert_allclose(grid_distance(grids, np.array([1.0, 0, 1, 0])), [0, 0.5, 1])
    np.testing.assert_allclose(grid_distance(grids[:1], np.array([0.5, 0.5, 0.5, 0.5])), [0.5])
    np.testing.assert_allclose(grid_distance(grids, np.array([1.0, 1, 1, 1]), cells=2), [0.5, 0.5, 0.5])  # a shorter bar's cells
    assert [bar_cells(ts) for ts in ((4, 4), (3, 4), (6, 8), (2, 2))] == [16, 12, 24, 8]  # as music_metrics.onset_grid's


def test_groove_steering_measures_a_bar_over_its_own_cells():
    late = np.zeros((2, 16))
    late[:, 0] = 1
    late[1, 12:] = 0.9  # a 3/4 bar has no cells 12-15: the critic's guesses there do not count
    critic = TableCritic([1, 1], np.zeros((2, 12)), late)
    steering = ControlSteering(critic, SteeringTarget(groove=True), n_tracks=1)
    steering.choose(torch.zeros(1, 1))
    steering.settle([np.zeros(13)], 3, [np.eye(16)[0]], bar_cells=12)
    assert steering.bar_cells == 12
    assert steering.choose(torch.tensor([[1.0], [0.0]])) == 0  # both repeat the 3/4 bar: the first
    steering.settle([np.zeros(13)], 4, [np.eye(16)[0]], bar_cells=16)
    assert steering.choose(torch.tensor([[1.0], [0.0]])) == 1  # in 4/4 they count


GROOVES = np.array([[1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1], [0, 0, 0, 0]], dtype=float)  # candidate i's predicted onset grid


def test_groove_steering_keeps_the_draw_closest_to_the_tracks_last_bar():
    critic = TableCritic([2, 4, 3, 0], np.zeros((4, 12)), GROOVES)
    steering = ControlSteering(critic, SteeringTarget(groove=True), n_tracks=2)
    candidates = torch.arange(4.0)[:, None]
    assert steering.choose(candidates[[1, 0, 2]], track=0) == 0  # no previous bar yet: the prior's first draw
    np.testing.assert_array_equal(steering.grids[0], GROOVES[1])
    assert steering.choose(candidates[[2, 1]], track=1) == 0
    steering.settle([np.zeros(13), np.zeros(13)], 4)  # without written grids the guesses stand
    assert steering.choose(candidates[[0, 2, 1]], track=0) == 2  # 1111 again: the closest
    assert steering.choose(candidates[[1, 0, 3]], track=1) == 0  # 1011 after 1011: distances 0.25, 0.25, 0.75: the first
    steering.settle([np.zeros(13), np.zeros(13)], 4, [np.array([1.0, 0, 1, 0]), np.zeros(4)])  # what was written
    np.testing.assert_array_equal(steering.grids[0], [1, 0, 1, 0])
    assert steering.grids[1] is None  # a silent bar: no rhythm to keep
    assert steering.choose(candidates[[1, 2]], track=1) == 0  # so the prior's first draw
    assert steering.choose(candidates[[1, 2, 0]], track=0) == 2


def test_groove_steering_aims_at_the_requested_change_of_rhythm():
    critic = TableCritic([2, 4, 3, 0], np.zeros((4, 12)), GROOVES)
    candidates = torch.arange(4.0)[:, None]
    for aim, expected in ((0.0, 0), (0.25, 1), (0.5, 2), (1.0, 2)):  # after 1010: 1010, 1011 and 1111 differ in 0, 1 and 2 cells of 4
        steering = ControlSteering(critic, SteeringTarget(groove=True, groove_distance=aim), n_tracks=1)
        steering.choose(candidates[:1])
        steering.settle([np.zeros(13)], 4)
        assert steering.choose(candidates[[0, 2, 1]]) == expected, aim


def test_groove_steering_leaves_silence_to_the_prior():
    critic = TableCritic([2, 4, 3, 0], np.zeros((4, 12)), GROOVES)
    steering = ControlSteering(critic, SteeringTarget(groove=True), n_tracks=1)
    candidates = torch.arange(4.0)[:, None]
    steering.choose(candidates[:1])  # last bar: 1010
    assert steering.choose(candidates[[1, 0]], torch.tensor([True, False])) == 0  # the first draw is silent: silent
    assert steering.grids[0] is None
    steering.choose(candidates[:1])
    steering.settle([np.zeros(13)] * 3, 4)
    assert steering.choose(candidates[[1, 0, 2]], torch.tensor([False, True, False])) == 2  # a silent draw is not chosen for its rhythm
    for groove, expected in ((True, 1), (False, 0)):
        with_density = ControlSteering(critic, SteeringTarget(density=0.625, groove=groove), n_tracks=1)
        with_density.choose(candidates[:1])
        with_density.settle([np.concatenate([[2], np.zeros(12)])], 4, [GROOVES[0]])
        # 3 more onsets wanted: 1111 (4 onsets) and 1010 (2) miss by 1 each, a tie that rhythm breaks (1111 is 0.5 off
        # the last bar's 1010, 1010 is not), or, without groove steering, the first draw wins; silent (0) misses by 3
        assert with_density.choose(candidates[[1, 0, 3]], torch.tensor([False, False, True])) == expected


def test_density_steering_keeps_the_running_count_on_target():
    critic = TableCritic([0, 4, 8, 16], np.zeros((4, 12)))
    steering = ControlSteering(critic, SteeringTarget(density=2.0), n_tracks=2, bar_quarters=4)
    candidates = torch.arange(4.0)[:, None].expand(4, 3)
    assert steering.choose(candidates) == 1  # half a bar: 4 onsets wanted
    assert steering.choose(candidates[[0, 2, 3]]) == 0  # 8 wanted, 4 had: 0 -> 4 off, 8 -> 4 off, first wins
    assert steering.onsets == 4 and steering.quarters == 4
    assert steering.choose(candidates) == 2  # 12 wanted, 4 had: the shortfall is made up
    assert steering.choose(candidates) == 1  # 16 wanted, 12 had
    assert steering.onsets == 16 and steering.quarters == 8


def test_settling_swaps_the_guesses_for_what_was_written():
    critic = TableCritic([4, 8], [C_MAJOR_TRIAD, A_MINOR_TRIAD])
    steering = ControlSteering(critic, SteeringTarget(density=1.0, key=0), n_tracks=2, bar_quarters=4)
    candidates = torch.arange(2.0)[:, None]
    picks = [steering.choose(candidates) for _ in range(2)]
    written = [np.concatenate([[1], np.eye(12)[5]]), np.concatenate([[2], np.eye(12)[7]])]  # what the two slots really wrote
    steering.settle(written, bar_quarters=3)  # a 3/4 bar
    assert steering.onsets == 3 and np.array_equal(steering.pitch_classes, np.eye(12)[5] + np.eye(12)[7])
    assert steering.quarters == 3 and steering.bar_quarters == 3  # the next bar is guessed as long as this one
    steering.choose(candidates)
    assert steering.quarters == 4.5
    with pytest.raises(ValueError):  # one settled fact per chosen slot
        steering.settle(written, bar_quarters=3)
    assert picks == [0, 0]


def test_a_slot_drawn_silent_is_its_share_of_the_bar_and_writes_nothing():
    sparse = ControlSteering(TableCritic([4, 4, 8], np.ones((3, 12))), SteeringTarget(density=0.1), n_tracks=2, bar_quarters=4)
    assert sparse.choose(torch.arange(3.0)[:, None], torch.tensor([False, True, False])) == 1  # 4, 0 (silent) or 8 onsets
    assert sparse.quarters == 2 and sparse.onsets == 0 and not sparse.pitch_classes.any()
    steering = ControlSteering(TableCritic([0, 4, 8], np.zeros((3, 12))), SteeringTarget(density=2.0), n_tracks=2, bar_quarters=4)
    assert steering.choose(torch.ones(1, 1), torch.tensor([True])) == 0  # the first track rests
    assert steering.quarters == 2 and steering.onsets == 0
    assert steering.choose(torch.arange(3.0)[:, None]) == 2  # its half of the bar is owed by the second: 8 onsets wanted
    steering.settle([np.zeros(13), np.concatenate([[6], np.zeros(12)])], bar_quarters=4)  # one fact per slot, silent ones too
    assert steering.onsets == 6 and steering.quarters == 4


def test_a_silent_bar_adds_no_time():
    steering = ControlSteering(TableCritic([4], np.zeros((1, 12))), SteeringTarget(density=1.0), n_tracks=1, bar_quarters=4)
    steering.choose(torch.zeros(1, 2))
    steering.settle([np.zeros(13)], bar_quarters=4)
    assert steering.quarters == 0 and steering.onsets == 0


def test_key_steering_picks_the_draw_that_makes_the_requested_key_win():
    critic = TableCritic([3, 3], [C_MAJOR_TRIAD, A_MINOR_TRIAD])
    candidates = torch.arange(2.0)[:, None]
    assert ControlSteering(critic, SteeringTarget(key=21), n_tracks=1).choose(candidates) == 1
    assert ControlSteering(critic, SteeringTarget(key=0), n_tracks=1).choose(candidates) == 0


def test_the_critic_trains_with_the_shared_loop_and_reloads_strictly(tmp_path):
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(512, 8)).astype(np.float32)
    facts = np.concatenate([np.exp(latents[:, :1]), np.maximum(latents[:, 1:], 0), np.zeros((512, 5))], axis=1)  # (512, 13)
    torch.manual_seed(0)
    model = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=32))
    task = PhraseCriticTask(model, latents, facts.astype(np.float32), batch_size=64, seed=0, codec_config={"model": "test"})
    z = torch.from_numpy(latents)
    before = np.corrcoef(model.predict(z).onsets.numpy(), facts[:, 0])[0, 1]
    train(task, TrainConfig(out_dir=str(tmp_path), steps=300, lr=3e-3, warmup_steps=10, checkpoint_every=300, zclip=False))
    after = model.eval().predict(z).onsets.numpy()
    assert np.corrcoef(after, facts[:, 0])[0, 1] > max(0.9, before)
    assert after.mean() == pytest.approx(facts[:, 0].mean(), rel=0.1)  # a Poisson fit keeps the mean
    again, record = load_phrase_critic(tmp_path / "checkpoint")
    assert record == {"model": "test"}
    torch.testing.assert_close(again.predict(z).onsets, model.eval().predict(z).onsets, rtol=0, atol=0)
    assert (model.predict(z).onsets >= 0).all() and (model.predict(z).pitch_classes >= 0).all()


def test_a_critic_learns_the_onset_grid_beside_the_counts(tmp_path):
    rng = np.random.default_rng(1)
    latents = rng.normal(size=(512, 8)).astype(np.float32)
    grids = (latents[:, :4] > 0).astype(np.float32)  # (512, 4)
    facts = np.concatenate([np.exp(latents[:, 4:5]), np.zeros((512, 12)), grids], axis=1)
    torch.manual_seed(0)
    model = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=32, onset_cells=4))
    task = PhraseCriticTask(model, latents, facts, batch_size=64, seed=0, codec_config={"model": "test"})
    train(task, TrainConfig(out_dir=str(tmp_path), steps=300, lr=3e-3, warmup_steps=10, checkpoint_every=300, zclip=False))
    again, _ = load_phrase_critic(tmp_path / "checkpoint")
    predicted = again.predict(torch.from_numpy(latents))
    assert predicted.onset_grid.shape == (512, 4) and ((predicted.onset_grid > 0.5).numpy() == grids).mean() > 0.95
    assert np.corrcoef(predicted.onsets.numpy(), facts[:, 0])[0, 1] > 0.9
    assert PhraseCritic(PhraseCriticConfig(d_latent=8)).predict(torch.zeros(2, 8)).onset_grid is None
    with pytest.raises(ValueError, match="4 onset cells learns 17 facts"):
        PhraseCriticTask(model, latents, facts[:, :13], batch_size=64, seed=0, codec_config={})


def test_a_critic_saved_before_onset_grids_loads_strictly():
    old = {"d_latent": 8, "d_hidden": 16, "n_layers": 2, "density_thresholds": [1.0, 2.0], "key_normalized": True}  # no onset_cells
    torch.manual_seed(0)
    weights = PhraseCritic(PhraseCriticConfig(**old)).state_dict()
    critic = PhraseCritic(PhraseCriticConfig.from_dict(old))
    critic.load_state_dict(weights, strict=True)
    assert critic.config.onset_cells == 0 and critic.net[-1].out_features == 13


@pytest.fixture(scope="module")
def untrained(fixture_dataset) -> MusicGenerator:
    torch.manual_seed(0)
    codec = build_phrase_vae(fixture_dataset.tokenizer, "tiny", d_latent=8)
    prior = build_latent_mamba(fixture_dataset, "tiny", d_latent=8)
    return MusicGenerator(codec, fixture_dataset.tokenizer, prior, default_programs=[0, 33])


def _latents(generator: MusicGenerator, request: Request, monkeypatch) -> torch.Tensor:
    """Every latent the generator hands to the codec for a request."""
    seen = []
    decode = generate_module.decode_bars

    def spy(codec, tokenizer, z, **options):
        seen.append(z.clone())
        return decode(codec, tokenizer, z, **options)

    with monkeypatch.context() as patch:
        patch.setattr(generate_module, "decode_bars", spy)
        list(generator.bars(request))
    return torch.cat(seen)


def test_steering_chooses_among_draws_only_when_asked(untrained, monkeypatch):
    plain = _latents(untrained, Request(bars=4, seed=1, density="high"), monkeypatch)
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16))
    steered = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, candidates=4)
    assert torch.equal(_latents(steered, Request(bars=4, seed=1), monkeypatch), _latents(untrained, Request(bars=4, seed=1), monkeypatch))
    one = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, candidates=1)
    assert torch.equal(_latents(one, Request(bars=4, seed=1, density="high"), monkeypatch), plain)
    assert not torch.equal(_latents(steered, Request(bars=4, seed=1, density="high"), monkeypatch), plain)


def test_a_denser_request_keeps_draws_the_critic_finds_denser(untrained, monkeypatch):
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=4, n_layers=1, density_thresholds=[1.0, 2.0]))
    with torch.no_grad():  # predicted onsets = exp(gelu(z[0])): rising with z[0] above -0.75
        for p in critic.parameters():
            p.zero_()
        critic.net[0].weight[0, 0] = 1.0
        critic.net[2].weight[0, 0] = 1.0
    steered = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, candidates=8)
    def as_guessed(self, written, bar_quarters, grids=None, bar_cells=None):  # as if every bar wrote what the critic said
        self._guesses, self._guessed_quarters = [], 0.0

    monkeypatch.setattr(ControlSteering, "settle", as_guessed)
    per_slot = {  # the critic's onsets per slot; targets: 0.75 (low) and 2.3 (high) per quarter, 2 quarters per slot
        level: float(critic.predict(_latents(steered, Request(bars=6, seed=2, density=level), monkeypatch)).onsets.mean())
        for level in ("low", "high")
    }
    assert per_slot["low"] == pytest.approx(1.5, abs=0.3)  # reachable: low draws are common
    assert per_slot["high"] > per_slot["low"] + 0.8  # 4.6 is rarely among 8 draws of this untrained prior: as close as they allow


def test_steering_targets_follow_the_request_and_the_key_frame(untrained):
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16, density_thresholds=[1.0, 2.0]))
    framed = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic)
    framed.prior = type(untrained.prior)(dataclasses.replace(untrained.prior.config, key_normalized=True)).eval()
    assert framed.steering(Request(key="D major"), 2).target.key == 0  # C major in the frame
    assert framed.steering(Request(key="D minor"), 2).target.key == 21  # A minor
    assert framed.steering(Request(density="high"), 2).target == SteeringTarget(density=2.3, key=None)
    assert framed.steering(Request(), 2) is None and framed.steering(Request(density="low", temperature=0), 2) is None
    plain = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic)
    assert plain.steering(Request(key="D minor"), 2).target.key == 14


def test_a_steered_run_settles_every_bar_at_its_written_length_and_repeats(untrained, tmp_path, monkeypatch):
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16))
    steered = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, candidates=4)
    settled = []
    settle = ControlSteering.settle

    def spy(self, written, bar_quarters, grids=None, bar_cells=None):
        settled.append((len(written), bar_quarters))
        settle(self, written, bar_quarters, grids, bar_cells)

    monkeypatch.setattr(ControlSteering, "settle", spy)
    request = Request(bars=3, seed=5, density="medium", key="E minor", time_signature="3/4")
    steered.write(request, tmp_path / "a.mid")
    assert settled == [(2, 3.0)] * 3  # one call per bar, one fact per track, 3/4 bars
    steered.write(request, tmp_path / "b.mid")
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()


def test_groove_steering_is_on_by_default_with_a_critic_of_onset_grids(untrained, monkeypatch):
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16, onset_cells=16))
    grooved = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic)
    assert grooved.steering(Request(), 2).target == SteeringTarget(groove=True, groove_distance=0.125)
    assert grooved.steering(Request(density="low"), 2).target.groove
    three = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, groove_draws=3)
    assert three.draws_per_slot(three.steering(Request(), 2)) == 3
    assert three.draws_per_slot(three.steering(Request(key="C"), 2)) == 8  # `candidates`
    request = Request(bars=4, seed=3)
    plain = _latents(untrained, request, monkeypatch)
    off = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, groove_draws=1)
    assert off.steering(request, 2) is None and torch.equal(_latents(off, request, monkeypatch), plain)
    with torch.no_grad():  # onset grid: sigmoid(4 gelu(gelu(z[0]))) in even cells, its complement in odd ones
        for p in critic.parameters():
            p.zero_()
        critic.net[0].weight[0, 0] = critic.net[2].weight[0, 0] = 1.0
        critic.net[-1].weight[13:, 0] = torch.tensor([4.0, -4.0] * 8)
    chosen, choose = [], ControlSteering.choose
    monkeypatch.setattr(ControlSteering, "choose", lambda self, *args: chosen.append(choose(self, *args)) or chosen[-1])
    monkeypatch.setattr(ControlSteering, "settle", lambda self, *args: setattr(self, "_guesses", []))  # the guessed grids stand
    _latents(grooved, request, monkeypatch)
    assert len(chosen) == 8 and any(chosen[2:])  # one choice per slot; after the first bar, not always the prior's first draw
    with pytest.raises(ValueError, match="groove_draws"):
        MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, groove_draws=0)
    with pytest.raises(ValueError, match="groove_distance"):
        MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic, groove_distance=1.5)


def test_a_continuation_steers_its_first_bar_from_the_prompts_last(untrained, tmp_path, monkeypatch):
    critic = PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16, onset_cells=16))
    grooved = MusicGenerator(untrained.codec, untrained.tokenizer, untrained.prior, [0, 33], critic=critic)
    prompt = tmp_path / "prompt.mid"
    symusic.Score.from_midi(midi_factory.simple_song(n_bars=4)).dump_midi(str(prompt))  # a melody, and a chord held each whole bar
    seen, choose = [], ControlSteering.choose
    monkeypatch.setattr(ControlSteering, "choose", lambda self, *args: seen.append((list(self.grids), self.bar_cells)) or choose(self, *args))
    list(grooved.bars(Request(bars=1, prompt=prompt)))
    grids, cells = seen[0]  # what the first generated slot is steered from
    assert cells == 16 and all(g is not None for g in grids)
    assert any(np.array_equal(g, np.eye(16)[0]) for g in grids)  # the chords' last bar: one onset, on the downbeat


def test_resuming_a_pre_grid_critic_run_with_a_grid_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(2)
    latents = rng.normal(size=(64, 8)).astype(np.float32)
    facts = np.abs(rng.normal(size=(64, 17))).astype(np.float32)
    config = TrainConfig(out_dir=str(tmp_path), steps=2, lr=1e-3, warmup_steps=1, checkpoint_every=2, zclip=False)
    train(PhraseCriticTask(PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16)), latents, facts[:, :13], 16, 0, {}), config)
    saved = tmp_path / "checkpoint" / "config.json"
    record = json.loads(saved.read_text())
    del record["model"]["onset_cells"]  # as a run from before onset grids saved it
    saved.write_text(json.dumps(record))
    gridded = PhraseCriticTask(PhraseCritic(PhraseCriticConfig(d_latent=8, d_hidden=16, onset_cells=4)), latents, facts, 16, 0, {})
    with pytest.raises(ValueError, match="its weights do not fit the model these options build"):
        train(gridded, dataclasses.replace(config, steps=4))
