"""Reading and writing the store as plain data: dicts in, dicts out.

The store knows rows, not domain classes: a variant is its spec as a dict plus its
fingerprint, both computed by the registry; a report is read through its plain attributes.
Each public function opens one short session (one transaction for writes), so callers
never hold ORM objects past a session.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ssmboard.db import models as m
from ssmboard.db.engine import Store, get_store, redact
from ssmboard.errors import VariantConflictError


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# -- variants ------------------------------------------------------------------------------
def _active_row(session: Session, name: str) -> m.Variant | None:
    return session.scalars(
        select(m.Variant).where(m.Variant.name == name, m.Variant.active.is_(True))
    ).first()


def _variant_row(session: Session, name: str, fingerprint: str) -> m.Variant | None:
    return session.scalars(
        select(m.Variant).where(m.Variant.name == name, m.Variant.fingerprint == fingerprint)
    ).first()


def _fill(row: m.Variant, spec: Mapping[str, Any]) -> None:
    row.spec = dict(spec)
    row.model = spec["model"]
    row.scan = spec["scan"]
    row.chunk_size = spec.get("chunk_size")
    row.dtype = spec["dtype"]
    row.compile = spec.get("compile")


def _new_row(spec: Mapping[str, Any], fingerprint: str, *, active: bool, builtin: bool) -> m.Variant:
    row = m.Variant(name=spec["name"], fingerprint=fingerprint, active=active, builtin=builtin,
                    created_at=m.utcnow())
    _fill(row, spec)
    return row


def _describe_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k))


def _record(row: m.Variant) -> dict[str, Any]:
    """What the registry gets back for a variant row: the stored spec dict and the row's facts."""
    return {"spec": dict(row.spec), "fingerprint": row.fingerprint, "builtin": row.builtin,
            "active": row.active, "id": row.id}


def register_variant_row(session: Session, spec: Mapping[str, Any], fingerprint: str, *,
                         replace: bool = False, builtin: bool = False) -> tuple[m.Variant, bool]:
    """Make ``spec`` (a spec dict with its fingerprint) the active variant of its name; returns (row, changed).

    Same spec: nothing happens. A different spec: VariantConflictError unless ``replace``;
    replacing deactivates the old row (its results stay attached to it and its fingerprint)
    and activates a row for the new fingerprint.
    """
    name = spec["name"]
    current = _active_row(session, name)
    if current is not None:
        if _canonical(current.spec) == _canonical(dict(spec)):
            return current, False
        if not replace:
            raise VariantConflictError(
                f"variant {name!r} is already registered with a different spec "
                f"({_describe_diff(current.spec, spec)}); pass replace=True (CLI: --replace) to replace it "
                "(its stored results stay with the old spec), or choose another name"
            )
        if current.fingerprint == fingerprint:  # only description/tags differ
            _fill(current, spec)
            current.builtin = builtin
            return current, True
        current.active = False
        current.replaced_at = m.utcnow()
        session.flush()  # the one-active-per-name index must see the old row inactive first
    row = _variant_row(session, name, fingerprint)
    if row is None:
        row = _new_row(spec, fingerprint, active=True, builtin=builtin)
        session.add(row)
    else:  # switching back to a spec used before: reuse its row and results
        row.active = True
        row.replaced_at = None
        row.builtin = builtin
        _fill(row, spec)
    session.flush()
    return row, True


def register_variant(spec: Mapping[str, Any], fingerprint: str, *, replace: bool = False,
                     builtin: bool = False, store: Store | None = None) -> bool:
    """:func:`register_variant_row` in a transaction of its own; True when something changed."""
    store = store or get_store()
    return store.write(lambda s: register_variant_row(s, spec, fingerprint, replace=replace, builtin=builtin)[1])


