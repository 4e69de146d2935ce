"""ZClip: adaptive gradient clipping on z-scores of the gradient norm (Kumar et al. 2025).

Running statistics of the total gradient norm g_t are exponential moving averages:
  mu_t      = a * mu_{t-1} + (1 - a) * g_t
  sigma_t^2 = a * sigma_{t-1}^2 + (1 - a) * (g_t - mu_t)^2
seeded by the plain mean and (population) variance of the first `warmup_steps` norms.
After warm-up, a step with z_t = (g_t - mu) / sigma > z_thresh is rescaled to the norm

  mu + (z_thresh^2 / z_t) * sigma        (the paper's "reciprocal" / adaptive scaling)

and the EMA is updated with that clipped norm. Reciprocal rather than mu + z_thresh * sigma
because it is the paper's default: the target equals mu + z_thresh * sigma at z_t = z_thresh
(continuous) and falls towards mu as the spike grows, so the worst outliers move the
parameters (and the EMA) least, while it never clips below mu.

Non-finite norms are returned untouched and leave the statistics alone: the caller should
skip that optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


class ZClip:
    """Call `step(model.parameters())` after `backward()` and before `optimizer.step()`.

    `max_grad_norm` (optional) is a hard ceiling applied at every step, warm-up included;
    it does not enter the statistics.
    """

    def __init__(
        self,
        alpha: float = 0.97,
        z_thresh: float = 2.5,
        warmup_steps: int = 25,
        *,
        max_grad_norm: float | None = None,
        eps: float = 1e-6,
    ):
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if z_thresh <= 0:
            raise ValueError(f"z_thresh must be positive, got {z_thresh}")
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
        self.alpha = alpha
        self.z_thresh = z_thresh
        self.warmup_steps = warmup_steps
        self.max_grad_norm = max_grad_norm
        self.eps = eps
        self.mean: float | None = None  # None until warm-up is over
        self.var: float | None = None
        self.warmup_norms: list[float] = []
        self.last_clipped = False

    @torch.no_grad()
    def step(self, parameters: Iterable[Tensor] | Tensor) -> float:
        """Clip gradients in place when needed, update the statistics, return the pre-clip norm."""
        params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
        grads = [p.grad for p in params if p.grad is not None]
        self.last_clipped = False
        if not grads:
            return 0.0
        device = grads[0].device
        per_grad = [torch.linalg.vector_norm(g, dtype=torch.float32).to(device) for g in grads]
        total = torch.linalg.vector_norm(torch.stack(per_grad))  # () float32
        norm = total.item()
        if not math.isfinite(norm):
            return norm

        if self.mean is None:
            target = None
            self._collect(norm)
        else:
            target = self._threshold(norm)
            self._update(norm if target is None else target)

        if self.max_grad_norm is not None:
            target = min(norm if target is None else target, self.max_grad_norm)
        if target is not None and target < norm:
            torch.nn.utils.clip_grads_with_norm_(params, target, total)
            self.last_clipped = True
        return norm

    def _collect(self, norm: float) -> None:
        self.warmup_norms.append(norm)
        if len(self.warmup_norms) == self.warmup_steps:
            n = len(self.warmup_norms)
            self.mean = sum(self.warmup_norms) / n
            self.var = sum((x - self.mean) ** 2 for x in self.warmup_norms) / n
            self.warmup_norms = []

    def _threshold(self, norm: float) -> float | None:
        """Clip target for `norm`, or None when it is not an outlier."""
        std = math.sqrt(self.var)
        z = (norm - self.mean) / (std + self.eps)
        if z <= self.z_thresh:
            return None
        return self.mean + (self.z_thresh**2 / z) * std

    def _update(self, norm: float) -> None:
        self.mean = self.alpha * self.mean + (1 - self.alpha) * norm
        self.var = self.alpha * self.var + (1 - self.alpha) * (norm - self.mean) ** 2

    def state_dict(self) -> dict:
        """JSON-serialisable statistics (hyperparameters belong to the constructor)."""
        return {"mean": self.mean, "var": self.var, "warmup_norms": list(self.warmup_norms)}

    def load_state_dict(self, state: dict) -> None:
        self.mean = state["mean"]
        self.var = state["var"]
        self.warmup_norms = [float(x) for x in state["warmup_norms"]]
