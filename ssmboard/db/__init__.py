"""The SQL store: schema, migrations, engine/sessions and queries. Never imports torch.

Submodules: ``models`` (ORM classes), ``migrate`` (Alembic from code), ``engine`` (opening
a store safely, sessions), ``queries`` (specs and reports in, plain dicts out).
"""
from __future__ import annotations

from typing import Any

_ENGINE = ("Store", "dispose_stores", "get_store")
_QUERIES = ("save_report", "results_records", "db_info", "variant_records", "SaveCounts")

__all__ = [*_ENGINE, *_QUERIES]


def __getattr__(name: str) -> Any:  # lazy, so `python -m ssmboard.db.migrate` runs cleanly
    import importlib

    if name in _ENGINE:
        return getattr(importlib.import_module("ssmboard.db.engine"), name)
    if name in _QUERIES:
        return getattr(importlib.import_module("ssmboard.db.queries"), name)
    raise AttributeError(f"module 'ssmboard.db' has no attribute {name!r}")
