"""torch.compile with a variant's mode, options and scope.

torch.compile refuses ``mode`` and ``options`` together. A spec may give both (say
``max-autotune`` plus ``epilogue_fusion``), so the mode is expanded into its Inductor options
(``torch._inductor.list_mode_options``) and the spec's own options are laid on top: the
explicit options win. Modules are compiled in place with ``nn.Module.compile`` (only this
instance's call is compiled; ``generate`` and attribute access keep working, the class is
untouched, state_dict keys are unchanged).

Scope ``model`` compiles the whole model. Scope ``parts`` compiles only
:func:`fusable_parts`: outside the scan a Mamba2-family layer spends its non-matrix time in
chains of small elementwise kernels (RMSNorm in float32, the gated RMSNorm, SiLU times the up
projection), each reading and writing the whole activation, and Inductor fuses each chain
into one kernel. Compiling the whole model instead also traces the scan backend (a Triton
launcher, transformers' cache objects) and recompiles per prompt length; the parts keep
every backend usable and each compiled graph small, and they are captured as they are by
the static decoder's CUDA graph (measured effect: benchmarks/model-h200-2026-11-29.md).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ssmboard.errors import SpecError


def fusable_parts(model: nn.Module) -> list[nn.Module]:
    """The norms (plain and gated) and gated MLPs of ``model``: elementwise chains around matmuls."""
    parts = []
    for module in model.modules():
        name = type(module).__name__
        if name.endswith(("RMSNorm", "RMSNormGated")) or all(
                hasattr(module, a) for a in ("gate_proj", "up_proj", "down_proj")):
            parts.append(module)
    return parts


def _compile_kwargs(mode: str, options: dict[str, Any]) -> dict[str, Any]:
    """``nn.Module.compile`` keyword arguments for a spec's (validated) mode and options."""
    if not options:
        return {"mode": mode}
    import torch._inductor

    merged = dict(torch._inductor.list_mode_options(mode)) if mode != "default" else {}
    merged.update(options)
    return {"options": merged}


def compile_model(model: nn.Module, mode: str | None, options: dict[str, Any] | None = None,
                  scope: str = "model") -> nn.Module:
    """Compile ``model`` (scope "model") or its :func:`fusable_parts` (scope "parts") in place;
    mode None leaves it eager. The arguments are a VariantSpec's, validated there."""
    if mode is None:
        return model
    kwargs = _compile_kwargs(mode, dict(options or {}))
    targets = [model] if scope == "model" else fusable_parts(model)
    if scope == "parts":
        if not targets:
            raise SpecError(f"compile scope 'parts' found no norm or gated MLP to compile in {type(model).__name__}")
        import torch._dynamo

        # the parts share a few forward functions (one per class); each instance and input shape
        # (prefill lengths, the one-token decode) may add a cache entry to the same function, and
        # Dynamo runs a function eagerly once its entries pass the limit (8 by default)
        limit = max(64, 4 * len(targets))
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name) and getattr(torch._dynamo.config, name) < limit:
                setattr(torch._dynamo.config, name, limit)
    for module in targets:
        module.compile(**kwargs)
    return model
