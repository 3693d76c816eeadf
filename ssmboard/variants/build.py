"""``build(spec) -> (model, tokenizer)``: a variant, ready to evaluate.

Steps, in this order: load the model the spec names (keeping its first ``n_layers``), cast to
the spec's dtype, replace its Mamba2 mixers by ones running the spec's scan backend and chunk
size, eval mode, then torch.compile with the spec's mode and options. ``spec`` is duck-typed:
any object with ``model, scan, chunk_size, dtype, compile, compile_options, n_layers,
use_cache`` (the registry's VariantSpec, or a SimpleNamespace in tests).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from ssmboard.errors import DeviceError, ModelLoadError, SpecError
from ssmboard.variants.compile import compile_model
from ssmboard.variants.loading import load_model
from ssmboard.variants.patch import apply_scan

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
           "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
           "float64": torch.float64, "fp64": torch.float64}


def resolve_dtype(dtype: Any) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise SpecError(f"unknown dtype {dtype!r}; use one of float32, bfloat16, float16, float64")
    return _DTYPES[key]


def check_cache_support(model: Any, use_cache: Any) -> None:
    """transformers' Bamba cannot run its cache without an attention layer: say so up front."""
    config = model.config
    if use_cache is False or getattr(config, "model_type", None) != "bamba":
        return
    if "full_attention" not in list(getattr(config, "layers_block_type", []) or []):
        raise ModelLoadError(
            f"this Bamba model keeps no attention layer ({config.num_hidden_layers} layers, attention at "
            f"{list(getattr(config, 'attn_layer_indices', None) or [])}), and transformers' Bamba cannot use a "
            "cache without one (forward and generate fail in get_seq_length); keep more layers (n_layers past the "
            "first attention layer) or set use_cache=False"
        )


def resolve_device(device: Any = None) -> torch.device:
    """None picks the GPU when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_backend_device(scan: str, device: torch.device) -> None:
    """A GPU-only backend on a machine without a GPU: say so before loading anything."""
    from ssmboard.variants.backends import get_backend

    backend = get_backend(scan)
    if backend.needs_gpu and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise DeviceError(
            f"scan backend {scan!r} runs Triton kernels and needs a CUDA GPU, but the variant would run on "
            f"{device.type}; run it on a GPU machine (or `ssmboard eval ... --out FILE.json` there and "
            "`ssmboard import FILE.json` here), or set TRITON_INTERPRET=1 to use Triton's slow CPU interpreter"
        )


def build(spec: Any, device: Any = None) -> tuple[Any, Any]:
    """Load, trim, cast, place, patch and compile the model of ``spec``; returns (model, tokenizer).

    ``device`` None means the GPU when there is one. The native ``transformers`` backend
    keeps the model's own mixers (the baseline every variant is compared with).
    """
    from ssmboard.variants.backends import get_backend

    dev = resolve_device(device)
    check_backend_device(spec.scan, dev)
    dtype = resolve_dtype(getattr(spec, "dtype", None))
    model, tokenizer = load_model(spec.model, getattr(spec, "n_layers", None), device=dev, dtype=dtype)
    check_cache_support(model, getattr(spec, "use_cache", None))
    model = model.to(device=dev, dtype=dtype)
    if not get_backend(spec.scan).native:
        apply_scan(model, spec.scan, getattr(spec, "chunk_size", None))
    elif getattr(spec, "chunk_size", None) is not None:
        model.config.mamba_chunk_size = spec.chunk_size  # transformers' own mixers read it at init only
        for module in model.modules():
            if hasattr(module, "ssm_state_size") and isinstance(getattr(module, "chunk_size", None), int):
                module.chunk_size = spec.chunk_size
    model.eval()
    decoder = getattr(spec, "decoder", None) or "generate"
    if decoder == "static":
        from ssmboard.variants.graph_decode import check_model

        check_model(model)  # refuses models it cannot decode, before any measurement
    model.ssmboard_decoder = decoder  # which decode loop the evaluators use
    use_cache = getattr(spec, "use_cache", None)
    if use_cache is not None:
        model.config.use_cache = bool(use_cache)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.use_cache = bool(use_cache)
    compile_model(model, getattr(spec, "compile", None), getattr(spec, "compile_options", None),
                  scope=getattr(spec, "compile_scope", None) or "model")
    return model, tokenizer
