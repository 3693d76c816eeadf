"""Apply a scan backend to one loaded model, in place, without touching any class.

Every Mamba2 mixer of the model (found by its transformers class, never by a name) is
replaced by a :class:`~ssmboard.variants.mixer.ScanMixer` that reuses its parameters. The
swap is a ``setattr`` on the mixer's parent module of this model instance only: another
model in the same process, and the transformers classes themselves, are left as they were,
so two variants live side by side.
"""
from __future__ import annotations

import importlib

from torch import nn

from ssmboard.errors import SsmboardError
from ssmboard.variants.mixer import ScanMixer

# model_type -> (transformers module, mixer class): the Mamba2-family mixers whose torch path
# ScanMixer reproduces (one shared design in transformers 5.17 .. 5.24).
SUPPORTED_MIXERS: dict[str, tuple[str, str]] = {
    "bamba": ("transformers.models.bamba.modeling_bamba", "BambaMixer"),
    "mamba2": ("transformers.models.mamba2.modeling_mamba2", "Mamba2Mixer"),
    "granitemoehybrid": ("transformers.models.granitemoehybrid.modeling_granitemoehybrid",
                         "GraniteMoeHybridMambaLayer"),
    "falcon_h1": ("transformers.models.falcon_h1.modeling_falcon_h1", "FalconH1Mixer"),
    "zamba2": ("transformers.models.zamba2.modeling_zamba2", "Zamba2MambaMixer"),
    "nemotron_h": ("transformers.models.nemotron_h.modeling_nemotron_h", "NemotronHMamba2Mixer"),
}


def supported_model_types() -> list[str]:
    return sorted(SUPPORTED_MIXERS)


def _mixer_classes() -> tuple[type, ...]:
    return tuple(getattr(importlib.import_module(module), name) for module, name in SUPPORTED_MIXERS.values())


def _refuse(model: nn.Module, why: str) -> SsmboardError:
    model_type = getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__
    return SsmboardError(
        f"cannot apply a scan backend to model type {model_type!r} ({type(model).__name__}): {why}. "
        f"Supported Mamba2-family model types: {', '.join(supported_model_types())}; "
        "load one of those (e.g. a BambaForCausalLM or Mamba2ForCausalLM checkpoint)"
    )


def apply_scan(model: nn.Module, scan: str, chunk_size: int | None = None, step: str | None = None) -> nn.Module:
    """Replace every Mamba2 mixer of ``model`` by one running backend ``scan``; returns ``model``.

    ``chunk_size`` None keeps each mixer's own (the config's ``mamba_chunk_size`` /
    ``chunk_size``). ``step`` names the backend of the one-token decode step (default: the
    scan backend's own). Applying again to a patched model swaps the backend.
    """
    from ssmboard.variants.backends import get_backend, get_step

    get_backend(scan)  # UnknownBackendError for a bad name, before any change
    step_fn = get_step(step) if step is not None else None
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        from ssmboard.errors import SpecError
        raise SpecError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    classes = _mixer_classes() + (ScanMixer,)
    targets = [(parent, name, child) for parent in model.modules()
               for name, child in parent.named_children() if isinstance(child, classes)]
    if not targets:
        raise _refuse(model, "it has no Mamba2 mixer that ssmboard knows")
    for parent, name, child in targets:
        new = ScanMixer.from_mixer(child, scan, chunk_size)
        if step_fn is not None:
            new._step = step_fn
        new.train(child.training)
        if new is not child:
            setattr(parent, name, new)
    return model


def patched_mixers(model: nn.Module) -> list[ScanMixer]:
    """The ScanMixers of a model (empty when it was never patched)."""
    return [m for m in model.modules() if isinstance(m, ScanMixer)]