def sync_builtin_variants(specs: Iterable[tuple[Mapping[str, Any], str]], store: Store | None = None) -> int:
    """Add or update the built-in variants (spec dict, fingerprint) in one transaction; returns rows changed.

    A built-in the user replaced with a spec of their own is left alone; a built-in whose
    definition changed in code is replaced (the old row keeps its results); a row imported
    from a report before the built-ins were added is marked built-in.
    """
    specs = list(specs)

    def write(s: Session) -> int:
        changed = 0
        for spec, fingerprint in specs:
            row = _active_row(s, spec["name"])
            if row is None:
                register_variant_row(s, spec, fingerprint, builtin=True)
                changed += 1
            elif row.builtin and _canonical(row.spec) != _canonical(dict(spec)):
                register_variant_row(s, spec, fingerprint, replace=True, builtin=True)
                changed += 1
            elif not row.builtin and row.fingerprint == fingerprint and _canonical(row.spec) == _canonical(dict(spec)):
                row.builtin = True
                changed += 1
        return changed

    return (store or get_store()).write(write)


def active_variant(name: str, store: Store | None = None) -> dict[str, Any] | None:
    """The active variant of ``name`` as ``{"spec", "fingerprint", "builtin", "active", "id"}``, or None."""
    with (store or get_store()).session() as s:
        row = _active_row(s, name)
        return None if row is None else _record(row)


def active_variants(*, scan: str | None = None, store: Store | None = None) -> list[dict[str, Any]]:
    """Every active variant (records as :func:`active_variant`), in natural name order."""
    with (store or get_store()).session() as s:
        q = select(m.Variant).where(m.Variant.active.is_(True))
        if scan is not None:
            q = q.where(m.Variant.scan == scan)
        rows = [_record(r) for r in s.scalars(q)]
    return sorted(rows, key=lambda r: _natural_key(r["spec"]["name"]))


def variant_names(store: Store | None = None) -> list[str]:
    with (store or get_store()).session() as s:
        return list(s.scalars(select(m.Variant.name).where(m.Variant.active.is_(True)).order_by(m.Variant.name)))


def attach_variant(session: Session, spec: Mapping[str, Any], fingerprint: str) -> m.Variant:
    """The row that results of ``spec`` belong to, created if missing.

    Never changes which spec is active: a spec that differs from the active one of its name
    gets an inactive row (results imported from elsewhere must not silently replace a variant).
    """
    row = _variant_row(session, spec["name"], fingerprint)
    if row is not None:
        return row
    active = _active_row(session, spec["name"]) is None
    row = _new_row(spec, fingerprint, active=active, builtin=False)
    if not active:
        row.replaced_at = m.utcnow()
    session.add(row)
    session.flush()
    return row


def variant_records(*, include_inactive: bool = False, store: Store | None = None) -> list[dict[str, Any]]:
    """Every variant row as a dict (spec fields, fingerprint, active, builtin, result count)."""
    store = store or get_store()
    with store.session() as s:
        counts = dict(s.execute(select(m.Result.variant_id, func.count()).group_by(m.Result.variant_id)).all())
        q = select(m.Variant).order_by(m.Variant.name, m.Variant.active.desc(), m.Variant.id)
        if not include_inactive:
            q = q.where(m.Variant.active.is_(True))
        out = []
        for row in s.scalars(q):
            rec = dict(row.spec)
            rec.update(id=row.id, fingerprint=row.fingerprint, active=row.active, builtin=row.builtin,
                       created_at=_iso(row.created_at), replaced_at=_iso(row.replaced_at),
                       n_results=counts.get(row.id, 0))
            out.append(rec)
        out.sort(key=lambda r: (_natural_key(r["name"]), not r["active"], r["id"]))
        return out


# -- environments and reports ------------------------------------------------------------
_ENV_COLUMNS = ("device_name", "driver_version", "cuda_version", "cpu_model", "torch_version",
                "triton_version", "transformers_version", "ssmboard_version", "git_sha", "hostname",
                "python_version", "extra")


