"""Where a run's reports go: the store, or a JSON file that ``ssmboard import`` loads later.

Both are written after every measured point, so an interrupted run keeps what it finished.
The file sink never imports the database layer, so a GPU machine without SQLAlchemy can
still produce rows.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ssmboard.evaluators.report import Report


class Sink(Protocol):
    def write(self, report: Report) -> int:
        """Persist one report; return the number of rows it added."""


class StoreSink:
    def write(self, report: Report) -> int:
        from ssmboard.db.queries import save_report
        return save_report(report).added


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
