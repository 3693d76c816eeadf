"""The exact chunked SSD scan in PyTorch: lean, readable, torch.compile-friendly.

Within a chunk the scan is a masked, decaying attention-like product; across chunks only
a (h, p, n) state is passed. Work is done a block of chunks at a time, the block sized so
that the (chunk x chunk x heads) decay tensor stays small: memory grows with the block,
not with the sequence. C·B products are formed once per group, not per head, and no
(chunk x chunk x heads x head_dim) or (... x d_state) tensor is ever built.

``independent`` reuses this module with ``pass_state=False``: every chunk after the first
starts from a zero state.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ssmboard.variants.scans.common import (add_skip, check_chunk_size, check_shapes, compute_dtype,
                                            discretize_dt)

# Elements of the (batch x chunks x heads x chunk x chunk) decay tensor allowed per block.
BLOCK_ELEMENTS = 1 << 23


def _segsum(a: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = a[j+1] + ... + a[i] for j <= i, -inf above the diagonal.

    Summed directly (not as a difference of cumulative sums), so that it stays exact when
    the cumulative decay is large.
    """
    l = a.shape[-1]
    below = torch.ones(l, l, dtype=torch.bool, device=a.device).tril(-1)
    out = a[..., :, None].expand(*a.shape, l).masked_fill(~below, 0).cumsum(dim=-2)
    return out.masked_fill(~torch.ones(l, l, dtype=torch.bool, device=a.device).tril(0), float("-inf"))


def _chunked(x, dt, A, B, C, chunk_size, initial_state, pass_state):
    """y (b, L, h, p) without the skip term, and the final state; dt already discretised."""
    b, L, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    k, l = h // g, chunk_size
    c = -(-L // l)
    pad = c * l - L
    if pad:  # padded steps have dt = 0: no decay, no input, so the final state is exact
        x, dt, B, C = (F.pad(t, (0,) * (2 * (t.dim() - 2)) + (0, pad)) for t in (x, dt, B, C))
    x, B, C = x.view(b, c, l, h, p), B.view(b, c, l, g, n), C.view(b, c, l, g, n)
    dt = dt.view(b, c, l, h)
    dA = (dt * A).permute(0, 1, 3, 2)  # (b, c, h, l)

    state = initial_state.to(x.dtype) if initial_state is not None else x.new_zeros(b, h, p, n)
    per_block = max(1, BLOCK_ELEMENTS // (b * h * l * l))
    ys = []
    for s0 in range(0, c, per_block):
        blk = slice(s0, min(c, s0 + per_block))
        xb, Bb, Cb, dtb = x[:, blk], B[:, blk], C[:, blk], dt[:, blk]
        nb = xb.shape[1]
        # within each chunk: y[i] = sum_{j<=i} (C_i·B_j) exp(A_j+1..i) dt_j x_j
        CB = torch.einsum("bclgn,bcsgn->bcgls", Cb, Bb)
        # Cumulative decays read off the segment sums rather than from a cumsum over the chunk:
        # Inductor on torch 2.11 (GPU) fails to generate its split-scan kernel for that cumsum
        # when few heads x chunks run (an InductorError in get_block_shape).
        S = _segsum(dA[:, blk])  # (b, nb, h, l, l)
        Acs_b = dA[:, blk, :, :1] + S[..., :, 0]  # decay from the chunk's start to each step
        to_end = S[..., -1, :]  # decay from each step to the chunk's end
        W = torch.exp(S) * dtb.permute(0, 1, 3, 2)[:, :, :, None, :]
        W = (W.view(b, nb, g, k, l, l) * CB[:, :, :, None]).view(b, nb, h, l, l)
        y = torch.matmul(W, xb.permute(0, 1, 3, 2, 4)).permute(0, 1, 3, 2, 4)  # (b, nb, l, h, p)
        # each chunk's own end state, as if it started from zero
        xw = xb * (torch.exp(to_end) * dtb.permute(0, 1, 3, 2)).permute(0, 1, 3, 2)[..., None]
        own = torch.einsum("bclgn,bclgkp->bcgkpn", Bb, xw.view(b, nb, l, g, k, p)).reshape(b, nb, h, p, n)
        # pass the state across the block's chunks (state-sized work only)
        entering = []
        decay = torch.exp(Acs_b[..., -1])  # (b, nb, h)
        for j in range(nb):
            if not pass_state and s0 + j > 0:
                state = torch.zeros_like(state)
            entering.append(state)
            state = state * decay[:, j, :, None, None] + own[:, j]
        enter = torch.stack(entering, dim=1).view(b, nb, g, k, p, n)
        y_off = torch.einsum("bclgn,bcgkpn->bclgkp", Cb, enter).reshape(b, nb, l, h, p)
        ys.append(y + y_off * torch.exp(Acs_b).permute(0, 1, 3, 2)[..., None])
    y = torch.cat(ys, dim=1).reshape(b, c * l, h, p)[:, :L]
    return y, state


def chunked_scan(x, dt, A, B, C, *, chunk_size, D=None, dt_bias=None, dt_softplus=True,
                 dt_limit=(0.0, float("inf")), initial_state=None, return_final_state=False,
                 pass_state=True):
    """The scan interface of design.md; ``pass_state=False`` gives independent chunks."""
    check_chunk_size(chunk_size)
    check_shapes(x, dt, A, B, C)
    cd = compute_dtype(x)
    dtc = discretize_dt(dt, dt_bias, dt_softplus, dt_limit, cd)
    xc = x.to(cd)
    y, state = _chunked(xc, dtc, A.to(cd), B.to(cd), C.to(cd), chunk_size, initial_state, pass_state)
    y = add_skip(y, xc, D).to(x.dtype)
    if not return_final_state:
        return y
    return y, state.to(torch.float64 if cd == torch.float64 else torch.float32)


def scan(x, dt, A, B, C, *, chunk_size, D=None, dt_bias=None, dt_softplus=True,
         dt_limit=(0.0, float("inf")), initial_state=None, return_final_state=False):
    return chunked_scan(x, dt, A, B, C, chunk_size=chunk_size, D=D, dt_bias=dt_bias,
                        dt_softplus=dt_softplus, dt_limit=dt_limit, initial_state=initial_state,
                        return_final_state=return_final_state)


def step(state, x, dt, A, B, C, *, D=None, dt_bias=None, dt_softplus=True, dt_limit=(0.0, float("inf"))):
    """One decode token; ``state`` (b, h, p, n) is updated in place, in its own dtype."""
    h, g = x.shape[1], B.shape[1]
    cd = compute_dtype(x) if state.dtype != torch.float64 else torch.float64
    dt = discretize_dt(dt, dt_bias, dt_softplus, dt_limit, cd)  # (b, h)
    b, k, n = B.shape[0], h // g, B.shape[-1]
    xc = x.to(cd)
    Bh = B.to(cd)[:, :, None, :].expand(b, g, k, n).reshape(b, h, n)
    Ch = C.to(cd)[:, :, None, :].expand(b, g, k, n).reshape(b, h, n)
    new = state.to(cd) * torch.exp(dt * A.to(cd))[..., None, None] + (dt[..., None] * xc)[..., None] * Bh[:, :, None, :]
    state.copy_(new)
    y = torch.einsum("bhpn,bhn->bhp", new, Ch)
    return add_skip(y, xc, D).to(x.dtype)
