"""What an evaluation produces, as plain data: metrics, the environment, and a report.

A :class:`Report` travels as JSON (``to_json`` / ``Report.load``) so a GPU box with no copy
of the store still contributes rows: ``ssmboard import FILE`` loads them idempotently, since
every metric carries a unique ``row_key``. Nothing here imports torch or the database.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ssmboard.errors import SsmboardError

REPORT_FORMAT = "ssmboard-report/1"


class ReportError(SsmboardError, ValueError):
    """A report (file or object) is malformed: wrong format tag, missing or bad fields."""


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _new_row_key() -> str:
    return uuid.uuid4().hex


def _is_number(x: Any) -> bool:
    """Python and numpy reals (np.float64, np.int64), not bools."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _take(cls: type, data: Any, where: str) -> dict[str, Any]:
    """Check ``data`` is a mapping whose keys are fields of ``cls``; return a copy."""
    if not isinstance(data, Mapping):
        raise ReportError(f"{where}: expected an object, got {type(data).__name__}")
    valid = [f.name for f in fields(cls)]
    unknown = [k for k in data if k not in valid]
    if unknown:
        raise ReportError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    return dict(data)


@dataclass
class Metric:
    """One number. ``context`` says under which conditions (prompt length, batch, task...)."""

    name: str
    value: float
    unit: str = ""
    higher_is_better: bool = True
    stderr: float | None = None
    n: int = 1
    context: dict[str, Any] = field(default_factory=dict)
    row_key: str = field(default_factory=_new_row_key)
    # Per-item scores behind this number (item id -> score), e.g. each prompt's KL or each
    # task document's log-likelihood: what a paired comparison of two variants resamples.
    items: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ReportError(f"metric name must be a non-empty string, got {self.name!r}")
        if not _is_number(self.value) or not math.isfinite(self.value):
            raise ReportError(f"metric {self.name!r}: value must be a finite number, got {self.value!r}")
        self.value = float(self.value)
        if self.stderr is not None:
            if not _is_number(self.stderr) or not math.isfinite(self.stderr):
                raise ReportError(f"metric {self.name!r}: stderr must be a finite number or null, got {self.stderr!r}")
            self.stderr = float(self.stderr)
        if isinstance(self.n, bool) or not isinstance(self.n, numbers.Integral) or self.n < 1:
            raise ReportError(f"metric {self.name!r}: n must be an integer >= 1, got {self.n!r}")
        self.n = int(self.n)
        if not isinstance(self.higher_is_better, bool):
            raise ReportError(f"metric {self.name!r}: higher_is_better must be true or false")
        if not isinstance(self.context, dict):
            raise ReportError(f"metric {self.name!r}: context must be an object")
        if not isinstance(self.row_key, str) or not self.row_key or len(self.row_key) > 128:
            raise ReportError(f"metric {self.name!r}: row_key must be a non-empty string of at most 128 characters")
        try:
            json.dumps(self.context, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ReportError(f"metric {self.name!r}: context is not plain JSON data ({exc})") from None
        if not isinstance(self.items, Mapping):
            raise ReportError(f"metric {self.name!r}: items must be an object of item id -> score")
        items = {}
        for key, value in self.items.items():
            if not _is_number(value) or not math.isfinite(value):
                raise ReportError(f"metric {self.name!r}: item {key!r} has score {value!r}; scores are finite numbers")
            items[str(key)] = float(value)
        self.items = items

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Metric":
        d = _take(cls, data, "metric")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ReportError(f"metric: {exc}") from None


@dataclass
class Environment:
    """Where a number was measured. Equal environments share one row in the store."""

    device_name: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    cpu_model: str | None = None
    torch_version: str | None = None
    triton_version: str | None = None
    transformers_version: str | None = None
    ssmboard_version: str | None = None
    git_sha: str | None = None
    hostname: str | None = None
    python_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Environment":
        d = _take(cls, data, "environment")
        for key, value in d.items():
            if key != "extra" and value is not None and not isinstance(value, str):
                d[key] = str(value)
        if d.get("extra") is None:
            d["extra"] = {}
        return cls(**d)

    def hash(self) -> str:
        """sha256 of the canonical JSON of every field: the store's deduplication key."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Report:
    """The metrics one evaluator produced for one variant, in one environment.

    ``variant`` is ``VariantSpec.to_dict()`` (name included), so the store can register the
    variant when the report comes from a machine that never saw this store.
    """

    variant: dict[str, Any]
    evaluator: str
    environment: Environment
    metrics: list[Metric]
    suite: str | None = None
    created_at: str = field(default_factory=utc_now_iso)
    params: dict[str, Any] = field(default_factory=dict)  # the evaluator's parameters, for the record
    # The spec actually run when a suite overrode fields (e.g. a chunk-size sweep); results
    # still belong to ``variant``, the effective spec is recorded with each row.
    effective_variant: dict[str, Any] | None = None
    job_id: int | None = None  # the queue job this came from (dropped on import into another store)

    def __post_init__(self) -> None:
        if not isinstance(self.variant, dict) or "name" not in self.variant:
            raise ReportError("report: 'variant' must be the variant spec as a dict, with its 'name'")
        if self.effective_variant is not None and not isinstance(self.effective_variant, dict):
            raise ReportError("report: 'effective_variant' must be a spec dict or null")
        if self.job_id is not None and (isinstance(self.job_id, bool) or not isinstance(self.job_id, int)):
            raise ReportError("report: 'job_id' must be an integer or null")
        if not isinstance(self.evaluator, str) or not self.evaluator:
            raise ReportError("report: 'evaluator' must be a non-empty string")
        if isinstance(self.environment, Mapping):
            self.environment = Environment.from_dict(self.environment)
        if not isinstance(self.environment, Environment):
            raise ReportError("report: 'environment' must be an Environment")
        self.metrics = [Metric.from_dict(m) if isinstance(m, Mapping) else m for m in self.metrics]
        if not all(isinstance(m, Metric) for m in self.metrics):
            raise ReportError("report: 'metrics' must be a list of Metric")
        try:
            created = datetime.fromisoformat(str(self.created_at).replace("Z", "+00:00"))
        except ValueError:
            raise ReportError(f"report: created_at {self.created_at!r} is not an ISO 8601 time") from None
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        self.created_at = created.astimezone(timezone.utc).isoformat(timespec="seconds")

    @classmethod
    def for_spec(cls, spec: Any, evaluator: str, environment: Environment, metrics: list[Metric],
                 suite: str | None = None, params: dict[str, Any] | None = None) -> "Report":
        """Build a report from a ``VariantSpec`` (anything with ``to_dict()``)."""
        return cls(variant=spec.to_dict(), evaluator=evaluator, environment=environment,
                   metrics=list(metrics), suite=suite, params=dict(params or {}))

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "variant": dict(self.variant),
            "evaluator": self.evaluator,
            "suite": self.suite,
            "created_at": self.created_at,
            "params": self.params,
            "effective_variant": self.effective_variant,
            "job_id": self.job_id,
            "environment": self.environment.to_dict(),
            "metrics": [m.to_dict() for m in self.metrics],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Report":
        if not isinstance(data, Mapping):
            raise ReportError(f"expected a report object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != REPORT_FORMAT:
            raise ReportError(
                f"unsupported report format {fmt!r}; this ssmboard reads {REPORT_FORMAT!r} "
                "(write reports with Report.to_json, or upgrade ssmboard if the file is newer)"
            )
        d = {k: v for k, v in data.items() if k != "format"}
        d = _take(cls, d, "report")
        missing = [k for k in ("variant", "evaluator", "environment", "metrics") if k not in d]
        if missing:
            raise ReportError(f"report: missing field(s) {', '.join(missing)}")
        if not isinstance(d["metrics"], list):
            raise ReportError("report: 'metrics' must be a list")
        d["environment"] = Environment.from_dict(d["environment"])
        d["metrics"] = [Metric.from_dict(m) for m in d["metrics"]]
        if d.get("params") is None:
            d["params"] = {}
        return cls(**d)

    def to_json(self, path: str | Path | None = None, *, indent: int = 2) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @staticmethod
    def dump_many(reports: list["Report"], path: str | Path) -> None:
        """Write several reports to one file (a JSON list)."""
        Path(path).write_text(json.dumps([r.to_dict() for r in reports], indent=2, allow_nan=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> list["Report"]:
        """Every report in a file holding one report object or a list of them."""
        p = Path(path)
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise ReportError(f"{p}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ReportError(f"{p}: cannot read it as text ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(f"{p}: not valid JSON ({exc}); expected an ssmboard report file") from None
        items = data if isinstance(data, list) else [data]
        out = []
        for i, item in enumerate(items):
            try:
                out.append(cls.from_dict(item))
            except ReportError as exc:
                where = f"{p}" + (f" [report {i}]" if isinstance(data, list) else "")
                raise ReportError(f"{where}: {exc}") from None
        return out
