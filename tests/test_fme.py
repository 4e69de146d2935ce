"""Fundamental Music Embedding: interval-only distances, log-frequency, feature embedding."""

import math

import pytest
import torch

from musemorphic.nn.fme import FME, MusicFeatureEmbedding, pitch_to_log_frequency


def _fme_with_random_bias(dim: int = 16, base: float = 100.0) -> FME:
    torch.manual_seed(0)
    fme = FME(dim, base)
    with torch.no_grad():
        fme.bias.normal_()
    return fme


def _pitch_dist(fme: FME, a: float, b: float) -> float:
    lf = pitch_to_log_frequency(torch.tensor([a, b])) * 12  # semitone units
    e = fme(lf)  # (2, dim)
    return (e[0] - e[1]).norm().item()


def test_pitch_to_log_frequency():
    lf = pitch_to_log_frequency(torch.tensor([69, 81, 57]))
    assert lf[0].item() == pytest.approx(math.log2(440))
    assert lf[1].item() == pytest.approx(lf[0].item() + 1)
    assert lf[2].item() == pytest.approx(lf[0].item() - 1)


def test_equal_intervals_equal_distances():
    fme = _fme_with_random_bias()
    fifth_a, fifth_b = _pitch_dist(fme, 60, 67), _pitch_dist(fme, 50, 57)
    assert fifth_a == pytest.approx(fifth_b, abs=1e-5)
    assert abs(_pitch_dist(fme, 60, 64) - fifth_a) > 1e-2  # a third differs from a fifth
    assert abs(_pitch_dist(fme, 60, 61) - fifth_a) > 1e-2


def test_translation_invariance_with_bias():
    fme = _fme_with_random_bias()
    x = torch.rand(5) * 10
    y = torch.rand(5) * 10
    t = 3.7
    d0 = (fme(x) - fme(y)).norm(dim=-1)
    d1 = (fme(x + t) - fme(y + t)).norm(dim=-1)
    assert torch.allclose(d0, d1, atol=1e-5)
    assert fme(x).shape == (5, 16)


def _table() -> torch.Tensor:
    nan = float("nan")
    return torch.tensor(
        [
            [nan, nan, nan],  # e.g. a Bar token
            [60.0, 1.0, nan],  # pitch + duration
            [67.0, 0.5, 2.0],  # all three
            [nan, nan, 3.0],  # position only
        ]
    )


def test_music_feature_embedding_nan_and_shapes():
    torch.manual_seed(0)
    emb = MusicFeatureEmbedding(_table(), dim=8, fme_dim=6)
    ids = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    out = emb(ids)  # (2, 4, 8)
    assert out.shape == (2, 4, 8)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0, 0], emb.proj.bias)  # all-NaN row -> projection bias only
    # a missing kind contributes exactly zero: changing its FME bias leaves the output unchanged
    before = emb(torch.tensor([[1]]))
    with torch.no_grad():
        emb.fmes[2].bias.add_(1.0)  # onset FME; token 1 has no onset
    assert torch.equal(before, emb(torch.tensor([[1]])))


def test_music_feature_embedding_gradients():
    torch.manual_seed(0)
    emb = MusicFeatureEmbedding(_table(), dim=8, fme_dim=6)
    emb(torch.tensor([[0, 1, 2, 3]])).square().sum().backward()
    assert emb.proj.weight.grad.abs().sum() > 0 and emb.proj.bias.grad.abs().sum() > 0
    for fme in emb.fmes:
        assert torch.isfinite(fme.bias.grad).all() and fme.bias.grad.abs().sum() > 0
    assert "feature_table" in emb.state_dict()
