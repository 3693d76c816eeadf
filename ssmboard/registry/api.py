"""register_variant / get_variant / list_variants, backed by the store.

The store keeps each variant as its spec dict and fingerprint; this module turns those into
``VariantSpec`` objects (without re-checking the backend name, which was valid when stored)
and back. Built-in variants are added to a store the first time this process touches it.
"""
from __future__ import annotations

import difflib
from typing import Any

from ssmboard.db import queries
from ssmboard.db.engine import Store, get_store
from ssmboard.errors import SpecError, VariantNotFoundError
from ssmboard.registry.builtins import builtin_specs
from ssmboard.registry.spec import VariantSpec, check_fields

_ENSURED = "builtins_ensured"


def ensure_builtins(store: Store | None = None) -> Store:
    """Add the built-in variants to the store once per process (cheap afterwards)."""
    store = store or get_store()
    if not store.state.get(_ENSURED):
        queries.sync_builtin_variants(((s.to_dict(), s.fingerprint) for s in builtin_specs()), store=store)
        store.state[_ENSURED] = True
    return store


def spec_from_record(record: dict[str, Any]) -> VariantSpec:
    """The spec of a stored variant record (``{"spec": ..., "fingerprint": ...}``)."""
    return VariantSpec.from_stored(record["spec"])


def register_variant(name: str | VariantSpec, *, replace: bool = False, evaluate: Any = None,
                     **fields: Any) -> VariantSpec:
    """Validate, fingerprint and persist a variant; returns the stored spec.

    ``register_variant("triton-c128", scan="triton", chunk_size=128)``. Registering the same
    spec again does nothing; a different spec under an existing name raises
    VariantConflictError unless ``replace=True`` (stored results stay with the old spec).
    A ``VariantSpec`` may be passed instead of a name (then no other fields).
    ``evaluate=["quick", ...]`` also queues those suites for it (workers run them; a suite
    already pending or running for this spec is not queued twice).
    """
    suites = [evaluate] if isinstance(evaluate, str) else list(evaluate or ())
    if suites:
        from ssmboard.jobs.queue import check_suite

        for suite in suites:
            check_suite(suite)  # an unknown suite fails before anything is stored
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
    queries.register_variant(spec.to_dict(), spec.fingerprint, replace=replace, store=store)
    if suites:
        from ssmboard.jobs.queue import submit

        for suite in suites:
            submit(spec.name, suite)
    return spec


def _not_found(name: str) -> VariantNotFoundError:
    close = difflib.get_close_matches(name, queries.variant_names(), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return VariantNotFoundError(
        f"no variant named {name!r}; {hint}see `ssmboard variants list`, or register it with "
        "register_variant / `ssmboard variants register`"
    )


def get_variant(name: str) -> VariantSpec:
    """The active spec registered under ``name``; VariantNotFoundError if none."""
    ensure_builtins()
    record = queries.active_variant(name)
    if record is None:
        raise _not_found(name)
    return spec_from_record(record)


def list_variants(*, tag: str | None = None, scan: str | None = None) -> list[VariantSpec]:
    """Every active variant, in natural name order; optionally only those with a tag or backend.

    A variant whose backend this process has not registered is listed too (its
    ``backend_known`` is False); building it is what fails.
    """
    ensure_builtins()
    specs = [spec_from_record(r) for r in queries.active_variants(scan=scan)]
    if tag is not None:
        specs = [sp for sp in specs if tag in sp.tags]
    return specs


def variant_history(name: str) -> list[dict[str, Any]]:
    """Every row ever stored under ``name`` (active first), with fingerprints and result counts."""
    ensure_builtins()
    rows = [r for r in queries.variant_records(include_inactive=True) if r["name"] == name]
    if not rows:
        raise _not_found(name)
    return rows


def variant_records(*, include_inactive: bool = False) -> list[dict[str, Any]]:
    """Every stored variant row as a flat dict (spec fields, fingerprint, active, builtin, result count)."""
    ensure_builtins()
    return queries.variant_records(include_inactive=include_inactive)


def store_info() -> dict[str, Any]:
    """What `ssmboard db info` prints: URL (password hidden), file, schema revision, row counts."""
    return queries.db_info(ensure_builtins())


def store_location() -> str:
    """The store's file path, or its URL with any password hidden."""
    from ssmboard.db.engine import redact

    store = ensure_builtins()
    return str(store.path) if store.path else redact(store.url)
