"""Compile the pieces of a model around the scan, leaving the scan itself alone.

Why: outside the scan, a Mamba2-family layer spends its non-matrix time in chains of small
elementwise kernels (RMSNorm in float32, the gated RMSNorm, SiLU times the up projection),
each reading and writing the whole activation. Inductor fuses each chain into one kernel.
Compiling the whole model instead would also trace the scan backend (a Triton launcher,
cache objects of transformers) and recompile on every new prompt length; compiling the
parts keeps every backend usable and each compiled part small. The parts are compiled in
place (``nn.Module.compile``), so the model's structure and state_dict are unchanged.
"""
from __future__ import annotations

from typing import Any

from torch import nn


def fusable_parts(model: nn.Module) -> list[nn.Module]:
    """The norms (plain and gated) and gated MLPs of ``model``: elementwise chains around matmuls."""
    parts = []
    for module in model.modules():
        name = type(module).__name__
        if name.endswith(("RMSNorm", "RMSNormGated")) or all(
                hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj")):
            parts.append(module)
    return parts


def compile_parts(model: nn.Module, mode: str = "default", **kwargs: Any) -> int:
    """Compile :func:`fusable_parts` in place; returns how many were compiled."""
    parts = fusable_parts(model)
    for module in parts:
        module.compile(mode=mode, dynamic=None, **kwargs)
    return len(parts)
