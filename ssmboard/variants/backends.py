"""The catalogue of scan and decode-step backends, by name.

Kept free of torch so that the variant registry can validate a backend name without
importing any numerical code: each entry names the module and function that implement it,
imported only when :func:`get_scan` / :func:`get_step` is called.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from ssmboard.errors import UnknownBackendError


@dataclass(frozen=True)
class Backend:
    name: str
    scan: str  # "module:function" implementing the scan interface (design.md)
    step: str  # "module:function" implementing the one-token decode step
    exact: bool  # True when it computes the exact Mamba2 scan (up to rounding)
    needs_gpu: bool = False
    description: str = ""
    native: bool = False  # True: leave the model's own mixer in place (the baseline to beat)
    # "module:function" of a fused causal conv + SiLU for prefill (triton.conv.causal_conv1d's
    # signature); empty: the mixer's PyTorch conv1d
    conv: str = ""


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add a backend to the catalogue (later registrations of a name replace earlier ones)."""
    _BACKENDS[backend.name] = backend
    return backend


def _builtin(name: str, module: str, exact: bool, needs_gpu: bool, description: str, conv: str = "") -> None:
    register_backend(Backend(name, f"{module}:scan", f"{module}:step", exact, needs_gpu, description, conv=conv))


_TRITON_CONV = "ssmboard.variants.triton.conv:causal_conv1d"


_builtin("sequential", "ssmboard.variants.scans.sequential", True, False,
         "float64 step-by-step recurrence: the ground truth, slow")
_builtin("reference", "ssmboard.variants.scans.reference", True, False,
         "chunked PyTorch SSD: exact, lean in memory, torch.compile-friendly")
_builtin("independent", "ssmboard.variants.scans.independent", False, False,
         "chunked PyTorch, each chunk starts from a zero state: exact in chunk 0, approximate after")
_builtin("triton", "ssmboard.variants.triton.ssd", True, True,
         "fused Triton SSD kernels (and a fused causal conv + SiLU for prefill)", conv=_TRITON_CONV)
_builtin("triton-independent", "ssmboard.variants.triton.ssd_independent", False, True,
         "fused Triton SSD kernels, zero state entering each chunk (and the fused conv)", conv=_TRITON_CONV)
register_backend(Backend("transformers", "", "", True, False,
                         "the model's own transformers mixer, unpatched: its torch fallback, or mamba_ssm's "
                         "kernels when those are importable", native=True))


def list_scans() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(
            f"scan backend {name!r} is not registered in this process (known: {', '.join(list_scans())}); "
            "a variant stored with it needs the module that calls register_backend for it imported first"
        ) from None


def _load(target: str, name: str) -> Callable:
    if not target:
        raise UnknownBackendError(f"backend {name!r} is the model's own mixer and has no scan function of ours; "
                                  f"pick one of {', '.join(n for n in list_scans() if not _BACKENDS[n].native)}")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_scan(name: str) -> Callable:
    """The scan function of backend ``name`` (see design.md for its signature)."""
    return _load(get_backend(name).scan, name)


def get_conv(name: str) -> Callable | None:
    """The fused prefill conv of backend ``name``, or None where the mixer's PyTorch conv is used."""
    target = get_backend(name).conv
    return _load(target, name) if target else None


def get_step(name: str) -> Callable:
    """The one-token decode step of backend ``name`` (state updated in place)."""
    return _load(get_backend(name).step, name)
