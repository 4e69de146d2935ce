"""LatentMamba: parity of parallel and recurrent paths, controls, windows, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musemorphic.nn.mixture import GaussianMixtureHead
from musemorphic.models.latent_mamba import CONTROL_NAMES, LatentMamba, TrackMemory, latent_mamba_config
from musemorphic.training.latent_mamba import (
    LatentMambaTask,
    LatentSongWindows,
    build_latent_mamba,
    fine_tuned_latent_mamba,
    load_latent_mamba,
)
from musemorphic.training.loop import TrainConfig, make_optimizer, train


def _model(head="gmm", track_memory_decay=0.0, silence_head=False) -> LatentMamba:
    torch.manual_seed(0)
    return LatentMamba(latent_mamba_config(
        "tiny", d_latent=6, head=head, styles=["pop", "jazz"], track_memory_decay=track_memory_decay, silence_head=silence_head
    ))


@pytest.mark.parametrize("track_memory_decay, silence_head", [(0.0, False), (0.7, False), (0.0, True)])
def test_recurrent_steps_equal_the_parallel_forward(track_memory_decay, silence_head):
    model = _model(track_memory_decay=track_memory_decay, silence_head=silence_head).eval()
    B, L = 2, 9
    latents = torch.randn(B, L, 6)
    tracks = torch.tensor([[0, 1, 2] * 3] * B)
    programs = torch.tensor([[0, 33, -1] * 3] * B)
    controls = torch.tensor([[3, 21, 0, 2, 1], [-1, -1, -1, -1, -1]])
    with torch.no_grad():
        full = model(controls, latents, tracks, programs, scan="parallel")
        reference = model(controls, latents, tracks, programs, scan="sequential")
        states = model.start(controls)
        previous = torch.zeros(B, 6)
        steps = []
        for t in range(L):
            out, states = model.step(previous, tracks[:, t], programs[:, t], states)
            steps.append(out)
            previous = latents[:, t]
    assert len(full) == 3 + silence_head  # mixture logits, means, log-scales (+ silence logits)
    for i in range(len(full)):
        stepped = torch.stack([s[i] for s in steps], dim=1)
        torch.testing.assert_close(stepped, full[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(reference[i], full[i], atol=1e-5, rtol=1e-5)


def test_controls_change_the_prediction_and_unspecified_is_its_own_class():
    model = _model().eval()
    latents = torch.randn(1, 3, 6)
    tracks = torch.zeros(1, 3, dtype=torch.long)
    programs = torch.zeros(1, 3, dtype=torch.long)
    outs = [model(torch.tensor([c]), latents, tracks, programs)[1] for c in ([0, 0, 0, 0, 0], [7, 0, 0, 0, 0], [-1] * 5)]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])
    assert len(CONTROL_NAMES) == 5


def test_input_noise_blurs_the_history_in_training_only():
    torch.manual_seed(0)
    config = latent_mamba_config("tiny", d_latent=6, styles=["pop"], input_noise=0.5)
    noisy, clean = LatentMamba(config), LatentMamba(latent_mamba_config("tiny", d_latent=6, styles=["pop"]))
    clean.load_state_dict(noisy.state_dict(), strict=True)
    args = (torch.full((2, 5), -1), torch.randn(2, 5, 6), torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    with torch.no_grad():
        trained = noisy.train()(*args)[1]  # means (B, L, K, Z)
        reference = clean.train()(*args)[1]
        assert torch.equal(noisy.eval()(*args)[1], clean.eval()(*args)[1])  # generation reads its history as it is
    torch.testing.assert_close(trained[:, 0], reference[:, 0])  # the first slot reads no latent
    assert not torch.allclose(trained[:, 1:], reference[:, 1:])  # every later one reads a blurred one


def test_a_fine_tuned_prior_starts_as_its_start_with_new_training_options():
    start = _model(silence_head=True).eval()
    tuned = fine_tuned_latent_mamba(start.half(), input_noise=0.2).eval()
    assert tuned.config.input_noise == 0.2 and tuned.config.silence_head
    assert all(p.dtype == torch.float32 for p in tuned.parameters())
    for (name, a), (_, b) in zip(tuned.state_dict().items(), start.state_dict().items()):
        torch.testing.assert_close(a, b.float(), rtol=0, atol=0, msg=name)


def test_mse_head_regresses_and_samples_its_mean():
    model = _model("mse").eval()
    pred = model(torch.full((1, 5), -1), torch.randn(1, 4, 6), torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))
    assert pred.shape == (1, 4, 6)
    assert torch.equal(model.sample(pred, temperature=1.0), pred)
    with pytest.raises(ValueError, match="head"):
        LatentMamba(latent_mamba_config("tiny", head="flow"))


def test_a_logs_are_not_decayed():
    model = _model()
    decay, _ = make_optimizer(model, TrainConfig(out_dir="unused")).param_groups
    assert not any(p is block.A_log for block in model.backbone.blocks for p in decay["params"])


def test_windows_follow_the_slot_order(fixture_dataset):
    model = build_latent_mamba(fixture_dataset, "tiny", d_latent=4)
    latents = np.arange(len(fixture_dataset) * 4, dtype=np.float32).reshape(-1, 4)  # row i holds 4i..4i+3
    windows = LatentSongWindows(fixture_dataset, latents, model.config, window_slots=12)
    rows, programs, _ = windows.songs[0]
    got, tracks, progs, _, silent = windows.window(0, 2, 2)
    n_tracks = rows.shape[1]
    assert tracks.tolist() == list(range(n_tracks)) * 2
    assert progs.tolist() == programs.tolist() * 2
    expected_rows = [rows[b, t] for b in (2, 3) for t in range(n_tracks)]
    assert got[:, 0].tolist() == [4.0 * r for r in expected_rows]
    assert silent.tolist() == [fixture_dataset.shard.columns["phrase_n_notes"][r] == 0 for r in expected_rows]
    batch = windows.sample(3, seed=0, rank=0, step=0)
    assert batch["latents"].shape[0] == 3 and batch["mask"].sum() > 0
    assert torch.equal(batch["controls"], windows.sample(3, seed=0, rank=0, step=0)["controls"])


def test_tiny_model_trains_and_reloads(fixture_dataset, tmp_path):
    torch.manual_seed(0)
    model = build_latent_mamba(fixture_dataset, "tiny", d_latent=8)
    latents = np.random.default_rng(0).normal(size=(len(fixture_dataset), 8)).astype(np.float32)
    windows = LatentSongWindows(fixture_dataset, latents, model.config, window_slots=48)
    task = LatentMambaTask(model, windows, batch_size=4, seed=0, codec_config={"kind": "test"})
    result = train(task, TrainConfig(out_dir=str(tmp_path), steps=30, lr=3e-3, warmup_steps=3, checkpoint_every=30))
    losses = [result.losses[s] for s in range(30)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    again, codec = load_latent_mamba(tmp_path / "checkpoint")
    assert codec == {"kind": "test"}
    batch = task.batch(0, 0)
    model.eval()
    with torch.no_grad():
        a = model(batch["controls"], batch["latents"], batch["tracks"], batch["programs"])
        b = again(batch["controls"], batch["latents"], batch["tracks"], batch["programs"])
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_controls_reach_late_slots_directly():
    """The summed controls join every slot's input, so a request still steers slot 64."""
    model = _model().eval()
    L = 64
    latents = torch.randn(1, L, 6)
    tracks = torch.zeros(1, L, dtype=torch.long)
    programs = torch.zeros(1, L, dtype=torch.long)
    with torch.no_grad():
        a = model(torch.tensor([[-1, 0, -1, -1, -1]]), latents, tracks, programs)
        b = model(torch.tensor([[-1, 7, -1, -1, -1]]), latents, tracks, programs)
    late = [(x[:, -1] - y[:, -1]).abs().max().item() for x, y in zip(a, b)]
    assert max(late) > 1e-2


