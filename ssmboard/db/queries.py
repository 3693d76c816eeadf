"""Reading and writing the store in terms of specs and reports, not rows.

Each public function opens one short session (one transaction for writes). Callers pass
plain objects (VariantSpec, Report) and get plain data back (dicts, dataclasses), so the
leaderboard and CLI never hold ORM objects past a session.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ssmboard.db import models as m
from ssmboard.db.engine import Store, get_store, redact
from ssmboard.errors import VariantConflictError
from ssmboard.registry.spec import VariantSpec, natural_key


# -- variants ------------------------------------------------------------------------------
def spec_of(row: m.Variant) -> VariantSpec:
    return VariantSpec.from_dict(row.spec)


def active_variant(session: Session, name: str) -> m.Variant | None:
    return session.scalars(
        select(m.Variant).where(m.Variant.name == name, m.Variant.active.is_(True))
    ).first()


def _variant_row(session: Session, name: str, fingerprint: str) -> m.Variant | None:
    return session.scalars(
        select(m.Variant).where(m.Variant.name == name, m.Variant.fingerprint == fingerprint)
    ).first()


def _fill(row: m.Variant, spec: VariantSpec) -> None:
    row.spec = spec.to_dict()
    row.model = spec.model
    row.scan = spec.scan
    row.chunk_size = spec.chunk_size
    row.dtype = spec.dtype
    row.compile = spec.compile


def _new_row(spec: VariantSpec, *, active: bool, builtin: bool) -> m.Variant:
    row = m.Variant(name=spec.name, fingerprint=spec.fingerprint, active=active, builtin=builtin,
                    created_at=m.utcnow())
    _fill(row, spec)
    return row


def _describe_diff(old: VariantSpec, new: VariantSpec) -> str:
    a, b = old.to_dict(), new.to_dict()
    return ", ".join(f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if a[k] != b[k])


def register_spec(session: Session, spec: VariantSpec, *, replace: bool = False,
                  builtin: bool = False) -> tuple[m.Variant, bool]:
    """Make ``spec`` the active variant of its name; returns (row, changed).

    Same spec: nothing happens. A different spec: VariantConflictError unless ``replace``;
    replacing deactivates the old row (its results stay attached to it and its fingerprint)
    and activates a row for the new fingerprint.
    """
    current = active_variant(session, spec.name)
    if current is not None:
        old = spec_of(current)
        if old.same_as(spec):
            return current, False
        if not replace:
            raise VariantConflictError(
                f"variant {spec.name!r} is already registered with a different spec "
                f"({_describe_diff(old, spec)}); pass replace=True (CLI: --replace) to replace it "
                "(its stored results stay with the old spec), or choose another name"
            )
        if current.fingerprint == spec.fingerprint:  # only description/tags differ
            _fill(current, spec)
            current.builtin = builtin
            return current, True
        current.active = False
        current.replaced_at = m.utcnow()
        session.flush()  # the one-active-per-name index must see the old row inactive first
    row = _variant_row(session, spec.name, spec.fingerprint)
    if row is None:
        row = _new_row(spec, active=True, builtin=builtin)
        session.add(row)
    else:  # switching back to a spec used before: reuse its row and results
        row.active = True
        row.replaced_at = None
        row.builtin = builtin
        _fill(row, spec)
    session.flush()
    return row, True


def attach_variant(session: Session, spec: VariantSpec) -> m.Variant:
    """The row that results of ``spec`` belong to, created if missing.

    Never changes which spec is active: a spec that differs from the active one of its name
    gets an inactive row (results imported from elsewhere must not silently replace a variant).
    """
    row = _variant_row(session, spec.name, spec.fingerprint)
    if row is not None:
        return row
    active = active_variant(session, spec.name) is None
    row = _new_row(spec, active=active, builtin=False)
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
        out.sort(key=lambda r: (natural_key(r["name"]), not r["active"], r["id"]))
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
    """What :func:`save_report` did: rows added, rows skipped (row_key already stored)."""

    added: int
    skipped: int
    variant_id: int
    fingerprint: str


def _naive_utc(iso: str) -> datetime:
    dt = datetime.fromisoformat(iso)
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def save_report(report: Any, *, job_id: int | None = None, store: Store | None = None) -> SaveCounts:
    """Store one ``Report``: its variant, environment and metrics, in one transaction.

    ``job_id`` (default ``report.job_id``) links the rows to a queue job of this store; an id
    that this store does not have, or whose job is for another variant name, is dropped. When ``report.effective_variant`` differs from
    ``report.variant`` (a suite overrode a field), each row's context records the effective
    spec and its fingerprint; the rows still belong to ``report.variant``.

    Idempotent: metrics whose ``row_key`` is already stored (or repeated within the report)
    are skipped, so importing the same file twice adds nothing. The variant is matched by
    (name, fingerprint) and registered when missing, without replacing an active variant.
    """
    spec = VariantSpec.from_dict(report.variant)
    effective = getattr(report, "effective_variant", None)
    extra_context: dict[str, Any] = {}
    if effective:
        eff = VariantSpec.from_dict(effective)
        if eff.fingerprint != spec.fingerprint:
            extra_context = {"effective_fingerprint": eff.fingerprint,
                             "effective_variant": eff.computational_dict()}
    if job_id is None:
        job_id = getattr(report, "job_id", None)
    store = store or get_store()
    created = _naive_utc(report.created_at)

    def write(s: Session) -> SaveCounts:
        variant = attach_variant(s, spec)
        env = environment_row(s, report.environment)
        # A job id from another store (a report carried over from a GPU box) means nothing here.
        # So is one whose job is for another variant name.
        job_row = s.get(m.Job, job_id) if job_id is not None else None
        job = job_row.id if job_row is not None and job_row.variant.name == spec.name else None
        keys = [mt.row_key for mt in report.metrics]
        existing: set[str] = set()
        for i in range(0, len(keys), 500):
            existing.update(s.scalars(select(m.Result.row_key).where(m.Result.row_key.in_(keys[i:i + 500]))))
        added = skipped = 0
        for mt in report.metrics:
            if mt.row_key in existing:
                skipped += 1
                continue
            existing.add(mt.row_key)
            s.add(m.Result(
                row_key=mt.row_key, variant_id=variant.id, fingerprint=spec.fingerprint, job_id=job,
                environment_id=env.id, evaluator=report.evaluator, suite=report.suite, metric=mt.name,
                value=mt.value, unit=mt.unit or "", higher_is_better=mt.higher_is_better, stderr=mt.stderr,
                n=mt.n, context={**dict(mt.context), **extra_context}, created_at=created,
            ))
            added += 1
        return SaveCounts(added=added, skipped=skipped, variant_id=variant.id, fingerprint=spec.fingerprint)

    return store.write(write)


def save_reports(reports: Iterable[Any], *, store: Store | None = None) -> SaveCounts:
    """Save several reports (one transaction each); returns the summed counts."""
    added = skipped = 0
    last = None
    for r in reports:
        last = save_report(r, store=store)
        added += last.added
        skipped += last.skipped
    return SaveCounts(added, skipped, last.variant_id if last else -1, last.fingerprint if last else "")


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
