"""What `ssmboard demo` runs: the built-in variants, then the quick suite on two of them.

Kept beside ``evaluate`` so the demo is something the Python API can do (``run_demo()``);
the CLI only prints what it returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEMO_VARIANTS: tuple[str, ...] = ("reference-c64", "independent-c64")
DEMO_SUITES: tuple[str, ...] = ("quick",)


@dataclass
class DemoResult:
    reports: list[Any] = field(default_factory=list)
    interrupted: bool = False


def run_demo(*, progress: bool = True, variants: tuple[str, ...] = DEMO_VARIANTS,
             suites: tuple[str, ...] = DEMO_SUITES) -> DemoResult:
    """Evaluate ``variants`` with ``suites`` on this machine, into the store."""
    from ssmboard.jobs.evaluate import evaluate

    result = DemoResult()
    for suite in suites:
        for name in variants:
            summary = evaluate(name, suite, progress=progress)
            result.reports += summary.reports
            if summary.interrupted:
                result.interrupted = True
                return result
    return result
