"""Run a suite on one variant: build it, run each step's evaluator point by point, hand the
rows to a sink after every point (so an interrupted run keeps what it finished).

The runner owns what evaluators must not: building models (once per step's effective spec,
and any other model an evaluator asks for, cached for the run), the environment, the
context every row carries, and where the rows go.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from ssmboard.errors import EvaluationError
from ssmboard.evaluators.base import EvalContext, get_evaluator
from ssmboard.evaluators.environment import collect_environment
from ssmboard.evaluators.report import Metric, Report
from ssmboard.evaluators.suites import Suite, get_suite, needs_model_chunk_size, resolve
from ssmboard.jobs.sinks import Sink

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    variant: str
    suite: str
    points_done: int = 0
    points_total: int = 0
    rows: int = 0
    interrupted: bool = False
    reports: list[Report] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # points that ran out of memory


class _Builder:
    """Builds specs on one device, keeping each built model for the rest of the run."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.cache: dict[str, Any] = {}

    def __call__(self, spec: Any) -> Any:
        from ssmboard.variants.build import build

        key = spec.fingerprint
        if key not in self.cache:
            self.cache[key] = build(spec, device=self.device)
        return self.cache[key]

    def drop(self, spec: Any) -> None:
        self.cache.pop(spec.fingerprint, None)


def check_suite_fits(spec: Any, suite: Suite) -> None:
    """Refuse, before any work, an accuracy evaluator on random weights."""
    if not spec.model.startswith("config:"):
        return
    for name in suite.evaluators:
        if get_evaluator(name).needs_trained_weights:
            raise EvaluationError(
                f"evaluator {name!r} of suite {suite.name!r} measures answers, and {spec.model!r} has random "
                "weights, whose answers mean nothing; evaluate a variant of a trained model (e.g. "
                "embedded:tiny-bamba or a checkpoint folder) or use a performance suite")


def run_suite(spec, suite: str | Suite, sink: Sink, *, progress: bool = True,
              job_id: int | None = None, device: Any = None) -> RunSummary:
    """Measure ``spec`` with ``suite``; returns what was done, also when interrupted."""
    from tqdm.auto import tqdm

    suite = get_suite(suite) if isinstance(suite, str) else suite
    check_suite_fits(spec, suite)
    env = collect_environment(None if device is None else str(device))
    summary = RunSummary(variant=spec.name, suite=suite.name)
    builder = _Builder(device)
    try:
        own_chunk = _own_chunk_size(spec) if needs_model_chunk_size(suite, spec) else None
        steps = resolve(suite, spec, own_chunk)
        plan = [(s, get_evaluator(s.evaluator)) for s in steps]
        plan = [(s, ev, ev.points(s.params)) for s, ev in plan]
        summary.points_total = sum(len(p) for _, _, p in plan)
        bar = tqdm(total=summary.points_total, desc=f"{spec.name} [{suite.name}]", disable=not progress, unit="pt")
        with bar:
            last = None
            for step, evaluator, points in plan:
                eff = dataclasses.replace(spec, **step.overrides) if step.overrides else spec
                if last is not None and last.fingerprint != eff.fingerprint:
                    builder.drop(last)  # a sweep builds one model per chunk size: keep one at a time
                last = eff
                context = EvalContext(built=builder(eff), build=builder)
                row_context = _context(eff, context.built.chunk_size, suite.name)
                for point in points:
                    bar.set_postfix_str(f"{evaluator.name}: " + ", ".join(f"{k}={v}" for k, v in point.items()))
                    metrics = _measure(evaluator, context, point, step.params, summary)
                    for m in metrics:
                        m.context = {**row_context, **m.context}
                    report = Report(variant=spec.to_dict(), evaluator=evaluator.name, suite=suite.name,
                                    environment=env, metrics=metrics, effective_variant=eff.to_dict(),
                                    job_id=job_id, params=step.params.to_dict())
                    summary.rows += sink.write(report)
                    summary.reports.append(report)
                    summary.points_done += 1
                    bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted: kept %d rows from %d of %d points", summary.rows, summary.points_done,
                    summary.points_total)
    return summary


def _measure(evaluator, context: EvalContext, point: dict, params: Any, summary: RunSummary) -> list[Metric]:
    """One point's rows. Running out of GPU memory is a result, not a crash: the point gets one
    ``out_of_memory`` row (the leaderboard shows "OOM" rather than a gap) and the run goes on."""
    import torch

    try:
        return list(evaluator.run_point(context, point, params))
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        log.warning("out of memory at %s: %s", point, str(exc).splitlines()[0])
        summary.failed.append({**point, "error": "out of memory"})
        return [Metric("out_of_memory", 1.0, "", False, context=dict(point))]


def _own_chunk_size(spec) -> int | None:
    """The chunk size the model's config gives, for suites whose prompt lengths count chunks."""
    from ssmboard.variants.build import build

    light = dataclasses.replace(spec, scan="reference", compile=None, compile_options=(), compile_scope="model",
                                n_layers=1, use_cache=False, decoder="generate")
    return build(light, device="meta").chunk_size  # the config is all we need: no weights are made


def _context(spec, chunk: int | None, suite: str) -> dict[str, Any]:
    return {"chunk_size": chunk, "dtype": spec.dtype, "compile": spec.compile,
            "compile_scope": spec.compile_scope, "n_layers": spec.n_layers,
            "scan": spec.scan, "decoder": spec.decoder, "suite": suite, "fingerprint": spec.fingerprint}
