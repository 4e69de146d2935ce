"""Gaussian mixture head: likelihood against a hand computation, sampling, temperature."""

from __future__ import annotations

import math

import torch

from musemorphic.nn.mixture import GaussianMixtureHead


def test_nll_matches_a_hand_computed_mixture():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # weights 1/4, 3/4
    means = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])
    log_scales = torch.zeros(1, 2, 2)
    z = torch.tensor([[1.0, 1.0]])
    n1 = math.exp(-0.5 * 2) / (2 * math.pi)  # N(z; 0, I) in 2-d
    n2 = 1 / (2 * math.pi)  # N(z; z, I)
    expected = -math.log(0.25 * n1 + 0.75 * n2) / 2
    got = GaussianMixtureHead.nll((logits, means, log_scales), z)
    assert abs(float(got) - expected) < 1e-5


def test_sampling_follows_weights_and_temperature_zero_is_the_mode():
    logits = torch.tensor([0.0, 5.0]).expand(4000, 2)
    means = torch.tensor([[-10.0], [10.0]]).expand(4000, 2, 1)
    log_scales = torch.full((4000, 2, 1), -3.0)
    gen = torch.Generator().manual_seed(0)
    samples = GaussianMixtureHead.sample((logits, means, log_scales), 1.0, gen)[:, 0]
    share_high = float((samples > 0).float().mean())
    assert abs(share_high - torch.softmax(torch.tensor([0.0, 5.0]), 0)[1]) < 0.02
    mode = GaussianMixtureHead.sample((logits[:1], means[:1], log_scales[:1]), 0.0)
    assert mode.tolist() == [[10.0]]
    cold = GaussianMixtureHead.sample((logits, means, log_scales), 0.1, gen)[:, 0]
    assert float((cold - 10).abs().max()) < 0.1  # low temperature: the dominant mode, tight


def test_head_shapes_and_training_signal():
    torch.manual_seed(0)
    head = GaussianMixtureHead(d_model=8, d_latent=3, n_components=4)
    h = torch.randn(2, 5, 8, requires_grad=True)
    logits, means, log_scales = head(h)
    assert logits.shape == (2, 5, 4) and means.shape == (2, 5, 4, 3) and log_scales.shape == (2, 5, 4, 3)
    loss = GaussianMixtureHead.nll((logits, means, log_scales), torch.randn(2, 5, 3)).mean()
    loss.backward()
    assert head.proj.weight.grad.abs().sum() > 0


def test_log_scales_are_floored():
    head = GaussianMixtureHead(d_model=4, d_latent=3, n_components=2, min_log_scale=-3.0)
    with torch.no_grad():
        head.proj.bias.fill_(-20.0)  # every raw log-scale far below the floor
    _, _, log_scales = head(torch.zeros(1, 4))
    assert torch.equal(log_scales, torch.full_like(log_scales, -3.0))
