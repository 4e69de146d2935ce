"""Mamba (Gu & Dao 2023) selective state-space blocks in pure PyTorch, with recurrent stepping.

Glossary (after mamba-minimal): B batch, L sequence length, T chunk length, D model width,
E = expand * D inner width, N = d_state state size, K = d_conv conv width, R = dt_rank = ceil(D / 16).
  x (B, L, E)        conv + SiLU output, the SSM input;  z (B, L, E) the gate.
  delta (B, L, E)    input-dependent step size, softplus(dt_proj(.)).
  A (E, N)           diagonal state matrix, -exp(A_log), A_log = log(1..N) per channel (S4D-real).
  B_, C_ (B, L, N)   input-dependent input / output matrices (written B_, C_ to keep B for batch).
  D (E)              skip connection, starts at 1.
  dA = exp(delta * A) (B, L, E, N): zero-order hold for A.
  dBx = delta * B_ * x (B, L, E, N): the simplified (Euler) discretisation of B used by the reference
                     implementation, in place of ZOH's (exp(delta * A) - 1) / A * B_.
  h (B, E, N)        SSM state: h_t = dA_t * h_{t-1} + dBx_t,  y_t = sum_n h_t * C_t + D * x_t.

Three scans agree (tests/test_mamba.py): `selective_scan` (chunked log-depth parallel scan),
`selective_scan_reference` (sequential loop over `unbind(1)`, never `x[:, t]`) and
`MambaBlock.step` (one token at a time). `forward(scan=...)` picks one: "parallel",
"sequential", or "auto" (default): on CUDA the fused `selective_scan_fn` kernel of `mamba_ssm`
when installed (and no initial state is given; the kernel cannot take one), else the parallel
scan; on CPU the sequential loop, which benchmarks/mamba_scan.py measures several times faster
there than the parallel scan (whose log-depth passes pay off only with many cores) and lighter
in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
except ImportError:
    selective_scan_fn = None


SCANS = ("auto", "parallel", "sequential")


@dataclass
class MambaState:
    """Recurrent state of one block: the last K - 1 conv inputs (B, E, K - 1) and the SSM state (B, E, N)."""

    conv: torch.Tensor
    ssm: torch.Tensor


def _parallel_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hillis-Steele inclusive scan of h_t = a_t * h_{t-1} + b_t over dim 1 (h_{-1} = 0), log2(T) steps."""
    T, k = a.shape[1], 1
    while k < T:
        a_prev = F.pad(a[:, :-k], (0, 0, 0, 0, k, 0), value=1.0)  # (B, T, E, N) shifted by k, identity in front
        b_prev = F.pad(b[:, :-k], (0, 0, 0, 0, k, 0))  # (B, T, E, N)
        b = a * b_prev + b  # (a_prev, b_prev) o (a, b) = (a_prev * a, a * b_prev + b)
        a = a * a_prev
        k *= 2
    return b  # (B, T, E, N)


