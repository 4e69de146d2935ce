"""ZClip: warm-up never clips, ordinary steps pass bitwise, spikes go to the reciprocal bound."""

from __future__ import annotations

import json
import math

import torch

from musemorphic.training.zclip import ZClip

DIRECTION = torch.tensor([3.0, -4.0, 0.0, 12.0]) / 13.0  # unit norm


def _param(norm: float) -> torch.Tensor:
    p = torch.zeros(4, requires_grad=True)
    p.grad = DIRECTION * norm
    return p


def _ordinary_norms(n: int, seed: int = 0) -> list[float]:
    g = torch.Generator().manual_seed(seed)
    return (1.0 + 0.05 * torch.randn(n, generator=g)).tolist()


def _warmed_up(seed: int = 0) -> ZClip:
    clip = ZClip()
    for norm in _ordinary_norms(25, seed):
        clip.step([_param(norm)])
    return clip


def test_warmup_never_clips():
    clip = ZClip(warmup_steps=25)
    norms = _ordinary_norms(25)
    norms[10] = 50.0
    for norm in norms:
        p = _param(norm)
        before = p.grad.clone()
        assert math.isclose(clip.step([p]), norm, rel_tol=1e-6)
        assert not clip.last_clipped
        assert torch.equal(p.grad, before)
    assert clip.mean is not None and clip.var > 0


def test_max_grad_norm_caps_during_warmup():
    clip = ZClip(max_grad_norm=2.0)
    p = _param(50.0)
    clip.step([p])
    assert clip.last_clipped
    assert math.isclose(p.grad.norm().item(), 2.0, rel_tol=1e-4)
    assert clip.warmup_norms == [clip.warmup_norms[0]] and math.isclose(clip.warmup_norms[0], 50.0, rel_tol=1e-6)


def test_ordinary_step_after_warmup_is_untouched():
    clip = _warmed_up()
    p = _param(1.02)
    before = p.grad.clone()
    clip.step([p])
    assert not clip.last_clipped
    assert torch.equal(p.grad, before)


def test_spike_is_clipped_to_reciprocal_bound():
    clip = _warmed_up()
    mean, std = clip.mean, math.sqrt(clip.var)
    p = _param(50.0)
    returned = clip.step([p])
    z = (returned - mean) / (std + clip.eps)
    bound = mean + (clip.z_thresh**2 / z) * std
    after = p.grad.norm().item()
    assert clip.last_clipped
    assert math.isclose(returned, 50.0, rel_tol=1e-6)
    assert math.isclose(after, bound, rel_tol=1e-4)
    assert mean <= after < mean + clip.z_thresh * std
    assert math.isclose(clip.mean, 0.97 * mean + 0.03 * bound)  # the EMA saw the clipped norm


def test_non_finite_norm_is_left_alone():
    clip = _warmed_up()
    stats = clip.state_dict()
    p = _param(1.0)
    p.grad[0] = float("inf")
    assert math.isinf(clip.step([p]))
    assert not clip.last_clipped and clip.state_dict() == stats


def test_state_dict_round_trip_gives_identical_decisions():
    for n_before in (10, 40):  # mid-warm-up and after it
        norms = _ordinary_norms(60, seed=1)
        norms[45], norms[52] = 50.0, 8.0
        clipped = []
        first = ZClip()
        for norm in norms[:n_before]:
            first.step([_param(norm)])
        second = ZClip()
        second.load_state_dict(json.loads(json.dumps(first.state_dict())))
        for norm in norms[n_before:]:
            a, b = _param(norm), _param(norm)
            first.step([a])
            second.step([b])
            assert first.last_clipped == second.last_clipped
            assert torch.equal(a.grad, b.grad)
            clipped.append(first.last_clipped)
        assert first.state_dict() == second.state_dict()
        assert clipped[45 - n_before] and clipped[52 - n_before]
