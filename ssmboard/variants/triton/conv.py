"""The causal depthwise conv of a Mamba2 mixer, with its SiLU, as one Triton kernel.

Why: transformers (and our mixer's PyTorch path) run this conv as ``F.conv1d`` on a
(batch, channels, length) copy of the projection, PyTorch's generic depthwise kernel, then
the activation, then copies back to (batch, length, channels) for the scan. At the
Bamba-9B shape that was 0.19 ms per layer for the conv alone on an H200 at 2048 tokens,
plus about as much again in layout copies and the separate SiLU (scripts/profile_model.py).
This kernel reads the projection where it lies (any strides), accumulates the K taps in
float32, adds the bias, applies SiLU before the one rounding, and writes (batch, length,
channels) directly: the layout the scan reads.

Semantics are those of ``F.conv1d(x, w, b, padding=K-1, groups=channels)[..., :T]``
followed by SiLU, for the last ``last`` of the T positions (zero left padding; context
before the window, e.g. a conv cache, is passed as the first columns of x).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ssmboard.variants.triton import _kernels


def causal_conv1d_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr,
    T, D, FIRST,
    sx_b, sx_d, sx_t,
    sw_d, sw_k,
    sy_b, sy_t, sy_d,
    K: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program: BLOCK_T output positions x BLOCK_D channels of one batch row.

    Output row j is input position FIRST + j; tap k reads input position FIRST + j - (K-1) + k.
    """
    b = tl.program_id(0).to(tl.int64)  # batch offsets pass 2**31 elements (64 x 2048 x 16768 projections)
    pt = tl.program_id(1)
    pd = tl.program_id(2)
    offs_j = pt * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_j = offs_j < T - FIRST
    mask_d = offs_d < D
    acc = tl.full((BLOCK_T, BLOCK_D), 0.0, tl.float32)
    for k in tl.static_range(K):
        src = FIRST + offs_j - (K - 1) + k
        m = (mask_j & (src >= 0))[:, None] & mask_d[None, :]
        xv = tl.load(x_ptr + b * sx_b + src[:, None] * sx_t + offs_d[None, :] * sx_d, mask=m, other=0.0)
        wv = tl.load(w_ptr + offs_d * sw_d + k * sw_k, mask=mask_d, other=0.0)
        acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[None, :]
    if SILU:
        acc = acc / (1.0 + tl.exp(-acc))
    out = y_ptr + b * sy_b + offs_j[:, None] * sy_t + offs_d[None, :] * sy_d
    tl.store(out, acc.to(y_ptr.dtype.element_ty), mask=mask_j[:, None] & mask_d[None, :])


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                  last: int | None = None, silu: bool = True) -> torch.Tensor:
    """x (b, channels, T) any strides, weight (channels, 1, K) or (channels, K) -> (b, last, channels).

    The output is in x's dtype, contiguous as (batch, length, channels).
    """
    from ssmboard.variants.triton._launch import check_device

    check_device(x, weight, bias)
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, channels, length), got shape {tuple(x.shape)}")
    b, d, t = x.shape
    w = weight.reshape(weight.shape[0], weight.shape[-1]) if weight.dim() == 3 else weight
    if w.dim() != 2 or w.shape[0] != d:
        raise ValueError(f"weight must be ({d}, 1, K) or ({d}, K), got {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (d,):
        raise ValueError(f"bias must be ({d},), got {tuple(bias.shape)}")
    last = t if last is None else int(last)
    if not 1 <= last <= t:
        raise ValueError(f"last must be in 1..{t}, got {last}")
    y = torch.empty(b, last, d, dtype=x.dtype, device=x.device)
    block_t, block_d = 32, 128
    grid = (b, triton.cdiv(last, block_t), triton.cdiv(d, block_d))
    _kernels.kernel(causal_conv1d_kernel)[grid](
        x, w, bias if bias is not None else w, y,
        t, d, t - last,
        x.stride(0), x.stride(1), x.stride(2),
        w.stride(0), w.stride(1),
        y.stride(0), y.stride(1), y.stride(2),
        K=w.shape[1], HAS_BIAS=bias is not None, SILU=bool(silu), BLOCK_T=block_t, BLOCK_D=block_d,
        num_warps=4,
    )
    return y