def selective_scan(
    dA: torch.Tensor,  # (B, L, E, N)
    dBx: torch.Tensor,  # (B, L, E, N)
    C: torch.Tensor,  # (B, L, N)
    h0: torch.Tensor | None = None,  # (B, E, N)
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parallel scan in chunks of `chunk_size`, carrying the state between chunks; -> (y without D, h_last)."""
    h = dBx.new_zeros(dBx.shape[0], *dBx.shape[2:]) if h0 is None else h0  # (B, E, N)
    ys = []
    for a, b, c in zip(dA.split(chunk_size, 1), dBx.split(chunk_size, 1), C.split(chunk_size, 1)):
        b = torch.cat([b[:, :1] + a[:, :1] * h[:, None], b[:, 1:]], dim=1)  # fold the carried state in
        hs = _parallel_scan(a, b)  # (B, T, E, N)
        ys.append(torch.einsum("bten,btn->bte", hs, c))  # (B, T, E)
        h = hs[:, -1]
    return torch.cat(ys, dim=1), h  # (B, L, E), (B, E, N)


def selective_scan_reference(
    dA: torch.Tensor,  # (B, L, E, N)
    dBx: torch.Tensor,  # (B, L, E, N)
    C: torch.Tensor,  # (B, L, N)
    h0: torch.Tensor | None = None,  # (B, E, N)
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same scan as a sequential loop over time, for checking."""
    h = dBx.new_zeros(dBx.shape[0], *dBx.shape[2:]) if h0 is None else h0  # (B, E, N)
    ys = []
    for a, b, c in zip(dA.unbind(1), dBx.unbind(1), C.unbind(1)):
        h = a * h + b  # (B, E, N)
        ys.append((h * c[:, None]).sum(-1))  # (B, E)
    return torch.stack(ys, dim=1), h  # (B, L, E), (B, E, N)


class MambaBlock(nn.Module):
    """x + out_proj(SSM(SiLU(causal_conv(in_x))) * SiLU(z)), with (in_x, z) = in_proj(LN(x))."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        chunk_size: int = 64,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
    ):
        super().__init__()
        E, self.d_conv, self.chunk_size = expand * d_model, d_conv, chunk_size
        self.dt_rank = math.ceil(d_model / 16)
        self.norm = nn.LayerNorm(d_model)
        self.in_proj = nn.Linear(d_model, 2 * E, bias=False)
        self.conv = nn.Conv1d(E, E, d_conv, groups=E)  # left-padded by the conv state in forward / step
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E)  # default weight init is Mamba's U(+-R^-0.5)
        dt = torch.exp(torch.empty(E).uniform_(math.log(dt_min), math.log(dt_max)))  # (E,) log-uniform
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(E, 1))
        self.A_log._no_weight_decay = True  # as in the reference: decay would pull A toward -1
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, d_model, bias=False)

    def initial_state(self, batch: int, device=None, dtype=None) -> MambaState:
        E, N = self.A_log.shape
        return MambaState(
            conv=torch.zeros(batch, E, self.d_conv - 1, device=device, dtype=dtype),
            ssm=torch.zeros(batch, E, N, device=device, dtype=dtype),
        )

    def _conv(self, x: torch.Tensor, conv_state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal depthwise conv + SiLU of x (B, E, L) after the K - 1 carried inputs; -> (B, E, L), new conv state."""
        xc = torch.cat([conv_state, x], dim=-1)  # (B, E, K - 1 + L)
        return F.silu(self.conv(xc)), xc[..., xc.shape[-1] - (self.d_conv - 1) :]

    def _ssm_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """delta (..., E), B_ (..., N), C_ (..., N) from x (..., E)."""
        N = self.A_log.shape[1]
        dt, B_, C_ = self.x_proj(x).split([self.dt_rank, N, N], dim=-1)
        return F.softplus(self.dt_proj(dt)), B_, C_

    def _discretise(self, x, delta, B_) -> tuple[torch.Tensor, torch.Tensor]:
        """dA = exp(delta * A), dBx = delta * B_ * x; (..., E) inputs -> (..., E, N)."""
        A = -torch.exp(self.A_log)  # (E, N)
        return torch.exp(delta[..., None] * A), (delta * x)[..., None] * B_[..., None, :]

    def forward(
        self,
        x: torch.Tensor,  # (B, L, D)
        state: MambaState | None = None,
        scan: str = "auto",
    ) -> tuple[torch.Tensor, MambaState]:
        if state is None:
            conv_state, h0 = self.initial_state(x.shape[0], x.device, x.dtype).conv, None
        else:
            conv_state, h0 = state.conv, state.ssm
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # 2 x (B, L, E)
        u, conv_state = self._conv(u.transpose(1, 2), conv_state)  # (B, E, L), (B, E, K - 1)
        u = u.transpose(1, 2)  # (B, L, E)
        delta, B_, C_ = self._ssm_inputs(u)  # (B, L, E), (B, L, N), (B, L, N)
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
        if scan == "auto":
            scan = "parallel" if x.is_cuda else "sequential"
        if selective_scan_fn is not None and x.is_cuda and h0 is None and scan == "parallel":
            y, h = selective_scan_fn(
                u.transpose(1, 2).contiguous(),
                delta.transpose(1, 2).contiguous(),
                -torch.exp(self.A_log),
                B_.transpose(1, 2).contiguous(),
                C_.transpose(1, 2).contiguous(),
                return_last_state=True,
            )  # (B, E, L), (B, E, N)
            y = y.transpose(1, 2)  # (B, L, E)
        else:
            dA, dBx = self._discretise(u, delta, B_)  # 2 x (B, L, E, N)
            if scan == "sequential":
                y, h = selective_scan_reference(dA, dBx, C_, h0)
            else:
                y, h = selective_scan(dA, dBx, C_, h0, self.chunk_size)
        y = (y + self.D * u) * F.silu(z)  # (B, L, E)
        return x + self.out_proj(y), MambaState(conv_state, h)

    def step(self, x: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        """One token x (B, D) -> (B, D), advancing the recurrent state."""
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # 2 x (B, E)
        xc = torch.cat([state.conv, u[..., None]], dim=-1)  # (B, E, K): the conv's one output, as a weighted sum (no conv1d call)
        u = F.silu((xc * self.conv.weight[:, 0]).sum(-1) + self.conv.bias)  # (B, E)
        conv_state = xc[..., 1:]  # (B, E, K - 1)
        delta, B_, C_ = self._ssm_inputs(u)  # (B, E), (B, N), (B, N)
        dA, dBx = self._discretise(u, delta, B_)  # 2 x (B, E, N)
        h = dA * state.ssm + dBx  # (B, E, N)
        y = ((h * C_[:, None]).sum(-1) + self.D * u) * F.silu(z)  # (B, E)
        return x + self.out_proj(y), MambaState(conv_state, h)


class MambaStack(nn.Module):
    """A stack of Mamba blocks with a final LayerNorm; one MambaState per block."""

    def __init__(
        self, n_layers: int, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2, chunk_size: int = 64
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            MambaBlock(d_model, d_state, d_conv, expand, chunk_size) for _ in range(n_layers)
        )
        self.ln_out = nn.LayerNorm(d_model)

    def initial_states(self, batch: int, device=None, dtype=None) -> list[MambaState]:
        return [block.initial_state(batch, device, dtype) for block in self.blocks]

    def forward(
        self,
        x: torch.Tensor,  # (B, L, D)
        states: list[MambaState] | None = None,
        scan: str = "auto",
    ) -> tuple[torch.Tensor, list[MambaState]]:
        states = states or [None] * len(self.blocks)
        new_states = []
        for block, state in zip(self.blocks, states):
            x, state = block(x, state, scan)
            new_states.append(state)
        return self.ln_out(x), new_states  # (B, L, D)

    def step(self, x: torch.Tensor, states: list[MambaState]) -> tuple[torch.Tensor, list[MambaState]]:
        """One token x (B, D) -> (B, D) through every block."""
        new_states = []
        for block, state in zip(self.blocks, states):
            x, state = block.step(x, state)
            new_states.append(state)
        return self.ln_out(x), new_states
