"""The ``triton`` backend: the exact Mamba2 SSD scan and decode step as fused Triton kernels.

One launch per scan: a program per (batch, head, block of head_dim) walks the sequence
and carries the state in registers (see ``_kernels``), so no per-chunk states, C·B
products or cumulative decays go through device memory, and nothing is autotuned per
prompt length. When that gives too few programs for the GPU (batch 1, long sequences),
the sequence is cut into a few segments and the scan takes two launches: each
segment's own end state, then the outputs, every segment from its true entering state
folded from those (still exact; ``_launch._scan_config``). The decode
step caches its checks and launch arguments and launches the compiled kernel directly. ``chunk_size`` is validated but does not change the result (the exact
scan is the same function for every chunking); the kernel's own tile along the sequence
is chosen for speed.
"""
from __future__ import annotations

import torch

from ssmboard.variants.triton._launch import run_scan, run_step

__all__ = ["scan", "step"]


def scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, *,
         chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
         dt_softplus: bool = True, dt_limit: tuple[float, float] = (0.0, float("inf")),
         initial_state: torch.Tensor | None = None, return_final_state: bool = False):
    """y (b, L, h, p) in x.dtype [, final state (b, h, p, n) float32]; see design.md."""
    return run_scan(x, dt, A, B, C, chunk_size=chunk_size, D=D, dt_bias=dt_bias, dt_softplus=dt_softplus,
                    dt_limit=dt_limit, initial_state=initial_state, return_final_state=return_final_state,
                    independent=False)


def step(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
         C: torch.Tensor, *, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
         dt_softplus: bool = True, dt_limit: tuple[float, float] = (0.0, float("inf"))) -> torch.Tensor:
    """One decode token: ``state`` (b, h, p, n) float32 updated in place; returns y (b, h, p)."""
    return run_step(state, x, dt, A, B, C, D=D, dt_bias=dt_bias, dt_softplus=dt_softplus, dt_limit=dt_limit)
