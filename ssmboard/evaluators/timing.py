"""Timing that follows design.md: warm-up first, then >= N runs and >= T seconds.

CUDA events on GPU (device work is asynchronous), perf_counter on CPU. No profiler runs
while timing. Warm-up results are returned separately so that they can never leak into
the statistics.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Timings:
    samples: list[float]  # seconds, warm-up excluded
    warmup: list[float] = field(default_factory=list)


def _timed_once(fn: Callable[[], object], cuda: bool, clock: Callable[[], float]) -> float:
    if cuda:
        import torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = clock()
    fn()
    return clock() - t0


def measure(fn: Callable[[], object], *, warmup: int, iterations: int, min_seconds: float,
            cuda: bool = False, max_iterations: int = 10_000,
            clock: Callable[[], float] = time.perf_counter) -> Timings:
    """Run ``fn`` ``warmup`` times untimed-for-stats, then until both minimums are met.

    ``clock`` (seconds) times CPU runs and the ``min_seconds`` budget; tests pass a fake one.
    """
    if cuda:
        import torch
        torch.cuda.synchronize()
    warm = [_timed_once(fn, cuda, clock) for _ in range(warmup)]
    samples: list[float] = []
    deadline = clock() + min_seconds
    while len(samples) < max(1, iterations) or (clock() < deadline and len(samples) < max_iterations):
        samples.append(_timed_once(fn, cuda, clock))
    return Timings(samples=samples, warmup=warm)
