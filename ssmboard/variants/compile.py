"""torch.compile with a variant's mode and options.

torch.compile refuses ``mode`` and ``options`` together. A spec may give both (say
``max-autotune`` plus ``epilogue_fusion``), so the mode is expanded into its Inductor options
(``torch._inductor.list_mode_options``) and the spec's own options are laid on top: the
explicit options win. The model is compiled in place with ``nn.Module.compile`` (only this
instance's call is compiled; ``generate`` and attribute access keep working, the class is
untouched).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ssmboard.errors import SpecError

NO_COMPILE = (None, False, "", "none", "off", "eager")
MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_options(options: Any) -> dict[str, Any]:
    """A spec's compile_options (mapping, tuple of pairs, or None) as a dict."""
    if options is None:
        return {}
    if isinstance(options, Mapping):
        return dict(options)
    try:
        return {str(k): v for k, v in options}
    except (TypeError, ValueError):
        raise SpecError(f"compile_options must be a mapping or a sequence of (name, value) pairs, got {options!r}") from None


def compile_model(model: nn.Module, mode: Any, options: Any = None) -> nn.Module:
    """Compile ``model`` in place with ``mode`` ("default", "max-autotune", ...; True = "default")."""
    if mode in NO_COMPILE:
        if compile_options(options):
            raise SpecError("compile_options are set but compile is off; set compile to a mode such as 'default'")
        return model
    if mode is True:
        mode = "default"
    if mode not in MODES:
        raise SpecError(f"unknown torch.compile mode {mode!r}; use one of {', '.join(MODES)} or none")
    opts = compile_options(options)
    if not opts:
        model.compile(mode=mode)
        return model
    import torch._inductor

    merged = dict(torch._inductor.list_mode_options(mode)) if mode != "default" else {}
    merged.update(opts)
    model.compile(options=merged)
    return model