def test_configs_saved_before_every_slot_controls_keep_the_prefix_only():
    saved = _model().config.to_dict()
    del saved["controls_every_slot"]
    config = type(_model().config).from_dict(saved)
    assert not config.controls_every_slot
    torch.manual_seed(0)
    model = LatentMamba(config).eval()
    latents, slots = torch.randn(1, 64, 6), torch.zeros(1, 64, dtype=torch.long)
    with torch.no_grad():
        a = model(torch.tensor([[-1, 0, -1, -1, -1]]), latents, slots, slots)
        b = model(torch.tensor([[-1, 7, -1, -1, -1]]), latents, slots, slots)
    assert max((x[:, -1] - y[:, -1]).abs().max().item() for x, y in zip(a, b)) < 1e-4


def test_track_memory_is_a_bias_corrected_moving_average_per_track():
    memory = TrackMemory.empty(1, 4, 2, torch.zeros(1))
    track0, track2 = torch.tensor([0]), torch.tensor([2])
    z0, z1 = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -2.0]])
    memory = memory.write(track0, z0, decay=0.5)
    torch.testing.assert_close(memory.read(track0), z0)  # one latent: the average is that latent
    memory = memory.write(track0, z1, decay=0.5)
    torch.testing.assert_close(memory.read(track0), (0.5 * z0 + z1) / 1.5)
    assert torch.equal(memory.read(track2), torch.zeros(1, 2))  # a track that wrote nothing


