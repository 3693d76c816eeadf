"""The ``triton-independent`` backend: every chunk after the first starts from a zero state.

An approximation: causal, exact in chunk 0 (which starts from ``initial_state`` when
given), approximate after. The same fused kernel as the exact backend with the state
zeroed at chunk boundaries, so ``chunk_size`` must be a multiple of 16. The final state
is the last chunk's own end state; decoding then continues with the exact step.
"""
from __future__ import annotations

import torch

from ssmboard.variants.triton._launch import run_scan
from ssmboard.variants.triton.ssd import step

__all__ = ["scan", "step"]


def scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, *,
         chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
         dt_softplus: bool = True, dt_limit: tuple[float, float] = (0.0, float("inf")),
         initial_state: torch.Tensor | None = None, return_final_state: bool = False):
    """Like ``ssd.scan`` with a zero state entering each chunk after the first."""
    return run_scan(x, dt, A, B, C, chunk_size=chunk_size, D=D, dt_bias=dt_bias, dt_softplus=dt_softplus,
                    dt_limit=dt_limit, initial_state=initial_state, return_final_state=return_final_state,
                    independent=True)
