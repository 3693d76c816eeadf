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


class FakeClock:
    """A clock that moves only when the timed function says so: no dependence on machine load."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_warmup_runs_are_excluded_from_samples():
    clock, calls = FakeClock(), []

    def fn():
        calls.append(1)
        clock.advance(0.2 if len(calls) <= 2 else 0.001)

    t = measure(fn, warmup=2, iterations=5, min_seconds=0.0, clock=clock)
    assert t.warmup == pytest.approx([0.2, 0.2])
    assert t.samples == pytest.approx([0.001] * 5)
    assert len(calls) == 7


def test_min_seconds_extends_iterations():
    clock = FakeClock()
    t = measure(lambda: clock.advance(0.01), warmup=0, iterations=2, min_seconds=0.15, clock=clock)
    assert len(t.samples) == 15  # 15 runs of 0.01 s reach 0.15 s
    assert sum(t.samples) == pytest.approx(0.15)


def test_iterations_are_a_floor_when_min_seconds_is_already_met():
    clock = FakeClock()
    t = measure(lambda: clock.advance(1.0), warmup=1, iterations=4, min_seconds=0.5, clock=clock)
    assert len(t.samples) == 4


def test_real_clock_by_default():
    t = measure(lambda: time.sleep(0.001), warmup=0, iterations=2, min_seconds=0.0)
    assert len(t.samples) == 2 and all(s > 0 for s in t.samples)


def test_difference_beyond_noise():
    assert differ_beyond_noise(1.0, 0.01, 1.1, 0.01) is True
    assert differ_beyond_noise(1.0, 0.1, 1.05, 0.1) is False
    assert differ_beyond_noise(1.0, None, 2.0, 0.1) is None


def test_paired_bootstrap_covers_zero_for_identical_and_excludes_it_for_a_shift():
    import random

    from ssmboard.evaluators.stats import paired_bootstrap

    rng = random.Random(3)
    a = [rng.gauss(0, 1) for _ in range(200)]
    same = paired_bootstrap(a, list(a))
    assert (same.delta, same.lo, same.hi, same.within_noise) == (0.0, 0.0, 0.0, True)
    noisy = paired_bootstrap(a, [x + rng.gauss(0, 0.5) for x in a])
    assert noisy.within_noise and noisy.lo < 0 < noisy.hi
    shifted = paired_bootstrap(a, [x + 0.3 + rng.gauss(0, 0.1) for x in a])
    assert not shifted.within_noise and shifted.lo > 0.2 and shifted.verdict(True) == "better"
    assert shifted.verdict(False) == "worse" and shifted.n == 200
    assert paired_bootstrap(a, a[::-1], seed=5) == paired_bootstrap(a, a[::-1], seed=5)  # seeded
    with pytest.raises(ValueError, match="1000"):
        paired_bootstrap(a, a, resamples=10)
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(a, a[:-1])


def test_stderr_difference():
    from ssmboard.evaluators.stats import stderr_difference

    d = stderr_difference(1.0, 0.01, 1.1, 0.01)
    assert d.delta == pytest.approx(0.1) and not d.within_noise and d.hi - d.lo == pytest.approx(2 * 1.96 * 0.01414, rel=1e-3)
    assert stderr_difference(1.0, 0.1, 1.05, 0.1).within_noise
    assert stderr_difference(1.0, None, 2.0, 0.1) is None