def test_mixture_means_are_offsets_plus_a_gated_share_of_the_own_tracks_average():
    model = _model(track_memory_decay=0.7).eval()
    with torch.no_grad():
        model.head.proj.weight.zero_()
        model.head.proj.bias.zero_()  # every component's mean offset is now zero
        model.memory_gate.weight.zero_()
        model.memory_gate.bias.fill_(30.0)  # every gate open
    latents = torch.randn(1, 6, 6)
    tracks = torch.tensor([[0, 1] * 3])
    with torch.no_grad():
        _, means, _ = model(torch.full((1, 5), -1), latents, tracks, torch.zeros(1, 6, dtype=torch.long))
    decay = model.config.track_memory_decay
    expected_slot4 = (decay * latents[0, 0] + latents[0, 2]) / (decay + 1)  # track 0 wrote slots 0 and 2
    torch.testing.assert_close(means[0, 4, 0], expected_slot4)
    torch.testing.assert_close(means[0, 3, 0], latents[0, 1])  # track 1 wrote slot 1
    assert torch.equal(means[0, :2], torch.zeros(2, 2, 6))  # first bar: nothing written yet
    with torch.no_grad():
        model.memory_gate.bias.fill_(-30.0)  # every gate shut: the means are the offsets alone
        _, shut, _ = model(torch.full((1, 5), -1), latents, tracks, torch.zeros(1, 6, dtype=torch.long))
    assert shut.abs().max() < 1e-9


def test_the_track_memory_stays_fixed_in_size_and_old_configs_run_without_it():
    model = _model(track_memory_decay=0.7).eval()
    states = model.start(torch.full((1, 5), -1))
    shapes = set()
    with torch.no_grad():
        for t in range(50):
            _, states = model.step(torch.randn(1, 6), torch.tensor([t % 3]), torch.tensor([0]), states)
            shapes.add((tuple(states.memory.sums.shape), tuple(states.memory.weights.shape)))
    assert shapes == {((1, model.config.max_tracks, 6), (1, model.config.max_tracks))}
    saved = model.config.to_dict()
    del saved["track_memory_decay"]
    old = LatentMamba(type(model.config).from_dict(saved))
    assert old.config.track_memory_decay == 0.0 and old.memory_in is None


def test_configs_saved_before_the_scale_floor_keep_the_old_floor():
    saved = _model().config.to_dict()
    assert saved["min_log_scale"] == -3.0 and _model().head.min_log_scale == -3.0
    del saved["min_log_scale"]
    assert LatentMamba(type(_model().config).from_dict(saved)).head.min_log_scale == -7.0


def test_key_normalised_windows_carry_the_frame_key(fixture_dataset):
    model = build_latent_mamba(fixture_dataset, "tiny", d_latent=4, key_normalized=True)
    latents = np.zeros((len(fixture_dataset), 4), dtype=np.float32)
    windows = LatentSongWindows(fixture_dataset, latents, model.config, window_slots=12)
    keys = {controls[1] for _, _, controls in windows.songs}
    assert keys <= {-1, 0, 21} and keys & {0, 21}
    plain = LatentSongWindows(fixture_dataset, latents, build_latent_mamba(fixture_dataset, "tiny", d_latent=4).config, window_slots=12)
    assert {controls[1] for _, _, controls in plain.songs} - {-1, 0, 21}  # the fixtures are in other keys too


