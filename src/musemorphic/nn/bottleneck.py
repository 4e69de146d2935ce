"""Multi-query cross-attention bottleneck (PhraseVAE, seed 000 section 3.3).

m learned queries attend over the encoder states; their outputs are flattened and
projected to the mean and log-variance of a diagonal Gaussian latent.
Glossary: B batch, T tokens, D model width, m queries, Z latent width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from musemorphic.nn.sigma_reparam import linear


class QueryBottleneck(nn.Module):
    def __init__(self, d_model: int, n_heads: int, n_queries: int, d_latent: int, sigma_reparam: bool = True):
        super().__init__()
        self.n_heads = n_heads
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * d_model**-0.5)  # (m, D)
        self.ln_queries = nn.LayerNorm(d_model)
        self.q = linear(d_model, d_model, sigma_reparam=sigma_reparam)
        self.kv = linear(d_model, 2 * d_model, sigma_reparam=sigma_reparam)
        self.out = linear(d_model, d_model, sigma_reparam=sigma_reparam)
        self.to_gaussian = nn.Linear(n_queries * d_model, 2 * d_latent)

    def forward(
        self,
        h: torch.Tensor,  # (B, T, D) encoder states
        key_padding_mask: torch.Tensor | None = None,  # (B, T) True = real token
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = h.shape
        m, Dh = self.queries.shape[0], D // self.n_heads
        q = self.q(self.ln_queries(self.queries)).view(1, m, self.n_heads, Dh).transpose(1, 2)  # (1, H, m, Dh)
        k, v = self.kv(h).view(B, T, 2, self.n_heads, Dh).permute(2, 0, 3, 1, 4)  # 2 x (B, H, T, Dh)
        mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :]  # (B, 1, 1, T)
        y = F.scaled_dot_product_attention(q.expand(B, -1, -1, -1), k, v, attn_mask=mask)  # (B, H, m, Dh)
        y = self.out(y.transpose(1, 2).reshape(B, m, D))  # (B, m, D)
        mu, logvar = self.to_gaussian(y.reshape(B, m * D)).chunk(2, dim=-1)  # 2 x (B, Z)
        return mu, logvar
