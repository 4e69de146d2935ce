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
    """Keys and values seen so far, per layer, in buffers that double when full.

    Appending is amortised O(new tokens): no copy of the whole history per step, so a long
    decode costs what its attention costs. For inference (the buffers are written in place).
    """

    keys: list[torch.Tensor] = field(default_factory=list)  # (B, H, capacity, Dh) per layer
    values: list[torch.Tensor] = field(default_factory=list)
    filled: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.filled[0] if self.filled else 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add (B, H, T, Dh) keys/values to a layer; returns all of them so far, (B, H, S, Dh)."""
        if layer == len(self.keys):
            self.keys.append(k.new_empty(*k.shape[:2], max(16, k.shape[2]), k.shape[3]))
            self.values.append(v.new_empty(self.keys[-1].shape))
            self.filled.append(0)
        start, end = self.filled[layer], self.filled[layer] + k.shape[2]
        if end > self.keys[layer].shape[2]:
            capacity = max(end, 2 * self.keys[layer].shape[2])
            for buffers in (self.keys, self.values):
                grown = buffers[layer].new_empty(*k.shape[:2], capacity, k.shape[3])
                grown[:, :, :start] = buffers[layer][:, :, :start]
                buffers[layer] = grown
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        self.filled[layer] = end
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only these batch rows (a (B,) bool mask or indices), e.g. to drop finished sequences."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]


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
            past = cache.filled[layer] if layer < len(cache.filled) else 0
            k, v = cache.append(layer, k, v)  # (B, H, S, Dh)
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