def test_a_share_of_windows_opens_at_the_first_bar(fixture_dataset):
    model = build_latent_mamba(fixture_dataset, "tiny", d_latent=4)
    latents = np.arange(len(fixture_dataset) * 4, dtype=np.float32).reshape(-1, 4)  # row i holds 4i..4i+3
    first_bars = {}
    for share in (0.0, 1.0):
        windows = LatentSongWindows(fixture_dataset, latents, model.config, window_slots=6, song_start_share=share)
        rows = windows.sample(64, seed=0, rank=0, step=0)["latents"][:, 0, 0].numpy().astype(int) // 4
        first_bars[share] = fixture_dataset.shard.columns["phrase_bar"][rows]
    assert (first_bars[1.0] == 0).all()
    assert (first_bars[0.0] > 0).mean() > 0.5


@pytest.mark.parametrize("head", ["gmm", "mse"])
def test_guidance_interpolates_and_extrapolates_between_the_two_rows(head):
    model = _model(head).eval()
    controls = torch.tensor([[3, 21, 0, 2, 1], [-1, -1, -1, -1, -1]])
    with torch.no_grad():
        states = model.start(controls)
        prediction, _ = model.step(torch.randn(1, 6).expand(2, -1), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long), states)
    rows = prediction if head == "gmm" else (prediction,)
    for w, expected in ((1.0, [x[0:1] for x in rows]), (0.0, [x[1:2] for x in rows]), (3.0, [x[1:2] + 3 * (x[0:1] - x[1:2]) for x in rows])):
        got = model.guide(prediction, w)
        got = got if head == "gmm" else (got,)
        for g, e in zip(got[:2], expected[:2]):
            torch.testing.assert_close(g, e)
    if head == "gmm":
        torch.testing.assert_close(model.guide(prediction, 3.0)[2], prediction[2][0:1])  # scales: the conditioned row's


def test_the_silence_head_scores_silent_slots_by_their_probability_alone():
    model = _model(silence_head=True).eval()
    B, L = 2, 6
    latents, silent = torch.randn(B, L, 6), torch.tensor([[1, 0, 0, 1, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    tracks, programs = torch.tensor([[0, 1] * 3] * B), torch.tensor([[0, 33] * 3] * B)
    controls, mask = torch.full((B, 5), -1), torch.ones(B, L)
    prediction = model(controls, latents, tracks, programs)
    p_silent = torch.sigmoid(prediction[3])  # (B, L)
    density_nll = GaussianMixtureHead.nll(prediction[:3], latents) * 6  # nats per slot
    expected = torch.where(silent, -p_silent.log(), -(1 - p_silent).log() + density_nll).mean() / 6
    torch.testing.assert_close(model.loss(prediction, latents, mask, silent), expected)
    moved = latents.clone()
    moved[silent] += 5.0  # a silent slot's latent plays no part in its score
    torch.testing.assert_close(model.loss(prediction, moved, mask, silent), expected)
    with pytest.raises(ValueError, match="silent flags"):
        model.loss(prediction, latents, mask)
    with pytest.raises(ValueError, match="gmm"):
        LatentMamba(latent_mamba_config("tiny", head="mse", silence_head=True))


def test_silence_is_drawn_with_its_probability_and_never_without_the_head():
    plain, model = _model(), _model(silence_head=True)
    controls = torch.full((4000, 5), -1)
    with torch.no_grad():
        states = model.start(controls)
        prediction, _ = model.step(torch.zeros(4000, 6), torch.zeros(4000, dtype=torch.long), torch.zeros(4000, dtype=torch.long), states)
    generator = torch.Generator().manual_seed(0)
    p = float(torch.sigmoid(prediction[3][0]))
    assert model.silent(prediction, 1.0, generator).float().mean() == pytest.approx(p, abs=0.03)
    assert model.silent(prediction, 0.0).all() == (p > 0.5)
    state = generator.get_state()
    plain_prediction = tuple(prediction[:3])
    assert not plain.silent(plain_prediction, 1.0, generator).any()
    assert torch.equal(generator.get_state(), state)  # no random number drawn: priors without the head sample as before
    silence = prediction[3][:2] + torch.tensor([1.0, -1.0])  # guidance pushes the silence logit like the mixture's
    guided = model.guide((*prediction[:3], silence), 3.0)
    torch.testing.assert_close(guided[3], silence[1:2] + 3 * (silence[0:1] - silence[1:2]))
