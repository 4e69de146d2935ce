"""σReparam linear layer (Zhai et al. 2023): W_hat = (gamma / sigma(W)) * W.

sigma(W) is the spectral norm, estimated as u^T W v with persistent singular-vector
estimates u, v (buffers) refined by one power iteration per training-mode forward.
gamma is learnable and starts at sigma(W). At initialisation u, v and sigma come from an exact
SVD (as in the reference implementation), so a fresh layer equals a plain Linear and the
power iterations start converged. In eval mode without gradients (generation), W_hat is
computed once and reused until W, gamma, u or v change, instead of once per decoded token.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SigmaReparamLinear(nn.Module):
    """Linear layer with a spectrally reparametrised weight; (..., in) -> (..., out)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
    ):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))  # (out, in)
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None  # (out,)
        self.gamma = nn.Parameter(torch.ones(()))
        self.register_buffer("u", torch.empty(out_features))  # left singular vector estimate
        self.register_buffer("v", torch.empty(in_features))  # right singular vector estimate
        self._cached_weight: tuple[tuple, Tensor] | None = None  # (version key, W_hat) for inference
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation of W and bias, then `calibrate_()`."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)
        self.calibrate_()

    @torch.no_grad()
    def calibrate_(self) -> None:
        """Set u, v to W's top singular vectors and gamma = sigma(W), by exact SVD.

        Call again after re-initialising `weight` from outside so the layer equals W again.
        """
        U, S, Vh = torch.linalg.svd(self.weight.float(), full_matrices=False)
        self.u.copy_(U[:, 0])
        self.v.copy_(Vh[0])
        self.gamma.copy_(S[0])

    @torch.no_grad()
    def _power_iteration(self) -> None:
        with torch.autocast(self.weight.device.type, enabled=False):
            w = self.weight.float()  # (out, in)
            self.v.copy_(F.normalize(w.t() @ self.u, dim=0))  # (in,)
            self.u.copy_(F.normalize(w @ self.v, dim=0))  # (out,)

    def sigma(self) -> Tensor:
        """Spectral-norm estimate u^T W v; differentiable in W, not in u, v."""
        with torch.autocast(self.weight.device.type, enabled=False):
            u, v = self.u.clone(), self.v.clone()  # snapshots, safe from later in-place updates
            return torch.dot(u, self.weight.float() @ v)  # ()

    def effective_weight(self) -> Tensor:
        """W_hat = (gamma / sigma(W)) * W; (out, in)."""
        return (self.gamma / self.sigma()) * self.weight

    def inference_weight(self) -> Tensor:
        """W_hat, cached while no tensor it depends on changes (in-place edits and loading bump
        their versions; moving or casting the layer makes new tensors)."""
        tensors = (self.weight, self.gamma, self.u, self.v)
        key = tuple((t._version, t.data_ptr(), t.dtype) for t in tensors)
        if self._cached_weight is None or self._cached_weight[0] != key:
            self._cached_weight = (key, self.effective_weight())
        return self._cached_weight[1]

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self._power_iteration()
        elif not torch.is_grad_enabled():
            return F.linear(x, self.inference_weight(), self.bias)  # (..., out)
        return F.linear(x, self.effective_weight(), self.bias)  # (..., out)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


def linear(in_f: int, out_f: int, bias: bool = True, sigma_reparam: bool = True) -> nn.Module:
    """A SigmaReparamLinear, or a plain nn.Linear when `sigma_reparam` is False."""
    return SigmaReparamLinear(in_f, out_f, bias) if sigma_reparam else nn.Linear(in_f, out_f, bias)
