"""``ssmboard.evaluate``: evaluate one variant with one suite, into the store or a file.

The one function behind ``ssmboard eval``, the demo and the job queue's worker.
"""
from __future__ import annotations

import os
from typing import Any

from ssmboard.jobs.runner import RunSummary, run_suite


def resolve_variant(variant: Any, *, touch_store: bool = True) -> Any:
    """The spec of ``variant`` (a name or a VariantSpec). Without the store (``touch_store``
    False) a built-in is taken from code, so a GPU box with no copy of the store measures built-ins."""
    from ssmboard.registry.spec import VariantSpec

    if isinstance(variant, VariantSpec):
        return variant
    if not touch_store:
        from ssmboard.registry.builtins import builtin_specs

        for spec in builtin_specs():
            if spec.name == variant:
                return spec
    from ssmboard.registry.api import get_variant

    return get_variant(variant)


def evaluate(variant: Any, suite: str = "quick", *, params: dict[str, Any] | None = None,
             out: str | os.PathLike | None = None, device: Any = None, progress: bool = True,
             job_id: int | None = None) -> RunSummary:
    """Run ``suite`` on ``variant`` in this process; rows go to the store, or to the JSON file ``out``.

    ``params`` overrides suite parameters by name (each applies to every part of the suite
    whose evaluator takes it); unknown names and bad values fail before any work. Returns a
    summary; Ctrl-C stops the run and keeps the rows of the finished points
    (``summary.interrupted``).
    """
    from ssmboard.evaluators.suites import get_suite, with_params
    from ssmboard.jobs.sinks import FileSink, StoreSink

    chosen = with_params(get_suite(suite), dict(params or {}))
    spec = resolve_variant(variant, touch_store=out is None)
    sink: Any = FileSink(out) if out is not None else StoreSink(job_id)
    return run_suite(spec, chosen, sink, progress=progress, job_id=job_id, device=device)
