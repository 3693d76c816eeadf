"""The variant registry: specs, validation, fingerprints, and the persisted catalogue.

``VariantSpec`` is importable without the database; the store-backed functions load
SQLAlchemy on first use.
"""
from __future__ import annotations

from typing import Any

from ssmboard.registry.spec import VariantSpec, make_spec

_API = ("register_variant", "get_variant", "list_variants", "ensure_builtins", "variant_history",
        "variant_records", "store_info", "store_location", "spec_from_record")

__all__ = ["VariantSpec", "make_spec", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from ssmboard.registry import api

        return getattr(api, name)
    raise AttributeError(f"module 'ssmboard.registry' has no attribute {name!r}")
