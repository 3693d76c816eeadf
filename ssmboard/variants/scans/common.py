"""Input handling shared by every PyTorch scan backend.

Mamba2's discretisation (bias, softplus, clamp), the group-to-head broadcast and the skip
connection are the parts of the scan that every backend must get identically right, so
they live here once.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ssmboard.errors import SpecError


def check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise SpecError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return chunk_size


def check_shapes(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> tuple[int, int, int, int, int, int]:
    """Return (b, L, h, p, g, n) after checking that the five inputs agree."""
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, length, heads, head_dim), got shape {tuple(x.shape)}")
    b, L, h, p = x.shape
    if B.dim() != 4 or B.shape != C.shape or B.shape[:2] != (b, L):
        raise ValueError(f"B and C must both be (batch, length, groups, d_state) = ({b}, {L}, g, n); "
                         f"got {tuple(B.shape)} and {tuple(C.shape)}")
    g, n = B.shape[2], B.shape[3]
    if h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    if tuple(dt.shape) != (b, L, h) or tuple(A.shape) != (h,):
        raise ValueError(f"dt must be ({b}, {L}, {h}) and A ({h},); got {tuple(dt.shape)} and {tuple(A.shape)}")
    return b, L, h, p, g, n


def discretize_dt(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_softplus: bool,
                  dt_limit: tuple[float, float], dtype: torch.dtype) -> torch.Tensor:
    """dt + bias, softplus, clamped to dt_limit, in the compute dtype."""
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    if dt_softplus:
        dt = F.softplus(dt)
    lo, hi = dt_limit
    if lo > 0.0 or hi != math.inf:
        dt = dt.clamp(min=lo, max=hi)
    return dt


def add_skip(y: torch.Tensor, x: torch.Tensor, D: torch.Tensor | None) -> torch.Tensor:
    """y + D * x, with D per head (h,) or per channel (h, p); x's last two dims are (h, p)."""
    if D is None:
        return y
    D = D.to(y.dtype)
    return y + x.to(y.dtype) * (D[:, None] if D.dim() == 1 else D)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64 (tests); everything else accumulates in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32
