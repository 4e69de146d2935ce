"""σReparam linear layer: spectral norm tracking, init equivalence, state round trip."""

import torch
from torch import nn

from musemorphic.nn.sigma_reparam import SigmaReparamLinear, linear


def _layer(seed: int = 0) -> SigmaReparamLinear:
    torch.manual_seed(seed)
    return SigmaReparamLinear(24, 16)


def _train_steps(layer: SigmaReparamLinear, n: int = 50) -> None:
    layer.train()
    for _ in range(n):
        layer(torch.randn(4, 24))


def test_top_singular_value_is_gamma():
    layer = _layer()
    _train_steps(layer)
    top = torch.linalg.svdvals(layer.effective_weight().detach())[0]
    assert torch.isclose(top, layer.gamma.detach().abs(), rtol=1e-3)
    with torch.no_grad():
        layer.gamma.fill_(2.5)
    top = torch.linalg.svdvals(layer.effective_weight().detach())[0]
    assert torch.isclose(top, torch.tensor(2.5), rtol=1e-3)


def test_init_equals_plain_linear():
    layer = _layer().eval()
    plain = nn.Linear(24, 16)
    with torch.no_grad():
        plain.weight.copy_(layer.weight)
        plain.bias.copy_(layer.bias)
    x = torch.randn(3, 5, 24)
    assert torch.allclose(layer(x), plain(x), atol=1e-4)


def test_eval_keeps_u_and_grads_flow():
    layer = _layer().eval()
    u, v = layer.u.clone(), layer.v.clone()
    layer(torch.randn(4, 24)).sum().backward()
    assert torch.equal(layer.u, u) and torch.equal(layer.v, v)
    layer.train()
    layer.zero_grad()
    layer(torch.randn(4, 24)).square().sum().backward()
    assert not torch.equal(layer.u, u)
    assert layer.gamma.grad is not None and layer.gamma.grad.abs() > 0
    assert layer.weight.grad.abs().sum() > 0


def test_state_dict_round_trip():
    layer = _layer(0)
    _train_steps(layer, 5)
    other = _layer(1)
    other.load_state_dict(layer.state_dict(), strict=True)
    assert {"u", "v", "gamma"} <= set(layer.state_dict())
    x = torch.randn(4, 24)
    layer.eval(), other.eval()
    assert torch.equal(layer(x), other(x))


def test_autocast_bf16_and_switch():
    layer = _layer()
    x = torch.randn(2, 3, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16 and y.shape == (2, 3, 16)
    assert layer.u.dtype == torch.float32
    y.float().sum().backward()
    assert layer.gamma.grad is not None
    assert type(linear(4, 3, sigma_reparam=False)) is nn.Linear
    assert isinstance(linear(4, 3, bias=False), SigmaReparamLinear)


def test_cached_inference_weight_matches_the_reference_and_follows_every_change():
    layer = _layer()
    _train_steps(layer, 5)
    layer.eval()
    x = torch.randn(3, 24)

    def reference() -> torch.Tensor:
        return torch.nn.functional.linear(x, layer.effective_weight(), layer.bias)

    with torch.no_grad():
        torch.testing.assert_close(layer(x), reference(), rtol=0, atol=0)
        layer.weight.mul_(1.5).add_(0.1)  # an in-place edit
        torch.testing.assert_close(layer(x), reference(), rtol=0, atol=0)
        other = _layer(seed=1)
        _train_steps(other, 5)
        layer.load_state_dict(other.state_dict())  # loading new weights, gamma and u, v
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, other.effective_weight(), other.bias), rtol=0, atol=0)
        layer.gamma.fill_(2.0)
        torch.testing.assert_close(layer(x), reference(), rtol=0, atol=0)
        layer.weight.data = torch.randn(16, 24)  # swapped storage (as moving or casting does), no version bump
        torch.testing.assert_close(layer(x), reference(), rtol=0, atol=0)
    assert layer(x).requires_grad  # with gradients on, W_hat is recomputed, never cached