def environment_row(session: Session, env: Any) -> m.Environment:
    """The row for an ``evaluators.report.Environment``, deduplicated by its hash."""
    h = env.hash()
    row = session.scalars(select(m.Environment).where(m.Environment.hash == h)).first()
    if row is None:
        data = env.to_dict()
        row = m.Environment(hash=h, created_at=m.utcnow(), **{k: data.get(k) for k in _ENV_COLUMNS})
        if row.extra is None:
            row.extra = {}
        session.add(row)
        session.flush()
    return row


@dataclass(frozen=True)
class SaveCounts:
    """What :func:`save_report` did: rows added, rows skipped (row_key already stored), items added."""

    added: int
    skipped: int
    variant_id: int
    fingerprint: str
    items: int = 0  # item scores added with the new rows


def _naive_utc(iso: str) -> datetime:
    dt = datetime.fromisoformat(iso)
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def save_report(report: Any, *, fingerprint: str, extra_context: Mapping[str, Any] | None = None,
                job_id: int | None = None, store: Store | None = None) -> SaveCounts:
    """Store one report (an ``evaluators.report.Report``): its variant, environment, metrics and
    their per-item scores, in one transaction.

    ``fingerprint`` is the fingerprint of ``report.variant`` (the registry computes it);
    ``extra_context`` is merged into every row's context (the effective spec when a suite
    overrode fields). ``job_id`` (default ``report.job_id``) links the rows to a queue job of
    this store; an id that this store does not have, or whose job is for another variant
    name, is dropped.

    Idempotent: metrics whose ``row_key`` is already stored (or repeated within the report)
    are skipped with their items, so importing the same file twice adds nothing. The variant
    is matched by (name, fingerprint) and added when missing, without replacing an active one.
    """
    store = store or get_store()
    return store.write(lambda s: save_report_rows(s, report, fingerprint=fingerprint,
                                                  extra_context=extra_context, job_id=job_id))


def save_report_rows(s: Session, report: Any, *, fingerprint: str, extra_context: Mapping[str, Any] | None = None,
                     job_id: int | None = None) -> SaveCounts:
    """:func:`save_report` inside the caller's transaction (the queue stores a job's reports
    together with its status change, see ``db.jobs.finish_job``)."""
    spec = dict(report.variant)
    extra = dict(extra_context or {})
    if job_id is None:
        job_id = getattr(report, "job_id", None)
    created = _naive_utc(report.created_at)
    variant = attach_variant(s, spec, fingerprint)
    env = environment_row(s, report.environment)
    # A job id from another store (a report carried over from a GPU box) means nothing here,
    # nor does one whose job is for another variant name.
    job_row = s.get(m.Job, job_id) if job_id is not None else None
    job = job_row.id if job_row is not None and job_row.variant.name == spec["name"] else None
    keys = [mt.row_key for mt in report.metrics]
    existing: set[str] = set()
    for i in range(0, len(keys), 500):
        existing.update(s.scalars(select(m.Result.row_key).where(m.Result.row_key.in_(keys[i:i + 500]))))
    added = skipped = items = 0
    for mt in report.metrics:
        if mt.row_key in existing:
            skipped += 1
            continue
        existing.add(mt.row_key)
        row = m.Result(
            row_key=mt.row_key, variant_id=variant.id, fingerprint=fingerprint, job_id=job,
            environment_id=env.id, evaluator=report.evaluator, suite=report.suite, metric=mt.name,
            value=mt.value, unit=mt.unit or "", higher_is_better=mt.higher_is_better, stderr=mt.stderr,
            n=mt.n, context={**dict(mt.context), **extra}, created_at=created,
        )
        row.items = [m.ItemScore(item=str(k), value=float(v)) for k, v in (mt.items or {}).items()]
        items += len(row.items)
        s.add(row)
        added += 1
    return SaveCounts(added=added, skipped=skipped, variant_id=variant.id, fingerprint=fingerprint,
                      items=items)


