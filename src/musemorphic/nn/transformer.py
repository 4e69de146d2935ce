"""Pre-LN transformer blocks with (optionally causal) self-attention and a KV cache.

Glossary: B batch, T new positions, S cached + new positions, D model width,
H heads, Dh = D / H head width.

`forward(x, cache=...)` appends the new keys/values to `cache` and attends over all of
them, so decoding one token at a time gives the same outputs as one full causal pass
(tested in tests/test_transformer.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.nn.sigma_reparam import linear


@dataclass
class KVCache:
    """Keys and values seen so far, one (B, H, S, Dh) pair per layer."""

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.keys[0].shape[2] if self.keys else 0


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, sigma_reparam: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = linear(d_model, 3 * d_model, sigma_reparam=sigma_reparam)
        self.out = linear(d_model, d_model, sigma_reparam=sigma_reparam)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        causal: bool,
        key_padding_mask: torch.Tensor | None = None,  # (B, S) True = real token
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        past = 0
        if cache is not None:
            if layer < len(cache.keys):
                past = cache.keys[layer].shape[2]
                k = torch.cat([cache.keys[layer], k], dim=2)  # (B, H, S, Dh)
                v = torch.cat([cache.values[layer], v], dim=2)
                cache.keys[layer], cache.values[layer] = k, v
            else:
                cache.keys.append(k)
                cache.values.append(v)
        mask = None
        if causal:
            S = k.shape[2]
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=past)  # (T, S)
        if key_padding_mask is not None:
            pad = key_padding_mask[:, None, None, :]  # (B, 1, 1, S)
            mask = pad if mask is None else mask & pad
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)


class MLP(nn.Module):
    def __init__(self, d_model: int, expansion: int = 4, dropout: float = 0.0, sigma_reparam: bool = True):
        super().__init__()
        self.up = linear(d_model, expansion * d_model, sigma_reparam=sigma_reparam)
        self.down = linear(expansion * d_model, d_model, sigma_reparam=sigma_reparam)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(F.gelu(self.up(x))))


class TransformerBlock(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, sigma_reparam: bool = True):
        super().__init__()
        self.ln_attn = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout, sigma_reparam)
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model, dropout=dropout, sigma_reparam=sigma_reparam)

    def forward(self, x, causal, key_padding_mask=None, cache=None, layer=0):
        x = x + self.attn(self.ln_attn(x), causal, key_padding_mask, cache, layer)
        return x + self.mlp(self.ln_mlp(x))


class Transformer(nn.Module):
    """A stack of Pre-LN blocks with a final LayerNorm."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, dropout: float = 0.0, sigma_reparam: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, dropout, sigma_reparam) for _ in range(n_layers)
        )
        self.ln_out = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        causal: bool = False,
        key_padding_mask: torch.Tensor | None = None,  # (B, S)
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, causal, key_padding_mask, cache, i)
        return self.ln_out(x)  # (B, T, D)
