"""The ground truth: Mamba2's recurrence, one token at a time, in float64.

    state_t = exp(dt_t * A) * state_{t-1} + dt_t * x_t ⊗ B_t        y_t = C_t · state_t + D * x_t

Slow (a Python loop over the sequence) and never used for speed: every other backend is
tested against it. ``chunk_size`` is accepted for interface compatibility and ignored.
"""
from __future__ import annotations

import torch

from ssmboard.variants.scans.common import add_skip, check_shapes, discretize_dt


def _out_state_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def step(state, x, dt, A, B, C, *, D=None, dt_bias=None, dt_softplus=True, dt_limit=(0.0, float("inf"))):
    """One token in float64; ``state`` (b, h, p, n) is updated in place."""
    h, g = x.shape[1], B.shape[1]
    dt = discretize_dt(dt, dt_bias, dt_softplus, dt_limit, torch.float64)  # (b, h)
    Bh = B.double().repeat_interleave(h // g, dim=1)  # (b, h, n)
    Ch = C.double().repeat_interleave(h // g, dim=1)
    xd = x.double()
    new = state.double() * torch.exp(dt * A.double())[..., None, None] + (dt[..., None] * xd)[..., None] * Bh[:, :, None, :]
    state.copy_(new)
    y = torch.einsum("bhpn,bhn->bhp", new, Ch)
    return add_skip(y, xd, D).to(x.dtype)


def scan(x, dt, A, B, C, *, chunk_size=None, D=None, dt_bias=None, dt_softplus=True,
         dt_limit=(0.0, float("inf")), initial_state=None, return_final_state=False):
    b, L, h, p, g, n = check_shapes(x, dt, A, B, C)
    state = torch.zeros(b, h, p, n, dtype=torch.float64, device=x.device)
    if initial_state is not None:
        state.copy_(initial_state)
    ys = [step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t], D=D, dt_bias=dt_bias,
               dt_softplus=dt_softplus, dt_limit=dt_limit).double() for t in range(L)]
    y = (torch.stack(ys, dim=1) if ys else x.new_zeros(b, 0, h, p, dtype=torch.float64)).to(x.dtype)
    return (y, state.to(_out_state_dtype(x))) if return_final_state else y
