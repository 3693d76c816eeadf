"""register_variant / get_variant / list_variants, backed by the store.

Every call opens a short session; built-in variants are added to a store the first time
this process touches it.
"""
from __future__ import annotations

import difflib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ssmboard.db import models as m
from ssmboard.db import queries
from ssmboard.db.engine import Store, get_store
from ssmboard.errors import SpecError, VariantNotFoundError
from ssmboard.registry.builtins import builtin_specs
from ssmboard.registry.spec import VariantSpec, check_fields, natural_key

_ENSURED = "builtins_ensured"


def _sync_builtins(s: Session) -> int:
    changed = 0
    for spec in builtin_specs():
        row = queries.active_variant(s, spec.name)
        if row is None:
            queries.register_spec(s, spec, builtin=True)
            changed += 1
        elif row.builtin and not queries.spec_of(row).same_as(spec):
            queries.register_spec(s, spec, replace=True, builtin=True)  # definition changed in code
            changed += 1
        elif not row.builtin and row.fingerprint == spec.fingerprint and queries.spec_of(row).same_as(spec):
            row.builtin = True  # e.g. imported from a report before the built-ins were added
            changed += 1
    return changed


def ensure_builtins(store: Store | None = None) -> Store:
    """Add the built-in variants to the store once per process (cheap afterwards)."""
    store = store or get_store()
    if not store.state.get(_ENSURED):
        store.write(_sync_builtins)
        store.state[_ENSURED] = True
    return store


def register_variant(name: str | VariantSpec, *, replace: bool = False, **fields: Any) -> VariantSpec:
    """Validate, fingerprint and persist a variant; returns the stored spec.

    ``register_variant("triton-c128", scan="triton", chunk_size=128)``. Registering the same
    spec again does nothing; a different spec under an existing name raises
    VariantConflictError unless ``replace=True`` (stored results stay with the old spec).
    A ``VariantSpec`` may be passed instead of a name (then no other fields).
    """
    if isinstance(name, VariantSpec):
        if fields:
            raise SpecError("pass either a VariantSpec or a name with fields, not both")
        spec = name
    else:
        check_fields(fields)
        if "name" in fields:
            raise SpecError("the name is the first argument; do not pass name= as well")
        spec = VariantSpec(name=name, **fields)
    store = ensure_builtins()
    store.write(lambda s: queries.register_spec(s, spec, replace=replace))
    return spec


def _not_found(s: Session, name: str) -> VariantNotFoundError:
    names = list(s.scalars(select(m.Variant.name).where(m.Variant.active.is_(True)).order_by(m.Variant.name)))
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return VariantNotFoundError(
        f"no variant named {name!r}; {hint}see `ssmboard variants list`, or register it with "
        "register_variant / `ssmboard variants register`"
    )


def get_variant(name: str) -> VariantSpec:
    """The active spec registered under ``name``; VariantNotFoundError if none."""
    store = ensure_builtins()
    with store.session() as s:
        row = queries.active_variant(s, name)
        if row is None:
            raise _not_found(s, name)
        return queries.spec_of(row)


def list_variants(*, tag: str | None = None, scan: str | None = None) -> list[VariantSpec]:
    """Every active variant, sorted by name; optionally only those with a tag or backend."""
    store = ensure_builtins()
    with store.session() as s:
        q = select(m.Variant).where(m.Variant.active.is_(True)).order_by(m.Variant.name)
        if scan is not None:
            q = q.where(m.Variant.scan == scan)
        specs = sorted((queries.spec_of(row) for row in s.scalars(q)), key=lambda sp: natural_key(sp.name))
    if tag is not None:
        specs = [sp for sp in specs if tag in sp.tags]
    return specs


def variant_history(name: str) -> list[dict[str, Any]]:
    """Every row ever stored under ``name`` (active first), with fingerprints and result counts."""
    ensure_builtins()
    rows = [r for r in queries.variant_records(include_inactive=True) if r["name"] == name]
    if not rows:
        with get_store().session() as s:
            raise _not_found(s, name)
    return rows
