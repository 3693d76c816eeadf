"""Where a run's reports go: the store, or a JSON file that ``ssmboard import`` loads later.

Both are written after every measured point, so an interrupted run keeps what it finished.
The file sink never imports the database layer, so a GPU machine without SQLAlchemy can
still produce rows. :func:`save_report` is the one road from a report into the store: it
fingerprints the report's variant (the store knows dicts and fingerprints, not specs).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from ssmboard.evaluators.report import Report


class Sink(Protocol):
    def write(self, report: Report) -> int:
        """Persist one report; return the number of rows it added."""


def save_report(report: Report, *, job_id: int | None = None, store: Any = None) -> Any:
    """Store ``report`` (idempotent by row key); returns the store's ``SaveCounts``.

    When the report's effective spec (what actually ran, e.g. a chunk-size sweep) differs
    from its variant, each row's context records that spec and its fingerprint; the rows
    still belong to ``report.variant``.
    """
    from ssmboard.db.queries import save_report as store_rows

    fingerprint, extra = report_keys(report)
    return store_rows(report, fingerprint=fingerprint, extra_context=extra, job_id=job_id, store=store)


def report_keys(report: Report) -> tuple[str, dict[str, Any]]:
    """What the store needs besides the report: its variant's fingerprint, and the context added
    to every row (the effective spec, when it differs from the variant)."""
    from ssmboard.registry.spec import VariantSpec

    spec = VariantSpec.from_stored(report.variant)
    extra: dict[str, Any] = {}
    if report.effective_variant:
        eff = VariantSpec.from_stored(report.effective_variant)
        if eff.fingerprint != spec.fingerprint:
            extra = {"effective_fingerprint": eff.fingerprint, "effective_variant": eff.computational_dict()}
    return spec.fingerprint, extra


def import_reports(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Load report files into the store, idempotently; one summary dict per file.

    Every file is read and checked before anything is written, so a bad file adds nothing.
    """
    from ssmboard.registry.api import ensure_builtins

    ensure_builtins()
    loaded = [(str(path), Report.load(path)) for path in paths]
    out = []
    for path, reports in loaded:
        added = skipped = items = 0
        for report in reports:
            counts = save_report(report)
            added += counts.added
            skipped += counts.skipped
            items += counts.items
        out.append({"path": path, "reports": len(reports), "added": added, "skipped": skipped, "items": items})
    return out


class StoreSink:
    def __init__(self, job_id: int | None = None) -> None:
        self.job_id = job_id

    def write(self, report: Report) -> int:
        return save_report(report, job_id=self.job_id).added


class FileSink:
    """Accumulates reports in one JSON file, rewritten atomically after each point."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.reports: list[Report] = []

    def write(self, report: Report) -> int:
        self.reports.append(report)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        Report.dump_many(self.reports, tmp)
        os.replace(tmp, self.path)
        return len(report.metrics)
