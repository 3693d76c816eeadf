"""Statistics and timing helpers of the performance evaluator (no model needed)."""
from __future__ import annotations

import statistics
import time

import pytest

from ssmboard.evaluators.stats import differ_beyond_noise, quantile, summarize
from ssmboard.evaluators.timing import measure


def test_summary_matches_statistics_module():
    xs = [0.3, 0.1, 0.5, 0.2, 0.9, 0.4, 0.7]
    s = summarize(xs)
    assert s.median == statistics.median(xs) and s.n == 7
    assert s.stdev == pytest.approx(statistics.stdev(xs))
    assert s.p90 == pytest.approx(0.78)  # between 0.7 and 0.9 at 0.6 of the way
    assert quantile([5.0], 0.9) == 5.0


def test_warmup_runs_are_excluded_from_samples():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.2 if len(calls) <= 2 else 0.001)

    t = measure(fn, warmup=2, iterations=5, min_seconds=0.0)
    assert len(t.warmup) == 2 and min(t.warmup) >= 0.19
    assert len(t.samples) == 5 and max(t.samples) < 0.1
    assert len(calls) == 7


def test_min_seconds_extends_iterations():
    t = measure(lambda: time.sleep(0.01), warmup=0, iterations=2, min_seconds=0.15)
    assert len(t.samples) >= 10


def test_difference_beyond_noise():
    assert differ_beyond_noise(1.0, 0.01, 1.1, 0.01) is True
    assert differ_beyond_noise(1.0, 0.1, 1.05, 0.1) is False
    assert differ_beyond_noise(1.0, None, 2.0, 0.1) is None
