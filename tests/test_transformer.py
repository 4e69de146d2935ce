"""Pre-LN transformer: KV-cached step-by-step decoding equals the full causal pass."""

from __future__ import annotations

import pytest
import torch

from musemorphic.nn.bottleneck import QueryBottleneck
from musemorphic.nn.transformer import KVCache, Transformer


@pytest.mark.parametrize("sigma_reparam", [True, False])
def test_cached_steps_equal_the_full_causal_pass(sigma_reparam):
    torch.manual_seed(0)
    net = Transformer(n_layers=3, d_model=32, n_heads=4, sigma_reparam=sigma_reparam).eval()
    T = 41  # past the cache's first capacity (16) twice: its buffers grow on the way
    x = torch.randn(2, T, 32)
    full = net(x, causal=True)
    cache = KVCache()
    steps = [net(x[:, t : t + 1], causal=True, cache=cache) for t in range(T)]
    assert cache.length == T and cache.keys[0].shape[2] == 64
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    # a prefix in one go, then single steps, agrees too
    cache = KVCache()
    head = net(x[:, :6], causal=True, cache=cache)
    tail = [net(x[:, t : t + 1], causal=True, cache=cache) for t in range(6, T)]
    torch.testing.assert_close(torch.cat([head, *tail], dim=1), full, atol=1e-5, rtol=1e-5)


def test_a_cache_that_drops_rows_continues_the_kept_ones_exactly():
    torch.manual_seed(0)
    net = Transformer(n_layers=2, d_model=32, n_heads=4).eval()
    x = torch.randn(3, 20, 32)
    full = net(x, causal=True)
    cache = KVCache()
    head = net(x[:, :9], causal=True, cache=cache)
    keep = torch.tensor([True, False, True])
    cache.keep(keep)
    tail = [net(x[keep, t : t + 1], causal=True, cache=cache) for t in range(9, 20)]
    torch.testing.assert_close(torch.cat([head[keep], *tail], dim=1), full[keep], atol=1e-5, rtol=1e-5)


def test_causal_output_ignores_the_future():
    torch.manual_seed(0)
    net = Transformer(n_layers=2, d_model=16, n_heads=2).eval()
    x = torch.randn(1, 8, 16)
    y = x.clone()
    y[:, 5:] = torch.randn(1, 3, 16)
    torch.testing.assert_close(net(x, causal=True)[:, :5], net(y, causal=True)[:, :5])
    assert not torch.allclose(net(x, causal=False)[:, :5], net(y, causal=False)[:, :5])


def test_padding_is_invisible_to_the_encoder_and_bottleneck():
    torch.manual_seed(0)
    net = Transformer(n_layers=2, d_model=16, n_heads=2).eval()
    neck = QueryBottleneck(d_model=16, n_heads=2, n_queries=4, d_latent=8).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    mask = torch.tensor([[True] * 5 + [False] * 3])
    h_short = net(x)
    h_padded = net(padded, key_padding_mask=mask)
    torch.testing.assert_close(h_padded[:, :5], h_short, atol=1e-5, rtol=1e-5)
    mu_a, logvar_a = neck(h_short)
    mu_b, logvar_b = neck(h_padded, key_padding_mask=mask)
    assert mu_a.shape == (1, 8) and logvar_a.shape == (1, 8)
    torch.testing.assert_close(mu_b, mu_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logvar_b, logvar_a, atol=1e-5, rtol=1e-5)


def test_width_must_split_into_heads():
    with pytest.raises(ValueError, match="divisible"):
        Transformer(n_layers=1, d_model=30, n_heads=4)
