"""Run one suite on one variant: build, measure point by point, hand reports to a sink.

This is what an executor runs (in the calling process for ``ssmboard eval``, in a
subprocess or a Slurm job for the worker). Evaluators return plain rows; each finished
point becomes one report written at once, so Ctrl-C loses at most the point in progress.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

from ssmboard.evaluators.base import get_evaluator
from ssmboard.evaluators.environment import collect_environment
from ssmboard.evaluators.report import Metric, Report
from ssmboard.evaluators.suites import Suite, get_suite, resolve
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


def model_chunk_size(model) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "mamba_chunk_size", None) or getattr(cfg, "chunk_size", None)


def run_suite(spec, suite: str | Suite, sink: Sink, *, progress: bool = True,
              job_id: int | None = None, device: Any = None) -> RunSummary:
    """Measure ``spec`` with ``suite``; returns what was done, also when interrupted."""
    from tqdm.auto import tqdm

    from ssmboard.variants.build import build

    suite = get_suite(suite) if isinstance(suite, str) else suite
    env = collect_environment()
    summary = RunSummary(variant=spec.name, suite=suite.name)
    try:
        own_chunk = None
        if suite.prompt_chunks and not spec.chunk_size and not suite.chunk_sizes:
            own_chunk = _own_chunk_size(spec, build, device)
        steps = resolve(suite, spec, own_chunk)
        evaluator = get_evaluator(suite.evaluator)
        plan = [(s, evaluator.points(s.params)) for s in steps]
        summary.points_total = sum(len(p) for _, p in plan)
        bar = tqdm(total=summary.points_total, desc=f"{spec.name} [{suite.name}]", disable=not progress, unit="pt")
        with bar:
            for step, points in plan:
                eff = dataclasses.replace(spec, **step.overrides) if step.overrides else spec
                model, tokenizer = build(eff, device=device)
                chunk = eff.chunk_size or model_chunk_size(model)
                for point in points:
                    bar.set_postfix_str(", ".join(f"{k}={v}" for k, v in point.items()))
                    metrics = _measure(evaluator, model, tokenizer, point, step.params, summary)
                    extra = _context(eff, chunk, suite.name)
                    for m in metrics:
                        m.context = {**extra, **m.context}
                    report = Report(variant=spec.to_dict(), evaluator=evaluator.name, suite=suite.name,
                                    environment=env, metrics=metrics, effective_variant=eff.to_dict(),
                                    job_id=job_id)
                    summary.rows += sink.write(report)
                    summary.reports.append(report)
                    summary.points_done += 1
                    bar.update(1)
                del model
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted: kept %d rows from %d of %d points", summary.rows, summary.points_done,
                    summary.points_total)
    return summary


def _measure(evaluator, model, tokenizer, point: dict, params: dict, summary: RunSummary) -> list[Metric]:
    """One point's rows. Running out of GPU memory is a result, not a crash: the point gets one
    ``out_of_memory`` row (the leaderboard shows "OOM" rather than a gap) and the run goes on."""
    import torch

    try:
        return list(evaluator.run_point(model, tokenizer, point, params))
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        log.warning("out of memory at %s: %s", point, str(exc).splitlines()[0])
        summary.failed.append({**point, "error": "out of memory"})
        return [Metric("out_of_memory", 1.0, "", False, context=dict(point))]


def _own_chunk_size(spec, build, device) -> int | None:
    """The chunk size the model's config gives, for suites whose prompt lengths count chunks."""
    light = dataclasses.replace(spec, scan="reference", compile=None, compile_options={}, compile_scope="model",
                                n_layers=1, use_cache=False)
    model, _ = build(light, device="meta")  # the config is all we need: no weights are made
    return model_chunk_size(model)


def _context(spec, chunk: int | None, suite: str) -> dict[str, Any]:
    return {"chunk_size": chunk, "dtype": spec.dtype, "compile": spec.compile,
            "compile_scope": spec.compile_scope, "n_layers": spec.n_layers,
            "scan": spec.scan, "decoder": spec.decoder, "suite": suite, "fingerprint": spec.fingerprint}