def item_scores(result_ids: Iterable[int], store: Store | None = None) -> dict[int, dict[str, float]]:
    """The per-item scores of the given result rows: ``{result_id: {item: value}}``."""
    ids = list(result_ids)
    out: dict[int, dict[str, float]] = {i: {} for i in ids}
    with (store or get_store()).session() as s:
        for i in range(0, len(ids), 500):
            q = select(m.ItemScore).where(m.ItemScore.result_id.in_(ids[i:i + 500]))
            for row in s.scalars(q):
                out[row.result_id][row.item] = row.value
    return out


# -- reading results -----------------------------------------------------------------------
def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.replace(tzinfo=timezone.utc).isoformat(timespec="seconds")


def results_records(*, variants: Iterable[str] | None = None, evaluator: str | None = None,
                    metric: str | None = None, active_only: bool = False,
                    store: Store | None = None) -> list[dict[str, Any]]:
    """Every result row joined with its variant and environment, as flat dicts.

    Keys: result fields (id, row_key, evaluator, suite, metric, value, unit, higher_is_better,
    stderr, n, context, created_at, job_id), the variant (variant, variant_id, fingerprint,
    active, model, scan, chunk_size, dtype, compile, spec) and the environment (device_name,
    torch_version, ..., git_sha, environment_id). ``pandas.DataFrame(records)`` gives a table.
    """
    store = store or get_store()
    q = (select(m.Result, m.Variant, m.Environment)
         .join(m.Variant, m.Result.variant_id == m.Variant.id)
         .outerjoin(m.Environment, m.Result.environment_id == m.Environment.id)
         .order_by(m.Result.id))
    if variants is not None:
        q = q.where(m.Variant.name.in_(list(variants)))
    if evaluator is not None:
        q = q.where(m.Result.evaluator == evaluator)
    if metric is not None:
        q = q.where(m.Result.metric == metric)
    if active_only:
        q = q.where(m.Variant.active.is_(True))
    out = []
    with store.session() as s:
        for r, v, e in s.execute(q):
            rec: dict[str, Any] = {
                "id": r.id, "row_key": r.row_key, "job_id": r.job_id,
                "variant": v.name, "variant_id": v.id, "fingerprint": r.fingerprint, "active": v.active,
                "model": v.model, "scan": v.scan, "chunk_size": v.chunk_size, "dtype": v.dtype,
                "compile": v.compile, "spec": dict(v.spec),
                "evaluator": r.evaluator, "suite": r.suite, "metric": r.metric, "value": r.value,
                "unit": r.unit, "higher_is_better": r.higher_is_better, "stderr": r.stderr, "n": r.n,
                "context": dict(r.context or {}), "created_at": _iso(r.created_at),
                "environment_id": r.environment_id,
            }
            for k in _ENV_COLUMNS:
                if k != "extra":
                    rec[k] = getattr(e, k) if e is not None else None
            out.append(rec)
    return out


def table_counts(store: Store | None = None) -> dict[str, int]:
    store = store or get_store()
    with store.session() as s:
        return {
            "variants": s.scalar(select(func.count()).select_from(m.Variant).where(m.Variant.active.is_(True))) or 0,
            "variant_rows": s.scalar(select(func.count()).select_from(m.Variant)) or 0,
            "jobs": s.scalar(select(func.count()).select_from(m.Job)) or 0,
            "results": s.scalar(select(func.count()).select_from(m.Result)) or 0,
            "environments": s.scalar(select(func.count()).select_from(m.Environment)) or 0,
        }


def db_info(store: Store | None = None) -> dict[str, Any]:
    """What `ssmboard db info` prints: URL (password hidden), file, schema revision, counts."""
    from ssmboard.db import migrate

    store = store or get_store()
    with store.engine.connect() as conn:
        revision = migrate.current_revision(conn)
    return {
        "url": redact(store.url),
        "path": str(store.path) if store.path else None,
        "schema_revision": revision,
        "head_revision": migrate.head_revision(),
        "counts": table_counts(store),
    }
