"""A diagonal Gaussian mixture head: predicts a distribution over the next latent.

Regressing the next latent with MSE predicts the average of all plausible bars, which
decodes to mush; a mixture keeps the modes apart and is sampled with a temperature.
Glossary: B batch, L positions, D model width, K components, Z latent width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GaussianMixtureHead(nn.Module):
    """`min_log_scale` floors every component's log-scale: a component narrower than the data's
    own noise buys likelihood only on latents that repeat exactly, at gradients that grow as
    1 / scale."""

    def __init__(self, d_model: int, d_latent: int, n_components: int, min_log_scale: float = -7.0):
        super().__init__()
        self.k, self.z, self.min_log_scale = n_components, d_latent, min_log_scale
        self.proj = nn.Linear(d_model, n_components * (1 + 2 * d_latent))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h (..., D) -> mixture logits (..., K), means (..., K, Z), log-scales (..., K, Z)."""
        out = self.proj(h)
        logits, rest = out.split([self.k, 2 * self.k * self.z], dim=-1)
        means, log_scales = rest.unflatten(-1, (self.k, 2 * self.z)).chunk(2, dim=-1)
        return logits, means, log_scales.clamp(min=self.min_log_scale)

    @staticmethod
    def nll(params: tuple[torch.Tensor, ...], target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood per position, in nats per latent dimension: (..., Z) -> (...)."""
        logits, means, log_scales = (p.float() for p in params)
        z = target.float().unsqueeze(-2)  # (..., 1, Z)
        log_normal = -0.5 * ((z - means) * torch.exp(-log_scales)).pow(2) - log_scales - 0.5 * math.log(2 * math.pi)
        log_prob = torch.logsumexp(F.log_softmax(logits, dim=-1) + log_normal.sum(-1), dim=-1)  # (...)
        return -log_prob / target.shape[-1]

    @staticmethod
    def sample(
        params: tuple[torch.Tensor, ...], temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw one latent per position: (..., K) params -> (..., Z). temperature 0 = mode of the best component."""
        logits, means, log_scales = params
        if temperature <= 0:
            best = logits.argmax(-1)
            return means.gather(-2, best[..., None, None].expand(*best.shape, 1, means.shape[-1])).squeeze(-2)
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        choice = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])  # (...)
        index = choice[..., None, None].expand(*choice.shape, 1, means.shape[-1])
        mean = means.gather(-2, index).squeeze(-2)
        scale = log_scales.gather(-2, index).squeeze(-2).exp()
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * scale * noise
