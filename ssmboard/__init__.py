"""ssmboard: a registry of SSM (Mamba2 / SSD) kernel variants, evaluators and a leaderboard.

``import ssmboard`` stays light (no torch, no SQLAlchemy): the registry functions load on
first use.

    >>> import ssmboard
    >>> ssmboard.register_variant("reference-c128x", scan="reference", chunk_size=128)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

from ssmboard.errors import SsmboardError
from ssmboard.version import package_version

__version__ = package_version()

_LAZY = {
    "register_variant": "ssmboard.registry.api",
    "get_variant": "ssmboard.registry.api",
    "list_variants": "ssmboard.registry.api",
    "VariantSpec": "ssmboard.registry.spec",
    "evaluate": "ssmboard.jobs.evaluate",
}

__all__ = ["SsmboardError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmboard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
