"""Mamba: chunked parallel scan, sequential reference scan and recurrent steps all agree."""

from __future__ import annotations

import pytest
import torch

from musemorphic.nn import mamba
from musemorphic.nn.mamba import MambaBlock, MambaStack, selective_scan, selective_scan_reference

B, L, D, N = 2, 37, 16, 4  # L is not a multiple of any chunk size below
TOL = dict(atol=1e-5, rtol=1e-5)


def _scan_inputs(E: int = 8):
    torch.manual_seed(0)
    dA = torch.rand(B, L, E, N) * 0.5 + 0.5  # decays in (0.5, 1)
    dBx = torch.randn(B, L, E, N)
    C = torch.randn(B, L, N)
    h0 = torch.randn(B, E, N)
    return dA, dBx, C, h0


@pytest.mark.parametrize("chunk_size", [1, 8, 64])
@pytest.mark.parametrize("with_h0", [False, True])
def test_chunked_parallel_scan_equals_the_reference(chunk_size, with_h0):
    dA, dBx, C, h0 = _scan_inputs()
    h0 = h0 if with_h0 else None
    y, h = selective_scan(dA, dBx, C, h0, chunk_size=chunk_size)
    y_ref, h_ref = selective_scan_reference(dA, dBx, C, h0)
    torch.testing.assert_close(y, y_ref, **TOL)
    torch.testing.assert_close(h, h_ref, **TOL)


def _assert_states_close(a, b):
    torch.testing.assert_close(a.conv, b.conv, **TOL)
    torch.testing.assert_close(a.ssm, b.ssm, **TOL)


def _block_and_input(chunk_size: int = 8):
    torch.manual_seed(0)
    return MambaBlock(D, d_state=N, chunk_size=chunk_size), torch.randn(B, L, D)


def test_block_fast_forward_equals_reference_forward():
    block, x = _block_and_input()
    out, state = block(x, scan="parallel")
    out_ref, state_ref = block(x, scan="sequential")
    torch.testing.assert_close(out, out_ref, **TOL)
    _assert_states_close(state, state_ref)


def test_block_steps_equal_the_full_forward():
    block, x = _block_and_input()
    out, final = block(x, scan="parallel")
    state = block.initial_state(B, x.device, x.dtype)
    steps = []
    for x_t in x.unbind(1):
        y_t, state = block.step(x_t, state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, dim=1), out, **TOL)
    _assert_states_close(state, final)


def test_block_prefix_forward_then_steps_equal_the_full_forward():
    block, x = _block_and_input()
    out, final = block(x, scan="parallel")
    head, state = block(x[:, :20])  # the conv state carries inputs 17..19 across the boundary
    tail = []
    for x_t in x[:, 20:].unbind(1):
        y_t, state = block.step(x_t, state)
        tail.append(y_t)
    torch.testing.assert_close(torch.cat([head, torch.stack(tail, dim=1)], dim=1), out, **TOL)
    _assert_states_close(state, final)
    # a second parallel chunk after the prefix agrees too
    rest, state = block(x[:, 20:], block(x[:, :20])[1])
    torch.testing.assert_close(rest, out[:, 20:], **TOL)
    _assert_states_close(state, final)


def test_stack_fast_reference_and_steps_agree():
    torch.manual_seed(0)
    stack = MambaStack(2, D, d_state=N, chunk_size=8)
    x = torch.randn(B, L, D)
    out, finals = stack(x, scan="parallel")
    out_ref, finals_ref = stack(x, scan="sequential")
    torch.testing.assert_close(out, out_ref, **TOL)
    head, states = stack(x[:, :20])
    tail = []
    for x_t in x[:, 20:].unbind(1):
        y_t, states = stack.step(x_t, states)
        tail.append(y_t)
    torch.testing.assert_close(torch.cat([head, torch.stack(tail, dim=1)], dim=1), out, **TOL)
    states = stack.initial_states(B, x.device, x.dtype)
    for x_t in x.unbind(1):
        _, states = stack.step(x_t, states)
    for state, final, final_ref in zip(states, finals, finals_ref):
        _assert_states_close(state, final)
        _assert_states_close(final_ref, final)


def test_fast_and_reference_gradients_agree():
    torch.manual_seed(0)
    stack = MambaStack(2, D, d_state=N, chunk_size=8)
    x = torch.randn(B, L, D)
    target = torch.randn(B, L, D)
    grads = []
    for scan in ("parallel", "sequential"):
        stack.zero_grad()
        y, _ = stack(x, scan=scan)
        ((y - target) ** 2).mean().backward()
        grads.append({name: p.grad.clone() for name, p in stack.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], atol=1e-4, rtol=1e-4, msg=name)


def test_dt_bias_and_ssm_parameters_start_as_in_mamba():
    block = MambaBlock(D, d_state=N)
    dt = torch.nn.functional.softplus(block.dt_proj.bias)
    assert block.dt_rank == 1
    assert dt.min() >= 1e-3 - 1e-6 and dt.max() <= 1e-1 + 1e-6
    torch.testing.assert_close(-torch.exp(block.A_log[0]), -torch.arange(1.0, N + 1))
    assert torch.equal(block.D, torch.ones(2 * D))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the mamba_ssm fast path needs a CUDA device")
@pytest.mark.skipif(mamba.selective_scan_fn is None, reason="mamba_ssm is not installed")
def test_cuda_kernel_equals_the_pytorch_scan():
    block, x = _block_and_input()
    block, x = block.cuda(), x.cuda()
    out, state = block(x)  # no initial state: mamba_ssm's selective_scan_fn
    out_ref, state_ref = block(x, scan="sequential")
    torch.testing.assert_close(out, out_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(state.ssm, state_ref.ssm, atol=1e-4, rtol=1e-4)


def test_unknown_scan_is_refused():
    block = MambaBlock(D, d_state=N)
    with pytest.raises(ValueError, match="scan must be one of"):
        block(torch.randn(1, 3, D), scan="magic")
