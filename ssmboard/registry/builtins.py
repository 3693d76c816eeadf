"""The variants every store starts with, for the embedded model.

Registered on first use of the registry in a store (not at import), so a fresh database
lists them without a setup step. A built-in the user has replaced with their own spec is
left alone; a built-in whose definition changed in a newer ssmboard is updated (the old row
and its results stay, inactive).
"""
from __future__ import annotations

from ssmboard.registry.spec import DEFAULT_MODEL, VariantSpec

REFERENCE_CHUNKS: tuple[int, ...] = (16, 32, 64, 128, 256)


def builtin_specs() -> list[VariantSpec]:
    """The built-in variants (GPU-only backends included: registering them needs no GPU)."""
    specs = [
        VariantSpec(name=f"reference-c{c}", model=DEFAULT_MODEL, scan="reference", chunk_size=c,
                    description=f"chunked PyTorch SSD, chunk {c}: exact", tags=("builtin", "exact"))
        for c in REFERENCE_CHUNKS
    ]
    specs += [
        VariantSpec(name="sequential", scan="sequential",
                    description="float64 step-by-step recurrence: the ground truth, slow",
                    tags=("builtin", "exact", "oracle")),
        VariantSpec(name="independent-c64", scan="independent", chunk_size=64,
                    description="each 64-token chunk starts from a zero state: exact in chunk 0, approximate after",
                    tags=("builtin", "approximate")),
        VariantSpec(name="reference-compiled", scan="reference", chunk_size=64, compile="default",
                    description="reference scan, chunk 64, under torch.compile (default mode)",
                    tags=("builtin", "exact", "compiled")),
        VariantSpec(name="triton-c64", scan="triton", chunk_size=64,
                    description="fused Triton SSD kernels, chunk 64 (needs a GPU)",
                    tags=("builtin", "exact", "gpu")),
        VariantSpec(name="triton-independent-c64", scan="triton-independent", chunk_size=64,
                    description="fused Triton kernels, zero state entering each 64-token chunk (needs a GPU)",
                    tags=("builtin", "approximate", "gpu")),
        VariantSpec(name="triton-fast", scan="triton", chunk_size=64, compile="default", compile_scope="parts",
                    decoder="static",
                    description="the fastest exact setup on a GPU: Triton scan, norms and MLPs compiled, "
                                "greedy decoding replayed as one CUDA graph per token with fused decode kernels "
                                "(H200, 2026-12-01: 1098 tok/s at batch 1 on the 4-layer Bamba-9B shape, "
                                "5.3x transformers + mamba_ssm)",
                    tags=("builtin", "exact", "gpu", "compiled")),
    ]
    return specs


def builtin_names() -> list[str]:
    return [s.name for s in builtin_specs()]
