"""What `make demo` runs, the main job on a fresh machine: queue the quick suites for the
built-in variants of the embedded model, drain the queue with a local worker (each job in a
child process, progress shown), and leave every row in the store for the ranking.

Kept beside the queue so the demo is something the Python API can do (``run_demo()``);
the CLI only prints the variants before and the ranking and comparison after.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEMO_VARIANTS: tuple[str, ...] = ("reference-c64", "independent-c64")
DEMO_SUITES: tuple[str, ...] = ("quick", "accuracy-quick")


@dataclass
class DemoResult:
    submitted: list[dict[str, Any]] = field(default_factory=list)
    summary: Any = None  # the worker's WorkerSummary
    interrupted: bool = False

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [j for j in (self.summary.jobs if self.summary else []) if j.get("outcome") != "finished"]


def run_demo(*, progress: bool = True, variants: tuple[str, ...] = DEMO_VARIANTS,
             suites: tuple[str, ...] = DEMO_SUITES) -> DemoResult:
    """Queue ``suites`` x ``variants`` (an identical pending job is not queued twice) and drain the queue."""
    from ssmboard.jobs.queue import submit
    from ssmboard.jobs.worker import drain
    from ssmboard.registry.api import ensure_builtins

    ensure_builtins()
    result = DemoResult()
    for suite in suites:
        for name in variants:
            result.submitted.append(submit(name, suite))
    result.summary = drain("local", progress=progress)
    result.interrupted = bool(result.summary.interrupted)
    return result
