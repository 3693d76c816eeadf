"""Scan backends, decode steps and applying a variant to a Hugging Face model.

Importing this package stays light: backends load on first use.
"""
from ssmboard.variants.backends import Backend, get_backend, get_scan, get_step, list_scans, register_backend

__all__ = ["Backend", "apply_scan", "build", "get_backend", "get_scan", "get_step", "list_scans", "load_model",
           "register_backend"]

_LAZY = {"build": "ssmboard.variants.build", "apply_scan": "ssmboard.variants.patch",
         "load_model": "ssmboard.variants.loading"}


def __getattr__(name: str):
    """``build``, ``apply_scan`` and ``load_model`` import torch and transformers: on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ssmboard.variants' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
